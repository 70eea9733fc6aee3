"""A real Airflow deployment for end-to-end tests: api-server, scheduler, dag-processor and
triggerer as separate processes on loopback, with their own AIRFLOW_HOME and free ports.

By default the four components of a single-machine deployment (LocalExecutor, SQLite); pass
``components`` for others, e.g. several triggerers and Celery workers (see ``scale_out_components``).

Each component runs in its own session (process group) so that stopping it stops its children
too (executor workers, trigger runner, log servers): ``os.killpg(pid, sig)``. Task processes put
themselves in process groups of their own but stay in the component's session, so a crash
(:meth:`AirflowStack.kill_component` with SIGKILL) takes the whole session down, as losing the
machine would.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

BIN = Path(sys.executable).parent
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
FINISHED_RUN_STATES = {"success", "failed"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Component:
    """One Airflow process: ``airflow <argv...>`` with extra environment.

    :param argv: the CLI arguments after ``airflow``, e.g. ``("celery", "worker")``.
    :param env: environment on top of the stack's (e.g. a log-server port of its own).
    :param ready: a line its output shows once it serves (None: the health endpoint tells).
    """

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    ready: str | None = None


def scale_out_components(workers: int = 2, triggerers: int = 2, concurrency: int = 8) -> dict[str, Component]:
    """api-server, scheduler, dag-processor, ``triggerers`` triggerers and ``workers`` Celery workers.

    Names are ``triggerer-1``... and ``worker-1``...; each gets its own log-server port and each
    worker its own Celery node name.
    """
    components = {name: Component((name,)) for name in ("api-server", "scheduler", "dag-processor")}
    for index in range(1, triggerers + 1):
        components[f"triggerer-{index}"] = Component(
            ("triggerer",), {"AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port())}
        )
    for index in range(1, workers + 1):
        components[f"worker-{index}"] = Component(
            ("celery", "worker", "--celery-hostname", f"worker{index}@%h", "--concurrency", str(concurrency)),
            {"AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())},
            ready=f"worker{index}@",
        )
    return components


class AirflowStack:
    """Start with :meth:`start`, stop with :meth:`stop`; REST helpers talk to the api-server.

    :param home: an empty folder used as AIRFLOW_HOME (DAGs go to ``home/dags``).
    :param dag_files: files copied into the dags folder (DAG modules and their data files).
    :param env: extra environment for every component (connections, DAG settings).
    :param components: the processes to run, by name (default: the four of ``COMPONENTS``).
    """

    def __init__(
        self,
        home: Path,
        dag_files: Iterable[Path],
        env: Mapping[str, str],
        components: Mapping[str, Component] | None = None,
    ) -> None:
        self.home = home
        self.dags = home / "dags"
        self.dags.mkdir(parents=True, exist_ok=True)
        for src in dag_files:
            shutil.copy(src, self.dags / src.name)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": "kling-e2e-" + "x" * 64,
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            # A killed triggerer's triggers move to a new one once its heartbeat is this old.
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "5",
            **env,
        }
        self.components = dict(components or {name: Component((name,)) for name in COMPONENTS})
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._starts: dict[str, int] = {}
        self._client: httpx.Client | None = None

    # -- processes ---------------------------------------------------------------------------
    def start(self, timeout: float = 120.0) -> None:
        migrate = subprocess.run(
            [str(BIN / "airflow"), "db", "migrate"], env=self.env, capture_output=True, timeout=300
        )
        if migrate.returncode:
            raise RuntimeError(f"airflow db migrate failed:\n{migrate.stderr.decode()[-3000:]}")
        for name in self.components:
            self.start_component(name)
        self.wait_healthy(timeout=timeout)
        for name, component in self.components.items():
            if component.ready is not None:
                self.wait_log(name, component.ready, timeout=timeout)

    def start_component(self, name: str) -> subprocess.Popen[bytes]:
        component = self.components[name]
        count = self._starts[name] = self._starts.get(name, 0) + 1
        log_file = self.home / f"{name}.{count}.log"
        with log_file.open("wb") as out:  # the child keeps its own descriptor
            proc = subprocess.Popen(
                [str(BIN / "airflow"), *component.argv],
                env={**self.env, **component.env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs[name] = proc
        return proc

    def kill_component(self, name: str, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        """Stop one component; SIGKILL is a crash: every process of its session dies at once."""
        proc = self.procs.pop(name)
        if sig == signal.SIGKILL:
            signal_session(proc.pid, signal.SIGKILL)
        _stop_group(proc, sig, timeout)

    def session_pids(self, name: str) -> set[int]:
        """Every live process the component started (its session), task processes included."""
        return session_pids(self.procs[name].pid)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds each running component has used so far: its session's live processes and
        every child they reaped (task processes included)."""
        return {name: session_cpu_seconds(proc.pid) for name, proc in self.procs.items()}

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
        procs, self.procs = list(self.procs.values()), {}
        for proc in procs:
            _signal_group(proc, signal.SIGTERM)
        for proc in procs:
            _stop_group(proc, None, 30.0)

    def component_log(self, name: str, tail: int = 3000) -> str:
        count = self._starts.get(name, 0)
        path = self.home / f"{name}.{count}.log"
        return path.read_text(errors="replace")[-tail:] if path.exists() else ""

    def wait_log(self, name: str, needle: str, timeout: float = 60.0) -> None:
        """Wait until the component's output contains ``needle``."""
        path = self.home / f"{name}.{self._starts.get(name, 0)}.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.exists() and needle in path.read_text(errors="replace"):
                return
            self._check_alive()
            time.sleep(0.25)
        raise TimeoutError(f"{needle!r} not in the {name} log after {timeout}s")

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(
                    f"airflow {name} exited with {proc.returncode}:\n{self.component_log(name)}"
                )

    def wait_healthy(self, timeout: float = 120.0, components: Iterable[str] = ()) -> None:
        wanted = set(components) or {"metadatabase", "scheduler", "triggerer", "dag_processor"}
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                last = httpx.get(f"{self.url}/api/v2/monitor/health", timeout=5).json()
                if all(last.get(c, {}).get("status") == "healthy" for c in wanted):
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.5)
        raise TimeoutError(f"Airflow not healthy after {timeout}s: {last}")

    # -- REST --------------------------------------------------------------------------------
    @property
    def api(self) -> httpx.Client:
        """An authenticated client for ``/api/v2`` (all-admins auth: ``GET /auth/token``)."""
        if self._client is None:
            token = httpx.get(f"{self.url}/auth/token", timeout=10).json()["access_token"]
            self.token = token
            self._client = httpx.Client(
                base_url=f"{self.url}/api/v2", headers={"Authorization": f"Bearer {token}"}, timeout=30
            )
        return self._client

    def wait_dag(self, dag_id: str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = self.api.get(f"/dags/{dag_id}")
            if response.status_code == 200:
                return response.json()
            time.sleep(0.5)
        errors = self.api.get("/importErrors").json()
        raise TimeoutError(f"DAG {dag_id} not parsed after {timeout}s; import errors: {errors}")

    def trigger(self, dag_id: str, run_id: str, conf: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.api.post(
            f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "dag_run_id": run_id, "conf": conf or {}}
        )
        response.raise_for_status()
        return response.json()

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        response = self.api.get(f"/dags/{dag_id}/dagRuns/{run_id}")
        response.raise_for_status()
        return response.json()

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        response = self.api.get(f"/dags/{dag_id}/dagRuns")
        response.raise_for_status()
        return response.json()["dag_runs"]

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 180.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.run(dag_id, run_id)
            if run["state"] in FINISHED_RUN_STATES:
                return run
            self._check_alive()
            time.sleep(1)
        raise TimeoutError(
            f"{dag_id}/{run_id} not finished after {timeout}s: {self.task_states(dag_id, run_id)}"
        )

    def task_instances(self, dag_id: str, run_id: str, **params: Any) -> list[dict[str, Any]]:
        """Every task instance of the run (all pages), filtered by ``params`` (e.g. ``task_id``)."""
        found: list[dict[str, Any]] = []
        while True:
            response = self.api.get(
                f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                params={**params, "limit": 100, "offset": len(found), "order_by": "id"},
            )
            response.raise_for_status()
            page = response.json()
            found += page["task_instances"]
            if not page["task_instances"] or len(found) >= page["total_entries"]:
                return found

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        return {
            f"{ti['task_id']}[{ti['map_index']}]" if ti["map_index"] >= 0 else ti["task_id"]: ti["state"]
            for ti in self.task_instances(dag_id, run_id)
        }

    def wait_task_state(
        self, dag_id: str, run_id: str, task_id: str, states: Iterable[str], timeout: float = 120.0
    ) -> str:
        wanted = set(states)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for ti in self.task_instances(dag_id, run_id):
                if ti["task_id"] == task_id and ti["state"] in wanted:
                    return ti["state"]
            self._check_alive()
            time.sleep(0.5)
        raise TimeoutError(f"{task_id} not in {wanted} after {timeout}s: {self.task_states(dag_id, run_id)}")

    def xcom(
        self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1
    ) -> Any:
        response = self.api.get(
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
            params={"map_index": map_index, "deserialize": True, "stringify": False},
        )
        response.raise_for_status()
        return response.json()["value"]

    def task_log_files(self, dag_id: str, run_id: str, task_id: str, pattern: str = "*.log*") -> list[Path]:
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        return sorted(folder.rglob(pattern))


def session_pids(sid: int) -> set[int]:
    """Live processes of session ``sid`` (Linux /proc)."""
    pids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.getsid(int(entry)) == sid:
                    pids.add(int(entry))
    return pids


def session_cpu_seconds(sid: int) -> float:
    """CPU seconds of session ``sid``'s live processes and of every child they reaped."""
    total = 0
    for pid in session_pids(sid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return round(total / os.sysconf("SC_CLK_TCK"), 1)


def signal_session(sid: int, sig: int) -> set[int]:
    """Send ``sig`` to every process of session ``sid``; returns the pids signalled."""
    pids = session_pids(sid)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    return pids


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)  # the group id is the pid we started (start_new_session)


def _stop_group(proc: subprocess.Popen[bytes], sig: int | None, timeout: float) -> None:
    if sig is not None:
        _signal_group(proc, sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _signal_group(proc, signal.SIGKILL)
        proc.wait(timeout=10)
    # Children of a killed leader (executor workers, trigger runner) may outlive it briefly.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        _signal_group(proc, signal.SIGKILL)
    # Task processes live in groups of their own within the session: none may outlive the test.
    signal_session(proc.pid, signal.SIGKILL)
