"""Edge cases the emulator does not produce, served by a tiny scripted HTTP server inside the test."""

from __future__ import annotations

import json
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from airflow_provider_kling.exceptions import KlingServerError, KlingTimeoutError
from airflow_provider_kling.hooks.kling import KlingHook
from airflow_provider_kling.protocol import RetryPolicy

RID = "11111111-2222-3333-4444-555555555555"
APP = "fal-ai/kling-video"
T2V = f"{APP}/v1.6/standard/text-to-video"
STATUS = f"/{APP}/requests/{RID}/status"
STREAM = f"{STATUS}/stream"
RESULT = f"/{APP}/requests/{RID}"
FAST = RetryPolicy(max_attempts=3, initial_delay=0.01, max_delay=0.05, max_total=10.0)


def event(status: str, **extra: Any) -> bytes:
    return f"data: {json.dumps({'status': status, 'request_id': RID, **extra})}\n\n".encode()


class Reply:
    """One scripted answer: a status, headers and body chunks (``close_early`` drops the connection
    after the chunks, without finishing a chunked body)."""

    def __init__(
        self, code: int, chunks: list[bytes], headers: dict[str, str] | None = None, close_early=False
    ):
        self.code, self.chunks, self.headers, self.close_early = code, chunks, headers or {}, close_early


class StubFal:
    """Scripted replies per path; the last reply of a path repeats. Counts requests per path."""

    def __init__(self) -> None:
        self.script: dict[str, list[Reply]] = defaultdict(list)
        self.seen: Counter[str] = Counter()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                stub.seen[path] += 1
                replies = stub.script.get(path) or [Reply(404, [b'{"detail": "Not found"}'])]
                reply = replies[min(stub.seen[path] - 1, len(replies) - 1)]
                self.send_response(reply.code)
                for name, value in {"Content-Type": "application/json", **reply.headers}.items():
                    self.send_header(name, value)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for chunk in reply.chunks:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                if reply.close_early:
                    self.close_connection = True
                    return
                self.wfile.write(b"0\r\n\r\n")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def sse(self, *chunks: bytes, close_early: bool = False) -> Reply:
        return Reply(200, list(chunks), {"Content-Type": "text/event-stream"}, close_early)

    def json(self, code: int, body: Any, headers: dict[str, str] | None = None) -> Reply:
        return Reply(code, [json.dumps(body).encode()], headers)


@pytest.fixture
def stub(monkeypatch) -> Iterator[StubFal]:
    server = StubFal()
    server.thread.start()
    monkeypatch.setenv(
        "AIRFLOW_CONN_FAL_DEFAULT",
        json.dumps({"conn_type": "fal", "host": server.url, "password": "k-id:k-secret"}),
    )
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def hook(stub) -> Iterator[KlingHook]:
    with KlingHook(retry_policy=FAST) as h:
        yield h


async def collect(hook: KlingHook, **kwargs: Any) -> list:
    request = hook.request_from_id(T2V, RID)
    async with hook:
        return [s async for s in hook.astream_status(request, **kwargs)]


def test_user_start_timeout_504_is_a_timeout_and_not_retried(hook, stub):
    stub.script[RESULT] = [
        stub.json(
            504,
            {"detail": "Request timed out", "error_type": "request_timeout"},
            {"X-Fal-Request-Timeout-Type": "user"},
        )
    ]
    with pytest.raises(KlingTimeoutError, match="start_timeout"):
        hook.get_result(hook.request_from_id(T2V, RID))
    assert stub.seen[RESULT] == 1


def test_unknown_polled_status_is_an_error(hook, stub):
    stub.script[STATUS] = [stub.json(200, {"status": "FAILED", "request_id": RID})]
    with pytest.raises(KlingServerError, match="unknown status 'FAILED'"):
        hook.get_status(hook.request_from_id(T2V, RID))


async def test_sse_ignores_keepalives_and_ends_at_completed(hook, stub):
    stub.script[STREAM] = [
        stub.sse(
            b": ping\n\n",
            event("IN_QUEUE", queue_position=1),
            b": ping\n\n",
            event("IN_PROGRESS", logs=[{"message": "hi", "timestamp": "t1"}]),
            event("COMPLETED", metrics={"inference_time": 1.0}),
        )
    ]
    statuses = await collect(hook, poll_interval=0.01)
    assert [s.status for s in statuses] == ["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]
    assert statuses[0].queue_position == 1 and statuses[1].logs[0].message == "hi"
    assert stub.seen[STATUS] == 0


@pytest.mark.parametrize("close_early", [True, False])
async def test_sse_breaking_midway_falls_back_to_polling(hook, stub, close_early):
    # close_early: the connection drops inside the body; otherwise the stream just ends before COMPLETED.
    stub.script[STREAM] = [stub.sse(event("IN_PROGRESS"), close_early=close_early)]
    stub.script[STATUS] = [stub.json(202, {"status": "IN_PROGRESS"}), stub.json(200, {"status": "COMPLETED"})]
    statuses = await collect(hook, poll_interval=0.01)
    assert [s.status for s in statuses] == ["IN_PROGRESS", "IN_PROGRESS", "COMPLETED"]
    assert stub.seen[STREAM] == 1 and stub.seen[STATUS] == 2


async def test_sse_garbage_event_falls_back_but_unknown_status_raises(hook, stub):
    stub.script[STREAM] = [stub.sse(b"data: {not json\n\n")]
    stub.script[STATUS] = [stub.json(200, {"status": "COMPLETED"})]
    assert [s.status for s in await collect(hook, poll_interval=0.01)] == ["COMPLETED"]
    stub.script[STREAM] = [stub.sse(event("IN_PROGRESS"), event("CANCELLED"))]
    with pytest.raises(KlingServerError, match="unknown status 'CANCELLED'"):
        await collect(hook, poll_interval=0.01)
