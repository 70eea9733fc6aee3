"""Test DAG (driven by tests/test_cost_cap.py): a mapped task whose estimate exceeds the cap.

Three mapped v1.6 pro image-to-video tasks of 10 s (0.98 USD each) under a templated 0.50 USD cap,
each with a local image that would have to be uploaded first: all must fail before any request.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_kling.operators.kling import KlingImageToVideoOperator

with DAG(
    dag_id="kling_cost_cap",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"cap": "0.50"},
):
    KlingImageToVideoOperator.partial(
        task_id="capped",
        image="{{ dag_run.conf['image_path'] }}",
        model="v1.6",
        tier="pro",
        duration=10,
        max_cost_usd="{{ params.cap }}",
        poll_interval=0.1,
    ).expand(prompt=["a cat blinks", "a cat yawns", "a cat stretches"])
