"""Fault injection: the failure shapes a fal client meets in the wild, on demand.

Each kind reproduces what the real edge sends, because clients tell them apart by exactly those
details: nginx errors have an HTML body and no ``x-fal-request-id`` (retryable ingress errors),
errors from fal itself carry the header (not retryable), and a reset has no response at all.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import JSONResponse, Response
from starlette.types import Send

from airflow_provider_kling.emulator.state import ROUTES

KINDS: frozenset[str] = frozenset(
    {
        "rate_limit",
        "nginx_502",
        "nginx_503",
        "nginx_504",
        "gateway_html",
        "server_500",
        "reset",
        "reset_after_accept",
        "slow",
        "malformed_json",
    }
)

_NGINX_TITLES = {
    502: "502 Bad Gateway",
    503: "503 Service Temporarily Unavailable",
    504: "504 Gateway Time-out",
}


@dataclass
class Fault:
    """One armed fault.

    :param kind: one of :data:`KINDS`.
    :param route: a route name or ``"any"``.
    :param times: how many matching requests it hits; None = until reset.
    :param params: kind parameters (``retry_after``, ``delay``, ``status_code`` of ``server_500``,
        ``gateway_html`` and ``malformed_json``).
    """

    kind: str
    route: str = "any"
    times: int | None = 1
    params: dict[str, Any] = field(default_factory=dict)


class FaultBook:
    """Armed faults, consumed first-in first-out per matching route. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def inject(self, kind: str, *, route: str = "any", times: int | None = 1, **params: Any) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {sorted(KINDS)}")
        if route != "any" and route not in ROUTES:
            raise ValueError(f"unknown route {route!r}; known: any, {', '.join(sorted(ROUTES))}")
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 (or None for every request)")
        with self._lock:
            self._faults.append(Fault(kind, route, times, dict(params)))

    def take(self, route: str) -> Fault | None:
        """The fault that hits this request (and use one of its shots), or None."""
        with self._lock:
            for fault in self._faults:
                if fault.route in ("any", route):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times == 0:
                            self._faults.remove(fault)
                    return fault
        return None

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{"kind": f.kind, "route": f.route, "times": f.times, **f.params} for f in self._faults]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()


def fault_response(fault: Fault, request_id: str | None = None) -> Response:
    """The canned response of a kind that answers (everything but resets and ``slow``)."""
    if fault.kind == "rate_limit":
        retry_after = fault.params.get("retry_after", 1)
        return JSONResponse(
            {"detail": "Rate limit exceeded. Please slow down."},
            status_code=429,
            headers={"Retry-After": str(retry_after)},
        )
    if fault.kind.startswith("nginx_"):
        code = int(fault.kind.split("_")[1])
        title = _NGINX_TITLES[code]
        body = (
            f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n"
            "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
        )
        return Response(body, status_code=code, media_type="text/html")
    if fault.kind == "gateway_html":
        # Another proxy's error page (a CDN or load balancer in front of the edge): HTML without the
        # word "nginx" and without fal's request id.
        code = int(fault.params.get("status_code", 502))
        title = _NGINX_TITLES.get(code, f"{code} Error").split(" ", 1)[1]
        body = (
            f"<!DOCTYPE html><html><head><title>{code} {title}</title></head><body>"
            f"<h1>{title}</h1><p>The upstream server did not answer in time or answered badly. "
            "Please try again in a few minutes.</p><p>Error reference: edge-7f3a</p></body></html>"
        )
        return Response(body, status_code=code, media_type="text/html")
    if fault.kind == "server_500":
        code = int(fault.params.get("status_code", 500))
        error_type = str(fault.params.get("error_type", "internal_error"))
        return JSONResponse(
            {"detail": fault.params.get("detail", "Internal Server Error"), "error_type": error_type},
            status_code=code,
            headers={
                "x-fal-request-id": request_id or str(uuid.uuid4()),
                "X-Fal-Error-Type": error_type,
            },
        )
    if fault.kind == "malformed_json":
        # Cut off mid-object, the way a truncated proxy response looks.
        return Response(
            b'{"status": "IN_QUEUE", "request_id": "',
            status_code=int(fault.params.get("status_code", 200)),
            media_type="application/json",
        )
    raise ValueError(f"fault kind {fault.kind!r} has no canned response")


async def abort_connection(send: Send) -> None:
    """Drop the TCP connection without any response bytes, so the client sees a transport error.

    Raising inside an ASGI app would make uvicorn answer 500 instead; aborting the transport is
    the only way to get a real "server disconnected without sending a response". uvicorn's
    ``send`` is a bound method of its request cycle, which holds the transport.
    """
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise RuntimeError("cannot reach the connection transport to simulate a reset")
    transport.abort()
    # Let connection_lost run so uvicorn marks the cycle disconnected and doesn't log a missing response.
    for _ in range(3):
        await asyncio.sleep(0)
