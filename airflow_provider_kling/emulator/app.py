"""The emulator's ASGI application: routing, counting, fault injection, auth, lifespan.

Routing is done by hand rather than with starlette's Router because every request must be
named (for counters and faults) *before* it is handled, and fal's queue paths are
"``[namespace/]owner/alias`` + anything": a method-and-suffix match is the natural fit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from airflow_provider_kling.emulator import control, routes_queue, routes_storage
from airflow_provider_kling.emulator.faults import FaultBook, abort_connection, fault_response
from airflow_provider_kling.emulator.output import render_output
from airflow_provider_kling.emulator.queue import Job, JobQueue
from airflow_provider_kling.emulator.state import Counters, Failure, FailureQueue, Knobs
from airflow_provider_kling.emulator.storage import Storage
from airflow_provider_kling.emulator.validation import file_errors, schema_errors
from airflow_provider_kling.emulator.webhooks import WebhookSender

log = logging.getLogger(__name__)

NAMESPACES = ("workflows", "comfy")
Handler = Callable[..., Awaitable[Response]]


class EmulatorApp:
    """ASGI app holding one emulator's state.

    :param knobs: behaviour knobs (shared with :class:`~.server.FalEmulator`).
    :param storage: file store; a temporary directory when omitted.
    """

    def __init__(self, knobs: Knobs | None = None, storage: Storage | None = None) -> None:
        self.knobs = knobs or Knobs()
        self.counters = Counters()
        self.faults = FaultBook()
        self.failures = FailureQueue()
        self.storage = storage or Storage()
        self.webhooks = WebhookSender(self.knobs)
        self.executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="fal-emulator-worker")
        # Host:port values clients reached us by: input URLs on these hosts are "ours" (no network).
        self.netlocs: set[str] = set()
        self.queue = JobQueue(self.knobs, self.executor, self._check, self._render, self.webhooks.schedule)

    # --- helpers used by the handlers ---------------------------------------------------------------
    def base_url(self, request: Request) -> str:
        return str(request.base_url).rstrip("/")

    def auth_error(self, request: Request) -> Response | None:
        """401 in fal's words when ``require_key`` is set and the request doesn't carry it."""
        required = self.knobs.require_key
        if required is None:
            return None  # "Public models also accept requests without a key."
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        key = key.strip()
        if scheme.lower() == "key" and key == required:
            return None
        if scheme.lower() == "key" and key and ":" not in key:
            detail = "Invalid Key Authorization header format. Expected '<key_id>:<key_secret>'."
        else:
            detail = "No user found for Key ID and Secret"
        return JSONResponse({"detail": detail}, status_code=401)

    @staticmethod
    def account(request: Request) -> str:
        """The account a request counts against: its API key id (the part before ``:``)."""
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        return key.strip().split(":", 1)[0] if scheme.lower() == "key" else ""

    def fail_next(self, failure: Failure, times: int = 1) -> None:
        """The next ``times`` submitted jobs run, then complete with ``failure``."""
        self.failures.push(failure, int(times))

    def reset(self) -> None:
        """Forget jobs, counters, faults and pending failures (call on the loop)."""
        self.queue.reset()
        self.counters.clear()
        self.faults.clear()
        self.failures.clear()
        self.webhooks.clear()

    def _check(self, job: Job) -> list[dict[str, Any]]:
        errors = schema_errors(job.endpoint_id, job.arguments)
        return errors or file_errors(job.arguments, self.storage, set(self.netlocs))

    def _render(self, job: Job) -> dict[str, Any]:
        return render_output(
            job.endpoint_id, job.arguments, self.storage, set(self.netlocs), job.base_url, int(self.knobs.fps)
        )

    # --- routing ------------------------------------------------------------------------------------
    def route(self, method: str, path: str) -> tuple[str, Handler | None, dict[str, str]]:
        """(route name, handler, handler kwargs) for a request; unknown paths give ("unknown", None, {})."""
        path = unquote(path).strip("/")
        parts = path.split("/") if path else []
        if parts[:1] == ["_emulator"] and len(parts) == 2:
            return "control", control.handle, {"action": parts[1]}
        if parts[:1] == ["rest"]:
            tail = "/".join(parts[1:])
            if method == "POST" and tail == "storage/auth/token":
                return "cdn_token", routes_storage.cdn_token, {}
            if method == "POST" and tail == "storage/upload/initiate":
                return "storage_initiate", routes_storage.storage_initiate, {}
            if method == "GET" and tail == ".well-known/jwks.json":
                return "jwks", self._jwks, {}
            return "unknown", None, {}
        if parts[:2] == ["cdn", "files"]:
            rest = parts[2:]
            if method == "POST" and rest == ["upload"]:
                return "cdn_upload", routes_storage.cdn_upload, {}
            if method == "POST" and rest == ["upload", "multipart"]:
                return "multipart_initiate", routes_storage.multipart_initiate, {}
            if len(rest) == 5 and rest[2] == "multipart" and method == "PUT":
                key, upload_id, part = "/".join(rest[:2]), rest[3], rest[4]
                return (
                    "multipart_part",
                    routes_storage.multipart_part,
                    {"key": key, "upload_id": upload_id, "part": part},
                )
            if len(rest) == 5 and rest[2] == "multipart" and rest[4] == "complete" and method == "POST":
                return (
                    "multipart_complete",
                    routes_storage.multipart_complete,
                    {"key": "/".join(rest[:2]), "upload_id": rest[3]},
                )
            if len(rest) == 2 and method in ("GET", "HEAD"):
                return "file_get", routes_storage.file_get, {"key": "/".join(rest)}
            return "unknown", None, {}
        if parts[:2] == ["cdn", "presigned"] and len(parts) == 3 and method == "PUT":
            return "presigned_put", routes_storage.presigned_put, {"token": parts[2]}
        return self._queue_route(method, parts)

    def _queue_route(self, method: str, parts: list[str]) -> tuple[str, Handler | None, dict[str, str]]:
        app_len = 3 if parts[:1] and parts[0] in NAMESPACES else 2
        if len(parts) < app_len or not all(parts[:app_len]):
            return "unknown", None, {}
        app, rest = "/".join(parts[:app_len]), parts[app_len:]
        if method == "POST":
            return "submit", routes_queue.submit, {"endpoint_id": "/".join(parts), "app": app}
        if len(rest) >= 2 and rest[0] == "requests":
            ids = {"app": app, "request_id": rest[1]}
            suffix = rest[2:]
            if method == "GET" and suffix == []:
                return "result", routes_queue.result, ids
            if method == "GET" and suffix == ["status"]:
                return "status", routes_queue.status, ids
            if method == "GET" and suffix == ["status", "stream"]:
                return "status_stream", routes_queue.status_stream, ids
            if method == "PUT" and suffix == ["cancel"]:
                return "cancel", routes_queue.cancel, ids
        return "unknown", None, {}

    async def _jwks(self, ctx: EmulatorApp, request: Request) -> Response:
        return JSONResponse(self.webhooks.jwks())

    # --- ASGI -----------------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        host = request.headers.get("host")
        if host:
            self.netlocs.add(host)
        name, handler, params = self.route(request.method, scope["path"])
        if name == "control":
            assert handler is not None
            response = await handler(self, request, **params)
            await response(scope, receive, send)
            return
        headers: dict[str, str] = {}
        for key, value in request.headers.items():
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        self.counters.saw(name, headers)

        fault = self.faults.take(name)
        if fault is not None:
            if fault.kind == "reset":
                await abort_connection(send)
                return
            if fault.kind == "reset_after_accept":
                # The request reaches fal and is acted on; only the answer is lost on the way back.
                if handler is not None:
                    await handler(self, request, **params)
                await abort_connection(send)
                return
            if fault.kind == "slow":
                # The whole request has arrived; only the answer is late. A client that gives up
                # meanwhile still gets its job created, as on fal.
                await request.body()
                await asyncio.sleep(float(fault.params.get("delay", 1.0)))
            else:
                await fault_response(fault, params.get("request_id"))(scope, receive, send)
                return
        if handler is None:
            response = JSONResponse(
                {"detail": f"Path /{scope['path'].strip('/')} not found"}, status_code=404
            )
        else:
            response = await handler(self, request, **params)
        await response(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.queue.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def shutdown(self) -> None:
        await self.queue.stop()
        await self.webhooks.close()
        # Encodes in flight are short; waiting for them means no worker thread outlives the server.
        self.executor.shutdown(wait=True, cancel_futures=True)
