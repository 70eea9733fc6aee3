"""fal endpoint ids and the queue URLs derived from them.

An endpoint id is ``[namespace/]owner/alias[/sub/path]`` (namespaces: ``workflows``, ``comfy``), or a
legacy ``<numeric user id>-<app>`` id. Submits go to the *full* id; status, result and cancel live under
``[namespace/]owner/alias`` only. Those derived URLs are a fallback for rebuilding a handle from a bare
request id: fal says to use the URLs returned by submit, and derived ones are known to 404 for some apps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from airflow_provider_kling.exceptions import KlingConfigurationError
from airflow_provider_kling.protocol.types import FalRequest

APP_NAMESPACES: frozenset[str] = frozenset({"workflows", "comfy"})

_LEGACY_ID = re.compile(r"^([0-9]+)-([a-zA-Z0-9-]+)$")
# Path segments fal accepts in practice ("v1.6", "image-to-video", "o1_pro"); anything else (spaces,
# "?", "#", "..") would silently change the URL, so it is refused up front.
_SEGMENT = re.compile(r"^(?!\.{1,2}$)[A-Za-z0-9._~-]+$")


@dataclass(frozen=True)
class EndpointId:
    """A parsed fal endpoint id.

    :param owner: the app owner (``fal-ai``), or the numeric user id of a legacy id.
    :param alias: the app name (``kling-video``).
    :param path: the sub-path inside the app (``v1.6/standard/image-to-video``), or None.
    :param namespace: ``workflows`` / ``comfy`` for namespaced ids, else None.
    """

    owner: str
    alias: str
    path: str | None = None
    namespace: str | None = None

    @property
    def app(self) -> str:
        """``[namespace/]owner/alias``: the prefix of status, result and cancel URLs."""
        prefix = f"{self.namespace}/" if self.namespace else ""
        return f"{prefix}{self.owner}/{self.alias}"

    @property
    def full(self) -> str:
        """The normalised full id (legacy ids become ``owner/alias``): the submit path."""
        return f"{self.app}/{self.path}" if self.path else self.app


def parse_endpoint_id(endpoint_id: str) -> EndpointId:
    """Parse an endpoint id the way fal's clients do, but refuse malformed ids with a clear error."""
    if not isinstance(endpoint_id, str) or not endpoint_id.strip():
        raise KlingConfigurationError(
            f"endpoint_id must be a non-empty string like 'owner/app', got {endpoint_id!r}"
        )
    raw = endpoint_id.strip()
    if "/" not in raw:
        legacy = _LEGACY_ID.match(raw)
        if not legacy:
            raise KlingConfigurationError(
                f"Invalid endpoint_id {raw!r}: expected '<owner>/<app>[/<path>]' "
                "(e.g. 'fal-ai/kling-video/v1.6/standard/image-to-video') or a legacy '<number>-<app>' id"
            )
        raw = f"{legacy.group(1)}/{legacy.group(2)}"
    parts = raw.split("/")
    bad = [p for p in parts if not _SEGMENT.match(p)]
    if bad:
        raise KlingConfigurationError(
            f"Invalid endpoint_id {endpoint_id!r}: segment {bad[0]!r} is empty or contains characters other "
            "than letters, digits, '.', '_', '-' and '~'"
        )
    if parts[0] in APP_NAMESPACES:
        if len(parts) < 3:
            raise KlingConfigurationError(
                f"Invalid endpoint_id {endpoint_id!r}: a '{parts[0]}/' id needs "
                f"'{parts[0]}/<owner>/<app>[/<path>]'"
            )
        return EndpointId(
            namespace=parts[0], owner=parts[1], alias=parts[2], path="/".join(parts[3:]) or None
        )
    if len(parts) < 2:  # pragma: no cover - guarded by the "/" check above
        raise KlingConfigurationError(f"Invalid endpoint_id {endpoint_id!r}: expected '<owner>/<app>'")
    return EndpointId(owner=parts[0], alias=parts[1], path="/".join(parts[2:]) or None)


def submit_url(queue_url: str, endpoint: EndpointId) -> str:
    """``POST`` target of a submit: queue base + the full id."""
    return f"{queue_url.rstrip('/')}/{endpoint.full}"


def derive_request(queue_url: str, endpoint_id: str, request_id: str) -> FalRequest:
    """Rebuild a request handle from its id: URLs under ``[namespace/]owner/alias`` (sub-path dropped)."""
    if not isinstance(request_id, str) or not request_id.strip():
        raise KlingConfigurationError(f"request_id must be a non-empty string, got {request_id!r}")
    endpoint = parse_endpoint_id(endpoint_id)
    base = f"{queue_url.rstrip('/')}/{endpoint.app}/requests/{quote(request_id.strip(), safe='')}"
    return FalRequest(
        request_id=request_id.strip(),
        endpoint_id=endpoint_id.strip(),
        status_url=f"{base}/status",
        response_url=base,
        cancel_url=f"{base}/cancel",
    )
