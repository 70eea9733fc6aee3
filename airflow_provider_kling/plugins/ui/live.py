"""Ask fal where a request stands, for a task still waiting on it (queue position, in progress).

Runs in the api-server with the task's own connection; only the state, position and fal's error
text reach the page, never the connection or its key. Short timeout: a page must not hang on fal.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

LIVE_TIMEOUT = 3.0


@dataclass
class LiveStatus:
    state: str | None = None
    queue_position: int | None = None
    error: str | None = None
    unavailable: str | None = None
    inference_seconds: float | None = None


# A finished request's status never changes: remember it (bounded) instead of asking fal per view.
_FINISHED: dict[str, LiveStatus] = {}
_FINISHED_MAX = 2048


def live_status(fal_conn_id: str | None, endpoint_id: str | None, request_id: str) -> LiveStatus:
    """Where ``request_id`` stands at fal; for a COMPLETED request also fal's generation time."""
    if request_id in _FINISHED:
        return _FINISHED[request_id]
    if not endpoint_id:
        return LiveStatus(unavailable="the endpoint is unknown")
    hook = None
    try:
        from airflow_provider_kling.hooks.kling import KlingHook
        from airflow_provider_kling.protocol.retry import RetryPolicy

        hook = KlingHook(
            fal_conn_id=fal_conn_id or "fal_default",
            timeout=LIVE_TIMEOUT,
            retry_policy=RetryPolicy(max_attempts=1),  # a page view asks once
        )
        status = hook.get_status(hook.request_from_id(endpoint_id, request_id), logs=False)
    except Exception as exc:
        # The reason stays in the api-server log; the page only says the status is unknown.
        log.info("Live status of fal request %s unavailable: %s", request_id, type(exc).__name__)
        return LiveStatus(unavailable="fal did not answer")
    finally:
        if hook is not None:
            try:
                hook.close()
            except Exception:
                log.debug("Closing the fal hook failed", exc_info=True)
    inference = status.metrics.get("inference_time") if isinstance(status.metrics, dict) else None
    live = LiveStatus(
        state=status.status,
        queue_position=status.queue_position,
        error=status.error if status.failed else None,
        inference_seconds=float(inference) if isinstance(inference, (int, float)) else None,
    )
    if status.done:
        if len(_FINISHED) >= _FINISHED_MAX:
            _FINISHED.clear()
        _FINISHED[request_id] = live
    return live
