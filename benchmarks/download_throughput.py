"""Download throughput of ``stream_to_storage`` against curl, over loopback, same file, same run.

Run: ``.venv/bin/python benchmarks/download_throughput.py [--mib 1024] [--rounds 3]``.

A server process sends one file with ``sendfile`` (so it never limits either client); curl and
``stream_to_storage`` each download it to a local file (``/dev/shm`` when present, so the disk does
not limit them either), best of ``--rounds``. ``stream_to_storage`` runs in a fresh process per round
that first downloads 1 MiB, as a task's process has imported its modules and loaded Airflow's plugins
before it downloads (that first call is reported on its own line). Reported: MiB/s of each, their
ratio (goal >= 0.8), the RSS growth of the process running ``stream_to_storage`` per GiB downloaded
(goal <= 64 MB) and its CPU time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SERVER = r"""
import os, socket, sys, threading
path = sys.argv[1]
size = os.path.getsize(path)
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0))
srv.listen(16)
print(srv.getsockname()[1], flush=True)

def serve(conn):
    with conn:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk
        # The client's warm-up request gets the first MiB only.
        length = min(size, 1 << 20) if b"warm" in data.split(b"\r\n", 1)[0] else size
        conn.sendall(
            b"HTTP/1.1 200 OK\r\ncontent-type: video/mp4\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % length
        )
        with open(path, "rb") as fh:
            conn.sendfile(fh, 0, length)

while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""

CLIENT = r"""
import json, os, resource, sys, time
from airflow.sdk import ObjectStoragePath
from airflow_provider_kling.hooks.download import stream_to_storage
url, dest = sys.argv[1], sys.argv[2]
def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
# Warm-up: a task's process has imported its modules and loaded Airflow's plugins (the lineage
# collector) before it downloads anything; the first call here pays for that once.
started = time.perf_counter()
stream_to_storage(url + "?warm=1", ObjectStoragePath("file://" + dest + ".warm"))
first_call = time.perf_counter() - started
os.unlink(dest + ".warm")
before = rss()
peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
cpu_before = os.times()
started = time.perf_counter()
result = stream_to_storage(url, ObjectStoragePath("file://" + dest))
elapsed = time.perf_counter() - started
cpu = os.times()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({
    "seconds": elapsed,
    "first_call": first_call,
    "cpu": (cpu.user - cpu_before.user) + (cpu.system - cpu_before.system),
    "size": result.size,
    "rss_growth": max(peak - peak_before, rss() - before, 0),
}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    work = Path(tempfile.mkdtemp(prefix="kling-download-", dir=base))
    source = work / "source.bin"
    with source.open("wb") as fh:
        block = os.urandom(1 << 20)
        for _ in range(args.mib):
            fh.write(block)
    env = {**os.environ, "AIRFLOW_HOME": str(work / "airflow")}
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(source)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{int(server.stdout.readline())}/video.mp4"
        curl_best = ours_best = float("inf")
        growth = 0
        ours: list[dict[str, float]] = []
        for round_ in range(args.rounds):
            dest = work / f"curl-{round_}.bin"
            started = time.perf_counter()
            subprocess.run(["curl", "-sS", "-o", str(dest), url], check=True)
            curl_best = min(curl_best, time.perf_counter() - started)
            dest.unlink()
            dest = work / f"ours-{round_}.mp4"
            done = subprocess.run(
                [sys.executable, "-c", CLIENT, url, str(dest)],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            result = json.loads(done.stdout.strip().splitlines()[-1])
            assert result["size"] == args.mib << 20
            ours_best = min(ours_best, result["seconds"])
            ours.append(result)
            growth = max(growth, result["rss_growth"])
            dest.unlink()
    finally:
        server.terminate()
        shutil.rmtree(work, ignore_errors=True)
    mib = args.mib
    ratio = curl_best / ours_best
    per_gib = growth / 2**20 / (mib / 1024)
    print(f"curl:              {mib / curl_best:8.0f} MiB/s")
    print(f"stream_to_storage: {mib / ours_best:8.0f} MiB/s  ({ratio:.2f}x curl; goal >= 0.8)")
    print(f"RSS growth:        {per_gib:8.1f} MB per GiB (goal <= 64)")
    fastest = min(ours, key=lambda r: r["seconds"])
    print(f"CPU (fastest run): {fastest['cpu']:8.2f} s for {fastest['seconds']:.2f} s of wall time")
    first = min(r["first_call"] for r in ours)
    print(f"First call:        {first:8.2f} s for 1 MiB (imports, Airflow's plugins: once per process)")


if __name__ == "__main__":
    main()
