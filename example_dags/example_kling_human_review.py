"""Human review before a video is kept.

Kling generates a clip; a reviewer watches it from the link in the "Required Actions" view of the
Airflow UI (Airflow's human-in-the-loop ``ApprovalOperator``, Airflow >= 3.1) and picks Approve or
Reject. Approve saves the video; Reject skips the save. The review can also be answered through
the REST API: ``PATCH /api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/review/-1/hitlDetails``
with ``{"chosen_options": ["Approve"]}``.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import DAG

from airflow_provider_kling.operators.kling import KlingTextToVideoOperator
from airflow_provider_kling.operators.storage import KlingVideoToObjectStorageOperator

OUTPUT_DIR = os.environ.get("KLING_OUTPUT_DIR") or os.path.join(
    os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow")), "kling_videos"
)
POLL_INTERVAL = float(os.environ.get("KLING_POLL_INTERVAL", "10"))
PROMPT = "A red fox trots through fresh snow in a quiet birch forest, golden hour."

with DAG(
    dag_id="example_kling_human_review",
    description="Generate a Kling video, have a human approve it, then save it",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["kling", "example", "hitl"],
) as dag:
    generate = KlingTextToVideoOperator(
        task_id="generate",
        prompt=PROMPT,
        model="v1.6",
        tier="standard",
        duration=5,
        aspect_ratio="16:9",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
    )

    review = ApprovalOperator(
        task_id="review",
        subject="Keep this Kling video?",
        body=(
            f"**Prompt:** {PROMPT}\n\n"
            "[Watch the video]({{ ti.xcom_pull(task_ids='generate')['video_url'] }})\n\n"
            "fal request `{{ ti.xcom_pull(task_ids='generate')['request_id'] }}`, estimated cost "
            "{{ ti.xcom_pull(task_ids='generate')['cost_estimate'] }} USD."
        ),
        response_timeout=timedelta(days=2),  # unanswered reviews then fail instead of waiting forever
    )

    persist = KlingVideoToObjectStorageOperator(
        task_id="persist",
        source=generate.output,
        destination=f"{OUTPUT_DIR}/reviewed/",
        sidecar={
            "prompt": PROMPT,
            "approved_by": "{{ (ti.xcom_pull(task_ids='review').get('responded_by_user') or {}).get('name') }}",
        },
    )

    generate >> review >> persist
