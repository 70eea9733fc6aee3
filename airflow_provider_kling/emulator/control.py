"""A small HTTP control API for out-of-process users (the CLI emulator driven by another process).

``GET /_emulator/stats``, ``POST /_emulator/config`` (knobs), ``POST /_emulator/inject``,
``POST /_emulator/fail_next``, ``POST /_emulator/reset``. Not counted, never faulted.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from airflow_provider_kling.emulator.state import Failure

if TYPE_CHECKING:
    from airflow_provider_kling.emulator.app import EmulatorApp


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    body = await request.json()
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    return body


def stats(ctx: EmulatorApp) -> dict[str, Any]:
    return {
        **ctx.counters.as_dict(),
        "jobs": dict(Counter(job.state for job in ctx.queue.jobs.values())),
        "knobs": {k: v for k, v in ctx.knobs.as_dict().items() if k != "require_key"},
        "faults": ctx.faults.pending(),
        "webhooks": ctx.webhooks.deliveries,
    }


async def handle(ctx: EmulatorApp, request: Request, action: str) -> Response:
    try:
        if request.method == "GET" and action == "stats":
            return JSONResponse(stats(ctx))
        if request.method != "POST":
            return JSONResponse({"detail": "Method not allowed"}, status_code=405)
        body = await _json(request)
        if action == "config":
            ctx.knobs.update(body)
            ctx.queue.poke()
            return JSONResponse({k: v for k, v in ctx.knobs.as_dict().items() if k != "require_key"})
        if action == "inject":
            kind = body.pop("kind")
            route = body.pop("route", "any")
            times = body.pop("times", 1)
            ctx.faults.inject(kind, route=route, times=times, **body)
            return JSONResponse({"faults": ctx.faults.pending()})
        if action == "fail_next":
            times = body.pop("times", 1)
            ctx.fail_next(Failure(**body), times)
            return JSONResponse({"ok": True})
        if action == "reset":
            ctx.reset()
            return JSONResponse({"ok": True})
    except (ValueError, TypeError, KeyError) as exc:
        return JSONResponse({"detail": f"{type(exc).__name__}: {exc}"}, status_code=400)
    return JSONResponse({"detail": f"Unknown control action {action!r}"}, status_code=404)
