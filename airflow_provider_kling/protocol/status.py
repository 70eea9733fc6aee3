"""Status payloads (polled or streamed) into :class:`RequestStatus`, what a status means for a waiter,
and log de-duplication."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any, Literal, cast

from airflow_provider_kling.exceptions import KlingServerError
from airflow_provider_kling.protocol.types import QUEUE_STATES, LogEntry, QueueState, RequestStatus

#: What a status means for whoever waits on the request.
WaitOutcome = Literal["waiting", "succeeded", "failed"]


def wait_outcome(status: RequestStatus) -> WaitOutcome:
    """Keep waiting, done, or failed: the one rule every wait loop follows (the hook's sync wait and
    status stream, the trigger, the sensor's poke, the reattach decision).

    fal has no FAILED state: a job ends COMPLETED, and a failed one carries its error there.
    """
    if not status.done:
        return "waiting"
    return "failed" if status.failed else "succeeded"


def _log_entry(raw: Any) -> LogEntry | None:
    if not isinstance(raw, dict):
        return None
    return LogEntry(
        message=str(raw.get("message", "")),
        level=str(raw.get("level") or "INFO"),
        source=str(raw.get("source") or "USER"),
        timestamp=str(raw.get("timestamp") or ""),
    )


def _queue_position(raw: Any) -> int | None:
    if isinstance(raw, bool):
        return None
    try:
        return int(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None


def parse_status(payload: Any, *, request_id: str) -> RequestStatus:
    """Parse one status object (a status response body or one SSE event's data).

    :param request_id: used when the payload omits it.
    :raises KlingServerError: for anything but IN_QUEUE / IN_PROGRESS / COMPLETED. fal has no FAILED
        state; treating an unknown word as "done" could report a broken job as a success.
    """
    if not isinstance(payload, dict):
        raise KlingServerError(
            f"fal returned a status that is not a JSON object for request {request_id}", request_id=request_id
        )
    state = payload.get("status")
    if state not in QUEUE_STATES:
        raise KlingServerError(
            f"fal returned an unknown status {state!r} for request {request_id} "
            f"(expected one of {', '.join(sorted(QUEUE_STATES))})",
            request_id=request_id,
        )
    logs = tuple(entry for entry in map(_log_entry, payload.get("logs") or ()) if entry is not None)
    metrics = payload.get("metrics")
    error = payload.get("error")
    error_type = payload.get("error_type")
    return RequestStatus(
        status=cast(QueueState, state),
        request_id=str(payload.get("request_id") or request_id),
        queue_position=_queue_position(payload.get("queue_position")) if state == "IN_QUEUE" else None,
        logs=logs,
        metrics=dict(metrics) if isinstance(metrics, dict) else {},
        error=str(error) if error is not None else None,
        error_type=str(error_type) if error_type is not None else None,
    )


class LogDeduper:
    """Yield each log entry once across successive status responses.

    fal returns the logs inside a *moving time window* (and a stream may repeat or resend entries), so
    entries are identified by ``(timestamp, message)``, never by position. Memory is bounded: only the
    newest ``max_keys`` identities are remembered.

    :param max_keys: how many entry identities to remember.
    """

    def __init__(self, max_keys: int = 10_000) -> None:
        self._order: deque[tuple[str, str]] = deque()
        self._seen: set[tuple[str, str]] = set()
        self._max_keys = max_keys

    def new_entries(self, logs: Iterable[LogEntry]) -> list[LogEntry]:
        """Return the entries of ``logs`` not returned before, in their original order."""
        fresh: list[LogEntry] = []
        for entry in logs:
            key = entry.key
            if key in self._seen:
                continue
            self._seen.add(key)
            self._order.append(key)
            fresh.append(entry)
            if len(self._order) > self._max_keys:
                self._seen.discard(self._order.popleft())
        return fresh

    def __len__(self) -> int:
        return len(self._seen)
