"""What the hook costs on top of plain httpx, against the emulator on loopback.

Run: ``.venv/bin/python benchmarks/hook_overhead.py``. Prints, for status polls, the rate through a
raw ``httpx.Client`` next to the rate through ``KlingHook.get_status`` (and the async pair), the
per-call cost of the pure protocol core, and upload throughput (single CDN POST and multipart) for
a 64 MiB file. Ratios compare runs made in the same process, so they travel between machines better
than the absolute numbers.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

N_POLLS = 400
UPLOAD_MIB = 64


ROUNDS = 3  # best of N: the machine is shared, the best round is the least disturbed one


def rate(label: str, fn: Callable[[], Any], n: int) -> float:
    fn()  # warm the pool
    best = 0.0
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = max(best, n / (time.perf_counter() - start))
    print(f"{label}: {best:,.0f}/s")
    return best


async def arate(label: str, fn: Callable[[], Any], n: int) -> float:
    await fn()
    best = 0.0
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(n):
            await fn()
        best = max(best, n / (time.perf_counter() - start))
    print(f"{label}: {best:,.0f}/s")
    return best


def main() -> None:
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="kling-bench-"))
    import httpx

    from airflow_provider_kling.emulator import FalEmulator
    from airflow_provider_kling.hooks.kling import KlingHook
    from airflow_provider_kling.protocol import QueueProtocol, parse_status

    key = "bench-id:bench-secret"
    with FalEmulator(processing_time=3600, queue_delay=0.0) as emu:
        os.environ["AIRFLOW_CONN_FAL_DEFAULT"] = emu.connection_json(key=key)
        hook = KlingHook()
        request = hook.submit("fal-ai/kling-video/v1.6/standard/text-to-video", {"prompt": "bench"})
        headers = {"Authorization": f"Key {key}"}

        with httpx.Client() as raw:
            raw_rate = rate(
                "status polls, raw httpx.Client",
                lambda: raw.get(request.status_url, params={"logs": "1"}, headers=headers),
                N_POLLS,
            )
        hook_rate = rate("status polls, KlingHook.get_status", lambda: hook.get_status(request), N_POLLS)
        print(f"  hook / raw: {hook_rate / raw_rate:.2f}")

        async def async_part() -> None:
            async with httpx.AsyncClient() as araw:
                raw_a = await arate(
                    "status polls, raw httpx.AsyncClient",
                    lambda: araw.get(request.status_url, params={"logs": "1"}, headers=headers),
                    N_POLLS,
                )
            async with KlingHook() as ahook:
                hook_a = await arate(
                    "status polls, KlingHook.aget_status", lambda: ahook.aget_status(request), N_POLLS
                )
            print(f"  async hook / raw: {hook_a / raw_a:.2f}")

        asyncio.run(async_part())

        queue = QueueProtocol(hook.settings)
        payload = {
            "status": "IN_PROGRESS",
            "request_id": "r",
            "logs": [{"message": f"line {i}", "timestamp": str(i)} for i in range(5)],
        }
        n = 20000
        start = time.perf_counter()
        for _ in range(n):
            queue.status_request(request)
            parse_status(payload, request_id="r")
        per_call = (time.perf_counter() - start) / n * 1e6
        print(f"protocol core: build status request + parse status: {per_call:.1f} µs")

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "big.mp4"
            with path.open("wb") as f:
                for _ in range(UPLOAD_MIB):
                    f.write(os.urandom(1024 * 1024))
            for label, threshold in (("single POST", 1 << 40), ("multipart, 10 MiB parts", 1)):
                hook.multipart_threshold = threshold
                start = time.perf_counter()
                hook.upload_file(path)
                elapsed = time.perf_counter() - start
                print(
                    f"upload {UPLOAD_MIB} MiB, {label}: {UPLOAD_MIB / elapsed:,.0f} MiB/s ({elapsed:.2f} s)"
                )
        hook.close()


if __name__ == "__main__":
    main()
