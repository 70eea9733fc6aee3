"""How a followed fal request ends: trigger events, and the result or exception they turn into.

Shared by the operators, the sensor and the trigger (which fires the events), so every mode reads
an ending the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NoReturn

from airflow_provider_kling.exceptions import KlingError, KlingRequestFailedError
from airflow_provider_kling.protocol.types import FalRequest, RequestStatus

if TYPE_CHECKING:
    from airflow_provider_kling.hooks.kling import KlingHook

#: The three event statuses the trigger can fire; anything else reaching ``execute_complete`` is a bug.
TRIGGER_EVENT_STATUSES = frozenset({"success", "error", "timeout"})


def validate_event(event: Any) -> dict[str, Any]:
    """Reject a missing or unrecognised trigger event instead of letting it pass as success."""
    if not isinstance(event, Mapping):
        raise KlingError(
            f"The Kling trigger returned no usable event ({event!r}); the task cannot tell the outcome"
        )
    status = event.get("status")
    if status not in TRIGGER_EVENT_STATUSES:
        raise KlingError(
            f"The Kling trigger returned an unknown status {status!r} "
            f"(expected one of {sorted(TRIGGER_EVENT_STATUSES)})"
        )
    if not isinstance(event.get("request_id"), str) or not event["request_id"]:
        raise KlingError(f"The Kling trigger event carries no request_id: {dict(event)!r}")
    return dict(event)


def fetch_result(hook: KlingHook, request: FalRequest) -> dict[str, Any]:
    """The result of a request fal reported COMPLETED without an error.

    Said so to the hook: a 5xx, gateway page or malformed body on this GET is then a hiccup, retried
    and, if it persists, reported as an unclear answer, never as a failed job (nor a reason to pay
    for a new one).
    """
    return hook.get_result(request, status=RequestStatus("COMPLETED", request.request_id))


def raise_job_failure(hook: KlingHook, request: FalRequest, message: Any, error_type: Any) -> NoReturn:
    """Fail with fal's own words for a job fal reported as failed.

    The result GET of a failed job carries the detailed error (e.g. a 422's field list), which the
    hook raises as the matching :class:`KlingError` subclass; only if it does not is the status's
    short message used.
    """
    hook.get_result(request)
    raise KlingRequestFailedError(
        str(message or f"fal request {request.request_id} failed"),
        request_id=request.request_id,
        error_type=error_type,
    )
