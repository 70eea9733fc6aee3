"""Who may see what: Airflow's own authentication and DAG authorization, nothing of our own.

The user comes from Airflow's ``get_user`` (the UI's ``_token`` cookie or an ``Authorization:
Bearer`` JWT, validated by the configured auth manager); access to one task is decided by
Airflow's ``requires_access_dag`` check for task instances and XComs, and the gallery lists only
the DAGs the auth manager's ``get_authorized_dag_ids`` returns. Airflow's API modules are imported
on first request: every Airflow component loads plugins, only the api-server serves them.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request


async def current_user(request: Request) -> Any:
    """FastAPI dependency: the authenticated Airflow user, or 401/403 from Airflow itself."""
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    credentials = await bearer_scheme(request)
    # Positional: the parameter names differ between Airflow 3.1 and 3.3, the order does not.
    return await get_user(request, None, credentials)


def require_task_access(request: Request, user: Any) -> None:
    """Raise 403 unless ``user`` may read the task instances and XComs of the request's ``dag_id``."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag

    for entity in (DagAccessEntity.TASK_INSTANCE, DagAccessEntity.XCOM):
        requires_access_dag("GET", entity)(request, user)


def readable_dag_ids(user: Any) -> set[str]:
    """The DAG ids ``user`` may read, as the auth manager decides."""
    from airflow.api_fastapi.app import get_auth_manager

    return set(get_auth_manager().get_authorized_dag_ids(user=user, method="GET"))
