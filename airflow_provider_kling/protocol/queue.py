"""Queue API calls as pure request builders and response parsers (submit, status, result, cancel).

The hooks send what this module builds and hand the answers back to it; retries are decided by
:mod:`~airflow_provider_kling.protocol.retry`. Nothing here performs I/O.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

import httpx

from airflow_provider_kling.exceptions import (
    KlingError,
    KlingServerError,
    KlingValidationError,
)
from airflow_provider_kling.protocol import errors, redact
from airflow_provider_kling.protocol.config import FalSettings
from airflow_provider_kling.protocol.endpoints import derive_request, parse_endpoint_id, submit_url
from airflow_provider_kling.protocol.headers import auth_headers, check_webhook_url, submit_headers
from airflow_provider_kling.protocol.retry import NEVER_SENT_ERRORS, CallKind, should_retry_response
from airflow_provider_kling.protocol.status import parse_status, wait_outcome
from airflow_provider_kling.protocol.types import CancelOutcome, FalRequest, RequestStatus

CANCEL_OUTCOMES: frozenset[str] = frozenset({"CANCELLATION_REQUESTED", "ALREADY_COMPLETED", "NOT_FOUND"})

T = TypeVar("T")


class MalformedEventError(KlingServerError):
    """An SSE event whose data is not JSON: the stream is broken, polling can take over."""


def _json_body(arguments: Any) -> bytes:
    if not isinstance(arguments, dict):
        raise KlingValidationError(
            f"arguments must be a dict of model inputs, got {type(arguments).__name__}",
            errors=[{"loc": ("arguments",), "msg": "must be a JSON object", "type": "dict_type"}],
        )
    try:
        return json.dumps(arguments, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise KlingValidationError(
            f"arguments must be JSON-serialisable (strings, numbers, booleans, lists, dicts): {exc}",
            errors=[{"loc": ("arguments",), "msg": str(exc), "type": "json_invalid"}],
        ) from None


@dataclass(frozen=True)
class QueueCall(Generic[T]):
    """One idempotent queue call as data: what to send, and how to read the answer or the failure.

    Both hook shells run a call the same way (send with the retry policy for :attr:`kind`, map a
    transport failure with :meth:`transport_failure`, else :meth:`finish` the final response); they
    differ only in how they send.

    :param operation: ``status``, ``result`` or ``cancel``: names the call in errors and retry logs.
    :param request: the HTTP request to send (re-sendable as is: its body is bytes).
    :param fal_request: the fal request it is about.
    :param parse: turns the final response into the call's value, or raises the mapped error.
    :param protocol: the protocol that built it (for error mapping with the right secrets).
    :param kind: the retry rules (:mod:`~airflow_provider_kling.protocol.retry`): ``read`` unless the
        answer may be the job's own error (``idempotent``).
    """

    operation: str
    request: httpx.Request
    fal_request: FalRequest
    parse: Callable[[httpx.Response], T]
    protocol: QueueProtocol
    kind: CallKind = "read"

    @property
    def label(self) -> str:
        return f"{self.operation} of {self.fal_request.request_id}"

    def finish(self, response: httpx.Response) -> T:
        """The call's value from its final response (after retries).

        An answer that was still worth retrying when the budget ran out is reported as fal's
        answer being unclear, never as a failed job.
        """
        if should_retry_response(response, kind=self.kind):
            raise self.protocol.unclear(response, self.operation, self.fal_request)
        return self.parse(response)

    def transport_failure(self, exc: httpx.HTTPError) -> KlingError:
        return self.protocol.transport_failure(exc, self.operation, self.fal_request)


class QueueProtocol:
    """Builds queue requests and parses their answers for one set of connection settings.

    :param settings: resolved connection settings (base URLs, key).
    """

    def __init__(self, settings: FalSettings) -> None:
        self.settings = settings

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.settings.key,) if self.settings.key else ()

    def _headers(self, **extra: str) -> dict[str, str]:
        return {**auth_headers(self.settings.key), "Accept": "application/json", **extra}

    # -- submit ---------------------------------------------------------------------------------
    def submit_request(
        self,
        endpoint_id: str,
        arguments: dict[str, Any],
        *,
        webhook_url: str | None = None,
        priority: str | None = None,
        start_timeout: float | None = None,
    ) -> httpx.Request:
        """``POST {queue}/{full id}[?fal_webhook=...]``; every option is checked before anything is sent."""
        endpoint = parse_endpoint_id(endpoint_id)
        headers = self._headers(
            **submit_headers(priority=priority, start_timeout=start_timeout),
            **{"Content-Type": "application/json"},
        )
        params = {"fal_webhook": check_webhook_url(webhook_url)} if webhook_url is not None else None
        return httpx.Request(
            "POST",
            submit_url(self.settings.queue_url, endpoint),
            params=params,
            headers=headers,
            content=_json_body(arguments),
        )

    def parse_submit(self, response: httpx.Response, endpoint_id: str) -> FalRequest:
        """The handle of the created request; uncertain outcomes raise :class:`KlingSubmitUncertainError`."""
        endpoint_id = endpoint_id.strip()
        if response.status_code >= 500:
            # fal (or its ingress) failed while handling the submit: the job may exist.
            text, _ = errors.response_text(response)
            raise errors.submit_uncertain(
                endpoint_id,
                f"HTTP {response.status_code}: {text}",
                status_code=response.status_code,
                secrets=self.secrets,
            )
        if not response.is_success:
            # 4xx: fal refused the submit, so no job was created.
            raise redact.error(
                errors.error_from_response(
                    response, operation="submit", endpoint_id=endpoint_id, secrets=self.secrets
                ),
                self.secrets,
            )
        body = errors.json_object(response)
        request_id = body.get("request_id") if body else None
        if body is None or not isinstance(request_id, str) or not request_id:
            raise errors.submit_uncertain(
                endpoint_id,
                "fal answered without a request id",
                status_code=response.status_code,
                secrets=self.secrets,
            )
        # Use fal's URLs verbatim; derived owner/alias URLs are only a fallback for a response that
        # omits them (the job exists, so losing track of it would be worse than guessing its URLs).
        derived = derive_request(self.settings.queue_url, endpoint_id, request_id)
        return FalRequest(
            request_id=request_id,
            endpoint_id=endpoint_id,
            status_url=str(body.get("status_url") or derived.status_url),
            response_url=str(body.get("response_url") or derived.response_url),
            cancel_url=str(body.get("cancel_url") or derived.cancel_url),
        )

    def submit_transport_failure(self, exc: httpx.HTTPError, endpoint_id: str) -> KlingError:
        """A connection that never opened is a plain transport error; anything later is uncertain."""
        if isinstance(exc, NEVER_SENT_ERRORS):
            return errors.transport_error(
                exc,
                operation="submit",
                endpoint_id=endpoint_id,
                secrets=self.secrets,
                note="the connection never opened, so no job was created",
            )
        return errors.submit_uncertain(
            endpoint_id, f"{type(exc).__name__}: {exc or 'connection failed'}", secrets=self.secrets
        )

    # -- following a request ----------------------------------------------------------------------
    def request_from_id(self, endpoint_id: str, request_id: str) -> FalRequest:
        return derive_request(self.settings.queue_url, endpoint_id, request_id)

    def status_request(self, request: FalRequest, *, logs: bool = True) -> httpx.Request:
        return httpx.Request(
            "GET", request.status_url, params={"logs": "1" if logs else "0"}, headers=self._headers()
        )

    def status_stream_request(self, request: FalRequest, *, logs: bool = True) -> httpx.Request:
        """``GET {status_url}/stream``: server-sent status events, closed by fal after COMPLETED."""
        url = httpx.URL(request.status_url)
        url = url.copy_with(path=url.path.rstrip("/") + "/stream")
        return httpx.Request(
            "GET",
            url,
            params={"logs": "1" if logs else "0"},
            headers={**self._headers(), "Accept": "text/event-stream", "Cache-Control": "no-store"},
        )

    def parse_status(self, response: httpx.Response, request: FalRequest) -> RequestStatus:
        """One polled status; its log lines and error text come back without the key."""
        if not response.is_success:
            raise self.http_error(response, "status", request)
        try:
            payload = response.json()
        except ValueError:
            raise errors.protocol_error(
                "the status response is not JSON",
                operation="status",
                endpoint_id=request.endpoint_id,
                request_id=request.request_id,
            ) from None
        return self._status(payload, request)

    def parse_status_event(self, data: str, request: FalRequest) -> RequestStatus:
        """One SSE event's ``data`` (a status object)."""
        try:
            payload = json.loads(data)
        except ValueError:
            raise MalformedEventError(
                f"fal status stream of request {request.request_id} sent an event that is not JSON",
                request_id=request.request_id,
            ) from None
        return self._status(payload, request)

    def _status(self, payload: Any, request: FalRequest) -> RequestStatus:
        try:
            parsed = parse_status(payload, request_id=request.request_id)
        except KlingError as exc:  # e.g. an unknown status word, quoted from fal's answer
            raise redact.error(exc, self.secrets) from None
        return redact.status(parsed, self.secrets)

    def status_call(self, request: FalRequest, *, logs: bool = True) -> QueueCall[RequestStatus]:
        """One status poll (``logs``: ask for the log window)."""
        return QueueCall(
            "status",
            self.status_request(request, logs=logs),
            request,
            lambda r: self.parse_status(r, request),
            self,
        )

    def result_call(
        self, request: FalRequest, *, status: RequestStatus | None = None
    ) -> QueueCall[dict[str, Any]]:
        """The result GET of a COMPLETED request.

        :param status: the COMPLETED status the caller saw, if any. Without ``error`` in it, the job
            succeeded, so any 5xx, gateway page or malformed body is a transient hiccup (retried,
            then reported as an unclear answer); otherwise fal's JSON error is the job's own.
        """
        succeeded = status is not None and wait_outcome(status) == "succeeded"
        return QueueCall(
            "result",
            self.result_request(request),
            request,
            lambda r: self.parse_result(r, request),
            self,
            kind="read" if succeeded else "idempotent",
        )

    def cancel_call(self, request: FalRequest) -> QueueCall[CancelOutcome]:
        """The cancel PUT; its three expected outcomes are values, not errors."""
        return QueueCall(
            "cancel", self.cancel_request(request), request, lambda r: self.parse_cancel(r, request), self
        )

    def result_request(self, request: FalRequest) -> httpx.Request:
        return httpx.Request("GET", request.response_url, headers=self._headers())

    def parse_result(self, response: httpx.Response, request: FalRequest) -> dict[str, Any]:
        """The model output; a failed job raises the mapped error (422 → :class:`KlingValidationError`,
        other errors → :class:`KlingRequestFailedError` with fal's error_type and X-Fal-Retryable)."""
        if not response.is_success:
            raise self.http_error(response, "result", request)
        body = errors.json_object(response)
        if body is None:
            raise errors.protocol_error(
                "the result is not a JSON object",
                operation="result",
                endpoint_id=request.endpoint_id,
                request_id=request.request_id,
            )
        # fal echoes inputs in results; the XCom and the logs must not carry the key.
        return cast(dict[str, Any], redact.value(body, self.secrets))

    def cancel_request(self, request: FalRequest) -> httpx.Request:
        return httpx.Request("PUT", request.cancel_url, headers=self._headers())

    def parse_cancel(self, response: httpx.Response, request: FalRequest) -> CancelOutcome:
        """The three expected outcomes never raise (fal answers 202 / 400 / 404 for them)."""
        body = errors.json_object(response) or {}
        state = body.get("status")
        if response.is_success:
            # "OK" is what older gateways answered when a queued request was removed.
            return cast(CancelOutcome, state if state in CANCEL_OUTCOMES else "CANCELLATION_REQUESTED")
        if response.status_code == 404:
            return "NOT_FOUND"
        if state == "ALREADY_COMPLETED" and response.status_code in (400, 409):
            return "ALREADY_COMPLETED"
        raise self.http_error(response, "cancel", request)

    # -- errors ---------------------------------------------------------------------------------
    def _about(self, operation: str, request: FalRequest) -> dict[str, Any]:
        return {
            "operation": operation,
            "endpoint_id": request.endpoint_id,
            "request_id": request.request_id,
            "secrets": self.secrets,
        }

    def http_error(self, response: httpx.Response, operation: str, request: FalRequest) -> KlingError:
        return redact.error(
            errors.error_from_response(response, **self._about(operation, request)), self.secrets
        )

    def transport_failure(self, exc: httpx.HTTPError, operation: str, request: FalRequest) -> KlingError:
        """No answer at all after the retries: the request's state is unknown, not failed."""
        return errors.transport_error(exc, **self._about(operation, request), note=errors.UNCLEAR_HINT)

    def unclear(self, response: httpx.Response, operation: str, request: FalRequest) -> KlingError:
        return errors.unclear_answer(response, **self._about(operation, request))
