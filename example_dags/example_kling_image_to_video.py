"""Image to video with Kling, then keep the MP4.

A still image (the sample next to this file, or your own) is animated by Kling v1.6 on fal.ai while
the task waits in the triggerer (``deferrable=True``: no worker slot is held during generation),
and the video is copied from fal's CDN to a folder of your choice, with a JSON sidecar.

Needs the ``fal_default`` connection (type ``fal``, API key as password) and a running triggerer.
``make demo`` runs this DAG against the local fal emulator.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG, Param

from airflow_provider_kling.operators.kling import KlingImageToVideoOperator
from airflow_provider_kling.operators.storage import KlingVideoToObjectStorageOperator

PROMPT = "Snowflakes fall as a car moves forward along the road."
SAMPLE_IMAGE = Path(__file__).with_name("sample_winter_road.png")
OUTPUT_DIR = os.environ.get("KLING_OUTPUT_DIR") or os.path.join(
    os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow")), "kling_videos"
)
# fal takes minutes per video; poll seldom. SSE status streaming makes the wait end promptly anyway.
POLL_INTERVAL = float(os.environ.get("KLING_POLL_INTERVAL", "10"))

with DAG(
    dag_id="example_kling_image_to_video",
    description="Animate an image with Kling and save the MP4",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["kling", "example"],
    params={
        "image": Param(str(SAMPLE_IMAGE), type="string", description="URL or local path of the first frame"),
        "prompt": Param(PROMPT, type="string", maxLength=2500),
        "output_dir": Param(OUTPUT_DIR, type="string", description="Local folder (or any fsspec URL)"),
    },
) as dag:
    generate = KlingImageToVideoOperator(
        task_id="generate",
        prompt="{{ params.prompt }}",
        image="{{ params.image }}",  # a local file is uploaded to fal's CDN first
        model="v1.6",
        tier="standard",
        duration=5,
        deferrable=True,
        poll_interval=POLL_INTERVAL,
    )

    persist = KlingVideoToObjectStorageOperator(
        task_id="persist",
        source=generate.output,  # the operator's result dict: video_url, request_id, file_size...
        # A bare path is a local folder; "s3://bucket/kling/" etc. work with the matching provider.
        destination="{{ params.output_dir }}/image_to_video/",
        sidecar={"prompt": "{{ params.prompt }}"},
    )

    generate >> persist
