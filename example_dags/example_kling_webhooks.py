"""Event-driven Kling pipeline: a batch submitted with fal webhooks, each video handled on arrival.

``example_kling_webhook_batch`` submits one text-to-video request per prompt with
``wait_for_completion=False`` and ``webhook_asset=``: each task returns as soon as fal has the
request. No worker slot, no triggerer, no status polling: when a video is done, fal calls the
provider's receiver on the api-server (``POST /kling/webhooks/fal``), which verifies fal's
signature and records one event on the asset ``kling_webhook_videos``.

``example_kling_webhook_persist`` is scheduled on that asset and saves each delivered video with
:class:`~airflow_provider_kling.operators.storage.KlingVideoToObjectStorageOperator`. On Airflow
>= 3.2 it uses a partitioned asset schedule keyed by the fal request id, so it runs exactly once per
video; on 3.1 Airflow may fold events that land together into one run, so the DAG handles every
triggering event of its run either way. A failed generation (fal's ``status`` ERROR) fails the run.

fal must be able to reach the receiver: set ``[kling] webhook_url`` to its public HTTPS URL (see
the README, "Event-driven pipelines with webhooks").
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Asset, Param, task

from airflow_provider_kling.operators.kling import KlingTextToVideoOperator
from airflow_provider_kling.operators.storage import KlingVideoToObjectStorageOperator

try:  # Airflow >= 3.2: one run per partition key (the receiver uses the fal request id)
    from airflow.sdk import PartitionedAssetTimetable
except ImportError:  # Airflow 3.1
    PartitionedAssetTimetable = None

OUTPUT_DIR = os.environ.get("KLING_OUTPUT_DIR") or os.path.join(
    os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow")), "kling_videos"
)
KLING_WEBHOOK_VIDEOS = Asset("kling_webhook_videos")
PROMPTS = [
    "A paper boat drifts down a rain-soaked street at dusk",
    "Steam rises from a cup of tea on a windowsill, snow falling outside",
    "A hot-air balloon lifts off over lavender fields at sunrise",
]

with DAG(
    dag_id="example_kling_webhook_batch",
    description="Submit a batch of Kling videos with fal webhooks and return at once (no polling)",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["kling", "example", "webhooks"],
    params={"prompts": Param(PROMPTS, type="array", items={"type": "string"}, minItems=1)},
):

    @task
    def prompts(**context: Any) -> list[str]:
        return [str(prompt) for prompt in context["params"]["prompts"]]

    KlingTextToVideoOperator.partial(
        task_id="submit",
        model="v1.6",
        tier="standard",
        duration=5,
        wait_for_completion=False,  # fal's webhook delivers the result...
        webhook_asset=KLING_WEBHOOK_VIDEOS,  # ...as one event on this asset per video
    ).expand(prompt=prompts())


with DAG(
    dag_id="example_kling_webhook_persist",
    description="Save each Kling video fal's webhook announces (scheduled on kling_webhook_videos)",
    schedule=(
        PartitionedAssetTimetable(assets=KLING_WEBHOOK_VIDEOS)
        if PartitionedAssetTimetable is not None
        else [KLING_WEBHOOK_VIDEOS]
    ),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["kling", "example", "webhooks"],
):

    @task
    def delivered(*, triggering_asset_events: Any = None) -> list[dict[str, Any]]:
        """The videos this run was triggered for; fal's failures fail the run, after the others."""
        events = list(triggering_asset_events[KLING_WEBHOOK_VIDEOS]) if triggering_asset_events else []
        videos = [dict(event.extra) for event in events if event.extra.get("status") == "OK"]
        for event in events:
            extra = event.extra
            print(
                f"fal request {extra.get('request_id')}: {extra.get('status')} {extra.get('video_url') or ''}"
            )
        return videos

    @task
    def failures(*, triggering_asset_events: Any = None) -> None:
        events = list(triggering_asset_events[KLING_WEBHOOK_VIDEOS]) if triggering_asset_events else []
        failed = [event.extra for event in events if event.extra.get("status") != "OK"]
        if failed:
            details = "; ".join(f"{extra.get('request_id')}: {extra.get('error')}" for extra in failed)
            raise RuntimeError(f"{len(failed)} Kling generation(s) failed at fal: {details}")

    KlingVideoToObjectStorageOperator.partial(
        task_id="persist", destination=f"{OUTPUT_DIR}/webhooks/", sidecar=True
    ).expand(source=delivered())
    failures()
