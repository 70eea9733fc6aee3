"""Text to video with camera control.

Kling v1 (standard) lets you steer the camera: a preset move (``camera_control``) or one axis of
movement with a strength from -10 to 10 (``advanced_camera_control``); the two are exclusive.
The first task waits in the worker (sync mode, for setups without a triggerer), the second in the
triggerer. Both videos are saved to a folder.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_kling.operators.kling import KlingTextToVideoOperator
from airflow_provider_kling.operators.storage import KlingVideoToObjectStorageOperator

OUTPUT_DIR = os.environ.get("KLING_OUTPUT_DIR") or os.path.join(
    os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow")), "kling_videos"
)
POLL_INTERVAL = float(os.environ.get("KLING_POLL_INTERVAL", "10"))

with DAG(
    dag_id="example_kling_text_to_video",
    description="Kling text-to-video with a camera preset and an advanced camera move",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["kling", "example"],
    default_args={"poll_interval": POLL_INTERVAL},
) as dag:
    rise = KlingTextToVideoOperator(
        task_id="lighthouse_rise",
        prompt="A lighthouse on a cliff at dawn, waves breaking below, seagulls circling.",
        model="v1",
        tier="standard",
        duration=5,
        aspect_ratio="16:9",
        camera_control="forward_up",  # preset: down_back, forward_up, right_turn_forward, left_turn_forward
        deferrable=False,  # polls from the worker
    )

    pan = KlingTextToVideoOperator(
        task_id="market_pan",
        prompt="A busy night market with lanterns, steam rising from food stalls.",
        model="v1",
        tier="standard",
        duration=5,
        aspect_ratio="9:16",
        advanced_camera_control={"movement_type": "pan", "movement_value": 6},
        deferrable=True,
    )

    for generate in (rise, pan):
        KlingVideoToObjectStorageOperator(
            task_id=f"persist_{generate.task_id}",
            source=generate.output,
            destination=f"{OUTPUT_DIR}/text_to_video/",
        )
