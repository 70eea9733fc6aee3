"""Test DAGs (driven by tests/test_uncertain_submit.py): fal accepts a submit, then its answer is lost.

``kling_uncertain_submit``: the default. Neither task may submit a second time on its retry.
``kling_uncertain_resubmit``: the documented opt-in (``resubmit_if_uncertain=True``): the retry submits again.
Tasks run one after another (trigger_rule all_done) so the emulator's faults hit known tasks.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_kling.operators.kling import KlingTextToVideoOperator

RETRY = {"retries": 1, "retry_delay": timedelta(seconds=0), "poll_interval": 0.1, "timeout": 60}

with DAG(dag_id="kling_uncertain_submit", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    sync = KlingTextToVideoOperator(task_id="sync", prompt="a paper boat", deferrable=False, **RETRY)
    deferred = KlingTextToVideoOperator(
        task_id="deferred", prompt="a paper boat", deferrable=True, trigger_rule="all_done", **RETRY
    )
    sync >> deferred

with DAG(dag_id="kling_uncertain_resubmit", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    KlingTextToVideoOperator(
        task_id="video", prompt="a paper boat", deferrable=True, resubmit_if_uncertain=True, **RETRY
    )
