"""Test DAG (driven by tests/test_operator_dags.py): every happy path of the Kling tasks.

Sync and deferrable operators, a local image uploaded first, submit-then-sense in both sensor
modes, dynamic task mapping, an outlet asset. The fal connection comes from
AIRFLOW_CONN_FAL_DEFAULT (the emulator); the local image path from ``dag_run.conf``.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Asset, task

from airflow_provider_kling.operators.kling import (
    KlingImageToVideoOperator,
    KlingTextToVideoOperator,
    KlingVideoOperator,
)
from airflow_provider_kling.sensors.kling import KlingRequestSensor

T2V = "fal-ai/kling-video/v1.6/standard/text-to-video"
FOX_VIDEO = Asset(name="kling_fox_video", uri="file:///videos/kling/fox.mp4")
FAST = {"poll_interval": 0.1, "timeout": 60}
REQUEST_ID = "{{ ti.xcom_pull(task_ids='submit', key='request_id') }}"

with DAG(dag_id="kling_modes", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    KlingTextToVideoOperator(
        task_id="sync_t2v",
        prompt="a red fox in fresh snow",
        duration=5,
        deferrable=False,
        outlets=[FOX_VIDEO],
        **FAST,
    )
    KlingImageToVideoOperator(
        task_id="deferred_i2v",
        prompt="the cat slowly blinks",
        image="{{ dag_run.conf['image_path'] }}",
        model="v2.6",
        tier="pro",
        deferrable=True,
        **FAST,
    )
    submit = KlingVideoOperator(
        task_id="submit",
        endpoint_id=T2V,
        arguments={"prompt": "waves breaking on {{ dag_run.conf['beach'] }}"},
        wait_for_completion=False,
        **FAST,
    )
    sense = KlingRequestSensor(
        task_id="sense", request_id=REQUEST_ID, endpoint_id=T2V, poke_interval=0.1, timeout=60
    )
    sense_deferred = KlingRequestSensor(
        task_id="sense_deferred",
        request_id=REQUEST_ID,
        endpoint_id=T2V,
        deferrable=True,
        poke_interval=0.1,
        timeout=60,
    )
    submit >> [sense, sense_deferred]

    mapped = KlingTextToVideoOperator.partial(task_id="mapped", deferrable=True, **FAST).expand(
        prompt=["a paper boat", "a neon city at night", "a hummingbird"]
    )

    @task
    def collect(videos: list[dict]) -> list[str]:
        return [video["video_url"] for video in videos]

    collect(mapped.output)
