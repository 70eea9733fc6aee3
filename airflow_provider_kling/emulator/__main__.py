"""``python -m airflow_provider_kling.emulator`` / ``kling-emulator``: run the fal emulator in the foreground.

Prints the base URL and an ``export AIRFLOW_CONN_FAL_DEFAULT=...`` line for other processes
(a local Airflow), then serves until SIGINT/SIGTERM. Knobs can be changed at run time through
``POST /_emulator/config``.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import signal
import sys
from collections.abc import Iterator, Sequence

import uvicorn

from airflow_provider_kling.emulator.app import EmulatorApp
from airflow_provider_kling.emulator.server import DEFAULT_KEY, bind_socket, connection_uri, uvicorn_config
from airflow_provider_kling.emulator.state import Knobs
from airflow_provider_kling.emulator.storage import Storage
from airflow_provider_kling.emulator.video import MissingVideoLibrariesError, require_video_libraries


class _Server(uvicorn.Server):
    """uvicorn re-raises the captured signal after shutdown (so the process dies by it); the CLI
    instead exits normally, which also lets it delete its temporary files."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kling-emulator", description="Local fal.ai queue API emulator.")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: 0 = pick a free port)")
    parser.add_argument("--processing-time", type=float, default=3.0, help="seconds IN_PROGRESS per job")
    parser.add_argument("--queue-delay", type=float, default=0.5, help="minimum seconds IN_QUEUE per job")
    parser.add_argument("--concurrency", type=int, default=2, help="jobs processed at the same time")
    parser.add_argument(
        "--account-concurrency", type=int, default=None, help="jobs processed at once per API key id"
    )
    parser.add_argument(
        "--processing-jitter", type=float, default=0.0, help="up to this many extra seconds per job"
    )
    parser.add_argument("--require-key", default=None, help="accept only this key (id:secret)")
    parser.add_argument("--sse-keepalive", type=float, default=15.0, help="seconds between SSE pings")
    parser.add_argument("--storage-dir", default=None, help="keep uploaded/generated files here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    knobs = Knobs(
        processing_time=args.processing_time,
        queue_delay=args.queue_delay,
        concurrency=args.concurrency,
        account_concurrency=args.account_concurrency,
        processing_jitter=args.processing_jitter,
        require_key=args.require_key,
        sse_keepalive=args.sse_keepalive,
    )
    try:
        knobs.validate()
        require_video_libraries()
    except (ValueError, MissingVideoLibrariesError) as exc:
        print(f"kling-emulator: {exc}", file=sys.stderr)
        return 2
    sock = bind_socket(args.host, args.port)
    host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    url = f"http://{host}:{sock.getsockname()[1]}"
    key = args.require_key or DEFAULT_KEY
    print(f"fal emulator listening on {url}", flush=True)
    print(f"export AIRFLOW_CONN_FAL_DEFAULT={shlex.quote(connection_uri(url, key))}", flush=True)
    app = EmulatorApp(knobs, Storage(args.storage_dir))
    try:
        _Server(uvicorn_config(app)).run(sockets=[sock])
    finally:
        app.storage.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
