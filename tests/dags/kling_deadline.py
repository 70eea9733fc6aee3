"""Test DAG (driven by tests/test_operator_dags.py): a deferred job that outlives execution_timeout.

The test runs it against an emulator whose jobs never finish on their own, so the only way the
job ends is the cancel the task sends when its deadline passes: the outcome cannot depend on how
fast the machine resumes the task. The execution_timeout leaves room for a slow machine: Airflow
applies it to ``execute`` (which submits and defers) and again to the resumed ``execute_complete``
(which cancels), and on a loaded Airflow 3.1 one second was not always enough for either.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_kling.operators.kling import KlingTextToVideoOperator

with DAG(dag_id="kling_deadline", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    KlingTextToVideoOperator(
        task_id="too_slow",
        prompt="a very long sunset",
        deferrable=True,
        poll_interval=0.1,
        timeout=3600,
        execution_timeout=timedelta(seconds=5),
    )
