"""Value types shared by the protocol core, the hooks, the trigger and the operators.

Pure data: no I/O, no Airflow import (the trigger and the DAG parser import this cheaply).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

QueueState = Literal["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]
QUEUE_STATES: frozenset[str] = frozenset({"IN_QUEUE", "IN_PROGRESS", "COMPLETED"})

CancelOutcome = Literal["CANCELLATION_REQUESTED", "ALREADY_COMPLETED", "NOT_FOUND"]


@dataclass(frozen=True)
class FalRequest:
    """Handle of one queued fal request; everything needed to follow it from another process.

    :param request_id: fal's queue request id (a UUID).
    :param endpoint_id: the full endpoint id it was submitted to (with sub-path).
    :param status_url: status URL exactly as returned by submit.
    :param response_url: result URL exactly as returned by submit.
    :param cancel_url: cancel URL exactly as returned by submit.
    """

    request_id: str
    endpoint_id: str
    status_url: str
    response_url: str
    cancel_url: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FalRequest:
        return cls(
            request_id=str(data["request_id"]),
            endpoint_id=str(data["endpoint_id"]),
            status_url=str(data["status_url"]),
            response_url=str(data["response_url"]),
            cancel_url=str(data["cancel_url"]),
        )


@dataclass(frozen=True)
class LogEntry:
    """One model log line as fal reports it."""

    message: str
    level: str = "INFO"
    source: str = "USER"
    timestamp: str = ""

    @property
    def key(self) -> tuple[str, str]:
        # fal returns a sliding window of logs, so identity is (timestamp, message), never the index.
        return (self.timestamp, self.message)


@dataclass(frozen=True)
class RequestStatus:
    """A parsed status response.

    :param status: IN_QUEUE, IN_PROGRESS or COMPLETED (fal has no FAILED state).
    :param request_id: the request id.
    :param queue_position: requests ahead of this one (IN_QUEUE only).
    :param logs: log entries in this response's window (empty when logs were not asked for).
    :param metrics: e.g. ``{"inference_time": 41.7}`` once COMPLETED.
    :param error: fal's error text when a COMPLETED request failed.
    :param error_type: fal's error type when a COMPLETED request failed.
    """

    status: QueueState
    request_id: str
    queue_position: int | None = None
    logs: tuple[LogEntry, ...] = ()
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    error_type: str | None = None

    @property
    def done(self) -> bool:
        return self.status == "COMPLETED"

    @property
    def failed(self) -> bool:
        return self.done and (self.error is not None or self.error_type is not None)
