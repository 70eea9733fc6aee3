"""Extra links on Kling tasks: the generated video, and the request on fal's dashboard.

Both read a URL the worker pushed to XCom, so rendering a link never needs the connection (or its
key) and a link appears as soon as its XCom exists: the dashboard link right after submit, the
video link once the video is ready.

Airflow resolves the links once, in the worker at the end of each try. The operator remembers there
which link targets it pushed (``lifecycle.xcom.PUSHED_LINKS_ATTR``), so a task that failed before its video
existed resolves the missing link to nothing instead of asking the API for an XCom that is not
there (which the task SDK logs as an ``[error] XCom not found`` line).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

from airflow_provider_kling.lifecycle.xcom import PUSHED_LINKS_ATTR, XCOM_FAL_REQUEST_URL, XCOM_VIDEO_URL

if TYPE_CHECKING:
    from airflow.sdk.types import TaskInstanceKey


def _xcom_url(operator: Any, ti_key: TaskInstanceKey, key: str) -> str:
    pushed = getattr(operator, PUSHED_LINKS_ATTR, None)
    if isinstance(pushed, dict):  # resolved in the process that ran the task: it knows
        value = pushed.get(key)
        return value if isinstance(value, str) else ""
    try:
        from airflow.sdk.execution_time.xcom import XCom
    except ImportError:  # pragma: no cover - older task SDK layouts
        from airflow.models.xcom import XCom  # type: ignore[no-redef]
    value = XCom.get_value(ti_key=ti_key, key=key)
    return value if isinstance(value, str) else ""


class KlingVideoLink(BaseOperatorLink):
    """Opens the generated video (XCom ``video_url``)."""

    name = "Kling video"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        return _xcom_url(operator, ti_key, XCOM_VIDEO_URL)


class FalRequestLink(BaseOperatorLink):
    """Opens the request on fal's dashboard (XCom ``fal_request_url``).

    The URL comes from the connection extra ``dashboard_url_template`` (``{request_id}`` and
    ``{endpoint_id}`` are substituted), resolved in the worker at submit time.
    """

    name = "fal request"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        return _xcom_url(operator, ti_key, XCOM_FAL_REQUEST_URL)
