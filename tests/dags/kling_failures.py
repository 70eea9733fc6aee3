"""Test DAG (driven by tests/test_operator_dags.py): the ways a Kling task fails.

Tasks run one after another (trigger_rule all_done) so the emulator's "fail the next job" knob
hits a known task: a job fal fails (deferrable, then sync) and input fal rejects at result time
(an image URL fal cannot download). The job that outlives its task's execution_timeout is in
kling_deadline.py: it needs an emulator whose jobs never finish on their own.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_kling.operators.kling import KlingImageToVideoOperator, KlingTextToVideoOperator

FAST = {"poll_interval": 0.1, "timeout": 60, "trigger_rule": "all_done"}

with DAG(dag_id="kling_failures", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    job_fails = KlingTextToVideoOperator(task_id="job_fails", prompt="a storm", deferrable=True, **FAST)
    job_fails_sync = KlingTextToVideoOperator(
        task_id="job_fails_sync", prompt="a storm", deferrable=False, **FAST
    )
    rejected = KlingImageToVideoOperator(
        task_id="rejected_at_result_time",
        prompt="the cat blinks",
        image="{{ dag_run.conf['missing_image_url'] }}",
        deferrable=True,
        **FAST,
    )
    job_fails >> job_fails_sync >> rejected
