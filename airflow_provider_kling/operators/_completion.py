"""What a finished (or failed) fal request turns into: the small XCom dict, XComs, asset extras.

Shared by the operators and the sensor so every Kling task returns the same shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NoReturn

from airflow_provider_kling.exceptions import KlingError, KlingRequestFailedError, KlingServerError
from airflow_provider_kling.protocol.types import FalRequest, RequestStatus

if TYPE_CHECKING:
    from airflow_provider_kling.hooks.kling import KlingHook

#: XCom keys pushed besides ``return_value`` (module constants so DAG authors can import them).
XCOM_REQUEST_ID = "request_id"
XCOM_VIDEO_URL = "video_url"
XCOM_FAL_REQUEST_URL = "fal_request_url"

OUTPUT_KEYS = (
    "request_id",
    "endpoint_id",
    "video_url",
    "content_type",
    "file_name",
    "file_size",
    "duration",
    "cost_estimate",
)


def validate_event(event: Any) -> dict[str, Any]:
    """Reject a missing or unrecognised trigger event instead of letting it pass as success."""
    from airflow_provider_kling.triggers.kling import TRIGGER_EVENT_STATUSES  # not at DAG parse time

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


def requested_duration(arguments: Mapping[str, Any] | None) -> float | int | None:
    """Seconds of video asked for (fal takes ``duration`` as a string such as ``"5"``)."""
    raw = (arguments or {}).get("duration")
    if raw is None:
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return int(value) if value.is_integer() else value


def cost_to_str(cost: Decimal | None) -> str | None:
    return None if cost is None else str(cost)


def pending_output(
    request: FalRequest, *, duration: float | int | None = None, cost_estimate: str | None = None
) -> dict[str, Any]:
    """The return dict before the video exists (``wait_for_completion=False``): video fields are None."""
    return {
        "request_id": request.request_id,
        "endpoint_id": request.endpoint_id,
        "video_url": None,
        "content_type": None,
        "file_name": None,
        "file_size": None,
        "duration": duration,
        "cost_estimate": cost_estimate,
    }


def output_from_result(
    request: FalRequest,
    result: Mapping[str, Any],
    *,
    duration: float | int | None = None,
    cost_estimate: str | None = None,
) -> dict[str, Any]:
    """Reduce fal's result (``{"video": {"url": ...}}``) to the small dict tasks return.

    Only URLs and metadata: never the video bytes (a result may inline them as ``file_data``).
    """
    video = result.get("video") if isinstance(result, Mapping) else None
    if not isinstance(video, Mapping) or not isinstance(video.get("url"), str) or not video["url"]:
        keys = sorted(result) if isinstance(result, Mapping) else type(result).__name__
        raise KlingServerError(
            f"fal request {request.request_id} completed but its result has no video URL (keys: {keys})",
            request_id=request.request_id,
        )
    output = pending_output(request, duration=duration, cost_estimate=cost_estimate)
    file_size = video.get("file_size")
    output.update(
        video_url=video["url"],
        content_type=video.get("content_type"),
        file_name=video.get("file_name"),
        file_size=file_size if isinstance(file_size, int) else None,
    )
    return output


def retry_coming(context: Any) -> bool:
    """Whether Airflow will run another try of this task instance if the current one fails.

    The execution API tells the task runner (``should_retry``, which also knows about
    ``max_tries`` being raised by a clear); older runtimes only give the counters.
    """
    ti = context.get("ti")
    if ti is None:
        return False
    should_retry = getattr(getattr(ti, "_ti_context_from_server", None), "should_retry", None)
    if isinstance(should_retry, bool):
        return should_retry
    try:
        return int(ti.try_number) <= int(getattr(ti, "max_tries", 0) or 0)
    except (TypeError, ValueError):
        return False


def push_request_xcoms(context: Any, hook: KlingHook, request: FalRequest, log: Any) -> None:
    """Push the request id (and the dashboard link target) before any waiting happens."""
    ti = context["ti"]
    ti.xcom_push(key=XCOM_REQUEST_ID, value=request.request_id)
    try:
        dashboard_url = hook.dashboard_url(request.request_id, request.endpoint_id)
    except Exception:  # a bad link template must not fail a request that is already paid for
        log.warning("Could not build the fal dashboard link", exc_info=True)
        return
    if dashboard_url:
        ti.xcom_push(key=XCOM_FAL_REQUEST_URL, value=dashboard_url)


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


def publish_output(context: Any, output: Mapping[str, Any], outlets: Any) -> None:
    """Push ``video_url`` and put the video URL + request id on every outlet asset's event."""
    context["ti"].xcom_push(key=XCOM_VIDEO_URL, value=output["video_url"])
    if not outlets:
        return
    from airflow.sdk import Asset

    extra = {
        "video_url": output["video_url"],
        "request_id": output["request_id"],
        "endpoint_id": output["endpoint_id"],
    }
    outlet_events = context.get("outlet_events")
    if outlet_events is None:
        return
    for outlet in outlets:
        if isinstance(outlet, Asset):
            outlet_events[outlet].extra = dict(extra)
