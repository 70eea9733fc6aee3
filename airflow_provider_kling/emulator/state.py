"""Knobs and counters of one emulator instance, shared between the server thread and the test thread.

Everything here is guarded by a lock because tests read counters and turn knobs from their own
thread while uvicorn serves requests on its event loop.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any

# Every route name the emulator counts (``emu.requests``) and faults can target.
ROUTES: frozenset[str] = frozenset(
    {
        "submit",
        "status",
        "status_stream",
        "result",
        "cancel",
        "cdn_token",
        "cdn_upload",
        "multipart_initiate",
        "multipart_part",
        "multipart_complete",
        "storage_initiate",
        "presigned_put",
        "file_get",
        "jwks",
        "unknown",
    }
)


@dataclass
class Knobs:
    """Tunable behaviour; changes apply to requests made after the change.

    :param processing_time: seconds a job spends IN_PROGRESS.
    :param processing_jitter: each job takes up to this many seconds more than ``processing_time``
        (uniformly random), like real generations whose lengths vary.
    :param queue_delay: minimum seconds a job spends IN_QUEUE.
    :param concurrency: jobs processed at the same time (the rest wait in a FIFO).
    :param account_concurrency: jobs IN_PROGRESS at the same time per account (API key id), fal's
        per-account limit: an account's further jobs wait IN_QUEUE, never rejected; None: no limit.
    :param require_key: the only accepted ``Authorization: Key <key>`` value; None accepts any or none.
    :param locked: when True, submits answer 403 "User is locked" (fal's exhausted-balance answer).
    :param log_window: how many of the latest log entries a status response carries (fal's window slides).
    :param sse_keepalive: seconds between ``: ping`` comments on the status stream.
    :param fps: frame rate of generated clips.
    :param webhook_attempts: delivery attempts per webhook (fal retries 10 times over 2 hours).
    :param webhook_retry_delay: seconds between webhook attempts.
    """

    processing_time: float = 2.0
    processing_jitter: float = 0.0
    queue_delay: float = 0.0
    concurrency: int = 2
    account_concurrency: int | None = None
    require_key: str | None = None
    locked: bool = False
    log_window: int = 5
    sse_keepalive: float = 15.0
    fps: int = 8
    webhook_attempts: int = 3
    webhook_retry_delay: float = 0.5

    def update(self, values: dict[str, Any]) -> None:
        """Set knobs from a dict (the HTTP control API); unknown names are an error."""
        known = {f.name: f for f in fields(self)}
        for name, value in values.items():
            if name not in known:
                raise ValueError(f"unknown emulator knob {name!r}; known: {sorted(known)}")
            setattr(self, name, value)
        self.validate()

    def validate(self) -> None:
        if self.processing_time < 0 or self.queue_delay < 0 or self.processing_jitter < 0:
            raise ValueError("processing_time, processing_jitter and queue_delay must be >= 0")
        if int(self.concurrency) < 1:
            raise ValueError("concurrency must be >= 1")
        if self.account_concurrency is not None and int(self.account_concurrency) < 1:
            raise ValueError("account_concurrency must be >= 1 (or None for no per-account limit)")
        if self.log_window < 1 or self.sse_keepalive <= 0 or self.fps < 1:
            raise ValueError("log_window and fps must be >= 1, sse_keepalive > 0")

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class Counters:
    """Thread-safe request counters; readers get snapshots, never the live objects."""

    _lock: threading.Lock = field(default_factory=threading.Lock)
    _submissions: Counter[str] = field(default_factory=Counter)
    _cancellations: Counter[str] = field(default_factory=Counter)
    _requests: Counter[str] = field(default_factory=Counter)
    _headers: dict[str, dict[str, str]] = field(default_factory=dict)

    def saw(self, route: str, headers: dict[str, str]) -> None:
        with self._lock:
            self._requests[route] += 1
            self._headers[route] = headers

    def submitted(self, endpoint_id: str) -> None:
        with self._lock:
            self._submissions[endpoint_id] += 1

    def cancelled(self, request_id: str) -> None:
        with self._lock:
            self._cancellations[request_id] += 1

    @property
    def submissions(self) -> Counter[str]:
        with self._lock:
            return Counter(self._submissions)

    @property
    def cancellations(self) -> Counter[str]:
        with self._lock:
            return Counter(self._cancellations)

    @property
    def requests(self) -> Counter[str]:
        with self._lock:
            return Counter(self._requests)

    def last_headers(self, route: str) -> dict[str, str]:
        with self._lock:
            return dict(self._headers.get(route, {}))

    def clear(self) -> None:
        with self._lock:
            self._submissions.clear()
            self._cancellations.clear()
            self._requests.clear()
            self._headers.clear()

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "submissions": dict(self._submissions),
                "cancellations": dict(self._cancellations),
                "requests": dict(self._requests),
            }


@dataclass(frozen=True)
class Failure:
    """How a job marked by ``fail_next`` completes.

    :param error: text for the status ``error`` field and the result's ``detail``.
    :param error_type: fal's error type (status field, result body and ``X-Fal-Error-Type``).
    :param status_code: HTTP status of the result GET.
    :param retryable: value of ``X-Fal-Retryable`` (None: no header).
    :param detail: result body ``detail`` override (e.g. a 422 list); defaults to ``error``.
    """

    error: str = "Runner disconnected"
    error_type: str = "runner_disconnected"
    status_code: int = 503
    retryable: bool | None = None
    detail: Any = None

    def __post_init__(self) -> None:
        # Coerce JSON numbers from the control API; a 5xx is retryable unless told otherwise, as fal marks
        # runner failures.
        object.__setattr__(self, "status_code", int(self.status_code))
        if self.retryable is None:
            object.__setattr__(self, "retryable", self.status_code >= 500)


class FailureQueue:
    """``fail_next`` bookkeeping: the next N submitted jobs complete with an error."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[Failure] = []

    def push(self, failure: Failure, times: int) -> None:
        with self._lock:
            self._pending.extend([failure] * times)

    def pop(self) -> Failure | None:
        with self._lock:
            return self._pending.pop(0) if self._pending else None

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()
