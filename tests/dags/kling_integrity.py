"""Test DAG (driven by tests/test_operator_dags.py): one prompt generated in both modes, and the
deferrable task's video persisted from a bare URL (``generate.output["video_url"]``) into one folder.

Run twice (two logical dates) and once more with the first date (``dag.test()`` clears it first):
the return values of both modes match, both runs' videos stay in the folder, and the cleared
deferrable task reuses its video instead of paying again.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_kling.operators.kling import KlingTextToVideoOperator
from airflow_provider_kling.operators.storage import KlingVideoToObjectStorageOperator

FAST = {"prompt": "a paper boat on a rainy street", "duration": 5, "poll_interval": 0.1, "timeout": 60}

with DAG(dag_id="kling_integrity", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    KlingTextToVideoOperator(task_id="sync_t2v", deferrable=False, **FAST)
    deferred = KlingTextToVideoOperator(task_id="deferred_t2v", deferrable=True, **FAST)
    KlingVideoToObjectStorageOperator(
        task_id="persist",
        source=deferred.output["video_url"],
        destination="{{ dag_run.conf['folder'] }}",
    )
