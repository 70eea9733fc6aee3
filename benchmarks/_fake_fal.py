"""A minimal fal queue server for capacity benchmarks: status polls and SSE status streams only.

Runs in its own process (``python benchmarks/_fake_fal.py``; prints ``PORT <n>`` when ready) so the
process under test shares nothing with it but the kernel. It is a hand-written HTTP/1.1 server on
raw asyncio protocols (uvloop when installed): a few microseconds per request, so it is never what
limits a run — ``GET /_stats`` reports its own CPU time to show that.

Jobs are stateless: a request id ``<index>-<queued_until_ms>-<done_at_ms>`` says when the job leaves
the queue and when it completes (epoch milliseconds), so the benchmark knows every completion
instant without asking. While queued, the position counts down once every ``POSITION_STEP`` seconds
(it stays put in between, as fal's does under load).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from typing import Any

POSITION_STEP = 10.0
SSE_HEADERS = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-store\r\n"
    b"connection: close\r\n\r\n"
)


class Stats:
    def __init__(self) -> None:
        self.polls = 0
        self.streams = 0
        self.streams_open = 0
        self.max_streams_open = 0
        self.connections = 0
        self.connections_open = 0
        self.max_connections_open = 0
        self.first_seen: dict[str, float] = {}
        self.last_first_seen = 0.0

    def seen(self, rid: str) -> None:
        if rid not in self.first_seen:
            now = time.time()
            self.first_seen[rid] = now
            self.last_first_seen = now

    def as_dict(self) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "polls": self.polls,
            "streams": self.streams,
            "streams_open": self.streams_open,
            "max_streams_open": self.max_streams_open,
            "connections": self.connections,
            "max_connections_open": self.max_connections_open,
            "followed": len(self.first_seen),
            "last_first_seen": self.last_first_seen,
            "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "max_rss_kb": usage.ru_maxrss,
        }


STATS = Stats()


def job_state(rid: str, now: float) -> dict[str, Any]:
    try:
        _, queued_ms, done_ms = rid.split("-")
        queued_until, done_at = int(queued_ms) / 1000, int(done_ms) / 1000
    except ValueError:
        return {"status": "COMPLETED", "request_id": rid, "error": "bad id", "error_type": "bad_id"}
    if now < queued_until:
        position = int((queued_until - now) // POSITION_STEP)
        return {"status": "IN_QUEUE", "request_id": rid, "queue_position": position}
    if now < done_at:
        return {"status": "IN_PROGRESS", "request_id": rid, "logs": []}
    return {"status": "COMPLETED", "request_id": rid, "logs": [], "metrics": {"inference_time": 1.0}}


def boundaries(rid: str) -> list[float]:
    _, queued_ms, done_ms = rid.split("-")
    return [int(queued_ms) / 1000, int(done_ms) / 1000]


class FalProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.timers: list[asyncio.TimerHandle] = []
        self.streaming = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        STATS.connections += 1
        STATS.connections_open += 1
        STATS.max_connections_open = max(STATS.max_connections_open, STATS.connections_open)

    def connection_lost(self, exc: Exception | None) -> None:
        STATS.connections_open -= 1
        for timer in self.timers:
            timer.cancel()
        if self.streaming:
            STATS.streams_open -= 1
            self.streaming = False

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer and not self.streaming:
            head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = request_line.split(" ")
            path = parts[1].split("?", 1)[0] if len(parts) > 1 else "/"
            self.handle(path)

    def reply(self, status: int, body: bytes) -> None:
        assert self.transport is not None
        reason = {200: "OK", 404: "Not Found"}.get(status, "OK")
        self.transport.write(
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )

    def handle(self, path: str) -> None:
        if path == "/_stats":
            self.reply(200, json.dumps(STATS.as_dict()).encode())
            return
        segments = path.strip("/").split("/")
        # /{owner}/{alias}/requests/{rid}/status[/stream]
        if len(segments) >= 5 and segments[2] == "requests" and segments[4] == "status":
            rid = segments[3]
            if len(segments) == 6 and segments[5] == "stream":
                self.stream(rid)
            else:
                STATS.polls += 1
                STATS.seen(rid)
                self.reply(200, json.dumps(job_state(rid, time.time())).encode())
            return
        self.reply(404, b'{"detail":"not found"}')

    def stream(self, rid: str) -> None:
        assert self.transport is not None
        STATS.streams += 1
        STATS.streams_open += 1
        STATS.max_streams_open = max(STATS.max_streams_open, STATS.streams_open)
        self.streaming = True
        self.transport.write(SSE_HEADERS)
        self.send_event(rid)

    def send_event(self, rid: str) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        now = time.time()
        state = job_state(rid, now)
        STATS.seen(rid)
        self.transport.write(b"data: " + json.dumps(state).encode() + b"\n\n")
        if state["status"] == "COMPLETED":
            self.transport.close()
            return
        # The next change of state (timers may fire a little early: the margin keeps them after it).
        upcoming = [moment for moment in boundaries(rid) if moment > now]
        if upcoming:
            delay = upcoming[0] - now + 0.001
            self.timers.append(asyncio.get_running_loop().call_later(delay, self.send_event, rid))


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(FalProtocol, "127.0.0.1", port, backlog=4096)
    sockname = server.sockets[0].getsockname()
    print(f"PORT {sockname[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop

        uvloop.run(serve(args.port))
    except ImportError:
        asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
