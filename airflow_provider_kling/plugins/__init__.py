"""The provider's Airflow plugin: one FastAPI app mounted on the api-server under ``/kling``.

Registered through the ``airflow.plugins`` entry point, so installing the package is enough (a
``plugins`` entry in the provider metadata loads only when Airflow's lazy provider loading is off).
Every feature (UI pages, the fal webhook receiver) is a router of that one app, included in
:mod:`airflow_provider_kling.plugins.app`, because a second mount under ``/kling`` would be shadowed
by the first.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from airflow_provider_kling.plugins.app import create_app
from airflow_provider_kling.plugins.ui import EXTERNAL_VIEWS

URL_PREFIX = "/kling"


class KlingPlugin(AirflowPlugin):
    """Mounts the Kling app on the api-server (Airflow 3.1+ ``fastapi_apps``)."""

    name = "kling"
    fastapi_apps: list[dict[str, Any]] = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "Kling"}]
    external_views: list[dict[str, Any]] = [dict(view) for view in EXTERNAL_VIEWS]
