"""PostgreSQL and Redis servers for end-to-end tests: Debian's binaries, started on loopback with
their data in a temporary folder and stopped by process group.

PostgreSQL refuses to run as root, so when the tests run as root (CI does) both servers run as the
unprivileged ``nobody`` user (``subprocess.Popen(user=...)``); otherwise as the current user.
``.ci/run`` installs the packages when they are missing (``postgresql``, ``redis-server``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from airflow_stack import free_port

UNPRIVILEGED_USER = "nobody"


def postgres_bindir() -> Path | None:
    """Debian keeps the server binaries out of PATH, under /usr/lib/postgresql/<major>/bin."""
    if found := shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(candidates[-1]).parent if candidates else None


def missing_servers() -> list[str]:
    """Debian package names of the servers that are not installed."""
    missing = []
    if postgres_bindir() is None:
        missing.append("postgresql")
    if shutil.which("redis-server") is None:
        missing.append("redis-server")
    return missing


def _run_as() -> dict[str, Any]:
    """``Popen`` arguments that drop root to the unprivileged user (no-op for other users)."""
    if os.geteuid() != 0:
        return {}
    return {"user": UNPRIVILEGED_USER, "group": "nogroup", "extra_groups": []}


def _give_to_server(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, UNPRIVILEGED_USER, "nogroup")


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise TimeoutError(f"{proc.args[0]} not listening on {port} after {timeout}s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen[bytes] | None, sig: int) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


class _Server:
    proc: subprocess.Popen[bytes] | None = None
    stop_signal = signal.SIGTERM

    def __init__(self, prefix: str) -> None:
        # Its own folder under the system temp dir: pytest's tmp_path sits under a 0700 folder of
        # root's that the unprivileged server user could not enter.
        self.folder = Path(tempfile.mkdtemp(prefix=prefix))
        _give_to_server(self.folder)
        self.port = free_port()
        self.log = self.folder / "server.log"

    def _spawn(self, argv: list[str]) -> None:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.folder,
                **_run_as(),
            )

    def stop(self) -> None:
        _stop(self.proc, self.stop_signal)
        self.proc = None
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> _Server:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class PostgresServer(_Server):
    """A throw-away PostgreSQL cluster: ``initdb`` into ``folder/data``, trust auth on 127.0.0.1.

    Durability is switched off (fsync, synchronous commit): the data dies with the test anyway.

    :param max_connections: Airflow's components each keep a pool, so allow plenty.
    """

    stop_signal = signal.SIGINT  # "fast" shutdown: disconnect clients, no waiting for them

    def __init__(self, max_connections: int = 400) -> None:
        super().__init__("kling-postgres-")
        bindir = postgres_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install -y postgresql)")
        self.bindir = bindir
        self.max_connections = max_connections

    def start(self, timeout: float = 60.0) -> PostgresServer:
        data = self.folder / "data"
        options = ["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"]
        init = subprocess.run(
            [str(self.bindir / "initdb"), "-D", str(data), *options],
            capture_output=True,
            cwd=self.folder,
            timeout=120,
            **_run_as(),
        )
        if init.returncode:
            raise RuntimeError(f"initdb failed:\n{init.stdout.decode()}{init.stderr.decode()}")
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": self.port,
            "unix_socket_directories": str(self.folder),
            "max_connections": self.max_connections,
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        argv = [str(self.bindir / "postgres"), "-D", str(data)]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        self._spawn(argv)
        assert self.proc is not None
        _wait_port(self.port, self.proc, self.log, timeout)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        # The port opens before the cluster accepts logins ("the database system is starting up").
        deadline = time.monotonic() + timeout
        while True:
            probe = subprocess.run(
                [str(self.bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
                timeout=10,
            )
            if probe.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"PostgreSQL not ready:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def create_database(self, name: str) -> str:
        """Create ``name`` and return its SQLAlchemy URL (psycopg2 driver)."""
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return self.url(name)

    def url(self, database: str, driver: str = "psycopg2") -> str:
        return f"postgresql+{driver}://postgres@127.0.0.1:{self.port}/{database}"

    def query(self, database: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname=database)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return list(cur.fetchall())
        finally:
            conn.close()


class RedisServer(_Server):
    """A Redis server on 127.0.0.1 with no persistence (``save ""``, no AOF)."""

    def __init__(self) -> None:
        super().__init__("kling-redis-")

    def start(self, timeout: float = 30.0) -> RedisServer:
        redis = shutil.which("redis-server")
        if redis is None:
            raise RuntimeError("Redis is not installed (apt-get install -y redis-server)")
        options = {"bind": "127.0.0.1", "port": str(self.port), "save": "", "appendonly": "no"}
        options.update({"dir": str(self.folder), "protected-mode": "yes"})
        self._spawn([redis, *(arg for name, value in options.items() for arg in (f"--{name}", value))])
        assert self.proc is not None
        _wait_port(self.port, self.proc, self.log, timeout)
        return self

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"
