"""Map fal's HTTP answers and transport failures onto the :class:`KlingError` hierarchy.

Every message names the operation and the endpoint / request concerned, keeps fal's own text (e.g.
"User is locked. Reason: Exhausted balance ...") and is scrubbed of the API key.
"""

from __future__ import annotations

import email.utils
import html
import json
import re
import time
from collections.abc import Iterable
from typing import Any

import httpx

from airflow_provider_kling.exceptions import (
    KlingAuthenticationError,
    KlingError,
    KlingNotFoundError,
    KlingRateLimitedError,
    KlingRequestFailedError,
    KlingServerError,
    KlingSubmitUncertainError,
    KlingTimeoutError,
    KlingTransportError,
    KlingValidationError,
)

HEADER_FAL_REQUEST_ID = "x-fal-request-id"
HEADER_ERROR_TYPE = "x-fal-error-type"
HEADER_RETRYABLE = "x-fal-retryable"
HEADER_TIMEOUT_TYPE = "x-fal-request-timeout-type"
MAX_TEXT = 500
REDACTED = "***"

_TAGS = re.compile(r"<[^>]+>")
_SPACES = re.compile(r"\s+")


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace every secret (and each half of a ``key_id:key_secret`` pair) by ``***``."""
    for secret in secrets:
        if not secret:
            continue
        text = text.replace(secret, REDACTED)
        for half in secret.split(":"):
            if len(half) >= 8:
                text = text.replace(half, REDACTED)
    return text


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta seconds or an HTTP date); None if absent/invalid."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def parse_retryable(value: str | None) -> bool | None:
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    return None


def is_gateway_error(response: httpx.Response) -> bool:
    """An error page from a proxy in front of fal (its nginx ingress, a CDN, a load balancer), not an
    answer from fal itself: a 5xx without ``x-fal-request-id`` whose body is not JSON (an HTML page,
    plain text or nothing), whatever server wrote it."""
    if response.status_code < 500 or HEADER_FAL_REQUEST_ID in response.headers:
        return False
    return _body_json(response) is None


def is_ingress_error(response: httpx.Response) -> bool:
    """A 502/503/504 gateway page (fal-client's "ingress error"); see :func:`is_gateway_error`."""
    return response.status_code in (502, 503, 504) and is_gateway_error(response)


def _body_text(response: httpx.Response) -> str:
    try:
        return response.text
    except (httpx.ResponseNotRead, UnicodeDecodeError):  # pragma: no cover - callers read bodies first
        return ""


def _body_json(response: httpx.Response) -> Any:
    try:
        return json.loads(_body_text(response))
    except ValueError:
        return None


def json_object(response: httpx.Response) -> dict[str, Any] | None:
    """The body as a JSON object, or None when it is not one (a 2xx answer that breaks the protocol)."""
    body = _body_json(response)
    return body if isinstance(body, dict) else None


def _short(text: str) -> str:
    text = _SPACES.sub(" ", html.unescape(_TAGS.sub(" ", text))).strip()
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 3] + "..."


def normalise_validation_errors(detail: Any, *, error_type: str | None = None) -> list[dict[str, Any]]:
    """fal's 422 ``detail`` (a list of ``{loc, msg, type, ...}`` or a plain string) as a list of dicts
    with ``loc`` as a tuple."""
    if isinstance(detail, str):
        return [{"loc": (), "msg": detail, "type": error_type or "value_error"}]
    errors: list[dict[str, Any]] = []
    for item in detail if isinstance(detail, list) else ():
        if isinstance(item, dict):
            entry = dict(item)
            loc = entry.get("loc", ())
            entry["loc"] = tuple(loc) if isinstance(loc, (list, tuple)) else (loc,)
            entry["msg"] = str(entry.get("msg", ""))
            entry["type"] = str(entry.get("type", error_type or "value_error"))
            errors.append(entry)
        else:
            errors.append({"loc": (), "msg": str(item), "type": error_type or "value_error"})
    return errors


def _loc_text(loc: tuple[Any, ...]) -> str:
    # "body" is FastAPI's marker for "in the JSON input"; users think in field names.
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) or "input"


def describe_validation_errors(errors: list[dict[str, Any]]) -> str:
    return "; ".join(f"{_loc_text(e['loc'])}: {e['msg']} ({e['type']})" for e in errors)


def response_text(response: httpx.Response) -> tuple[str, Any]:
    """Human text of an error response and its ``detail`` (None when there is none)."""
    body = _body_json(response)
    if isinstance(body, dict):
        detail = body.get("detail")
        if isinstance(detail, list):
            return describe_validation_errors(normalise_validation_errors(detail)), detail
        if detail is not None:
            return _short(str(detail)), detail
        if body.get("message"):
            return _short(str(body["message"])), None
        if body.get("error") and isinstance(body["error"], str):
            return _short(body["error"]), None
    text = _short(_body_text(response))
    if not text:
        text = response.reason_phrase or "no response body"
    if is_gateway_error(response):
        text = f"fal's gateway answered {response.status_code} ({text})"
    return text, None


def subject(*, endpoint_id: str | None, request_id: str | None) -> str:
    if request_id and endpoint_id:
        return f"request {request_id} of {endpoint_id}"
    if request_id:
        return f"request {request_id}"
    return endpoint_id or ""


def _call(operation: str, *, endpoint_id: str | None, request_id: str | None) -> str:
    """``fal submit of <endpoint>``, or just ``fal upload (storage token)`` when there is no subject."""
    what = subject(endpoint_id=endpoint_id, request_id=request_id)
    return f"fal {operation} of {what}" if what else f"fal {operation}"


def _origin(exc: httpx.HTTPError) -> str:
    """Scheme, host and port the failed call went to (never a path or query), or "fal"."""
    try:
        url = exc.request.url
    except RuntimeError:  # an error raised without a request
        return "fal"
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}"


def error_from_response(
    response: httpx.Response,
    *,
    operation: str,
    endpoint_id: str | None = None,
    request_id: str | None = None,
    secrets: Iterable[str] = (),
) -> KlingError:
    """The exception for a non-2xx answer (the body must have been read).

    :param operation: ``submit``, ``status``, ``result``, ``cancel``, ``upload`` ...: a result GET that
        fails with fal's own error means the *job* failed (:class:`KlingRequestFailedError`).
    """
    code = response.status_code
    text, detail = response_text(response)
    body = _body_json(response)
    error_type = None
    if isinstance(body, dict) and isinstance(body.get("error_type"), str):
        error_type = body["error_type"]
    error_type = error_type or response.headers.get(HEADER_ERROR_TYPE)
    common: dict[str, Any] = {
        "status_code": code,
        "request_id": request_id or response.headers.get(HEADER_FAL_REQUEST_ID),
        "error_type": error_type,
        "retryable": parse_retryable(response.headers.get(HEADER_RETRYABLE)),
    }
    call = _call(operation, endpoint_id=endpoint_id, request_id=request_id)
    message = scrub(f"{call} failed with HTTP {code}: {text}", secrets)
    if code in (401, 403):
        hint = " (check the connection's API key)" if code == 401 else ""
        return KlingAuthenticationError(message + hint, **common)
    if code == 404:
        return KlingNotFoundError(message, **common)
    if code == 422:
        errors = normalise_validation_errors(detail if detail is not None else text, error_type=error_type)
        return KlingValidationError(message, errors=errors, **common)
    if code == 429:
        return KlingRateLimitedError(
            message, retry_after=parse_retry_after(response.headers.get("retry-after")), **common
        )
    if code == 504 and HEADER_TIMEOUT_TYPE in response.headers:
        return KlingTimeoutError(message + " (the request did not start before its start_timeout)", **common)
    if is_gateway_error(response):
        # A proxy's page says nothing about the job, even on a result GET.
        return KlingServerError(message, **common)
    if operation == "result":
        return KlingRequestFailedError(message, **common)
    if code >= 500:
        return KlingServerError(message, **common)
    return KlingError(message, **common)


def protocol_error(
    message: str, *, operation: str, endpoint_id: str | None = None, request_id: str | None = None
) -> KlingServerError:
    """A 2xx answer that breaks the protocol (malformed JSON, missing fields)."""
    call = _call(operation, endpoint_id=endpoint_id, request_id=request_id)
    return KlingServerError(f"{call}: {message}", request_id=request_id)


UNCLEAR_HINT = (
    "This does not mean the job failed: it may still be running, or be done. Check it on the fal "
    "dashboard, or let the task retry (it follows the same request, it does not submit again)."
)


def unclear_answer(
    response: httpx.Response,
    *,
    operation: str,
    endpoint_id: str | None = None,
    request_id: str | None = None,
    secrets: Iterable[str] = (),
) -> KlingError:
    """The error for an idempotent call whose answer was still transient when the retries ran out
    (5xx, gateway page, 408/429, malformed body): fal's answer was unclear, the job did not fail."""
    code = response.status_code
    if response.is_success:
        text = "the body is not the JSON object the protocol promises"
    else:
        text, _ = response_text(response)
    what = subject(endpoint_id=endpoint_id, request_id=request_id)
    message = scrub(
        f"fal's answer to the {operation} of {what} was unclear, even after retries (last answer: "
        f"HTTP {code}: {text}). {UNCLEAR_HINT}",
        secrets,
    )
    common: dict[str, Any] = {"status_code": code, "request_id": request_id}
    if code == 429:
        return KlingRateLimitedError(
            message, retry_after=parse_retry_after(response.headers.get("retry-after")), **common
        )
    return KlingServerError(message, **common)


def transport_error(
    exc: httpx.HTTPError,
    *,
    operation: str,
    endpoint_id: str | None = None,
    request_id: str | None = None,
    secrets: Iterable[str] = (),
    note: str | None = None,
) -> KlingTransportError:
    """A connection-level failure after the retry budget ran out (timeouts included: a slow answer is
    a transport problem, not a job deadline)."""
    origin = _origin(exc)
    kind = (
        f"to {origin} timed out" if isinstance(exc, httpx.TimeoutException) else f"could not reach {origin}"
    )
    call = _call(operation, endpoint_id=endpoint_id, request_id=request_id)
    detail = str(exc) or type(exc).__name__
    suffix = f" ({note})" if note else ""
    return KlingTransportError(
        scrub(f"{call} {kind}: {type(exc).__name__}: {detail}{suffix}", secrets),
        request_id=request_id,
    )


def submit_uncertain(
    endpoint_id: str, reason: str, *, status_code: int | None = None, secrets: Iterable[str] = ()
) -> KlingSubmitUncertainError:
    """The submit may have reached fal, so retrying could create a second paid job."""
    return KlingSubmitUncertainError(
        scrub(
            f"The submit to {endpoint_id} may or may not have reached fal ({reason}). A paid job may exist: "
            "check your requests on the fal dashboard before submitting again. It was not retried, "
            "to avoid paying twice.",
            secrets,
        ),
        status_code=status_code,
    )
