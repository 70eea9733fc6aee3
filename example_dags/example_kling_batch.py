"""A batch of Kling videos from a CSV of prompts, one mapped task per row, and a catalog DAG.

``example_kling_batch`` reads ``kling_batch_prompts.csv`` (columns ``prompt``, ``aspect_ratio``,
``duration``), generates one video per row with dynamic task mapping while the waits sit in the
triggerer, and saves each video with a JSON sidecar holding its prompt. Every saved video emits an
event on the asset ``kling_batch_videos``, with its path, size and sha256 in the event's ``extra``.

``example_kling_batch_catalog`` is scheduled on that asset: it rebuilds ``catalog.json`` in the
batch folder each time new videos land.
"""

from __future__ import annotations

import csv
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Asset, Param, task

from airflow_provider_kling.operators.kling import KlingTextToVideoOperator
from airflow_provider_kling.operators.storage import KlingVideoToObjectStorageOperator

PROMPTS_CSV = Path(__file__).with_name("kling_batch_prompts.csv")
OUTPUT_DIR = os.environ.get("KLING_OUTPUT_DIR") or os.path.join(
    os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow")), "kling_videos"
)
POLL_INTERVAL = float(os.environ.get("KLING_POLL_INTERVAL", "10"))

BATCH_DIR = f"{OUTPUT_DIR}/batch"
KLING_BATCH_VIDEOS = Asset("kling_batch_videos")
CATALOG_FIELDS = ("path", "request_id", "prompt", "duration", "size", "sha256", "cost_estimate")


@task
def read_prompts(csv_path: str) -> list[dict[str, Any]]:
    """One dict of KlingTextToVideoOperator keyword arguments per CSV row."""
    with open(csv_path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError(f"{csv_path} has no prompts")
    return [
        {"prompt": row["prompt"], "aspect_ratio": row["aspect_ratio"], "duration": int(row["duration"])}
        for row in rows
    ]


def _persist_kwargs(pair: tuple[dict[str, Any], dict[str, Any]]) -> dict[str, Any]:
    """Pair each video with the row it came from, so the sidecar records the prompt."""
    video, row = pair
    return {"source": video, "sidecar": {"prompt": row["prompt"]}}


with DAG(
    dag_id="example_kling_batch",
    description="One Kling video per CSV row (dynamic task mapping), saved with an asset event each",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["kling", "example"],
    params={"prompts_csv": Param(str(PROMPTS_CSV), type="string")},
    max_active_tasks=8,
):
    prompts = read_prompts("{{ params.prompts_csv }}")

    generate = KlingTextToVideoOperator.partial(
        task_id="generate",
        model="v1.6",
        tier="standard",
        deferrable=True,  # waits in the triggerer: a batch of 100 holds no worker slots
        poll_interval=POLL_INTERVAL,
    ).expand_kwargs(prompts)

    KlingVideoToObjectStorageOperator.partial(
        task_id="persist",
        destination=f"{BATCH_DIR}/",
        outlets=[KLING_BATCH_VIDEOS],
    ).expand_kwargs(generate.output.zip(prompts).map(_persist_kwargs))


with DAG(
    dag_id="example_kling_batch_catalog",
    description="Catalog the videos of example_kling_batch (scheduled on its asset)",
    schedule=[KLING_BATCH_VIDEOS],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["kling", "example"],
):

    @task
    def catalog(*, triggering_asset_events: Any = None) -> dict[str, Any]:
        """Rebuild ``catalog.json`` from the sidecars in the batch folder.

        The folder, not only the triggering events, is the source of truth: Airflow may fold events
        that land milliseconds apart into one run and hand some of them to a later one.
        """
        from airflow.sdk import ObjectStoragePath  # works the same for s3://, gs://, ...

        events = triggering_asset_events[KLING_BATCH_VIDEOS] if triggering_asset_events else []
        announced = sorted(str(event.extra.get("path")) for event in events)
        folder = ObjectStoragePath(BATCH_DIR)
        videos = []
        for sidecar in sorted(folder.glob("*.json"), key=str):
            if sidecar.name != "catalog.json":
                doc = json.loads(sidecar.read_text())
                videos.append({key: doc.get(key) for key in CATALOG_FIELDS})
        (folder / "catalog.json").write_text(json.dumps({"videos": videos, "announced": announced}, indent=2))
        print(f"Catalogued {len(videos)} video(s); {len(announced)} announced by this run's asset events")
        return {"videos": len(videos), "paths": [v["path"] for v in videos], "announced": announced}

    catalog()
