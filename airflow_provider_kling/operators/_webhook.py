"""Webhook mode of the Kling operators (``webhook_asset=``): submit with the receiver's URL, record
where the delivery goes, return at once.

The operator submits with ``fal_webhook=<[kling] webhook_url>`` and then writes a
:class:`~airflow_provider_kling.webhooks.registry.Registration` (asset + submitting task) as an
Airflow Variable keyed by the request id; the receiver in the api-server routes the delivery with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_kling.exceptions import KlingConfigurationError
from airflow_provider_kling.webhooks.registry import Registration, variable_key

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_kling.lifecycle.reattach import StoredRequest


def check_asset(asset: Any, wait_for_completion: bool) -> Any:
    """Validate ``webhook_asset`` at DAG parse time; a string is taken as the asset's name."""
    if asset is None:
        return None
    if wait_for_completion:
        raise KlingConfigurationError(
            "webhook_asset needs wait_for_completion=False: fal's webhook delivers the video to the "
            "asset, nothing waits for it in the task"
        )
    if isinstance(asset, str):
        from airflow.sdk import Asset

        asset = Asset(asset)
    if not (isinstance(getattr(asset, "name", None), str) and isinstance(getattr(asset, "uri", None), str)):
        raise KlingConfigurationError(
            f"webhook_asset must be an airflow.sdk.Asset or an asset name, got {type(asset).__name__}"
        )
    return asset


def webhook_url(explicit: str | None) -> str:
    """The URL fal calls: ``webhook_url=`` if given, else the configured receiver URL."""
    if explicit:
        return explicit
    from airflow_provider_kling.webhooks.config import webhook_url as configured

    try:
        return configured()
    except ValueError as exc:
        raise KlingConfigurationError(str(exc)) from None


def register(context: Context, stored: StoredRequest, asset: Any) -> Registration:
    """Record the routing for ``stored``'s request (a Variable the receiver reads and deletes)."""
    from airflow.sdk import Variable

    ti: Any = context["ti"]
    request = stored.request
    registration = Registration(
        request_id=request.request_id,
        endpoint_id=request.endpoint_id,
        asset_name=asset.name,
        asset_uri=asset.uri,
        dag_id=ti.dag_id,
        run_id=ti.run_id,
        task_id=ti.task_id,
        map_index=-1 if getattr(ti, "map_index", None) is None else int(ti.map_index),
        try_number=int(getattr(ti, "try_number", 1) or 1),
        submitted_at=stored.submitted_at,
        duration=stored.duration,
        cost_estimate=stored.cost_estimate,
    )
    Variable.set(
        variable_key(request.request_id), registration.to_json(), description=registration.description()
    )
    return registration
