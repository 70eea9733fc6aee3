"""Test DAGs (driven by tests/test_reattach_sigkill.py): one Kling task with a retry.

The worker running try 1 is SIGKILLed right after submit; try 2 must follow the same fal request.
``kling_reattach_sync`` keeps the handle in the task state store (Airflow >= 3.3);
``kling_reattach_deferred`` waits in the trigger and forces the Airflow 3.1/3.2 store (a Variable).
``kling_submit_only_variable`` only submits (with that store) and must not leave the Variable behind.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_kling.operators.kling import KlingTextToVideoOperator


class VariableStoreTextToVideoOperator(KlingTextToVideoOperator):
    """Uses the Variable-backed reattach store that Airflow 3.1/3.2 get."""

    _force_variable_store = True


RETRY = {"retries": 1, "retry_delay": timedelta(seconds=0), "poll_interval": 0.1, "timeout": 60}

with DAG(dag_id="kling_reattach_sync", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    KlingTextToVideoOperator(task_id="video", prompt="a glacier calving", deferrable=False, **RETRY)

with DAG(dag_id="kling_reattach_deferred", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    VariableStoreTextToVideoOperator(task_id="video", prompt="a glacier calving", deferrable=True, **RETRY)

with DAG(dag_id="kling_submit_only_variable", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    VariableStoreTextToVideoOperator(task_id="video", prompt="a glacier calving", wait_for_completion=False)
