"""Sustained throughput of the fal emulator: submissions/s and status polls/s.

Each figure is printed as an absolute rate and as a ratio against a baseline measured in the same
process, the same way: a trivial starlette "ping" route served by uvicorn in a thread, hit by the
same httpx load generator. Client and server share this process (and the GIL), so the ratio is
the meaningful number; absolute rates depend on the machine.

    .venv/bin/python benchmarks/emulator_throughput.py [--seconds 3] [--clients 8]
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from airflow_provider_kling.emulator import FalEmulator
from airflow_provider_kling.emulator.server import bind_socket, uvicorn_config

ENDPOINT = "fal-ai/kling-video/v1.6/standard/text-to-video"


@dataclass
class Rate:
    requests: int
    errors: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


async def hammer(
    clients: int, seconds: float, make_request: Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]
) -> Rate:
    """``clients`` concurrent loops issuing requests for ``seconds``; counts 2xx answers."""
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        # Warm the connections up so connection set-up isn't measured.
        await asyncio.gather(*(make_request(client, i) for i in range(clients)))
        counts = [0] * clients
        errors = [0] * clients
        started = time.perf_counter()
        deadline = started + seconds

        async def worker(index: int) -> None:
            n = 0
            while time.perf_counter() < deadline:
                response = await make_request(client, index * 1_000_000 + n)
                n += 1
                if response.is_success:
                    counts[index] += 1
                else:
                    errors[index] += 1

        await asyncio.gather(*(worker(i) for i in range(clients)))
        return Rate(sum(counts), sum(errors), time.perf_counter() - started)


class Baseline:
    """A one-route starlette app served exactly like the emulator (same uvicorn config, thread)."""

    def __enter__(self) -> str:
        async def ping(request):  # type: ignore[no-untyped-def]
            return JSONResponse({"ok": True})

        app = Starlette(routes=[Route("/ping", ping), Route("/ping", ping, methods=["POST"])])
        sock = bind_socket("127.0.0.1", 0)
        self.server = uvicorn.Server(uvicorn_config(app))  # type: ignore[arg-type]
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(5)


def measure(seconds: float, clients: int, rounds: int) -> dict[str, Rate]:
    """Best of ``rounds`` for each figure; rounds interleave baseline and emulator so that load
    from elsewhere on the machine hits both alike."""
    best: dict[str, Rate] = {}

    def keep(name: str, rate: Rate) -> None:
        if name not in best or rate.per_second > best[name].per_second:
            best[name] = rate

    # Long processing: jobs stay queued / in progress, so only the HTTP + queue paths are measured.
    with Baseline() as url, FalEmulator(processing_time=3600, concurrency=2) as emu:
        submit_url = f"{emu.url}/{ENDPOINT}"
        asyncio.run(hammer(clients, 0.5, lambda c, i: c.post(submit_url, json={"prompt": "warm-up"})))
        status_urls = [job.urls["status_url"] for job in list(emu.app.queue.jobs.values())[:200]]

        async def poll(client: httpx.AsyncClient, i: int) -> httpx.Response:
            response = await client.get(status_urls[i % len(status_urls)], params={"logs": 1})
            # 202 (in flight) is the normal answer here; count it as a success.
            return httpx.Response(200) if response.status_code == 202 else response

        for _ in range(rounds):
            keep(
                "baseline GET /ping", asyncio.run(hammer(clients, seconds, lambda c, i: c.get(f"{url}/ping")))
            )
            keep("emulator status (logs=1)", asyncio.run(hammer(clients, seconds, poll)))
            keep(
                "baseline POST /ping",
                asyncio.run(
                    hammer(clients, seconds, lambda c, i: c.post(f"{url}/ping", json={"prompt": "x"}))
                ),
            )
            keep(
                "emulator submit",
                asyncio.run(
                    hammer(
                        clients,
                        seconds,
                        lambda c, i: c.post(submit_url, json={"prompt": f"clip {i}", "duration": "5"}),
                    )
                ),
            )
        print(f"(jobs queued by the end: {len(emu.app.queue.jobs)})")
    return best


COLD_START = """
import time
t0 = time.perf_counter()
from airflow_provider_kling.emulator import FalEmulator
t1 = time.perf_counter()
emu = FalEmulator().start()
t2 = time.perf_counter()
emu.stop()
t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2)
"""


def startup_and_encode() -> None:
    """Cold import + start + stop (fresh interpreter), and the cost of encoding a 10 s clip."""
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from airflow_provider_kling.emulator.video import ClipSpec, size_for_aspect, write_mp4

    out = subprocess.run([sys.executable, "-c", COLD_START], capture_output=True, text=True, check=True)
    imported, started, stopped = (float(x) for x in out.stdout.split())
    ms = [round(x * 1000) for x in (imported, started, stopped)]
    print(f"cold import {ms[0]} ms, start {ms[1]} ms, stop {ms[2]} ms")
    with tempfile.TemporaryDirectory() as tmp:
        write_mp4(ClipSpec(1, size_for_aspect("1:1")), Path(tmp) / "warm.mp4")  # codec warm-up
        for aspect in ("16:9", "9:16"):
            started_at = time.perf_counter()
            size = write_mp4(ClipSpec(10, size_for_aspect(aspect), text="a lighthouse"), Path(tmp) / "c.mp4")
            took = time.perf_counter() - started_at
            print(f"encode 10 s {aspect} clip: {took * 1000:.0f} ms ({size} bytes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    startup_and_encode()
    results = measure(args.seconds, args.clients, args.rounds)
    get_base = results["baseline GET /ping"].per_second
    post_base = results["baseline POST /ping"].per_second
    print(f"{'measurement':28} {'req/s':>9} {'errors':>7}  ratio vs baseline")
    for name in ("baseline GET /ping", "emulator status (logs=1)", "baseline POST /ping", "emulator submit"):
        rate = results[name]
        base = post_base if name in ("emulator submit", "baseline POST /ping") else get_base
        print(f"{name:28} {rate.per_second:9.0f} {rate.errors:7d}  {rate.per_second / base:6.2f}")
    print(
        f"clients={args.clients} seconds={args.seconds} rounds={args.rounds} (best round; "
        "client and server in one process)"
    )


if __name__ == "__main__":
    main()
