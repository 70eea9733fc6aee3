"""The scale-out batch (driven by tests/e2e/test_e2e_scaleout.py), built like example_kling_batch.

``count`` deferrable Kling jobs mapped over generated prompts, then one persistence step per video.
Every fal job takes a slot of the ``fal_kling`` pool from submit until the trigger fires (the pool
counts deferred tasks), so Airflow never has more requests at fal than the pool has slots, however
many tasks, runs and DAGs share the account.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_kling.operators.kling import KlingTextToVideoOperator
from airflow_provider_kling.operators.storage import KlingVideoToObjectStorageOperator

OUTPUT_DIR = os.environ.get("KLING_OUTPUT_DIR", "/tmp/kling-scaleout")
POLL_INTERVAL = float(os.environ.get("KLING_POLL_INTERVAL", "10"))
FAL_POOL = os.environ.get("KLING_FAL_POOL", "fal_kling")


@task
def prompts(count: Any) -> list[dict[str, Any]]:
    # The index in every prompt lets the test match fal's jobs to mapped tasks.
    return [
        {"prompt": f"scale-out clip {index:04d}: a paper boat on a rainy street"}
        for index in range(int(count))
    ]


with DAG(
    dag_id="kling_scaleout",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"count": Param(200, type="integer", minimum=1)},
    max_active_tasks=32,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=3)},
):
    generate = KlingTextToVideoOperator.partial(
        task_id="generate",
        model="v1.6",
        tier="standard",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        pool=FAL_POOL,
    ).expand_kwargs(prompts("{{ params.count }}"))

    KlingVideoToObjectStorageOperator.partial(task_id="persist", destination=f"{OUTPUT_DIR}/").expand(
        source=generate.output
    )
