"""Request headers and query options of fal's queue API, validated before anything is sent."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlsplit

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


def check_webhook_url(url: Any) -> str:
    """``url`` when it is an absolute http(s) URL; otherwise :class:`KlingConfigurationError`.

    The message names the scheme, not the URL: a webhook URL often carries a secret token.
    """
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        got = (
            f"scheme {parts.scheme!r}"
            if parts is not None and parts.scheme
            else f"{type(url).__name__} value"
        )
        if parts is not None and parts.scheme in ("http", "https"):
            got = "a URL without a host"
        raise KlingConfigurationError(f"webhook_url must be an absolute http(s) URL, got {got}")
    return url


def check_submit_options(*, webhook_url: Any = None, priority: Any = None, start_timeout: Any = None) -> None:
    """Check every submit option at once, so a bad (rendered) value fails before any upload."""
    submit_headers(priority=priority, start_timeout=start_timeout)
    if webhook_url is not None:
        check_webhook_url(webhook_url)
