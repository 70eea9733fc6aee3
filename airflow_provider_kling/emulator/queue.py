"""The job state machine: a FIFO queue served by ``concurrency`` workers, like fal's queue.

All job state lives on the server's event loop and is only touched from it; other threads go
through :meth:`JobQueue.threadsafe`. CPU work (validation, encoding) runs in a thread pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from airflow_provider_kling.deadline import wait_within
from airflow_provider_kling.emulator.state import Failure, Knobs

log = logging.getLogger(__name__)

IN_QUEUE, IN_PROGRESS, COMPLETED = "IN_QUEUE", "IN_PROGRESS", "COMPLETED"
PROGRESS_STEPS = 4

# Our choice (fal documents no wire shape for it): a cancelled job completes with this error and
# its result answers 499, the code fal's request-error table gives to ``client_cancelled``.
CANCELLED_ERROR = "Request cancelled by the client"
CANCELLED_TYPE = "client_cancelled"
CANCELLED_STATUS = 499


def _timestamp() -> str:
    # fal's log timestamps: ISO-8601 with microseconds, no offset.
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")


class Notifier:
    """Wake every waiter on any change (queue positions move for everyone, so one signal suffices)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        event = self._event
        # wait_within: a status stream cancelled as the event fires must stop, not loop on (3.10/3.11).
        with contextlib.suppress(asyncio.TimeoutError):
            await wait_within(event.wait(), timeout)


@dataclass(eq=False)  # identity semantics: jobs live in deques and sets
class Job:
    """One queued request and everything needed to answer about it."""

    request_id: str
    endpoint_id: str
    app: str
    arguments: Any
    base_url: str
    account: str = ""  # the API key id that submitted it ("" without a key)
    submitted_at: float = field(default_factory=time.monotonic)
    low_priority: bool = False
    start_deadline: float | None = None
    failure: Failure | None = None
    webhook_url: str | None = None
    state: str = IN_QUEUE
    logs: list[dict[str, str]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    error_type: str | None = None
    result_status: int = 200
    result_body: Any = None
    result_headers: dict[str, str] = field(default_factory=dict)
    started_at: float | None = None
    cancel_requested: bool = False
    task: asyncio.Task[None] | None = None

    @property
    def urls(self) -> dict[str, str]:
        response_url = f"{self.base_url}/{self.app}/requests/{self.request_id}"
        return {
            "response_url": response_url,
            "status_url": f"{response_url}/status",
            "cancel_url": f"{response_url}/cancel",
        }


class Fifo:
    """Queued jobs in service order: normal priority first, then low, each first-in first-out.

    Deques keep submit, dispatch and position lookups cheap even with thousands queued.
    """

    def __init__(self) -> None:
        self._normal: deque[Job] = deque()
        self._low: deque[Job] = deque()
        self.timed: set[Job] = set()  # jobs with a start deadline (X-Fal-Request-Timeout)

    def __len__(self) -> int:
        return len(self._normal) + len(self._low)

    def __iter__(self) -> Iterator[Job]:
        """Queued jobs in service order."""
        yield from self._normal
        yield from self._low

    def push(self, job: Job) -> int:
        (self._low if job.low_priority else self._normal).append(job)
        if job.start_deadline is not None:
            self.timed.add(job)
        return self.position(job) or 0

    def head(self) -> Job | None:
        return self._normal[0] if self._normal else (self._low[0] if self._low else None)

    def pop_head(self) -> Job:
        job = self._normal.popleft() if self._normal else self._low.popleft()
        self.timed.discard(job)
        return job

    def remove(self, job: Job) -> None:
        (self._low if job.low_priority else self._normal).remove(job)
        self.timed.discard(job)

    def position(self, job: Job) -> int | None:
        """Requests ahead of ``job``, or None when it is not queued."""
        try:
            if job.low_priority:
                return len(self._normal) + self._low.index(job)
            return self._normal.index(job)
        except ValueError:
            return None

    def clear(self) -> None:
        self._normal.clear()
        self._low.clear()
        self.timed.clear()


class JobQueue:
    """FIFO queue + workers + completion bookkeeping.

    :param knobs: live knobs (read at each decision, so changes apply at once).
    :param executor: thread pool for validation and encoding.
    :param check: ``check(job) -> list`` of 422 detail entries (runs in the executor).
    :param render: ``render(job) -> output dict`` (runs in the executor).
    :param on_complete: called on the loop when a job completes (webhooks).
    """

    def __init__(
        self,
        knobs: Knobs,
        executor: Executor,
        check: Callable[[Job], list[dict[str, Any]]],
        render: Callable[[Job], dict[str, Any]],
        on_complete: Callable[[Job], None] | None = None,
    ) -> None:
        self.knobs = knobs
        self.executor = executor
        self._check = check
        self._render = render
        self._on_complete = on_complete
        self.jobs: dict[str, Job] = {}
        self._queued = Fifo()
        self._running: set[str] = set()
        self._running_per_account: Counter[str] = Counter()
        self.changed = Notifier()  # any job changed: status streams re-render
        self._wake = Notifier()  # the dispatcher should look again
        self._dispatcher: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.closing = False

    # --- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._dispatcher = self.loop.create_task(self._dispatch())

    def begin_shutdown(self) -> None:
        """End status streams and the dispatcher so the server can stop without waiting on them."""
        self.closing = True
        self.changed.notify()
        self._wake.notify()

    async def stop(self) -> None:
        self.closing = True
        self.changed.notify()
        tasks = [t for t in (self._dispatcher, *(j.task for j in self.jobs.values())) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def threadsafe(self, fn: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Run ``fn`` on the loop from another thread and return its result."""
        if self.loop is None or self.loop.is_closed():
            return fn()

        async def call() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(timeout)

    def poke(self) -> None:
        """Knobs changed (possibly from another thread): let the dispatcher re-evaluate."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._wake.notify)

    def reset(self) -> None:
        for job in self.jobs.values():
            if job.task is not None:
                job.task.cancel()
        self.jobs.clear()
        self._queued.clear()
        self._running.clear()
        self._running_per_account.clear()
        self.changed.notify()
        self._wake.notify()

    # --- API used by the routes ------------------------------------------------------------------------
    def submit(self, job: Job) -> int:
        """Enqueue; returns the queue position. Low-priority jobs queue behind normal ones."""
        position = self._queued.push(job)
        self.jobs[job.request_id] = job
        self._wake.notify()
        self.changed.notify()
        return position

    def get(self, request_id: str, app: str) -> Job | None:
        job = self.jobs.get(request_id)
        # Requests belong to an app: asking under another owner/alias finds nothing, as on fal.
        return job if job is not None and job.app == app else None

    def status_payload(self, job: Job, with_logs: bool) -> dict[str, Any]:
        payload: dict[str, Any] = {"status": job.state, "request_id": job.request_id, **job.urls}
        if job.state == IN_QUEUE:
            payload["queue_position"] = self._queued.position(job) or 0
        # fal returns a moving window of recent entries, never the whole history.
        payload["logs"] = job.logs[-self.knobs.log_window :] if with_logs else None
        if job.state == COMPLETED:
            payload["metrics"] = dict(job.metrics)
            if job.error is not None:
                payload["error"] = job.error
                payload["error_type"] = job.error_type
        return payload

    def cancel(self, job: Job) -> str:
        if job.state == COMPLETED:
            return "ALREADY_COMPLETED"
        job.cancel_requested = True
        if job.state == IN_QUEUE:
            if self._queued.position(job) is not None:
                self._queued.remove(job)  # never processed
            elif job.task is not None:
                # Dispatched, but its runner has not taken its first step (that step marks it
                # IN_PROGRESS): cancelled now it never runs, not even its own cancel handling.
                job.task.cancel()
                self._release(job)
            self._complete_cancelled(job)
            self._wake.notify()
        elif job.task is not None:
            job.task.cancel()  # the worker completes it as cancelled
        return "CANCELLATION_REQUESTED"

    def _release(self, job: Job) -> None:
        """The job no longer holds a runner, nor a place in its account's limit (once only)."""
        if job.request_id in self._running:
            self._running.discard(job.request_id)
            self._running_per_account[job.account] -= 1

    # --- dispatcher ----------------------------------------------------------------------------------
    async def _dispatch(self) -> None:
        while not self.closing:
            now = time.monotonic()
            timeout = 0.5
            self._expire_start_deadlines(now)
            while (head := self._next_eligible()) is not None and len(self._running) < max(
                1, int(self.knobs.concurrency)
            ):
                ready_at = head.submitted_at + self.knobs.queue_delay
                if ready_at > now:  # strict FIFO: nobody overtakes a head still serving its delay
                    timeout = min(timeout, ready_at - now)
                    break
                if head is self._queued.head():
                    self._queued.pop_head()
                else:
                    self._queued.remove(head)
                self._running.add(head.request_id)
                self._running_per_account[head.account] += 1
                head.task = asyncio.get_running_loop().create_task(self._process(head))
                self.changed.notify()
            deadlines = [j.start_deadline - now for j in self._queued.timed if j.start_deadline is not None]
            if deadlines:
                timeout = max(0.0, min(timeout, *deadlines))
            await self._wake.wait(timeout)

    def _next_eligible(self) -> Job | None:
        """The first queued job whose account is under its limit (FIFO within each account)."""
        limit = self.knobs.account_concurrency
        if limit is None:
            return self._queued.head()
        for job in self._queued:
            if self._running_per_account[job.account] < int(limit):
                return job
        return None

    def _expire_start_deadlines(self, now: float) -> None:
        for job in [
            j for j in self._queued.timed if j.start_deadline is not None and j.start_deadline <= now
        ]:
            # X-Fal-Request-Timeout passed before processing started: fal answers 504 without running it.
            self._queued.remove(job)
            self._complete_error(
                job,
                504,
                {"detail": "Request timed out", "error_type": "request_timeout"},
                error="Request timed out",
                error_type="request_timeout",
                retryable=False,
                extra_headers={"X-Fal-Request-Timeout-Type": "user"},
            )

    # --- worker --------------------------------------------------------------------------------------
    def _log(self, job: Job, message: str, level: str = "INFO") -> None:
        job.logs.append({"message": message, "level": level, "source": "USER", "timestamp": _timestamp()})
        self.changed.notify()

    async def _process(self, job: Job) -> None:
        loop = asyncio.get_running_loop()
        job.state = IN_PROGRESS
        job.started_at = time.monotonic()
        self._log(job, "Request picked up by a runner")
        try:
            errors = await loop.run_in_executor(self.executor, self._check, job)
            if errors:
                self._log(job, "Input validation failed", level="ERROR")
                self._complete_error(
                    job,
                    422,
                    {"detail": errors},
                    # fal's status text for a failed model call (as in its webhook "error" field).
                    error="Invalid status code: 422",
                    error_type=str(errors[0].get("type", "validation_error")),
                    retryable=False,
                )
                return
            failure = job.failure
            rendering = None if failure else loop.run_in_executor(self.executor, self._render, job)
            self._log(job, "Loading model weights")
            seconds = self.knobs.processing_time + random.uniform(0.0, self.knobs.processing_jitter)
            for step in range(1, PROGRESS_STEPS + 1):
                await asyncio.sleep(seconds / PROGRESS_STEPS)
                self._log(
                    job, f"Generating video: step {step}/{PROGRESS_STEPS} ({100 * step // PROGRESS_STEPS}%)"
                )
            if failure is not None:
                self._log(job, failure.error, level="ERROR")
                detail = failure.detail if failure.detail is not None else failure.error
                body: dict[str, Any] = {"detail": detail}
                if failure.status_code != 422:
                    body["error_type"] = failure.error_type
                self._complete_error(
                    job,
                    failure.status_code,
                    body,
                    error=failure.error,
                    error_type=failure.error_type,
                    retryable=failure.retryable,
                )
                return
            assert rendering is not None
            self._log(job, "Encoding video")
            output = await rendering
            self._log(job, "Video uploaded to the CDN")
            self._complete(job, 200, output, {"inference_time": round(time.monotonic() - job.started_at, 3)})
        except asyncio.CancelledError:
            if job.cancel_requested and job.state != COMPLETED:
                self._complete_cancelled(job)
                return
            raise
        except Exception:
            log.exception("emulator: job %s failed while processing", job.request_id)
            self._complete_error(
                job,
                500,
                {"detail": "Internal Server Error", "error_type": "internal_error"},
                error="Internal Server Error",
                error_type="internal_error",
                retryable=True,
            )
        finally:
            self._release(job)
            self._wake.notify()

    # --- completion ------------------------------------------------------------------------------------
    def _complete(
        self,
        job: Job,
        status_code: int,
        body: Any,
        metrics: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> None:
        job.state = COMPLETED
        job.metrics = metrics
        job.result_status = status_code
        job.result_body = body
        job.result_headers = {"x-fal-request-id": job.request_id, **(headers or {})}
        self.changed.notify()
        if self._on_complete is not None:
            self._on_complete(job)

    def _complete_error(
        self,
        job: Job,
        status_code: int,
        body: Any,
        *,
        error: str,
        error_type: str,
        retryable: bool | None,
        extra_headers: dict[str, str] | None = None,
    ) -> None:
        job.error, job.error_type = error, error_type
        headers = {"X-Fal-Error-Type": error_type, **(extra_headers or {})}
        if retryable is not None:
            headers["X-Fal-Retryable"] = "true" if retryable else "false"
        if status_code == 422:
            headers["x-fal-billable-units"] = "0"
        metrics = {}
        if job.started_at is not None:
            metrics["inference_time"] = round(time.monotonic() - job.started_at, 3)
        self._complete(job, status_code, body, metrics, headers)

    def _complete_cancelled(self, job: Job) -> None:
        self._complete_error(
            job,
            CANCELLED_STATUS,
            {"detail": CANCELLED_ERROR, "error_type": CANCELLED_TYPE},
            error=CANCELLED_ERROR,
            error_type=CANCELLED_TYPE,
            retryable=False,
        )


def new_request_id() -> str:
    return str(uuid.uuid4())
