"""Test DAG for the UI pages (tests/test_ui_plugin.py, and the browser checks in tests/e2e).

``fails`` runs first, so the emulator's "fail the next job" knob hits it; ``invalid`` fails before
anything is sent to fal, with an error text that quotes markup. Then two mapped videos (waiting in
the worker, so their cost estimate is recorded), one with a prompt full of markup (the XSS probe),
each persisted to disk.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_kling.operators.kling import KlingTextToVideoOperator, KlingVideoOperator
from airflow_provider_kling.operators.storage import KlingVideoToObjectStorageOperator

XSS_PROMPT = (
    'A cat on a "mat" <script>window.__kling_xss = 1</script>'
    ' <img src=x onerror="window.__kling_xss = 2"> & friends'
)
XSS_ERROR_VALUE = "<img src=x onerror=window.__kling_xss=3>"
PROMPTS = ["A lighthouse on a cliff at dawn, waves breaking below", XSS_PROMPT]
OUTPUT_DIR = os.environ.get("KLING_OUTPUT_DIR") or os.path.join(
    os.environ.get("AIRFLOW_HOME", "/tmp"), "videos"
)
POLL = float(os.environ.get("KLING_POLL_INTERVAL", "0.1"))

with DAG(
    dag_id="kling_ui", schedule=None, start_date=datetime(2026, 1, 1), catchup=False, max_active_tasks=4
):
    fails = KlingTextToVideoOperator(
        task_id="fails", prompt="A storm over the sea", deferrable=True, poll_interval=POLL, timeout=120
    )
    invalid = KlingVideoOperator(
        task_id="invalid",
        endpoint_id="fal-ai/kling-video/v1.6/standard/text-to-video",
        arguments={"prompt": "A storm", "aspect_ratio": XSS_ERROR_VALUE},
        trigger_rule="all_done",
    )
    generate = KlingTextToVideoOperator.partial(
        task_id="generate", deferrable=False, poll_interval=POLL, timeout=120, trigger_rule="all_done"
    ).expand(prompt=PROMPTS)
    persist = KlingVideoToObjectStorageOperator.partial(
        task_id="persist", destination=f"{OUTPUT_DIR}/ui/"
    ).expand(source=generate.output)
    fails >> invalid >> generate
