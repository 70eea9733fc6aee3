"""Test DAG (driven by tests/test_observability.py): lineage events and metrics of a real run.

A sync image-to-video task with a local image (uploaded) under a cost cap, a deferrable
text-to-video task, the first video persisted to local object storage, and a task whose wait
times out (the request is cancelled): submissions, a cancellation, a failure and the timers.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_kling.operators.kling import KlingImageToVideoOperator, KlingTextToVideoOperator
from airflow_provider_kling.operators.storage import KlingVideoToObjectStorageOperator

with DAG(dag_id="kling_observability", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    generate = KlingImageToVideoOperator(
        task_id="generate",
        prompt="{{ dag_run.conf['prompt'] }}",
        image="{{ dag_run.conf['image_path'] }}",
        model="v1.6",
        tier="standard",
        max_cost_usd="{{ dag_run.conf['cap'] }}",
        poll_interval=0.05,
    )
    deferred = KlingTextToVideoOperator(
        task_id="deferred", prompt="a red fox in snow", deferrable=True, poll_interval=0.05
    )
    persist = KlingVideoToObjectStorageOperator(
        task_id="persist", source=generate.output, destination="{{ dag_run.conf['out_dir'] }}/"
    )
    too_slow = KlingTextToVideoOperator(
        task_id="too_slow", prompt="a very long sunset", poll_interval=0.05, timeout=0.2
    )
    generate >> deferred >> too_slow
