"""``FalEmulator``: the emulator served by uvicorn on loopback in a background thread."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlencode

import uvicorn

from airflow_provider_kling.emulator.app import EmulatorApp
from airflow_provider_kling.emulator.state import Failure, Knobs
from airflow_provider_kling.emulator.storage import Storage
from airflow_provider_kling.emulator.video import require_video_libraries

DEFAULT_KEY = "emulator-key-id:emulator-key-secret"


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind before serving, so port 0 resolves to a real port we can report immediately."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(256)
    sock.set_inheritable(True)
    return sock


def uvicorn_config(app: EmulatorApp) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        lifespan="on",
        log_level="warning",
        access_log=False,
        ws="none",  # no websockets: keeps start-up imports small
        timeout_graceful_shutdown=1,
        timeout_keep_alive=30,
    )


def connection_json(url: str, key: str) -> str:
    """Airflow connection JSON (for ``AIRFLOW_CONN_FAL_DEFAULT``) pointing at an emulator base URL."""
    return json.dumps(
        {
            "conn_type": "fal",
            "host": url,
            "password": key,
            "extra": {"queue_url": url, "rest_url": f"{url}/rest", "cdn_url": f"{url}/cdn"},
        }
    )


def connection_uri(url: str, key: str) -> str:
    """The same connection as an Airflow URI (``fal://:<key>@host:port?queue_url=...``)."""
    hostport = url.split("://", 1)[1]
    extras = urlencode({"queue_url": url, "rest_url": f"{url}/rest", "cdn_url": f"{url}/cdn"})
    return f"fal://:{quote(key, safe='')}@{hostport}/?{extras}"


class FalEmulator:
    """A local fal queue server (queue, storage and CDN routes) on loopback, for tests and demos.

    Use as a context manager, or call :meth:`start` / :meth:`stop`. Knobs are plain attributes and
    apply to requests made after the change.

    :param processing_time: seconds each job spends IN_PROGRESS.
    :param queue_delay: minimum seconds each job spends IN_QUEUE.
    :param concurrency: jobs processed at once; the rest wait in FIFO order.
    :param account_concurrency: jobs processed at once per account (API key id), as fal limits
        each account; None for no per-account limit.
    :param processing_jitter: each job takes up to this many seconds longer (uniformly random).
    :param require_key: the only API key accepted; None accepts any key or none.
    :param port: TCP port; 0 picks a free one (see :attr:`url`).
    :param host: interface to bind (loopback by default).
    :param locked: submits answer 403 "User is locked" while True.
    :param log_window: number of latest log entries each status response carries.
    :param sse_keepalive: seconds between ``: ping`` comments on status streams.
    :param fps: frame rate of generated clips.
    :param storage_dir: keep files here instead of a temporary directory (not deleted on stop).
    """

    _KNOBS = frozenset(Knobs.__dataclass_fields__)

    def __init__(
        self,
        processing_time: float = 2.0,
        queue_delay: float = 0.0,
        concurrency: int = 2,
        require_key: str | None = None,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        locked: bool = False,
        log_window: int = 5,
        sse_keepalive: float = 15.0,
        fps: int = 8,
        storage_dir: str | Path | None = None,
        account_concurrency: int | None = None,
        processing_jitter: float = 0.0,
    ) -> None:
        knobs = Knobs(
            processing_time=processing_time,
            processing_jitter=processing_jitter,
            queue_delay=queue_delay,
            concurrency=concurrency,
            account_concurrency=account_concurrency,
            require_key=require_key,
            locked=locked,
            log_window=log_window,
            sse_keepalive=sse_keepalive,
            fps=fps,
        )
        knobs.validate()
        object.__setattr__(self, "_knobs", knobs)
        self._host = host
        self._port = port
        self._storage_dir = Path(storage_dir) if storage_dir is not None else None
        self._app: EmulatorApp | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._url: str | None = None

    # Knobs read and write straight through to the live Knobs object.
    def __getattr__(self, name: str) -> Any:
        if name in FalEmulator._KNOBS:
            return getattr(self.__dict__["_knobs"], name)
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in FalEmulator._KNOBS:
            setattr(self._knobs, name, value)
            self._knobs.validate()
            if self._app is not None:
                self._app.queue.poke()
        else:
            object.__setattr__(self, name, value)

    # --- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> FalEmulator:
        if self._thread is not None:
            return self
        require_video_libraries()
        sock = bind_socket(self._host, self._port)
        port = sock.getsockname()[1]
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._url = f"http://{host}:{port}"
        self._app = EmulatorApp(self._knobs, Storage(self._storage_dir))
        self._server = uvicorn.Server(uvicorn_config(self._app))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=f"fal-emulator-{port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                sock.close()
                raise RuntimeError("fal emulator failed to start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._thread is None or self._server is None or self._app is None:
            return
        app, server, thread = self._app, self._server, self._thread
        if thread.is_alive():
            # End open status streams first, or uvicorn would wait for them to finish.
            with contextlib.suppress(Exception):
                app.queue.threadsafe(app.queue.begin_shutdown, timeout=1)
            server.should_exit = True
            thread.join(2)
            if thread.is_alive():
                server.force_exit = True
                thread.join(5)
        app.storage.close()
        self._thread = self._server = None

    def __enter__(self) -> FalEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- addresses ------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """Queue API root, e.g. ``http://127.0.0.1:PORT``."""
        if self._url is None:
            raise RuntimeError("FalEmulator is not started")
        return self._url

    @property
    def rest_url(self) -> str:
        return f"{self.url}/rest"

    @property
    def cdn_url(self) -> str:
        return f"{self.url}/cdn"

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def connection_json(self, key: str = DEFAULT_KEY) -> str:
        return connection_json(self.url, key)

    def connection_uri(self, key: str = DEFAULT_KEY) -> str:
        return connection_uri(self.url, key)

    # --- faults, failures, reset --------------------------------------------------------------------
    @property
    def app(self) -> EmulatorApp:
        if self._app is None:
            raise RuntimeError("FalEmulator is not started")
        return self._app

    def inject(self, kind: str, *, route: str = "any", times: int | None = 1, **params: Any) -> None:
        """Arm a fault for the next ``times`` requests on ``route`` (see ``faults.KINDS``)."""
        self.app.faults.inject(kind, route=route, times=times, **params)

    def fail_next(
        self,
        error: str = "Runner disconnected",
        error_type: str = "runner_disconnected",
        status_code: int = 503,
        times: int = 1,
        *,
        retryable: bool | None = None,
        detail: Any = None,
    ) -> None:
        """The next ``times`` submitted jobs run, then COMPLETE with this error (result: ``status_code``)."""
        self.app.fail_next(Failure(error, error_type, status_code, retryable, detail), times)

    def reset(self) -> None:
        """Clear counters, faults, pending failures and all jobs (knobs and stored files stay)."""
        app = self.app
        app.queue.threadsafe(app.reset)

    # --- counters ---------------------------------------------------------------------------------------
    @property
    def submissions(self) -> Counter[str]:
        return self.app.counters.submissions

    @property
    def cancellations(self) -> Counter[str]:
        return self.app.counters.cancellations

    @property
    def requests(self) -> Counter[str]:
        return self.app.counters.requests

    def last_headers(self, route: str) -> dict[str, str]:
        return self.app.counters.last_headers(route)

    @property
    def webhook_deliveries(self) -> list[dict[str, Any]]:
        """Webhook POST attempts: ``{request_id, url, attempt, timestamp, completed_at, sent_at, status_code | error}``."""
        return self.app.webhooks.deliveries

    def job_state(self, request_id: str) -> str | None:
        """IN_QUEUE / IN_PROGRESS / COMPLETED, or None for an unknown id."""
        job = self.app.queue.jobs.get(request_id)
        return job.state if job is not None else None

    def __repr__(self) -> str:
        return f"FalEmulator(url={self._url!r}, running={self._thread is not None})"
