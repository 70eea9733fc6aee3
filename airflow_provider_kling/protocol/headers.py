"""Request headers and query options of fal's queue API, validated before anything is sent."""

from __future__ import annotations

import math
from typing import Any

from airflow_provider_kling import __version__
from airflow_provider_kling.exceptions import KlingConfigurationError

USER_AGENT = f"airflow-provider-kling/{__version__}"
PRIORITIES: frozenset[str] = frozenset({"normal", "low"})
# fal-client refuses start timeouts of 1 s or less: shorter deadlines expire before any runner can start.
MIN_START_TIMEOUT = 1.0

HEADER_PRIORITY = "X-Fal-Queue-Priority"
HEADER_REQUEST_TIMEOUT = "X-Fal-Request-Timeout"


def auth_headers(key: str) -> dict[str, str]:
    """Headers of every authenticated call (queue and REST)."""
    return {"Authorization": f"Key {key}", "User-Agent": USER_AGENT}


def anonymous_headers() -> dict[str, str]:
    """Headers for third-party URLs (presigned PUTs): never the fal key."""
    return {"User-Agent": USER_AGENT}


def submit_headers(*, priority: str | None = None, start_timeout: Any = None) -> dict[str, str]:
    """Optional submit headers; raise :class:`KlingConfigurationError` naming the option and its limit."""
    headers: dict[str, str] = {}
    if priority is not None:
        if priority not in PRIORITIES:
            raise KlingConfigurationError(f"priority must be 'normal' or 'low', got {priority!r}")
        headers[HEADER_PRIORITY] = priority
    if start_timeout is not None:
        try:
            seconds = float(start_timeout)
        except (TypeError, ValueError):
            raise KlingConfigurationError(
                f"start_timeout must be a number of seconds greater than {MIN_START_TIMEOUT:g}, "
                f"got {start_timeout!r}"
            ) from None
        if isinstance(start_timeout, bool) or not math.isfinite(seconds) or seconds <= MIN_START_TIMEOUT:
            raise KlingConfigurationError(
                f"start_timeout must be greater than {MIN_START_TIMEOUT:g} second, got {start_timeout!r}"
            )
        headers[HEADER_REQUEST_TIMEOUT] = str(seconds)
    return headers
