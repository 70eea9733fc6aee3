"""Deferrable trigger that follows one fal queue request until it completes.

The trigger only ever reads (status GETs, the SSE status stream); submitting and fetching the
result happen in the worker, so a trigger that runs twice or moves to another triggerer can never
create a second paid job.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_kling.deadline import wait_within
from airflow_provider_kling.exceptions import (
    KlingAuthenticationError,
    KlingConfigurationError,
    KlingNotFoundError,
    KlingValidationError,
)
from airflow_provider_kling.lifecycle.outcome import TRIGGER_EVENT_STATUSES
from airflow_provider_kling.lifecycle.progress import ProgressReporter
from airflow_provider_kling.protocol.polling import DEFAULT_POLL_INTERVAL, check_poll_interval
from airflow_provider_kling.protocol.status import wait_outcome
from airflow_provider_kling.protocol.types import FalRequest, RequestStatus


def _out_of_descriptors(exc: BaseException) -> bool:
    from airflow_provider_kling.hooks._shared_client import is_descriptor_exhaustion

    return is_descriptor_exhaustion(exc)


__all__ = ["START_DELAY_WARNING", "TRIGGER_EVENT_STATUSES", "KlingRequestTrigger"]

# Errors that no amount of re-polling can fix: fail at once instead of burning the failure budget.
_FATAL_ERRORS: tuple[type[Exception], ...] = (
    KlingAuthenticationError,
    KlingConfigurationError,
    KlingNotFoundError,
    KlingValidationError,
)

_CANCEL_TIMEOUT = 30.0
# ``defer(timeout=...)`` fires this long after the trigger's own deadline, so the trigger's clean
# ``timeout`` event (which leads to a cancel) always wins the race against Airflow's backstop.
_BACKSTOP_MARGIN = 60.0
# A trigger that starts this long after its task deferred waited for a triggerer: say so in its log.
START_DELAY_WARNING = 180.0


class KlingRequestTrigger(BaseTrigger):
    """Wait (asynchronously, in the triggerer) for a submitted fal request to reach COMPLETED.

    Fires exactly one event, a small JSON dict: ``status`` (``success`` | ``error`` | ``timeout``),
    ``request_id``, ``endpoint_id``, ``message`` and, for errors, ``error_type`` and ``source``
    (``"job"`` when fal reported the job as failed, ``"poll"`` when the trigger could not reach fal).

    Deadlines are absolute epoch seconds (wall clock) so that they survive serialisation and a move
    to another triggerer process; a per-process monotonic clock would not.

    :param fal_conn_id: Airflow connection of type ``fal``; the key is read from it in the triggerer
        and never travels in the trigger kwargs.
    :param request_id: fal request id.
    :param endpoint_id: the endpoint id the request was submitted to.
    :param status_url: status URL as returned by submit.
    :param response_url: result URL as returned by submit.
    :param cancel_url: cancel URL as returned by submit.
    :param poll_interval: seconds between status polls (also the SSE fallback's interval).
    :param end_time: epoch seconds after which a ``timeout`` event fires; None waits forever.
    :param use_sse: follow fal's SSE status stream, falling back to polling when it is unavailable.
    :param submitted_at: epoch seconds of the submit, for the elapsed time in progress lines.
    :param max_consecutive_failures: transient errors (5xx, 429, connection trouble) in a row that
        are tolerated before an ``error`` event.
    :param deferred_at: epoch seconds of the deferral; a trigger that starts minutes later logs a
        warning (no triggerer was running, or it was overloaded or restarted).
    """

    def __init__(
        self,
        *,
        fal_conn_id: str,
        request_id: str,
        endpoint_id: str,
        status_url: str,
        response_url: str,
        cancel_url: str,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        end_time: float | None = None,
        use_sse: bool = True,
        submitted_at: float | None = None,
        max_consecutive_failures: int = 5,
        deferred_at: float | None = None,
    ) -> None:
        super().__init__()
        # Kwargs cross a serialisation boundary into another process: reject bad values here, where
        # the operator still has the traceback, not hours later in the triggerer.
        for name, value in (
            ("fal_conn_id", fal_conn_id),
            ("request_id", request_id),
            ("endpoint_id", endpoint_id),
        ):
            if not isinstance(value, str) or not value:
                raise KlingConfigurationError(f"KlingRequestTrigger: {name} must be a non-empty string")
        for name, value in (
            ("status_url", status_url),
            ("response_url", response_url),
            ("cancel_url", cancel_url),
        ):
            if not isinstance(value, str) or not value.startswith(("http://", "https://")):
                raise KlingConfigurationError(
                    f"KlingRequestTrigger: {name} must be an http(s) URL, got {value!r}"
                )
        poll_interval = check_poll_interval(poll_interval, owner="KlingRequestTrigger: ")
        for label, moment in (
            ("end_time", end_time),
            ("submitted_at", submitted_at),
            ("deferred_at", deferred_at),
        ):
            if moment is not None and (isinstance(moment, bool) or not isinstance(moment, (int, float))):
                raise KlingConfigurationError(
                    f"KlingRequestTrigger: {label} must be epoch seconds (a number) or None, got {moment!r}"
                )
        if not isinstance(use_sse, bool):
            raise KlingConfigurationError(f"KlingRequestTrigger: use_sse must be a bool, got {use_sse!r}")
        if (
            isinstance(max_consecutive_failures, bool)
            or not isinstance(max_consecutive_failures, int)
            or max_consecutive_failures < 1
        ):
            raise KlingConfigurationError(
                "KlingRequestTrigger: max_consecutive_failures must be an int >= 1, "
                f"got {max_consecutive_failures!r}"
            )
        self.fal_conn_id = fal_conn_id
        self.request_id = request_id
        self.endpoint_id = endpoint_id
        self.status_url = status_url
        self.response_url = response_url
        self.cancel_url = cancel_url
        self.poll_interval = poll_interval
        self.end_time = None if end_time is None else float(end_time)
        self.use_sse = use_sse
        self.submitted_at = None if submitted_at is None else float(submitted_at)
        self.max_consecutive_failures = max_consecutive_failures
        self.deferred_at = None if deferred_at is None else float(deferred_at)

    @classmethod
    def for_request(
        cls,
        request: FalRequest,
        *,
        fal_conn_id: str,
        poll_interval: float,
        timeout: float | None,
        use_sse: bool = True,
        submitted_at: float | None = None,
    ) -> KlingRequestTrigger:
        """The trigger that follows ``request``, with its deadline ``timeout`` seconds from now.

        :param request: the handle returned by submit (its URLs are kept: fal's deep endpoint
            paths are not used for status and result, so rebuilding them could go wrong).
        :param fal_conn_id: Airflow connection of type ``fal``.
        :param poll_interval: seconds between status polls.
        :param timeout: seconds from now until a ``timeout`` event; None waits forever.
        :param use_sse: follow fal's SSE status stream (polling fallback).
        :param submitted_at: epoch seconds of the submit, for elapsed times in progress lines.
        """
        return cls(
            fal_conn_id=fal_conn_id,
            request_id=request.request_id,
            endpoint_id=request.endpoint_id,
            status_url=request.status_url,
            response_url=request.response_url,
            cancel_url=request.cancel_url,
            poll_interval=poll_interval,
            end_time=None if timeout is None else time.time() + max(0.0, timeout),
            use_sse=use_sse,
            submitted_at=submitted_at,
            deferred_at=time.time(),
        )

    def log_deferral(self, log: Any) -> None:
        """The line a deferring task leaves in its log: a deferred task with no triggerer running just
        sits there, and nothing else in the task log says so."""
        backstop = self.defer_timeout()
        fails = f" until Airflow fails it after {backstop.total_seconds():.0f} s" if backstop else ""
        log.info(
            "Deferring: the wait for fal request %s continues in the triggerer. A triggerer must be running "
            "(`airflow triggerer`; check with `airflow jobs check --job-type TriggererJob`); without one "
            "the task stays deferred%s.",
            self.request_id,
            fails,
        )

    def defer_timeout(self) -> timedelta | None:
        """The ``timeout`` to pass to ``defer()``: Airflow's backstop, set after this trigger's deadline."""
        if self.end_time is None:
            return None
        return timedelta(
            seconds=max(0.0, self.end_time - time.time()) + self.poll_interval + _BACKSTOP_MARGIN
        )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "airflow_provider_kling.triggers.kling.KlingRequestTrigger",
            {
                "fal_conn_id": self.fal_conn_id,
                "request_id": self.request_id,
                "endpoint_id": self.endpoint_id,
                "status_url": self.status_url,
                "response_url": self.response_url,
                "cancel_url": self.cancel_url,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "use_sse": self.use_sse,
                "submitted_at": self.submitted_at,
                "max_consecutive_failures": self.max_consecutive_failures,
                "deferred_at": self.deferred_at,
            },
        )

    @property
    def request(self) -> FalRequest:
        return FalRequest(
            request_id=self.request_id,
            endpoint_id=self.endpoint_id,
            status_url=self.status_url,
            response_url=self.response_url,
            cancel_url=self.cancel_url,
        )

    def _hook(self) -> Any:
        # Imported here: the triggerer loads this module before any connection exists, and the hook
        # module pulls in httpx; keep the import cost where it is needed.
        from airflow_provider_kling.hooks.kling import KlingHook

        # Every Kling trigger on the triggerer's loop shares one client and one connection read.
        return KlingHook(fal_conn_id=self.fal_conn_id, shared_client=True)

    def _event(self, status: str, message: str, **extra: Any) -> TriggerEvent:
        payload: dict[str, Any] = {
            "status": status,
            "request_id": self.request_id,
            "endpoint_id": self.endpoint_id,
            "message": message,
        }
        payload.update(extra)
        return TriggerEvent(payload)

    def _remaining(self) -> float | None:
        return None if self.end_time is None else self.end_time - time.time()

    def _timeout_event(self) -> TriggerEvent:
        waited = "" if self.submitted_at is None else f" (waited {time.time() - self.submitted_at:.0f}s)"
        return self._event(
            "timeout",
            f"fal request {self.request_id} did not complete before its deadline{waited}",
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        self._warn_if_started_late()
        try:
            hook = self._hook()
        except Exception as exc:  # a broken connection must still end in exactly one event
            yield self._event(
                "error", f"Could not set up the fal hook: {exc}", error_type=None, source="poll"
            )
            return
        try:
            event = await self._follow(hook)
        finally:
            await self._close(hook)
        yield event

    def _warn_if_started_late(self) -> None:
        """Airflow has no hook for "deferred, but no triggerer picked it up"; the trigger can at least
        say, once it runs, that it waited for one."""
        if self.deferred_at is None:
            return
        waited = time.time() - self.deferred_at
        if waited >= START_DELAY_WARNING:
            self.log.warning(
                "This trigger started %.0f s after the task deferred: no triggerer was running for that long, "
                "or it was overloaded or restarted. Check with `airflow jobs check --job-type TriggererJob`.",
                waited,
            )

    async def _follow(self, hook: Any) -> TriggerEvent:
        """Follow the request until it completes, fails for good or outlives ``end_time``."""
        progress = ProgressReporter(self.log, self.request_id, self.submitted_at)
        failures = 0
        first = True
        while True:
            remaining = self._remaining()
            if remaining is not None and remaining <= 0:
                return self._timeout_event()
            # Only the first polls are spread out: a reopen already waited after its hiccup.
            stream = hook.astream_status(
                self.request, poll_interval=self.poll_interval, use_sse=self.use_sse, spread_start=first
            )
            first = False
            try:
                while True:
                    remaining = self._remaining()
                    if remaining is not None and remaining <= 0:
                        return self._timeout_event()
                    try:
                        # The deadline holds even while a stream sits idle between events; unlike
                        # asyncio.wait_for (<= 3.11), wait_within never swallows the triggerer's cancel.
                        status: RequestStatus = await wait_within(stream.__anext__(), remaining)
                    except asyncio.TimeoutError:
                        return self._timeout_event()
                    except StopAsyncIteration:
                        break  # stream ended without COMPLETED: reopen it (counts as a hiccup)
                    failures = 0
                    progress.update(status)
                    if wait_outcome(status) != "waiting":
                        return self._completed_event(status)
            except _FATAL_ERRORS as exc:
                return self._event(
                    "error", str(exc), error_type=getattr(exc, "error_type", None), source="poll"
                )
            except Exception as exc:
                if _out_of_descriptors(exc):
                    # This process's problem, not fal's or the job's: wait for descriptors to free up
                    # instead of spending the failure budget (and failing a job that is fine).
                    self.log.warning(
                        "Polling fal request %s failed: this triggerer is out of file descriptors "
                        "(raise its ulimit -n); trying again in %s s",
                        self.request_id,
                        self.poll_interval,
                    )
                    await self._sleep_before_retry()
                    continue
                failures += 1
                self.log.warning(
                    "Polling fal request %s failed (%d/%d in a row): %s",
                    self.request_id,
                    failures,
                    self.max_consecutive_failures,
                    exc,
                )
                if failures >= self.max_consecutive_failures:
                    return self._event(
                        "error",
                        f"Gave up following fal request {self.request_id} after {failures} consecutive "
                        f"failures; the request may still be running. Last error: {exc}",
                        error_type=getattr(exc, "error_type", None),
                        source="poll",
                    )
                await self._sleep_before_retry()
            else:
                failures += 1
                if failures >= self.max_consecutive_failures:
                    return self._event(
                        "error",
                        f"The status stream of fal request {self.request_id} kept ending before completion",
                        error_type=None,
                        source="poll",
                    )
                await self._sleep_before_retry()
            finally:
                aclose = getattr(stream, "aclose", None)
                if aclose is not None:
                    try:
                        await aclose()
                    except Exception:
                        self.log.debug("Closing the status stream failed", exc_info=True)

    async def _sleep_before_retry(self) -> None:
        remaining = self._remaining()
        delay = self.poll_interval if remaining is None else max(0.0, min(self.poll_interval, remaining))
        await asyncio.sleep(delay)

    def _completed_event(self, status: RequestStatus) -> TriggerEvent:
        if wait_outcome(status) == "failed":
            return self._event(
                "error",
                status.error or f"fal reported request {self.request_id} as failed ({status.error_type})",
                error_type=status.error_type,
                source="job",
            )
        return self._event("success", f"fal request {self.request_id} completed")

    async def on_kill(self) -> None:
        """Cancel the remote request when a user kills the deferred task (Airflow >= 3.3 calls this).

        Best-effort: fal only removes requests that have not started; the outcome is logged and
        nothing is raised. ``cleanup()`` deliberately does not cancel, because it also runs when a
        triggerer restarts or hands the trigger to another process.
        """
        hook = None
        try:
            hook = self._hook()
            outcome = await wait_within(hook.acancel(self.request), _CANCEL_TIMEOUT)
            self.log.info("Cancelled fal request %s on kill: %s", self.request_id, outcome)
        except Exception as exc:
            self.log.warning("Could not cancel fal request %s on kill: %s", self.request_id, exc)
        finally:
            if hook is not None:
                await self._close(hook)

    async def _close(self, hook: Any) -> None:
        try:
            await hook.aclose()
        except Exception:  # closing must never replace the event (or the kill) being handled
            self.log.debug("Closing the fal hook failed", exc_info=True)
