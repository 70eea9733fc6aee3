"""Queue API handlers: submit, status, status stream (SSE), result, cancel."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from airflow_provider_kling.emulator.queue import COMPLETED, Job, new_request_id

if TYPE_CHECKING:
    from airflow_provider_kling.emulator.app import EmulatorApp

NOT_FOUND = {"detail": "Request not found"}  # body for unknown ids on status/result: a guess (not documented)
LOCKED = "User is locked. Reason: Exhausted balance. Top up your balance at fal.ai/dashboard/billing."


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")


async def submit(ctx: EmulatorApp, request: Request, endpoint_id: str, app: str) -> Response:
    denied = ctx.auth_error(request)
    if denied is not None:
        return denied
    if ctx.knobs.locked:
        return JSONResponse({"detail": LOCKED}, status_code=403)
    raw = await request.body()
    try:
        arguments = json.loads(raw) if raw.strip() else {}
    except ValueError:
        arguments = None  # fal accepts the submit and fails the job at result time
    start_deadline = None
    timeout_header = request.headers.get("x-fal-request-timeout")
    if timeout_header:
        try:
            start_deadline = time.monotonic() + float(timeout_header)
        except ValueError:
            return JSONResponse({"detail": "Invalid X-Fal-Request-Timeout header"}, status_code=400)
    webhook_url = request.query_params.get("fal_webhook")
    job = Job(
        request_id=new_request_id(),
        endpoint_id=endpoint_id,
        app=app,
        arguments=arguments,
        base_url=ctx.base_url(request),
        account=ctx.account(request),
        low_priority=request.headers.get("x-fal-queue-priority", "").lower() == "low",
        start_deadline=start_deadline,
        failure=ctx.failures.pop(),
        webhook_url=webhook_url,
    )
    position = ctx.queue.submit(job)
    ctx.counters.submitted(endpoint_id)
    body = {"status": "IN_QUEUE", "request_id": job.request_id, **job.urls, "queue_position": position}
    if webhook_url:
        body["gateway_request_id"] = job.request_id
    return JSONResponse(body)


def _lookup(ctx: EmulatorApp, request: Request, app: str, request_id: str) -> Job | Response:
    denied = ctx.auth_error(request)
    if denied is not None:
        return denied
    job = ctx.queue.get(request_id, app)
    return job if job is not None else JSONResponse(NOT_FOUND, status_code=404)


async def status(ctx: EmulatorApp, request: Request, app: str, request_id: str) -> Response:
    found = _lookup(ctx, request, app, request_id)
    if isinstance(found, Response):
        return found
    payload = ctx.queue.status_payload(found, _flag(request.query_params.get("logs")))
    return JSONResponse(payload, status_code=200 if found.state == COMPLETED else 202)


async def status_stream(ctx: EmulatorApp, request: Request, app: str, request_id: str) -> Response:
    found = _lookup(ctx, request, app, request_id)
    if isinstance(found, Response):
        return found
    with_logs = _flag(request.query_params.get("logs"))
    queue = ctx.queue

    async def events() -> AsyncIterator[str]:
        job, last, last_sent = found, None, time.monotonic()
        while not queue.closing:
            payload = queue.status_payload(job, with_logs)
            if payload != last:
                yield f"data: {json.dumps(payload)}\n\n"
                last, last_sent = payload, time.monotonic()
            if job.state == COMPLETED:
                return  # fal closes the stream after the COMPLETED event
            if queue.jobs.get(job.request_id) is not job:
                return  # the emulator was reset under us
            idle = time.monotonic() - last_sent
            if idle >= ctx.knobs.sse_keepalive:
                yield ": ping\n\n"
                last_sent = time.monotonic()
                continue
            await queue.changed.wait(ctx.knobs.sse_keepalive - idle)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def result(ctx: EmulatorApp, request: Request, app: str, request_id: str) -> Response:
    found = _lookup(ctx, request, app, request_id)
    if isinstance(found, Response):
        return found
    if found.state != COMPLETED:
        # Undocumented on fal; our guess: a 400 with a plain detail string.
        return JSONResponse(
            {"detail": "Request is still in progress"},
            status_code=400,
            headers={"x-fal-request-id": found.request_id},
        )
    return JSONResponse(found.result_body, status_code=found.result_status, headers=found.result_headers)


async def cancel(ctx: EmulatorApp, request: Request, app: str, request_id: str) -> Response:
    denied = ctx.auth_error(request)
    if denied is not None:
        return denied
    ctx.counters.cancelled(request_id)
    job = ctx.queue.get(request_id, app)
    if job is None:
        return JSONResponse({"status": "NOT_FOUND"}, status_code=404)
    outcome = ctx.queue.cancel(job)
    return JSONResponse({"status": outcome}, status_code=202 if outcome == "CANCELLATION_REQUESTED" else 400)
