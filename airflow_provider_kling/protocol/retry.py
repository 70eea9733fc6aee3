"""One retry policy for both hook shells, expressed as tenacity ``Retrying`` / ``AsyncRetrying``.

Four kinds of call:

* ``read`` (status, cancel, and the result of a job fal reported COMPLETED without ``error``):
  idempotent reads whose every failure says nothing about the job. Retried on transport errors
  (except those that recur on every attempt, such as an unsupported URL scheme), 408 / 409 / 425 / 429,
  every 5xx (fal's own JSON errors included), gateway error pages (HTML or other non-JSON bodies
  from whatever proxy sits in front of fal, with or without the word "nginx") and 2xx answers whose
  body is not a JSON object (truncated or mangled). Never a 504 carrying
  ``X-Fal-Request-Timeout-Type`` (the user's own start deadline: a final answer).
* ``idempotent`` (uploads, and the result GET of a job that failed or whose outcome the caller does
  not know, which fal answers with the *job's* error): as ``read``, except that fal's own JSON 5xx
  is final and 2xx bodies are not checked (a presigned PUT answers with an empty body).
* ``download`` (a generated file from a media host, fetched without credentials): as ``read`` for
  transport errors and HTTP statuses (408 / 409 / 425 / 429 and every 5xx: a CDN's error says nothing
  about the file), the 2xx body (a file, not JSON) unchecked, and a body the caller found cut short
  (a :class:`~airflow_provider_kling.exceptions.KlingDownloadError` it marked ``retryable``) retried
  like a connection cut by the server.
* ``submit``: retried **only** when the request provably never reached fal — the connection could not be
  opened (``ConnectError`` / ``ConnectTimeout`` / ``PoolTimeout``) or fal refused it with 429. A read
  timeout, a reset after sending or any 5xx may hide a created (paid) job, so it is never retried.

The attempt function returns an ``httpx.Response`` (any status) or raises an ``httpx`` exception; when the
budget runs out tenacity hands back the last outcome, so the shell maps it exactly like a first failure
(:meth:`~airflow_provider_kling.protocol.queue.QueueCall.finish` then says that fal's answer was unclear).
A download returns its own result instead of a 2xx response and may raise a ``KlingDownloadError``.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import tenacity

from airflow_provider_kling.exceptions import KlingDownloadError
from airflow_provider_kling.protocol.errors import (
    HEADER_TIMEOUT_TYPE,
    is_gateway_error,
    json_object,
    parse_retry_after,
)
from airflow_provider_kling.protocol.headers import HEADER_REQUEST_TIMEOUT

CallKind = Literal["read", "idempotent", "submit", "download"]

# 425 (Too Early): the server refused to process the request, so a replay is safe.
RETRY_STATUS_CODES: frozenset[int] = frozenset({408, 409, 425, 429})
# Exceptions raised before a single byte of the request left this machine.
NEVER_SENT_ERRORS: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Transport errors that come from this side and recur on every attempt (a URL scheme httpx cannot
# speak, a request h11 refuses to write): retrying them only delays the error by the back-off budget.
NEVER_TRANSIENT_ERRORS: tuple[type[Exception], ...] = (httpx.UnsupportedProtocol, httpx.LocalProtocolError)

log = logging.getLogger(__name__)


def should_retry_exception(
    exc: BaseException, *, kind: CallKind, request: httpx.Request | None = None
) -> bool:
    """Whether a transport exception may be retried for this kind of call."""
    if kind == "download" and isinstance(exc, KlingDownloadError):
        return bool(exc.retryable)
    if not isinstance(exc, httpx.TransportError) or isinstance(exc, NEVER_TRANSIENT_ERRORS):
        return False
    if kind == "submit":
        return isinstance(exc, NEVER_SENT_ERRORS)
    if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, NEVER_SENT_ERRORS):
        # A request that carries the user's own deadline must not outlive it by being replayed.
        if request is None:
            try:
                request = exc.request
            except RuntimeError:
                request = None
        if request is not None and HEADER_REQUEST_TIMEOUT in request.headers:
            return False
    return True


def should_retry_response(response: httpx.Response, *, kind: CallKind) -> bool:
    """Whether an HTTP answer may be retried for this kind of call (the body must have been read)."""
    code = response.status_code
    if kind == "submit":
        return code == 429
    if code in RETRY_STATUS_CODES:
        return True
    if code == 504 and HEADER_TIMEOUT_TYPE in response.headers:
        return False
    if code >= 500:
        return kind in ("read", "download") or is_gateway_error(response)
    if kind == "read" and response.is_success:
        return json_object(response) is None
    return False


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential back-off with jitter that honours ``Retry-After``.

    :param max_attempts: attempts in total, the first included.
    :param initial_delay: delay before the second attempt, seconds (doubles each time).
    :param max_delay: cap of one back-off delay, seconds.
    :param max_total: stop when the next sleep would end later than this many seconds after the first
        attempt started.
    :param jitter: relative jitter: a delay ``d`` becomes uniform in ``[d·(1-jitter), d·(1+jitter)]``.
    :param max_retry_after: cap on a server's ``Retry-After`` (a broken header must not stall a task).
    """

    max_attempts: int = 6
    initial_delay: float = 0.5
    max_delay: float = 30.0
    max_total: float = 120.0
    jitter: float = 0.5
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if min(self.initial_delay, self.max_delay, self.max_total, self.max_retry_after) < 0:
            raise ValueError("retry delays must be >= 0")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be within [0, 1]")

    @classmethod
    def no_retry(cls) -> RetryPolicy:
        return cls(max_attempts=1)

    # -- tenacity plumbing -------------------------------------------------------------------
    def backoff(self, attempt_number: int) -> float:
        """Back-off after ``attempt_number`` failed attempts (without Retry-After)."""
        base = min(self.initial_delay * (2 ** max(attempt_number - 1, 0)), self.max_delay)
        return min(base * random.uniform(1 - self.jitter, 1 + self.jitter), self.max_delay)

    def wait(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        if outcome is not None and not outcome.failed:
            response = outcome.result()
            if isinstance(response, httpx.Response):
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                if retry_after is not None:
                    return min(retry_after, self.max_retry_after)
        return self.backoff(retry_state.attempt_number)

    def _retry(self, kind: CallKind) -> tenacity.retry_base:
        def predicate(retry_state: tenacity.RetryCallState) -> bool:
            outcome = retry_state.outcome
            if outcome is None:  # pragma: no cover - tenacity always sets it before asking
                return False
            if outcome.failed:
                exc = outcome.exception()
                return exc is not None and should_retry_exception(exc, kind=kind)
            response = outcome.result()
            return isinstance(response, httpx.Response) and should_retry_response(response, kind=kind)

        return _Predicate(predicate)

    def _stop(self, spent: float = 0.0) -> tenacity.stop.stop_base:
        by_time: tenacity.stop.stop_base
        budget = max(0.0, self.max_total - spent)
        if hasattr(tenacity, "stop_before_delay"):
            by_time = tenacity.stop_before_delay(budget)
        else:  # pragma: no cover - tenacity < 8.3
            by_time = tenacity.stop_after_delay(budget)
        return tenacity.stop_after_attempt(self.max_attempts) | by_time

    def _kwargs(self, kind: CallKind, label: str, spent: float = 0.0) -> dict[str, Any]:
        def before_sleep(retry_state: tenacity.RetryCallState) -> None:
            outcome = retry_state.outcome
            if outcome is None:  # pragma: no cover
                return
            if outcome.failed:
                exc = outcome.exception()
                reason = type(exc).__name__
                if kind == "download":  # no fal answer can be in it: the text says what broke
                    reason = f"{reason}: {exc}"
            else:
                response = outcome.result()
                reason = f"HTTP {getattr(response, 'status_code', '?')}"
            sleep = retry_state.next_action.sleep if retry_state.next_action else 0.0
            log.warning(
                "fal %s: %s, retrying in %.2f s (attempt %d of %d)",
                label,
                reason,
                sleep,
                retry_state.attempt_number + 1,
                self.max_attempts,
            )

        return {
            "retry": self._retry(kind),
            "wait": self.wait,
            "stop": self._stop(spent),
            "before_sleep": before_sleep,
            # Hand back the last outcome (a response, or re-raise the last exception) instead of a
            # RetryError, so the shell maps "gave up" exactly like a first failure.
            "retry_error_callback": lambda retry_state: retry_state.outcome.result(),
            "reraise": True,
        }

    def retrying(self, kind: CallKind, label: str = "call") -> tenacity.Retrying:
        """A sync tenacity controller: ``policy.retrying("idempotent")(send, request)``."""
        return tenacity.Retrying(**self._kwargs(kind, label))

    def async_retrying(
        self, kind: CallKind, label: str = "call", *, spent: float = 0.0
    ) -> tenacity.AsyncRetrying:
        """An async tenacity controller: ``await policy.async_retrying("idempotent")(asend, request)``.

        :param spent: seconds of the time budget already used (a first attempt made before the
            controller existed, whose outcome it replays as its own first attempt).
        """
        return tenacity.AsyncRetrying(**self._kwargs(kind, label, spent))


class _Predicate(tenacity.retry_base):
    def __init__(self, predicate: Any) -> None:
        self._predicate = predicate

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return bool(self._predicate(retry_state))
