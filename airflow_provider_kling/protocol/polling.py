"""When to poll a fal request's status next: jittered start, back-off that follows a Kling job's shape.

A Kling job waits in fal's queue, then runs for 1.5 to 6 minutes, then completes. Polling every
``poll_interval`` seconds from start to end wastes most requests, and thousands of triggers started
together (a triggerer restart, a mapped batch) would poll in lock-step. The schedule therefore:

* starts at a random point within the first interval (no lock-step);
* backs off while the queue position does not move, and returns to ``poll_interval`` when it does;
* once it saw the job leave the queue, polls sparsely in its first ``min_runtime`` seconds of
  running (it cannot be done yet), halving the gap as that point approaches, then every
  ``poll_interval`` (a job first seen already running may be near its end: no sparse start);
* never waits less than ``poll_interval`` between two polls, nor more than ``max_interval``.

Sans-I/O: the caller reports each status and sleeps for what :meth:`PollSchedule.next_delay` returns.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from airflow_provider_kling.exceptions import KlingConfigurationError
from airflow_provider_kling.protocol.types import RequestStatus

#: Seconds between status polls unless a task (or a hook call) says otherwise: the operators, the
#: sensor, the trigger and the hook's own waits all default to it.
DEFAULT_POLL_INTERVAL = 10.0

#: A queued job whose position has not moved is polled this much less often each time.
QUEUE_BACKOFF = 1.5
#: Kling jobs run at least this long once started (fal's v1.x to v2.x clips: 1.5 to 6 minutes).
MIN_RUNTIME = 60.0
#: Longest gap between two polls, in multiples of ``poll_interval`` (and at most ``MAX_INTERVAL_CAP``).
MAX_INTERVAL_FACTOR = 6.0
MAX_INTERVAL_CAP = 60.0


def check_seconds(value: Any, name: str, *, owner: str = "") -> float:
    """``value`` as a number of seconds (a number or timedelta, > 0), else an error naming ``name``.

    :param owner: prefix of the message, e.g. ``"KlingRequestTrigger: "``.
    :raises KlingConfigurationError: naming the parameter and the value.
    """
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
        raise KlingConfigurationError(f"{owner}{name} must be a number > 0 seconds, got {value!r}")
    return float(seconds)


def check_poll_interval(value: Any, *, owner: str = "") -> float:
    """``value`` as seconds between polls: the one check every place that takes a ``poll_interval``
    applies (the operators, the trigger's kwargs before they are serialised, the hook's waits)."""
    return check_seconds(value, "poll_interval", owner=owner)


class PollSchedule:
    """Delays between status polls of one request.

    :param poll_interval: the shortest gap between two polls, seconds (> 0).
    :param max_interval: the longest gap; defaults to ``min(6 * poll_interval, 60)`` but never less
        than ``poll_interval``.
    :param min_runtime: seconds a started job certainly runs; 0 disables the sparse start.
    :param clock: monotonic seconds (tests pass a fake one).
    :param rng: random source for the jitter.
    """

    def __init__(
        self,
        poll_interval: float,
        *,
        max_interval: float | None = None,
        min_runtime: float = MIN_RUNTIME,
        clock: Callable[[], float] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.poll_interval = check_poll_interval(poll_interval)
        default_max = min(MAX_INTERVAL_FACTOR * self.poll_interval, MAX_INTERVAL_CAP)
        self.max_interval = max(self.poll_interval, default_max if max_interval is None else max_interval)
        self.min_runtime = max(0.0, min_runtime)
        if clock is None:
            import time

            clock = time.monotonic
        self._clock = clock
        self._rng = rng or random
        self._delay = self.poll_interval
        self._position: int | None = None
        self._running_since: float | None = None
        self._seen_queued = False

    def first_delay(self) -> float:
        """Before the first poll: a random point within one interval, so starts spread out."""
        return self._rng.uniform(0.0, self.poll_interval)

    def next_delay(self, status: RequestStatus) -> float:
        """Seconds to wait after ``status`` before polling again."""
        if status.status == "IN_QUEUE":
            position = status.queue_position
            moved = self._position is None or position is None or position != self._position
            self._position = position
            self._seen_queued = True
            self._delay = self.poll_interval if moved else min(self._delay * QUEUE_BACKOFF, self.max_interval)
            return self._delay
        self._position = None
        if status.status == "IN_PROGRESS":
            now = self._clock()
            if self._running_since is None:
                self._running_since = now if self._seen_queued else now - self.min_runtime
            left = self.min_runtime - (now - self._running_since)
            # Halving what is left of the certain runtime reaches poll_interval just as the job
            # might finish, with a handful of polls instead of min_runtime / poll_interval.
            self._delay = min(max(self.poll_interval, left / 2), self.max_interval)
            return self._delay
        self._delay = self.poll_interval
        return self._delay
