"""What a Kling task tells Airflow about its request: XComs and outlet asset extras.

Shared by the operators and the sensor so every Kling task pushes the same keys, and read by the
extra links (the api-server loads them without the operator modules; no Airflow import at module level).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_kling.hooks.kling import KlingHook
    from airflow_provider_kling.protocol.types import FalRequest

#: XCom keys pushed besides ``return_value`` (module constants so DAG authors can import them).
XCOM_REQUEST_ID = "request_id"
XCOM_VIDEO_URL = "video_url"
XCOM_FAL_REQUEST_URL = "fal_request_url"


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
