"""Submit without waiting, then wait with a sensor.

Useful when the wait should be a separate, retryable step (a sensor only follows an existing
request, so retrying it never pays twice), or when something else happens in between. The
``submit`` task returns right after fal accepted the request and pushes its id as XCom
``request_id``; ``KlingRequestSensor`` then waits for it in the triggerer and returns the same
result dict as the Kling operators, which the storage operator takes as it is.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_kling.operators.kling import KlingTextToVideoOperator
from airflow_provider_kling.operators.storage import KlingVideoToObjectStorageOperator
from airflow_provider_kling.sensors.kling import KlingRequestSensor

OUTPUT_DIR = os.environ.get("KLING_OUTPUT_DIR") or os.path.join(
    os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow")), "kling_videos"
)
POLL_INTERVAL = float(os.environ.get("KLING_POLL_INTERVAL", "10"))

with DAG(
    dag_id="example_kling_submit_and_sense",
    description="Submit a Kling request, wait for it with KlingRequestSensor, save the video",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["kling", "example"],
) as dag:
    submit = KlingTextToVideoOperator(
        task_id="submit",
        prompt="An origami crane unfolds itself on a wooden desk, soft window light.",
        model="v1.6",
        tier="standard",
        duration=5,
        wait_for_completion=False,  # returns once fal queued the request
    )

    wait = KlingRequestSensor(
        task_id="wait",
        request_id="{{ ti.xcom_pull(task_ids='submit', key='request_id') }}",
        endpoint_id="{{ ti.xcom_pull(task_ids='submit')['endpoint_id'] }}",
        deferrable=True,
        poke_interval=POLL_INTERVAL,
        timeout=3600,
    )

    persist = KlingVideoToObjectStorageOperator(
        task_id="persist",
        source=wait.output,
        destination=f"{OUTPUT_DIR}/sensed/",
    )

    submit >> wait >> persist
