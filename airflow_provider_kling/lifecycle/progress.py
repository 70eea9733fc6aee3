"""Turn a stream of :class:`RequestStatus` snapshots into readable task-log lines.

Shared by the worker-side wait (sync mode, the sensor) and the trigger (deferrable mode), so both
modes log the same things: queue position changes, new model log lines and elapsed time.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from airflow_provider_kling.protocol.status import LogDeduper, wait_outcome
from airflow_provider_kling.protocol.types import RequestStatus

# fal returns a sliding window of log lines; remembering the newest keys we printed is enough to
# avoid repeats, and a bound keeps hours-long waits from growing the set without limit.
_MAX_REMEMBERED_LOG_KEYS = 2000


class ProgressReporter:
    """Log what changed since the last status snapshot of one request.

    :param log: logger of the task or trigger (``self.log``).
    :param request_id: the fal request followed (prefixes every line).
    :param started_at: epoch seconds the request was submitted; elapsed time is counted from it.
    """

    def __init__(self, log: logging.Logger | Any, request_id: str, started_at: float | None = None) -> None:
        self.log = log
        self.request_id = request_id
        self.started_at = time.time() if started_at is None else started_at
        self._last_state: tuple[str, int | None] | None = None
        self._new_logs = LogDeduper(max_keys=_MAX_REMEMBERED_LOG_KEYS)
        self._queued_seen = False
        self._started_seen_at: float | None = None  # IN_PROGRESS observed right after IN_QUEUE
        self._timed = False

    @property
    def elapsed(self) -> float:
        return max(0.0, time.time() - self.started_at)

    def update(self, status: RequestStatus) -> None:
        """Log the differences between ``status`` and the previously seen snapshot.

        The model's lines in the final snapshot were written before the job finished, so they go
        before the COMPLETED line; lines in any other snapshot were written after the job entered
        its current state, so they go after it. Either way the task log reads in order.
        """
        if wait_outcome(status) != "waiting":
            self._log_new_lines(status)
            self._log_state(status)
            self._emit_timings(status)
        else:
            self._track_start(status)
            self._log_state(status)
            self._log_new_lines(status)

    def _track_start(self, status: RequestStatus) -> None:
        if status.status == "IN_QUEUE":
            self._queued_seen = True
        elif self._queued_seen and self._started_seen_at is None:
            self._started_seen_at = time.time()

    def _emit_timings(self, status: RequestStatus) -> None:
        """Queue wait and generation time of the finished request, once (kling.* timers).

        fal's ``inference_time`` splits the observed total exactly; without it, only a start seen
        by this reporter (IN_QUEUE then IN_PROGRESS) splits it, to the precision of the polling.
        """
        if self._timed:
            return
        self._timed = True
        from airflow_provider_kling import metrics

        inference = metrics.inference_seconds(status.metrics)
        if inference is not None:
            metrics.timings(max(self.elapsed - inference, 0.0), inference)
        elif self._started_seen_at is not None:
            metrics.timings(self._started_seen_at - self.started_at, time.time() - self._started_seen_at)

    def _log_state(self, status: RequestStatus) -> None:
        # Queue position only matters while queued; elsewhere it is None or stale.
        state = (status.status, status.queue_position if status.status == "IN_QUEUE" else None)
        if state == self._last_state:
            return
        self._last_state = state
        elapsed = f"{self.elapsed:.0f}s"
        if status.status == "IN_QUEUE":
            self.log.info(
                "fal request %s: in queue, position %s (elapsed %s)",
                self.request_id,
                status.queue_position,
                elapsed,
            )
        else:
            self.log.info("fal request %s: %s (elapsed %s)", self.request_id, status.status, elapsed)

    def _log_new_lines(self, status: RequestStatus) -> None:
        for entry in self._new_logs.new_entries(status.logs):
            self.log.info("fal request %s [%s] %s", self.request_id, entry.level, entry.message)
