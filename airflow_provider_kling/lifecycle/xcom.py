"""What a Kling task tells Airflow about its request: XComs and outlet asset extras.

Shared by the operators and the sensor so every Kling task pushes the same keys, and read by the
extra links (the api-server loads them without the operator modules; no Airflow import at module level).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from airflow_provider_kling.hooks.kling import KlingHook
    from airflow_provider_kling.protocol.types import FalRequest

#: XCom keys pushed besides ``return_value`` (module constants so DAG authors can import them).
XCOM_REQUEST_ID = "request_id"
XCOM_VIDEO_URL = "video_url"
XCOM_FAL_REQUEST_URL = "fal_request_url"
#: What the Airflow UI's Video tab shows besides the return value: the prompt (``{"endpoint_id",
#: "prompt"}``, pushed at submit) and, when the task fails, the error (``{"message", "error_type",
#: "request_id", "exception"}``). Both are small and carry no connection detail.
XCOM_KLING_REQUEST = "kling_request"
XCOM_KLING_ERROR = "kling_error"

#: Operator attribute holding what this process pushed under the link keys. The extra links read it
#: in the worker's finalize step, so a task that never got a video asks the API for nothing (and
#: logs no "XCom not found" error for it).
PUSHED_LINKS_ATTR = "_kling_pushed_links"
_PROMPT_LIMIT = 4000


def _remember_link(context: Any, key: str, value: Any) -> None:
    task = context.get("task") if isinstance(context, Mapping) else None
    if task is None:
        return
    pushed = getattr(task, PUSHED_LINKS_ATTR, None)
    if not isinstance(pushed, dict):
        pushed = {}
        setattr(task, PUSHED_LINKS_ATTR, pushed)
    pushed[key] = value


def push_request_xcoms(
    context: Any, hook: KlingHook, request: FalRequest, log: Any, arguments: Mapping[str, Any] | None = None
) -> None:
    """Push the request id (and the dashboard link target) before any waiting happens.

    :param arguments: the endpoint input when this task submitted it: its prompt goes to XCom
        ``kling_request`` for the UI (the rendered fields of older runs are pruned by Airflow).
    """
    ti = context["ti"]
    ti.xcom_push(key=XCOM_REQUEST_ID, value=request.request_id)
    if arguments is not None:
        prompt = arguments.get("prompt")
        ti.xcom_push(
            key=XCOM_KLING_REQUEST,
            value={
                "endpoint_id": request.endpoint_id,
                "prompt": prompt[:_PROMPT_LIMIT] if isinstance(prompt, str) else None,
            },
        )
    dashboard_url = remember_dashboard_link(context, hook, request, log)
    if dashboard_url:
        ti.xcom_push(key=XCOM_FAL_REQUEST_URL, value=dashboard_url)


def remember_dashboard_link(context: Any, hook: KlingHook, request: FalRequest, log: Any) -> str | None:
    """The dashboard link target of ``request``, noted on the task for its extra link.

    Called again by ``execute_complete``: a resumed task is a new operator instance in a new
    process, and its link is resolved there.
    """
    try:
        dashboard_url = hook.dashboard_url(request.request_id, request.endpoint_id)
    except Exception:  # a bad link template must not fail a request that is already paid for
        log.warning("Could not build the fal dashboard link", exc_info=True)
        return None
    if dashboard_url:
        _remember_link(context, XCOM_FAL_REQUEST_URL, dashboard_url)
    return dashboard_url or None


def push_error_xcom(context: Any, exc: BaseException) -> None:
    """Record why a Kling task failed (fal's error text) for the UI; never raises over ``exc``."""
    ti = context.get("ti") if isinstance(context, Mapping) else None
    if ti is None:
        return
    # The failure being reported matters more than its UI record: never raise over it.
    with contextlib.suppress(Exception):
        ti.xcom_push(
            key=XCOM_KLING_ERROR,
            value={
                "message": str(exc)[:_PROMPT_LIMIT],
                "error_type": getattr(exc, "error_type", None),
                "request_id": getattr(exc, "request_id", None),
                "exception": type(exc).__name__,
            },
        )


_Method = TypeVar("_Method", bound=Callable[..., Any])


def records_failure(method: _Method) -> _Method:
    """Decorate ``execute``/``execute_complete``: a failure pushes XCom ``kling_error`` first.

    ``TaskDeferred`` is a ``BaseException`` and passes through untouched.
    """

    @functools.wraps(method)
    def wrapper(self: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, context, *args, **kwargs)
        except Exception as exc:
            push_error_xcom(context, exc)
            raise

    return wrapper  # type: ignore[return-value]


def publish_output(context: Any, output: Mapping[str, Any], outlets: Any) -> None:
    """Push ``video_url`` and put the video URL + request id on every outlet asset's event."""
    context["ti"].xcom_push(key=XCOM_VIDEO_URL, value=output["video_url"])
    _remember_link(context, XCOM_VIDEO_URL, output["video_url"])
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
