"""Webhook settings from Airflow's configuration, section ``[kling]`` (env ``AIRFLOW__KLING__*``).

Read where they are used: the receiver reads them when the api-server mounts the plugin, the
operator when it submits. Defaults are the ones documented in the README and the provider's
``config`` metadata (``airflow config list --section kling``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SECTION = "kling"
DEFAULT_JWKS_URL = "https://rest.alpha.fal.ai/.well-known/jwks.json"
WEBHOOK_PATH = "/kling/webhooks/fal"

# name -> (default, description); the provider metadata's config section is built from this.
OPTIONS: dict[str, tuple[str, str]] = {
    "webhook_url": (
        "",
        "Public URL fal POSTs completions to (HTTPS, through your reverse proxy). Empty: "
        "[api] base_url + /kling/webhooks/fal.",
    ),
    "webhook_jwks_url": (DEFAULT_JWKS_URL, "Where fal publishes its webhook signing keys (JWKS)."),
    "webhook_jwks_cache_ttl": ("3600", "Seconds the signing keys are cached before a refetch."),
    "webhook_jwks_min_refresh_interval": (
        "60",
        "Least seconds between two JWKS fetches caused by an unknown key or a failed fetch, so forged "
        "deliveries can never make the api-server fetch per request.",
    ),
    "webhook_timestamp_tolerance": ("300", "Seconds a delivery's signed timestamp may differ from now."),
    "webhook_max_body_bytes": ("1048576", "Largest delivery body accepted (413 above)."),
    "webhook_retention": (
        "604800",
        "Seconds a submitted request stays deliverable, and a recorded delivery is remembered so that "
        "fal's retries record nothing new.",
    ),
    "webhook_user_ids": (
        "",
        "Comma-separated fal user ids allowed to deliver (X-Fal-Webhook-User-Id). Empty: any; the "
        "request must still be one this deployment submitted.",
    ),
    "triggerer_gc_freeze": (
        "True",
        "Freeze the triggerer's long-lived objects out of Python's full garbage collections (gc.freeze) "
        "as Kling triggers start, so thousands of deferred jobs do not stall the triggerer's event loop "
        "for seconds. Process-wide; see the README's Performance section.",
    ),
}


def _conf() -> Any:
    try:
        from airflow.sdk import conf
    except ImportError:  # Airflow 3.1's task SDK does not export it
        from airflow.configuration import conf  # type: ignore[no-redef,assignment]
    return conf


def option(name: str) -> str:
    return str(_conf().get(SECTION, name, fallback=OPTIONS[name][0]) or "").strip()


def _number(name: str) -> float:
    raw = option(name) or OPTIONS[name][0]
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"[{SECTION}] {name} must be a number of seconds/bytes, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"[{SECTION}] {name} must be positive, got {raw!r}")
    return value


@dataclass(frozen=True)
class ReceiverSettings:
    """What the webhook receiver needs; :meth:`from_airflow` reads them from ``[kling]``.

    :param jwks_url: fal's JWKS URL (point it at the emulator in tests).
    :param jwks_cache_ttl: seconds keys are cached.
    :param jwks_min_refresh_interval: least seconds between fetches forced by an unknown key.
    :param timestamp_tolerance: allowed clock distance of the signed timestamp, seconds.
    :param max_body_bytes: largest body read.
    :param retention: seconds registrations and delivered records are kept.
    :param user_ids: fal accounts allowed to deliver; empty allows any.
    """

    jwks_url: str = DEFAULT_JWKS_URL
    jwks_cache_ttl: float = 3600.0
    jwks_min_refresh_interval: float = 60.0
    timestamp_tolerance: float = 300.0
    max_body_bytes: int = 1024 * 1024
    retention: float = 7 * 24 * 3600.0
    user_ids: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def from_airflow(cls) -> ReceiverSettings:
        return cls(
            jwks_url=option("webhook_jwks_url") or DEFAULT_JWKS_URL,
            jwks_cache_ttl=_number("webhook_jwks_cache_ttl"),
            jwks_min_refresh_interval=_number("webhook_jwks_min_refresh_interval"),
            timestamp_tolerance=_number("webhook_timestamp_tolerance"),
            max_body_bytes=int(_number("webhook_max_body_bytes")),
            retention=_number("webhook_retention"),
            user_ids=tuple(u.strip() for u in option("webhook_user_ids").split(",") if u.strip()),
        )


def webhook_url() -> str:
    """The URL the operator gives fal: ``[kling] webhook_url``, else ``[api] base_url`` + the route.

    :raises ValueError: when neither is set (fal needs an absolute URL it can reach).
    """
    url = option("webhook_url")
    if url:
        return url
    base = str(_conf().get("api", "base_url", fallback="") or "").strip().rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ValueError(
            "webhook_asset needs a URL fal can reach: set [kling] webhook_url (env "
            "AIRFLOW__KLING__WEBHOOK_URL), or [api] base_url, or pass webhook_url="
        )
    return base + WEBHOOK_PATH


def provider_config() -> dict[str, Any]:
    """The ``config`` section of the provider metadata."""
    return {
        SECTION: {
            "description": "airflow-provider-kling: the fal webhook receiver and webhook-mode operators.",
            "options": {
                name: {
                    "description": description,
                    "version_added": None,
                    "type": "string"
                    if name in ("webhook_url", "webhook_jwks_url", "webhook_user_ids")
                    else "integer",
                    "example": None,
                    "default": default,
                }
                for name, (default, description) in OPTIONS.items()
            },
        }
    }
