"""Metrics through Airflow's own ``Stats`` (StatsD, DogStatsD or OpenTelemetry, as configured).

Every name starts with ``kling.``. Counters carry tags (DogStatsD / OpenTelemetry attributes); for
plain StatsD, which drops tags, the dimension that matters is repeated in a second, dotted name,
the way Airflow's own legacy names do (``ti.finish.<dag_id>.<task_id>.<state>``):

==================================== ======= ===================================================
name                                 type    when
==================================== ======= ===================================================
``kling.submissions``                counter a request was submitted (tag ``endpoint``);
                                             also ``kling.submissions.<endpoint>``
``kling.reattaches``                 counter a retry followed or reused an earlier try's request
``kling.cancellations``              counter a cancel was sent to fal
``kling.failures``                   counter a Kling task failed (tag ``error_type``);
                                             also ``kling.failures.<error_type>``
``kling.cost_estimate_cents``        counter the estimate of each submitted request, in US cents
                                             rounded up (tag ``endpoint``); also
                                             ``kling.cost_estimate_cents.<endpoint>``
``kling.queue_wait``                 timer   submit → the model started (fal's ``inference_time``
                                             subtracted from the observed total)
``kling.generation``                 timer   the model's run time (fal's ``inference_time``)
==================================== ======= ===================================================

``<endpoint>`` is the endpoint id with every character other than letters, digits, ``_`` and
``-`` replaced by ``_`` (``fal-ai_kling-video_v1_6_standard_image-to-video``).

Counted once per request: the submit and cost counters move only when a request is created, so a
retry that reattaches (or a resumed deferral) never counts the same request twice. Metrics never
fail a task: an error in the metrics backend is logged at debug level and ignored.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

log = logging.getLogger(__name__)

PREFIX = "kling"
SUBMISSIONS = f"{PREFIX}.submissions"
REATTACHES = f"{PREFIX}.reattaches"
CANCELLATIONS = f"{PREFIX}.cancellations"
FAILURES = f"{PREFIX}.failures"
COST_CENTS = f"{PREFIX}.cost_estimate_cents"
QUEUE_WAIT = f"{PREFIX}.queue_wait"
GENERATION = f"{PREFIX}.generation"

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
F = TypeVar("F", bound=Callable[..., Any])


def _stats() -> Any:
    try:
        from airflow.sdk.observability.stats import Stats
    except ImportError:  # Airflow < 3.2 keeps it in airflow.stats
        from airflow.stats import Stats  # type: ignore[no-redef]
    return Stats


def name_part(value: str) -> str:
    """``value`` as one segment of a StatsD name (no dots, so the hierarchy stays intact)."""
    return _UNSAFE.sub("_", value.strip("/"))[:120] or "unknown"


def _emit(kind: str, stat: str, *args: Any, tags: dict[str, str] | None = None) -> None:
    try:
        getattr(_stats(), kind)(stat, *args, tags=tags)
    except Exception:  # a metrics outage must never fail (or re-run) a paid request
        log.debug("Could not emit metric %s", stat, exc_info=True)


def submitted(endpoint_id: str, cost_cents: int | None) -> None:
    """One request was created at fal (and its estimate, when known, was spent)."""
    tags = {"endpoint": endpoint_id}
    _emit("incr", SUBMISSIONS, tags=tags)
    _emit("incr", f"{SUBMISSIONS}.{name_part(endpoint_id)}")
    if cost_cents:
        _emit("incr", COST_CENTS, cost_cents, tags=tags)
        _emit("incr", f"{COST_CENTS}.{name_part(endpoint_id)}", cost_cents)


def reattached(endpoint_id: str, how: str) -> None:
    """A retry followed (``how="follow"``) or reused (``"reuse"``) the request an earlier try paid for."""
    _emit("incr", REATTACHES, tags={"endpoint": endpoint_id, "mode": how})


def cancelled(endpoint_id: str) -> None:
    """A cancellation was sent for a request."""
    _emit("incr", CANCELLATIONS, tags={"endpoint": endpoint_id})


def error_type_of(exc: BaseException) -> str:
    """fal's ``error_type`` when known, else the exception class in snake case without ``Kling``."""
    given = getattr(exc, "error_type", None)
    if isinstance(given, str) and given:
        return name_part(given)
    name = type(exc).__name__.removeprefix("Kling").removesuffix("Error") or type(exc).__name__
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def failed(exc: BaseException) -> None:
    """A Kling task is failing with ``exc``."""
    error_type = error_type_of(exc)
    _emit("incr", FAILURES, tags={"error_type": error_type})
    _emit("incr", f"{FAILURES}.{error_type}")


def _is_control_flow(exc: BaseException) -> bool:
    # TaskDeferred, AirflowSkipException, AirflowRescheduleException ... steer the task; they are
    # not failures. Airflow's own timeouts are (they end the try), so they are counted.
    name = type(exc).__name__
    if "Timeout" in name:
        return False
    return type(exc).__module__.startswith("airflow.") or not isinstance(exc, Exception)


def count_failures(method: F) -> F:
    """Decorate ``execute`` / ``execute_complete``: count the exception that fails the try, re-raise it."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except BaseException as exc:
            if not _is_control_flow(exc):
                failed(exc)
            raise

    return wrapper  # type: ignore[return-value]


def timings(queue_wait: float | None, generation: float | None) -> None:
    """Seconds a finished request waited in fal's queue and ran on the model (None: unknown)."""
    if queue_wait is not None:
        _emit("timing", QUEUE_WAIT, timedelta(seconds=max(queue_wait, 0.0)))
    if generation is not None:
        _emit("timing", GENERATION, timedelta(seconds=max(generation, 0.0)))


def inference_seconds(status_metrics: Any) -> float | None:
    """fal's ``metrics.inference_time`` of a COMPLETED status, when it is a number."""
    value = status_metrics.get("inference_time") if isinstance(status_metrics, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return None
    return float(value)
