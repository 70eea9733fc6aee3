"""Kling in the Airflow UI: the task-instance "Video" tab and the "Kling videos" gallery.

:mod:`.routes` holds the router (included by :func:`airflow_provider_kling.plugins.app.create_app`),
:data:`EXTERNAL_VIEWS` the entries :class:`~airflow_provider_kling.plugins.KlingPlugin` registers.
"""

from __future__ import annotations

from typing import Any

#: The "Video" tab on every task instance (Airflow fills in the placeholders; ``{MAP_INDEX}`` stays
#: literal on unmapped tasks, which the page reads as -1) and the "Kling videos" navigation entry.
EXTERNAL_VIEWS: list[dict[str, Any]] = [
    {
        "name": "Video",
        "href": "/kling/ui/video?dag_id={DAG_ID}&run_id={RUN_ID}&task_id={TASK_ID}&map_index={MAP_INDEX}",
        "destination": "task_instance",
        "url_route": "kling-video",
    },
    {
        "name": "Kling videos",
        "href": "/kling/ui/gallery",
        "destination": "nav",
        "url_route": "kling-videos",
    },
]
