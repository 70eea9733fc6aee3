"""Connection settings: base URLs, timeouts and the API key, from plain connection values.

Pure functions over the connection's fields (host, port, password, extra) and an environment
mapping, so the sync and the async hook resolve a connection identically and tests need no Airflow.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_kling.cost import parse_usd
from airflow_provider_kling.exceptions import KlingConfigurationError

DEFAULT_QUEUE_URL = "https://queue.fal.run"
DEFAULT_REST_URL = "https://rest.fal.ai"
DEFAULT_CDN_URL = "https://v3.fal.media"
DEFAULT_REQUEST_TIMEOUT = 120.0
# fal-client's QUEUE_POLL_TIMEOUT: a host that takes longer than this to accept a connection is down.
CONNECT_TIMEOUT = 30.0
DEFAULT_DASHBOARD_URL_TEMPLATE = "https://fal.ai/dashboard/requests/{request_id}"
# The triggerer's shared pool for status polls: connections (and polls in flight) at most, and how long
# an idle one stays open. Longer than any poll interval, so a poll reuses a connection instead of
# paying for a new (TLS) one each time.
DEFAULT_MAX_CONNECTIONS = 100
DEFAULT_KEEPALIVE_EXPIRY = 60.0

KEY_SOURCES_HINT = (
    "set the connection's password (API Key) to '<key_id>:<key_secret>', or export FAL_KEY "
    "(or FAL_KEY_ID and FAL_KEY_SECRET) in the environment of the worker and the triggerer"
)


@dataclass(frozen=True)
class FalSettings:
    """Everything the hook needs from a ``fal`` connection.

    :param queue_url: queue API root (submit/status/result/cancel).
    :param rest_url: REST API root (storage tokens, upload initiate).
    :param cdn_url: CDN root (file uploads).
    :param request_timeout: read/write timeout of each HTTP call, seconds.
    :param connect_timeout: connect timeout, seconds.
    :param dashboard_url_template: template of the "fal request" link (``{request_id}``, ``{endpoint_id}``).
    :param prices: per-endpoint price overrides from the ``prices`` extra.
    :param max_connections: size of the triggerer's shared status-poll pool (extra ``max_connections``).
    :param keepalive_expiry: seconds an idle pooled connection stays open (extra ``keepalive_expiry``).
    :param max_cost_usd: the default per-task cost cap from the ``max_cost_usd`` extra (USD).
    :param key: the fal API key (never shown in ``repr``).
    :param key_source: where the key came from (``password``, ``FAL_KEY``, ``FAL_KEY_ID+FAL_KEY_SECRET``).
    """

    queue_url: str = DEFAULT_QUEUE_URL
    rest_url: str = DEFAULT_REST_URL
    cdn_url: str = DEFAULT_CDN_URL
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    connect_timeout: float = CONNECT_TIMEOUT
    dashboard_url_template: str = DEFAULT_DASHBOARD_URL_TEMPLATE
    prices: dict[str, Any] = field(default_factory=dict)
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    keepalive_expiry: float = DEFAULT_KEEPALIVE_EXPIRY
    max_cost_usd: Decimal | None = None
    key: str = field(default="", repr=False)
    key_source: str = ""


def parse_extra(extra: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """The connection extra as a dict; accepts the JSON text Airflow stores or an already parsed dict.

    Keys written by old-style UI forms (``extra__fal__rest_url``) are accepted as their short names.
    """
    if extra is None or extra == "":
        return {}
    if isinstance(extra, str):
        try:
            extra = json.loads(extra)
        except json.JSONDecodeError as exc:
            raise KlingConfigurationError(f"The connection extra is not valid JSON: {exc.msg}") from None
    if not isinstance(extra, Mapping):
        raise KlingConfigurationError("The connection extra must be a JSON object")
    out: dict[str, Any] = {}
    for name, value in extra.items():
        short = name[len("extra__fal__") :] if name.startswith("extra__fal__") else name
        # An explicit short key wins over its legacy prefixed twin.
        if short not in out or name == short:
            out[short] = value
    return out


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def _base_url(value: Any, field_name: str) -> str:
    if not isinstance(value, str):
        raise KlingConfigurationError(f"Connection field {field_name!r} must be a URL string, got {value!r}")
    url = value.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise KlingConfigurationError(
            f"Connection field {field_name!r} must be an absolute http(s) URL such as "
            f"'https://queue.fal.run', got {value!r}"
        )
    return url


def _queue_url_from_host(host: str, port: int | None) -> str:
    host = host.strip().rstrip("/")
    if "://" in host:
        url = _base_url(host, "host")
        parts = urlsplit(url)
        if port and parts.port is None:
            url = parts._replace(netloc=f"{parts.netloc}:{port}").geturl()
        return url
    # A bare host name means the real (TLS) service on another host name, e.g. queue.falrun.com.
    netloc = f"{host}:{port}" if port else host
    return _base_url(f"https://{netloc}", "host")


def _positive_seconds(value: Any, field_name: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise KlingConfigurationError(
            f"Connection extra {field_name!r} must be a number of seconds, got {value!r}"
        ) from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise KlingConfigurationError(f"Connection extra {field_name!r} must be > 0 seconds, got {value!r}")
    return seconds


def _positive_int(value: Any, field_name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise KlingConfigurationError(
            f"Connection extra {field_name!r} must be an integer >= 1, got {value!r}"
        )
    try:
        number = int(value)
    except ValueError:
        raise KlingConfigurationError(
            f"Connection extra {field_name!r} must be an integer >= 1, got {value!r}"
        ) from None
    if number < 1:
        raise KlingConfigurationError(
            f"Connection extra {field_name!r} must be an integer >= 1, got {value!r}"
        )
    return number


def _json_dict(value: Any, field_name: str) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise KlingConfigurationError(
                f"Connection extra {field_name!r} must be a JSON object, got {value!r}"
            ) from None
    if not isinstance(value, Mapping):
        raise KlingConfigurationError(f"Connection extra {field_name!r} must be a JSON object, got {value!r}")
    return dict(value)


_KEY_SOURCE_NAMES = {
    "password": "the connection's API Key (password)",
    "FAL_KEY": "the FAL_KEY environment variable",
    "FAL_KEY_ID+FAL_KEY_SECRET": "the FAL_KEY_ID and FAL_KEY_SECRET environment variables",
}


def key_shape_problem(key: str) -> str | None:
    """What is wrong with the shape of a fal key (``<key_id>:<key_secret>``), or None.

    Only the shape is checked (fal decides whether the key is valid); the message never quotes the key.
    """
    if key[0] in "\"'" or key[-1] in "\"'":
        return "it is wrapped in quotes; store the key without them"
    if key.lower().startswith(("key ", "bearer ")):
        return "it starts with an authorization scheme ('Key '); store only '<key_id>:<key_secret>'"
    if any(ch.isspace() or not ch.isprintable() for ch in key):
        return "it contains whitespace or control characters (a line break from copying?)"
    key_id, sep, secret = key.partition(":")
    if not sep:
        return "it has no ':'; a fal key is '<key_id>:<key_secret>' (both parts, as fal shows it once)"
    if not key_id:
        return "the part before ':' (the key id) is empty"
    if not secret:
        return "the part after ':' (the key secret) is empty"
    if ":" in secret:
        return "it has more than one ':'; a fal key is '<key_id>:<key_secret>'"
    return None


def resolve_key(password: str | None, environ: Mapping[str, str]) -> tuple[str, str]:
    """Return ``(key, source)``: the password, else ``FAL_KEY``, else ``FAL_KEY_ID:FAL_KEY_SECRET``.

    :raises KlingConfigurationError: naming both places a key can come from, or naming the source of a
        key whose shape is not ``<key_id>:<key_secret>`` (before anything is sent).
    """
    key, source = _find_key(password, environ)
    problem = key_shape_problem(key)
    if problem:
        raise KlingConfigurationError(
            f"The fal API key from {_KEY_SOURCE_NAMES[source]} is malformed: {problem}. "
            "Keys are created at https://fal.ai/dashboard/keys."
        )
    return key, source


def env_key_available(environ: Mapping[str, str]) -> bool:
    """Whether the environment holds a fal key (``FAL_KEY``, or ``FAL_KEY_ID`` and ``FAL_KEY_SECRET``)."""
    if environ.get("FAL_KEY", "").strip():
        return True
    return bool(environ.get("FAL_KEY_ID", "").strip() and environ.get("FAL_KEY_SECRET", "").strip())


def _find_key(password: str | None, environ: Mapping[str, str]) -> tuple[str, str]:
    if password and password.strip():
        return password.strip(), "password"
    env_key = environ.get("FAL_KEY", "").strip()
    if env_key:
        return env_key, "FAL_KEY"
    key_id = environ.get("FAL_KEY_ID", "").strip()
    key_secret = environ.get("FAL_KEY_SECRET", "").strip()
    if key_id and key_secret:
        return f"{key_id}:{key_secret}", "FAL_KEY_ID+FAL_KEY_SECRET"
    raise KlingConfigurationError(f"No fal API key found: {KEY_SOURCES_HINT}")


def settings_from_connection(
    *,
    host: str | None,
    port: int | None,
    password: str | None,
    extra: str | Mapping[str, Any] | None,
    environ: Mapping[str, str],
    timeout: float | None = None,
) -> FalSettings:
    """Build :class:`FalSettings` from a connection's fields.

    :param timeout: a per-hook override of the ``request_timeout`` extra.
    """
    extras = parse_extra(extra)
    if _present(extras.get("queue_url")):
        queue_url = _base_url(extras["queue_url"], "queue_url")
    elif _present(host):
        queue_url = _queue_url_from_host(str(host), port)
    else:
        queue_url = DEFAULT_QUEUE_URL
    rest_url = (
        _base_url(extras["rest_url"], "rest_url") if _present(extras.get("rest_url")) else DEFAULT_REST_URL
    )
    cdn_url = _base_url(extras["cdn_url"], "cdn_url") if _present(extras.get("cdn_url")) else DEFAULT_CDN_URL
    if timeout is not None:
        request_timeout = _positive_seconds(timeout, "timeout")
    elif _present(extras.get("request_timeout")):
        request_timeout = _positive_seconds(extras["request_timeout"], "request_timeout")
    else:
        request_timeout = DEFAULT_REQUEST_TIMEOUT
    # A blank template (what a UI form stores when left empty) means "use fal's dashboard".
    template = extras.get("dashboard_url_template")
    dashboard = str(template).strip() if _present(template) else DEFAULT_DASHBOARD_URL_TEMPLATE
    prices = _json_dict(extras["prices"], "prices") if _present(extras.get("prices")) else {}
    max_connections = (
        _positive_int(extras["max_connections"], "max_connections")
        if _present(extras.get("max_connections"))
        else DEFAULT_MAX_CONNECTIONS
    )
    keepalive_expiry = (
        _positive_seconds(extras["keepalive_expiry"], "keepalive_expiry")
        if _present(extras.get("keepalive_expiry"))
        else DEFAULT_KEEPALIVE_EXPIRY
    )
    max_cost_usd = parse_usd(extras.get("max_cost_usd"), "connection extra 'max_cost_usd'")
    key, key_source = resolve_key(password, environ)
    return FalSettings(
        queue_url=queue_url,
        rest_url=rest_url,
        cdn_url=cdn_url,
        request_timeout=request_timeout,
        connect_timeout=min(CONNECT_TIMEOUT, request_timeout),
        dashboard_url_template=dashboard,
        prices=prices,
        max_connections=max_connections,
        keepalive_expiry=keepalive_expiry,
        max_cost_usd=max_cost_usd,
        key=key,
        key_source=key_source,
    )
