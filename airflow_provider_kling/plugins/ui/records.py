"""What a page shows about one Kling task, assembled from its XComs and task-instance row."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from airflow_provider_kling.lifecycle import xcom
from airflow_provider_kling.plugins.ui import values

# The XCom keys the Kling tasks push (lifecycle.xcom, one definition for writers and readers).
KEY_RETURN = "return_value"
KEY_REQUEST_ID = xcom.XCOM_REQUEST_ID
KEY_VIDEO_URL = xcom.XCOM_VIDEO_URL
KEY_FAL_REQUEST_URL = xcom.XCOM_FAL_REQUEST_URL
KEY_KLING_REQUEST = xcom.XCOM_KLING_REQUEST
KEY_KLING_ERROR = xcom.XCOM_KLING_ERROR
DETAIL_KEYS = (
    KEY_RETURN,
    KEY_REQUEST_ID,
    KEY_VIDEO_URL,
    KEY_FAL_REQUEST_URL,
    KEY_KLING_REQUEST,
    KEY_KLING_ERROR,
)

STORAGE_OPERATORS = frozenset({"KlingVideoToObjectStorageOperator"})
KLING_OPERATORS = frozenset(
    {
        "KlingVideoOperator",
        "KlingImageToVideoOperator",
        "KlingTextToVideoOperator",
        "KlingLipSyncOperator",
        "KlingVideoEffectsOperator",
        "KlingRequestSensor",
        *STORAGE_OPERATORS,
    }
)
RUNNING_STATES = frozenset(
    {"running", "deferred", "queued", "scheduled", "up_for_retry", "up_for_reschedule", "restarting"}
)


@dataclass(frozen=True)
class TaskKey:
    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1

    @property
    def label(self) -> str:
        return self.task_id if self.map_index < 0 else f"{self.task_id}[{self.map_index}]"


@dataclass
class Persisted:
    """A copy saved by the storage operator: its task and the facts it returned."""

    key: TaskKey
    path: str
    size: int | None = None
    sha256: str | None = None
    content_type: str | None = None


@dataclass
class VideoRecord:
    """Everything the Video tab and a gallery card show about one Kling task."""

    key: TaskKey
    state: str | None = None
    operator: str | None = None
    try_number: int | None = None
    queued_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    request_id: str | None = None
    endpoint_id: str | None = None
    prompt: str | None = None
    video_url: str | None = None
    fal_request_url: str | None = None
    duration: float | None = None
    cost: Decimal | None = None
    content_type: str | None = None
    file_size: int | None = None
    submitted_at: datetime | None = None
    video_ready_at: datetime | None = None
    error: dict[str, Any] = field(default_factory=dict)
    persisted: Persisted | None = None
    fal_conn_id: str | None = None

    @property
    def model(self) -> str | None:
        return values.endpoint_parts(self.endpoint_id)[0]

    @property
    def tier(self) -> str | None:
        return values.endpoint_parts(self.endpoint_id)[1]

    @property
    def mode(self) -> str | None:
        return values.endpoint_parts(self.endpoint_id)[2]

    @property
    def is_storage(self) -> bool:
        return self.operator in STORAGE_OPERATORS

    @property
    def is_running(self) -> bool:
        return (self.state or "") in RUNNING_STATES

    @property
    def fal_seconds(self) -> float | None:
        """Submit to video ready, as the worker saw it (XCom timestamps)."""
        if self.submitted_at and self.video_ready_at and self.video_ready_at >= self.submitted_at:
            return (self.video_ready_at - self.submitted_at).total_seconds()
        return None

    @property
    def airflow_queue_seconds(self) -> float | None:
        if self.queued_at and self.started_at and self.started_at >= self.queued_at:
            return (self.started_at - self.queued_at).total_seconds()
        return None

    def apply(self, xcoms: dict[str, Any], stamps: dict[str, datetime]) -> None:
        """Fill in from this task's XComs (``key -> stored value``) and their timestamps."""
        ret = values.as_dict(xcoms.get(KEY_RETURN))
        request = values.as_dict(xcoms.get(KEY_KLING_REQUEST))
        self.request_id = values.as_text(xcoms.get(KEY_REQUEST_ID)) or values.as_text(ret.get("request_id"))
        self.endpoint_id = values.as_text(ret.get("endpoint_id")) or values.as_text(
            request.get("endpoint_id")
        )
        self.prompt = values.as_text(request.get("prompt")) or values.as_text(ret.get("prompt"))
        self.video_url = (
            values.as_text(xcoms.get(KEY_VIDEO_URL))
            or values.as_text(ret.get("video_url"))
            or values.as_text(ret.get("source_url"))
        )
        self.fal_request_url = values.as_text(xcoms.get(KEY_FAL_REQUEST_URL))
        self.duration = values.as_number(ret.get("duration"))
        self.cost = values.as_cost(ret.get("cost_estimate"))
        self.content_type = values.as_text(ret.get("content_type"))
        size = values.as_number(ret.get("file_size", ret.get("size")))
        self.file_size = int(size) if size is not None else None
        self.error = values.as_dict(xcoms.get(KEY_KLING_ERROR))
        self.submitted_at = stamps.get(KEY_REQUEST_ID)
        self.video_ready_at = stamps.get(KEY_VIDEO_URL)
        path = values.as_text(ret.get("path"))
        if path and self.operator in STORAGE_OPERATORS:
            self.persisted = Persisted(
                key=self.key,
                path=path,
                size=self.file_size,
                sha256=values.as_text(ret.get("sha256")),
                content_type=self.content_type,
            )

    def merge_source(self, source: VideoRecord) -> None:
        """Take what a storage task does not know (prompt, endpoint, cost...) from the task that made the video."""
        for name in (
            "endpoint_id",
            "prompt",
            "duration",
            "cost",
            "fal_request_url",
            "submitted_at",
            "video_ready_at",
        ):
            if getattr(self, name) in (None, "") and getattr(source, name) not in (None, ""):
                setattr(self, name, getattr(source, name))
        if self.video_url is None:
            self.video_url = source.video_url


def prompt_from_rendered(fields: Any) -> tuple[str | None, str | None, str | None]:
    """``(prompt, endpoint_id, fal_conn_id)`` from a task's rendered template fields."""
    fields = values.as_dict(fields)
    arguments = values.as_dict(fields.get("arguments"))
    prompt = values.as_text(fields.get("prompt")) or values.as_text(arguments.get("prompt"))
    return prompt, values.as_text(fields.get("endpoint_id")), values.as_text(fields.get("fal_conn_id"))
