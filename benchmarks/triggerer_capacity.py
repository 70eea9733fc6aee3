"""How many deferred Kling jobs one triggerer process can follow: N triggers on one event loop.

Run (each configuration in a process of its own, one after the other; prints a Markdown table):

    .venv/bin/python benchmarks/triggerer_capacity.py --n 1000 5000 10000 --mode sse poll

``--client`` adds baselines measured the same way: ``raw-shared`` (one plain ``httpx.AsyncClient``
shared by every job, the obvious hand-written pattern) and ``new-client`` (a new ``httpx.AsyncClient``
per poll, common in providers). One configuration alone: ``--one N MODE CLIENT`` (JSON on stdout).

What a run does, the way Airflow's triggerer does it: N ``KlingRequestTrigger.run()`` coroutines
start together on one asyncio loop (a triggerer restart), against a fake fal server in another process
(``benchmarks/_fake_fal.py``, raw asyncio; its CPU is reported to show it is not the limit). Jobs
wait 5-40 s in the queue and complete 60-120 s after the start, spread evenly. Polling uses a 5 s
``poll_interval``. Reported:

* start-up: seconds (and CPU seconds) until the server has answered every job once (all followed);
* loop lag p50/p99/max: a probe task sleeps 50 ms in a loop; lag is how late it wakes (steady state:
  after all jobs are followed);
* CPU %: this process, steady state; CPU per poll: steady CPU seconds / polls served;
* RSS per job: RSS growth from before the triggers existed to all followed, divided by N;
* fds: most descriptors open at once; GC: longest garbage-collector pause (and after start-up),
  objects the collector tracks per job once all are followed, and frozen garbage: what the provider's
  ``gc.freeze()`` kept that is garbage at the end (unfrozen and collected after the run; must be ~0);
* completion -> event: from the job's completion instant (server clock = ours) to the trigger's
  event; events: how many triggers fired, and whether each fired exactly once with ``success``.

Trigger progress lines are written to stdout (a pipe to the parent process), as Airflow's structured
logging does; the standard-library loggers' INFO lines (httpx, retries) are off. The soft
``ulimit -n`` is raised to the hard limit.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ENDPOINT = "fal-ai/kling-video/v1.6/standard/text-to-video"
KEY = "bench-id:bench-secret"
POLL_INTERVAL = 5.0
QUEUE_SECONDS = (5.0, 40.0)
JOB_SECONDS = (60.0, 120.0)
PROBE = 0.05
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class FakeFal:
    """The fake fal server, in a process of its own."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "_fake_fal.py")], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline().split()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._stats: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def stats(self) -> dict[str, Any]:
        # One kept-alive connection for every read: a connection per read would leave a closed
        # transport's reference cycle (Python <= 3.11) each time, which a gc.freeze() by the provider
        # during start-up would count as its own frozen garbage.
        if self._stats is None:
            self._stats = await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = self._stats
        writer.write(b"GET /_stats HTTP/1.1\r\nhost: x\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        body = await reader.readexactly(length)
        return json.loads(body)  # type: ignore[no-any-return]

    async def close_stats(self) -> None:
        if self._stats is not None:
            writer = self._stats[1]
            self._stats = None
            writer.close()
            await writer.wait_closed()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def make_jobs(n: int, start: float, seed: int = 12) -> list[tuple[str, float]]:
    """``(request id, completion epoch)`` per job; completions spread evenly over JOB_SECONDS."""
    rng = random.Random(seed)
    jobs = []
    for i in range(n):
        done = start + JOB_SECONDS[0] + (JOB_SECONDS[1] - JOB_SECONDS[0]) * (i + rng.random()) / n
        queued = start + rng.uniform(*QUEUE_SECONDS)
        jobs.append((f"{i}-{int(queued * 1000)}-{int(done * 1000)}", done))
    rng.shuffle(jobs)
    return jobs


def status_url(base: str, rid: str) -> str:
    return f"{base}/fal-ai/kling-video/requests/{rid}/status"


# -- the followers: the provider's trigger and two baselines --------------------------------------


def provider_follower(base: str, mode: str, start: float):  # type: ignore[no-untyped-def]
    from airflow_provider_kling.triggers.kling import KlingRequestTrigger

    def follow(rid: str):  # type: ignore[no-untyped-def]
        trigger = KlingRequestTrigger(
            fal_conn_id="fal_bench",
            request_id=rid,
            endpoint_id=ENDPOINT,
            status_url=status_url(base, rid),
            response_url=f"{base}/fal-ai/kling-video/requests/{rid}",
            cancel_url=f"{base}/fal-ai/kling-video/requests/{rid}/cancel",
            poll_interval=POLL_INTERVAL,
            end_time=start + 3600,
            use_sse=mode == "sse",
            submitted_at=start,
        )

        async def run() -> list[dict[str, Any]]:
            return [event.payload async for event in trigger.run()]

        return run

    return follow


def raw_follower(base: str, mode: str, client_kind: str):  # type: ignore[no-untyped-def]
    import httpx
    from httpx_sse import aconnect_sse

    headers = {"Authorization": f"Key {KEY}", "Accept": "application/json"}
    shared: list[httpx.AsyncClient] = []

    def client() -> httpx.AsyncClient:
        if not shared:
            # An SSE stream holds its connection for the whole job: the pool must not cap streams.
            limits = httpx.Limits(max_connections=None) if mode == "sse" else httpx.Limits()
            shared.append(httpx.AsyncClient(limits=limits, timeout=120))
        return shared[0]

    def event(rid: str, state: dict[str, Any]) -> list[dict[str, Any]]:
        ok = state.get("status") == "COMPLETED" and not state.get("error")
        return [{"status": "success" if ok else "error", "request_id": rid}]

    def follow(rid: str):  # type: ignore[no-untyped-def]
        url = status_url(base, rid)

        async def poll_once() -> dict[str, Any]:
            if client_kind == "new-client":
                async with httpx.AsyncClient(timeout=120) as own:
                    return (await own.get(url, headers=headers, params={"logs": "1"})).json()  # type: ignore[no-any-return]
            return (await client().get(url, headers=headers, params={"logs": "1"})).json()  # type: ignore[no-any-return]

        async def run() -> list[dict[str, Any]]:
            if mode == "sse":
                async with aconnect_sse(client(), "GET", url + "/stream", headers=headers) as source:
                    async for sse in source.aiter_sse():
                        state = json.loads(sse.data)
                        if state["status"] == "COMPLETED":
                            return event(rid, state)
            while True:
                state = await poll_once()
                if state["status"] == "COMPLETED":
                    return event(rid, state)
                await asyncio.sleep(POLL_INTERVAL)

        return run

    return follow


# -- one run -------------------------------------------------------------------------------------


async def run_one(n: int, mode: str, client_kind: str, limit_seconds: float) -> dict[str, Any]:
    fake = FakeFal()
    os.environ["AIRFLOW_CONN_FAL_BENCH"] = json.dumps({"conn_type": "fal", "host": fake.url, "password": KEY})
    try:
        return await _measure(fake, n, mode, client_kind, limit_seconds)
    finally:
        fake.stop()


async def _measure(
    fake: FakeFal, n: int, mode: str, client_kind: str, limit_seconds: float
) -> dict[str, Any]:
    gc_pauses: list[tuple[float, float, int]] = []
    gc_started: list[float] = [0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            gc_started[0] = time.perf_counter()
        else:
            gc_pauses.append((time.time(), time.perf_counter() - gc_started[0], info["generation"]))
            if os.environ.get("BENCH_GC_DEBUG"):
                print(
                    f"gc gen{info['generation']} {gc_pauses[-1][1] * 1000:.0f} ms collected {info['collected']}"
                    f" at {gc_pauses[-1][0] - start:.1f} s",
                    file=sys.stderr,
                )

    # The import cost is the triggerer's, paid once, before the clock starts.
    if client_kind == "provider":
        import airflow_provider_kling.hooks.kling
        import airflow_provider_kling.triggers.kling  # noqa: F401
        from airflow_provider_kling.hooks import _gc_freeze

        _gc_freeze._configured()  # Airflow's configuration, which a triggerer has loaded long before

    gc.collect()
    rss_before = rss_bytes()
    tracked_before = tracked_followed = len(gc.get_objects()) + gc.get_freeze_count()
    start = time.time() + 0.5
    jobs = make_jobs(n, start)
    done_at = {rid: done for rid, done in jobs}
    if client_kind == "provider":
        follow = provider_follower(fake.url, mode, start)
    else:
        follow = raw_follower(fake.url, mode, client_kind)
    runners = {rid: follow(rid) for rid, _ in jobs}
    events: dict[str, list[dict[str, Any]]] = {}
    event_at: dict[str, float] = {}
    lags: list[tuple[float, float]] = []
    stop = asyncio.Event()

    async def probe() -> None:
        while not stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(PROBE)
            lags.append((time.time(), time.perf_counter() - before - PROBE))

    async def job(rid: str) -> None:
        try:
            payloads = await runners[rid]()
        except Exception as exc:
            payloads = [{"status": "crashed", "message": f"{type(exc).__name__}: {exc}"}]
        event_at.setdefault(rid, time.time())
        events.setdefault(rid, []).extend(payloads)

    gc.callbacks.append(on_gc)
    probe_task = asyncio.ensure_future(probe())
    await asyncio.sleep(max(0.0, start - time.time()))
    t0, cpu0 = time.time(), cpu_seconds()
    tasks = [asyncio.ensure_future(job(rid)) for rid, _ in jobs]
    followed_at = cpu_followed = None
    census_until = 0.0
    rss_followed = rss_before
    max_fds = max_rss = 0
    server0 = await fake.stats()
    server_followed: dict[str, Any] = server0
    deadline = t0 + limit_seconds
    next_fd_sample = 0.0
    while len(events) < n and time.time() < deadline:
        await asyncio.sleep(0.25 if followed_at is None else 1.0)
        now = time.time()
        max_rss = max(max_rss, rss_bytes())
        if now >= next_fd_sample:
            max_fds = max(max_fds, open_fds())
            next_fd_sample = now + (0.5 if followed_at is None else 3.0)
        if followed_at is None:
            stats = await fake.stats()
            if stats["followed"] >= n:
                followed_at, cpu_followed = stats["last_first_seen"], cpu_seconds()
                rss_followed, server_followed = rss_bytes(), stats
                tracked_followed = (
                    len(gc.get_objects()) + gc.get_freeze_count()
                )  # a pause of its own: not in the steady lags
                census_until = time.time()
    t_end, cpu_end = time.time(), cpu_seconds()
    server_end = await fake.stats()
    stop.set()
    await probe_task
    gc.callbacks.remove(on_gc)
    unfinished = [task for task in tasks if not task.done()]
    for task in unfinished:
        task.cancel()
    await asyncio.gather(*unfinished, return_exceptions=True)
    del tasks, unfinished
    # Whatever the provider froze (hooks/_gc_freeze.py) and is garbage now would leak: there must be none.
    gc.collect()
    gc.unfreeze()
    if os.environ.get("BENCH_GC_DEBUG"):
        import collections

        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        kinds = collections.Counter(type(o).__qualname__ for o in gc.garbage)
        print("pinned garbage:", kinds.most_common(25), file=sys.stderr)
        gc.set_debug(0)
        gc.garbage.clear()
    pinned_garbage = gc.collect()
    await fake.close_stats()  # after the count: it may have been frozen while open

    steady_from = followed_at if followed_at is not None else t_end
    # The probe that slept through the census wakes just after it: 0.2 s margin.
    steady_lags = [lag for at, lag in lags if at >= max(steady_from, census_until + 0.2)]
    steady_wall = max(1e-9, t_end - steady_from)
    steady_cpu = cpu_end - (cpu_followed if cpu_followed is not None else cpu_end)
    polls = server_end["polls"] - server_followed["polls"]
    latencies = [event_at[rid] - done_at[rid] for rid in event_at]
    counts = [len(events.get(rid, [])) for rid, _ in jobs]
    successes = sum(1 for rid, _ in jobs if [e.get("status") for e in events.get(rid, [])] == ["success"])
    return {
        "n": n,
        "mode": mode,
        "client": client_kind,
        "startup_s": None if followed_at is None else followed_at - t0,
        "startup_cpu_s": None if cpu_followed is None else cpu_followed - cpu0,
        "lag_p50_ms": pct(steady_lags, 0.5) * 1000,
        "lag_p99_ms": pct(steady_lags, 0.99) * 1000,
        "lag_max_ms": max(steady_lags, default=float("nan")) * 1000,
        "startup_lag_max_ms": max((lag for at, lag in lags if at < steady_from), default=0.0) * 1000,
        "cpu_pct": 100 * steady_cpu / steady_wall,
        "cpu_per_poll_ms": 1000 * steady_cpu / polls if polls else None,
        "polls": server_end["polls"],
        "polls_per_s": polls / steady_wall,
        "rss_per_job_kb": (rss_followed - rss_before) / n / 1024,
        "rss_max_mb": max_rss / 2**20,
        "fds_max": max_fds,
        "gc_max_ms": max((pause for _, pause, _ in gc_pauses), default=0.0) * 1000,
        "gc_steady_max_ms": max((pause for at, pause, _ in gc_pauses if at >= steady_from), default=0.0)
        * 1000,
        "gc_total_ms": sum(pause for _, pause, _ in gc_pauses) * 1000,
        "gc_full": sum(1 for _, _, generation in gc_pauses if generation == 2),
        "gc_tracked_per_job": (tracked_followed - tracked_before) / n,
        "gc_pinned_garbage": pinned_garbage,
        "latency_p50_ms": pct(latencies, 0.5) * 1000,
        "latency_p99_ms": pct(latencies, 0.99) * 1000,
        "events": sum(1 for c in counts if c),
        "exactly_once": all(c == 1 for c in counts),
        "successes": successes,
        "server_cpu_pct": 100 * (server_end["cpu_seconds"] - server0["cpu_seconds"]) / max(1e-9, t_end - t0),
        "wall_s": t_end - t0,
    }


def one(n: int, mode: str, client_kind: str, limit_seconds: float) -> dict[str, Any]:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="kling-capacity-"))
    logging.disable(logging.INFO)
    result = asyncio.run(run_one(n, mode, client_kind, limit_seconds))
    result["ulimit_n"] = hard
    return result


# -- the table -----------------------------------------------------------------------------------

COLUMNS = [
    ("N", lambda r: f"{r['n']:,}"),
    ("mode", lambda r: "SSE" if r["mode"] == "sse" else f"poll {POLL_INTERVAL:g} s"),
    ("client", lambda r: r["client"]),
    (
        "start-up s (CPU s)",
        lambda r: _num(r["startup_s"], "{:.1f}") + f" ({_num(r['startup_cpu_s'], '{:.1f}')})",
    ),
    (
        "lag p50 / p99 / max ms",
        lambda r: f"{r['lag_p50_ms']:.1f} / {r['lag_p99_ms']:.0f} / {r['lag_max_ms']:.0f}",
    ),
    ("CPU %", lambda r: f"{r['cpu_pct']:.0f}"),
    ("CPU/poll ms", lambda r: _num(r["cpu_per_poll_ms"], "{:.2f}")),
    ("RSS/job KB", lambda r: f"{r['rss_per_job_kb']:.0f}"),
    ("fds", lambda r: f"{r['fds_max']:,}"),
    ("GC max ms (steady)", lambda r: f"{r['gc_max_ms']:.0f} ({_num(r.get('gc_steady_max_ms'), '{:.0f}')})"),
    ("GC objects/job", lambda r: _num(r.get("gc_tracked_per_job"), "{:.0f}")),
    ("frozen garbage", lambda r: _num(r.get("gc_pinned_garbage"), "{:,}")),
    ("done→event p50 / p99 ms", lambda r: f"{r['latency_p50_ms']:.0f} / {r['latency_p99_ms']:.0f}"),
    (
        "events (exactly once)",
        lambda r: f"{r['successes']:,}/{r['n']:,} ({'yes' if r['exactly_once'] else 'NO'})",
    ),
    ("server CPU %", lambda r: f"{r['server_cpu_pct']:.0f}"),
]


def _num(value: float | None, fmt: str) -> str:
    return "—" if value is None else fmt.format(value)


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(name for name, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(r) for _, cell in COLUMNS) + " |" for r in results]
    return "\n".join(lines)


def main() -> None:
    global JOB_SECONDS, QUEUE_SECONDS
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, nargs="+", default=[1000, 5000, 10000])
    parser.add_argument("--mode", nargs="+", choices=["sse", "poll"], default=["sse", "poll"])
    parser.add_argument(
        "--client", nargs="+", choices=["provider", "raw-shared", "new-client"], default=["provider"]
    )
    parser.add_argument("--limit", type=float, default=210.0, help="seconds per run at most")
    parser.add_argument("--one", nargs=3, metavar=("N", "MODE", "CLIENT"), help="run one configuration")
    parser.add_argument("--json", type=Path, help="append each result as a JSON line to this file")
    parser.add_argument(
        "--jobs", type=float, nargs=2, default=JOB_SECONDS, metavar=("MIN", "MAX"), help="job length, seconds"
    )
    args = parser.parse_args()
    JOB_SECONDS = (args.jobs[0], args.jobs[1])
    QUEUE_SECONDS = (min(QUEUE_SECONDS[0], args.jobs[0] / 2), min(QUEUE_SECONDS[1], args.jobs[0] * 2 / 3))
    if args.one:
        n, mode, client_kind = args.one
        print(json.dumps(one(int(n), mode, client_kind, args.limit)))
        return
    results = []
    for n in args.n:
        for mode in args.mode:
            for client_kind in args.client:
                if client_kind == "new-client" and mode == "sse":
                    continue  # one client per stream is what the provider did before; nothing to add
                cmd = [
                    sys.executable,
                    __file__,
                    "--one",
                    str(n),
                    mode,
                    client_kind,
                    "--limit",
                    str(args.limit),
                ]
                cmd += ["--jobs", *map(str, args.jobs)]
                done = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    print(f"{n} {mode} {client_kind}: failed\n{done.stderr[-3000:]}", file=sys.stderr)
                    continue
                if os.environ.get("BENCH_GC_DEBUG"):  # its lines, without the triggers' progress log
                    debug = [line for line in done.stderr.splitlines() if line.startswith(("gc ", "pinned"))]
                    print("\n".join(debug), file=sys.stderr)
                result = json.loads(done.stdout.strip().splitlines()[-1])
                results.append(result)
                if args.json:
                    with args.json.open("a") as fh:
                        fh.write(json.dumps(result) + "\n")
                print(table([result]).splitlines()[-1], flush=True)
    print()
    print(table(results))


if __name__ == "__main__":
    main()
