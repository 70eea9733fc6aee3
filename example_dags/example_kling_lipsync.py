"""A lip-sync chain: generate a talking-head video, make it say a line, keep the result.

Step two takes step one's video URL from XCom (``generate.output["video_url"]`` is the XCom key
``video_url`` the Kling operators push) and speaks ``text`` with one of Kling's voices. Pass
``audio=`` instead of ``text=`` to sync to your own recording.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_kling.operators.kling import KlingLipSyncOperator, KlingTextToVideoOperator
from airflow_provider_kling.operators.storage import KlingVideoToObjectStorageOperator

OUTPUT_DIR = os.environ.get("KLING_OUTPUT_DIR") or os.path.join(
    os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow")), "kling_videos"
)
POLL_INTERVAL = float(os.environ.get("KLING_POLL_INTERVAL", "10"))

with DAG(
    dag_id="example_kling_lipsync",
    description="Kling text-to-video, then lip-sync it to a spoken line",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["kling", "example"],
    default_args={"deferrable": True, "poll_interval": POLL_INTERVAL},
) as dag:
    presenter = KlingTextToVideoOperator(
        task_id="generate_presenter",
        prompt="A friendly news presenter looks into the camera in a bright studio, head and shoulders.",
        model="v1.6",
        tier="standard",
        duration=5,
        aspect_ratio="16:9",
    )

    talk = KlingLipSyncOperator(
        task_id="lipsync",
        video=presenter.output["video_url"],
        text="Good evening. Tonight's weather: snow, and lots of it.",  # at most 120 characters
        voice_id="oversea_male1",
        voice_language="en",
        voice_speed=1.0,
    )

    persist = KlingVideoToObjectStorageOperator(
        task_id="persist",
        source=talk.output,
        destination=f"{OUTPUT_DIR}/lipsync/",
        sidecar=True,
    )

    presenter >> talk >> persist
