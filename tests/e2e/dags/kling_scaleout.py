"""The scale-out batch (driven by tests/e2e/test_e2e_scaleout.py), built like example_kling_batch.

``count`` deferrable Kling jobs mapped over generated prompts, each followed by its persistence
step. The two form a mapped task group, so ``clip.persist[i]`` saves video ``i`` as soon as it is
ready, while the rest of the batch is still at fal, instead of waiting for the whole batch.
Every fal job takes a slot of the ``fal_kling`` pool from submit until the trigger fires (the pool
counts deferred tasks), so Airflow never has more requests at fal than the pool has slots, however
many tasks, runs and DAGs share the account.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, task, task_group

from airflow_provider_kling.operators.kling import KlingTextToVideoOperator
from airflow_provider_kling.operators.storage import KlingVideoToObjectStorageOperator

OUTPUT_DIR = os.environ.get("KLING_OUTPUT_DIR", "/tmp/kling-scaleout")
POLL_INTERVAL = float(os.environ.get("KLING_POLL_INTERVAL", "10"))
FAL_POOL = os.environ.get("KLING_FAL_POOL", "fal_kling")


@task
def prompts(count: Any) -> list[str]:
    # The index in every prompt lets the test match fal's jobs to mapped tasks.
    return [f"scale-out clip {index:04d}: a paper boat on a rainy street" for index in range(int(count))]


@task_group
def clip(prompt: str) -> None:
    video = KlingTextToVideoOperator(
        task_id="generate",
        prompt=prompt,
        model="v1.6",
        tier="standard",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        pool=FAL_POOL,
    )
    KlingVideoToObjectStorageOperator(task_id="persist", source=video.output, destination=f"{OUTPUT_DIR}/")


with DAG(
    dag_id="kling_scaleout",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"count": Param(200, type="integer", minimum=1)},
    max_active_tasks=64,
    # A ready video is saved before another job is submitted or resumed: persist outranks
    # generate, so no backlog of unsaved videos builds up behind the batch.
    default_args={"retries": 2, "retry_delay": timedelta(seconds=3), "weight_rule": "upstream"},
):
    clip.expand(prompt=prompts("{{ params.count }}"))
