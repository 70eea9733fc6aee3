"""Scale-out on Airflow's own distributed engine, with crashes: every video exactly once.

PostgreSQL as the metadata database, Redis as the Celery broker, Airflow with CeleryExecutor
(api-server, scheduler, dag-processor, two Celery workers, two triggerers), all on loopback; the
fal emulator limits the account to ``FAL_LIMIT`` jobs in progress and takes 20-40 s per job.
``COUNT`` deferrable Kling jobs run through the ``fal_kling`` pool (``POOL_SLOTS`` slots that count
deferred tasks), then one persistence step per video. Mid-run one triggerer and one Celery worker
are SIGKILLed while both hold work.

The report (timeline, hand-over, throughput) is printed and written to
``test-artifacts/scaleout-report.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from airflow_stack import AirflowStack, scale_out_components, session_cpu_seconds, signal_session
from services import PostgresServer, RedisServer, missing_servers

ROOT = Path(__file__).resolve().parents[2]
DAG_FILE = Path(__file__).with_name("dags") / "kling_scaleout.py"
ARTIFACTS = ROOT / "test-artifacts"
DAG_ID, RUN_ID = "kling_scaleout", "scaleout"
GENERATE, PERSIST = "clip.generate", "clip.persist"  # one mapped task group per clip
FAL_KEY = "scale-key-id:scale-key-secret"
ENDPOINT = "fal-ai/kling-video/v1.6/standard/text-to-video"

COUNT = 200  # mapped Kling jobs
FAL_LIMIT = 40  # the account's concurrent jobs at fal (the emulator queues the rest)
POOL_SLOTS = 60  # the Airflow pool: requests Airflow keeps at fal at once (in progress + queued)
PROCESSING = (20.0, 40.0)  # seconds each fal job takes, uniformly spread
WORKER_CONCURRENCY = 16

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

# Set-up milestones (monotonic seconds), for the report's timeline.
SETUP: dict[str, float] = {}
# The database and broker, for their CPU figures.
SERVERS: dict[str, PostgresServer | RedisServer] = {}


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[PostgresServer, RedisServer]]:
    missing = missing_servers()
    if missing:
        message = f"PostgreSQL/Redis not installed: apt-get install -y {' '.join(missing)}"
        if os.environ.get("KLING_REQUIRE_SERVERS") == "1":
            pytest.fail(f"KLING_REQUIRE_SERVERS=1 but {message}")
        pytest.skip(message)
    SETUP["begin"] = time.monotonic()
    with PostgresServer() as postgres, RedisServer() as redis:
        postgres.start()
        redis.start()
        SETUP["servers up"] = time.monotonic()
        SERVERS.update(postgres=postgres, redis=redis)
        yield postgres, redis


@pytest.fixture(scope="module")
def emu():
    from airflow_provider_kling.emulator import FalEmulator

    with FalEmulator(
        processing_time=PROCESSING[0],
        processing_jitter=PROCESSING[1] - PROCESSING[0],
        concurrency=10 * FAL_LIMIT,  # fal's runners are not the bottleneck, the account limit is
        account_concurrency=FAL_LIMIT,
        require_key=FAL_KEY,
    ) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def stack(tmp_path_factory, servers, emu) -> Iterator[tuple[AirflowStack, PostgresServer]]:
    postgres, redis = servers
    home = tmp_path_factory.mktemp("scaleout-airflow-home")
    database = postgres.create_database("airflow")
    airflow = AirflowStack(
        home,
        [DAG_FILE],
        {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database,
            "AIRFLOW__CELERY__BROKER_URL": redis.url,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{database}",
            # No more tasks queued than both workers run: few wait in the broker.
            "AIRFLOW__CORE__PARALLELISM": str(2 * WORKER_CONCURRENCY),
            # A crashed worker's tasks stop heartbeating; fail (and retry) them after 30 s, not 300.
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "3",
            # A message the crashed worker had taken but not yet started is never acknowledged:
            # queue the task again after 2 minutes, not 10.
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "120",
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "10",
            # The DAG file is parsed once: re-parsing it every 30 s costs CPU the run needs.
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
            "AIRFLOW_CONN_FAL_DEFAULT": emu.connection_json(key=FAL_KEY),
            "KLING_OUTPUT_DIR": str(home / "videos"),
            "KLING_POLL_INTERVAL": "5",
        },
        scale_out_components(workers=2, triggerers=2, concurrency=WORKER_CONCURRENCY),
    )
    try:
        airflow.start(timeout=240)
        SETUP["airflow up"] = time.monotonic()
        yield airflow, postgres
    finally:
        airflow.stop()


# -- observing the deployment ------------------------------------------------------------------


@dataclass
class Report:
    """What the run showed, in seconds since the DAG run was triggered."""

    events: list[tuple[float, str]] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def at(self) -> float:
        return round(time.monotonic() - self.started, 1)

    def note(self, text: str) -> None:
        self.events.append((self.at(), text))
        print(f"[scaleout +{self.at():6.1f}s] {text}", flush=True)


_CONNECTIONS = threading.local()


def _sql(postgres: PostgresServer, query: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run ``query`` on Airflow's database over one connection per thread: the test samples the
    database several times a second, and a new connection forks a PostgreSQL backend each time."""
    import psycopg2

    conn = getattr(_CONNECTIONS, "conn", None)
    if conn is None or conn.closed:
        conn = psycopg2.connect(host="127.0.0.1", port=postgres.port, user="postgres", dbname="airflow")
        conn.autocommit = True  # every query sees the latest commits
        _CONNECTIONS.conn = conn
    with conn.cursor() as cur:
        cur.execute(query, params)
        return list(cur.fetchall())


def _trigger_owners(postgres: PostgresServer) -> dict[int, int]:
    """map_index -> triggerer job id, for the deferred ``generate`` tasks whose trigger is assigned."""
    rows = _sql(
        postgres,
        "SELECT ti.map_index, t.triggerer_id FROM task_instance ti JOIN trigger t ON t.id = ti.trigger_id"
        " WHERE ti.dag_id = %s AND ti.run_id = %s AND ti.task_id = %s AND ti.state = 'deferred'"
        " AND t.triggerer_id IS NOT NULL",
        DAG_ID,
        RUN_ID,
        GENERATE,
    )
    return {int(index): int(owner) for index, owner in rows}


def _triggerer_heartbeats(postgres: PostgresServer) -> dict[int, Any]:
    rows = _sql(
        postgres,
        "SELECT id, latest_heartbeat FROM job WHERE job_type = 'TriggererJob' AND state = 'running'",
    )
    return dict(rows)


def _reattach_records(postgres: PostgresServer) -> dict[int, str]:
    """map_index -> what the task state store holds for it: ``"request"`` (the fal handle: a retry
    reattaches) or ``"submit_in_flight"`` (the marker a task stores before its POST leaves)."""
    rows = _sql(
        postgres,
        "SELECT map_index, value FROM task_state_store WHERE dag_id = %s AND run_id = %s AND task_id = %s",
        DAG_ID,
        RUN_ID,
        GENERATE,
    )
    records = {}
    for index, value in rows:
        while isinstance(value, str):
            value = json.loads(value)
        for kind in ("request", "submit_in_flight"):
            if isinstance(value, dict) and value.get(kind):
                records[int(index)] = kind
    return records


def _run_state(postgres: PostgresServer) -> str:
    """The DAG run's state, from the database (cheaper for a loaded api-server than its REST API)."""
    [(state,)] = _sql(postgres, "SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s", DAG_ID, RUN_ID)
    return str(state)


def _prompt_index(prompt: str) -> int:
    return int(prompt.split("scale-out clip ", 1)[1].split(":", 1)[0])


def _submitted(emu: Any) -> Counter[int]:
    """map_index -> submissions the emulator accepted for it."""
    jobs = list(emu.app.queue.jobs.values())
    return Counter(_prompt_index(job.arguments["prompt"]) for job in jobs)


def _fal_load(emu: Any) -> tuple[int, int]:
    """(jobs in progress, jobs queued) at fal for the test's account right now."""
    states = Counter(job.state for job in list(emu.app.queue.jobs.values()))
    return states["IN_PROGRESS"], states["IN_QUEUE"]


def _held_by(stack: AirflowStack, postgres: PostgresServer, worker: str) -> list[dict[str, Any]]:
    """Running task instances whose task process belongs to ``worker`` (its session)."""
    pids = stack.session_pids(worker)
    rows = _sql(
        postgres,
        "SELECT task_id, map_index, try_number, pid FROM task_instance"
        " WHERE dag_id = %s AND run_id = %s AND state = 'running'",
        DAG_ID,
        RUN_ID,
    )
    return [
        {"task_id": task_id, "map_index": index, "try_number": tries, "pid": pid}
        for task_id, index, tries, pid in rows
        if pid is not None and pid in pids
    ]


class Watch(threading.Thread):
    """Samples fal's load every 0.5 s and, while a hand-over is timed, the triggers' owners every
    0.25 s, beside the test's own steps.

    ``emptied[job]``: when triggerer ``job`` first had no trigger left (monotonic seconds), for the
    jobs that held triggers when :meth:`follow` was called.
    """

    def __init__(self, emu: Any, postgres: PostgresServer) -> None:
        super().__init__(daemon=True, name="scaleout-watch")
        self.emu, self.postgres = emu, postgres
        self.peak_in_progress = self.peak_queued = self.peak_in_flight = 0
        self.busy_s = 0.0  # sum over samples of (jobs in progress / fal limit) * seconds: fal's use
        self.emptied: dict[int, float] = {}
        self._followed: set[int] = set()
        self._halt = threading.Event()

    def follow(self, jobs: set[int]) -> None:
        self._followed = set(jobs)

    def run(self) -> None:
        last = time.monotonic()
        while not self._halt.is_set():
            in_progress, queued = _fal_load(self.emu)
            now = time.monotonic()
            self.busy_s += in_progress / FAL_LIMIT * (now - last)
            last = now
            self.peak_in_progress = max(self.peak_in_progress, in_progress)
            self.peak_queued = max(self.peak_queued, queued)
            self.peak_in_flight = max(self.peak_in_flight, in_progress + queued)
            following = bool(self._followed - set(self.emptied))
            if following:
                owners = set(_trigger_owners(self.postgres).values())
                for job in self._followed - owners - set(self.emptied):
                    self.emptied[job] = time.monotonic()
            self._halt.wait(0.25 if following else 0.5)  # finer while timing the hand-over

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


def _kill_worker_holding_paid_requests(
    stack: AirflowStack, postgres: PostgresServer, emu: Any, worker: str, report: Report
) -> list[dict[str, Any]]:
    """SIGKILL ``worker`` at a moment it runs ``generate`` tasks that already paid for a request.

    The worker is frozen (SIGSTOP) while we look, so what we see is what dies. A task caught
    between storing its "submit in flight" marker and storing the handle fal answered with is a
    kill nobody can recover from without risking a second payment (no fal API finds a request by
    its input): its retry fails on purpose, asking a human to check. Such moments are skipped, and
    the remaining race is only the freeze itself.
    """
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        held = _held_by(stack, postgres, worker)
        generating = [ti for ti in held if ti["task_id"] == GENERATE]
        if generating:
            frozen = stack.procs[worker].pid
            signal_session(frozen, signal.SIGSTOP)
            time.sleep(0.5)  # requests already on the wire reach fal and the api-server
            held = _held_by(stack, postgres, worker)
            submitted, records = _submitted(emu), _reattach_records(postgres)
            indexes = [ti["map_index"] for ti in held if ti["task_id"] == GENERATE]
            in_window = [
                i
                for i in indexes
                if records.get(i) == "submit_in_flight" or (submitted[i] and i not in records)
            ]
            paid = [i for i in indexes if submitted[i] and records.get(i) == "request"]
            if paid and not in_window:
                stack.kill_component(worker, signal.SIGKILL)
                report.note(
                    f"SIGKILL {worker}: it ran {len(held)} task(s), generate{sorted(paid)} after their"
                    f" submit, {sorted(set(indexes) - set(paid))} before it,"
                    f" {[ti['map_index'] for ti in held if ti['task_id'] == PERSIST]} persisting"
                )
                return [{**ti, "paid": ti["task_id"] == GENERATE and ti["map_index"] in paid} for ti in held]
            signal_session(frozen, signal.SIGCONT)
        time.sleep(0.3)
    raise AssertionError(f"{worker} never held a generate task after its submit")


def _phases(postgres: PostgresServer) -> list[tuple[Any, ...]]:
    """Per task and try: count, first start and last end, in seconds after the run's start."""
    return _sql(
        postgres,
        "SELECT h.task_id, h.try_number, count(*),"
        " round(extract(epoch FROM min(h.start_date) - r.start_date)::numeric, 1)::float,"
        " round(extract(epoch FROM max(h.end_date) - r.start_date)::numeric, 1)::float"
        " FROM (SELECT task_id, try_number, start_date, end_date, dag_id, run_id FROM task_instance"
        "       UNION ALL SELECT task_id, try_number, start_date, end_date, dag_id, run_id"
        "       FROM task_instance_history) h"
        " JOIN dag_run r ON r.dag_id = h.dag_id AND r.run_id = h.run_id"
        " WHERE h.dag_id = %s AND h.run_id = %s GROUP BY h.task_id, h.try_number, r.start_date"
        " ORDER BY 4",
        DAG_ID,
        RUN_ID,
    )


def _persist_latencies(postgres: PostgresServer) -> dict[str, float]:
    """Medians over the ``persist`` tasks (one worker run each), in seconds: scheduled -> queued (the
    scheduler), queued -> started (broker and worker), started -> ended (the task process)."""
    [row] = _sql(
        postgres,
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM queued_dttm - scheduled_dttm)),"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM start_date - queued_dttm)),"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM end_date - start_date))"
        " FROM task_instance WHERE dag_id = %s AND run_id = %s AND task_id = %s",
        DAG_ID,
        RUN_ID,
        PERSIST,
    )
    names = ("scheduled_to_queued", "queued_to_started", "started_to_ended")
    return {name: round(float(value), 2) for name, value in zip(names, row, strict=True) if value is not None}


# -- the test ----------------------------------------------------------------------------------


def test_celery_postgres_two_triggerers_crash_mid_batch_every_video_exactly_once(stack, emu):
    airflow, postgres = stack
    pool = airflow.api.post(
        "/pools",
        json={"name": "fal_kling", "slots": POOL_SLOTS, "include_deferred": True, "description": "fal"},
    )
    assert pool.status_code == 201, pool.text
    airflow.wait_dag(DAG_ID, timeout=120)

    report = Report()
    airflow.trigger(DAG_ID, RUN_ID, conf={"count": COUNT})
    report.note(f"triggered {COUNT} jobs")
    watch = Watch(emu, postgres)
    watch.start()

    # 1. Both triggerers hold triggers: kill one.
    deadline = time.monotonic() + 300
    while True:
        per_triggerer = Counter(_trigger_owners(postgres).values())
        if len(per_triggerer) == 2 and min(per_triggerer.values()) >= 5:
            break
        assert time.monotonic() < deadline, f"triggers never spread over both triggerers: {per_triggerer}"
        time.sleep(0.5)
    (db_now,) = _sql(postgres, "SELECT now()")[0]
    airflow.kill_component("triggerer-1", signal.SIGKILL)
    killed_at = time.monotonic()
    # Owners after the kill: a trigger that fired just before it is no orphan. Nothing is moved
    # before the dead triggerer's heartbeat is [triggerer] triggerer_health_check_threshold old.
    owners = _trigger_owners(postgres)
    watch.follow(set(owners.values()))
    report.note(f"SIGKILL triggerer-1; triggers per triggerer job: {dict(Counter(owners.values()))}")

    # 2. ... and right after, a Celery worker that runs tasks which already paid for their request.
    killed_tis = _kill_worker_holding_paid_requests(airflow, postgres, emu, "worker-1", report)
    # The machine comes back (as a supervisor would restart the worker): capacity recovers, while
    # the crashed tasks' recovery stays Airflow's job.
    airflow.start_component("worker-1")
    airflow.wait_log("worker-1", "worker1@", timeout=120)
    report.note("worker-1 restarted")

    # 3. The dead triggerer is the one whose heartbeat stopped; the survivor took its triggers over.
    dead = alive = None
    deadline = time.monotonic() + 60
    while dead is None:
        beats = _triggerer_heartbeats(postgres)
        stale = [job for job, beat in beats.items() if beat < db_now]
        fresh = [job for job, beat in beats.items() if beat >= db_now]
        if len(stale) == 1 and len(fresh) == 1:
            dead, alive = stale[0], fresh[0]
        assert time.monotonic() < deadline, f"triggerer heartbeats: {beats} (killed at {db_now})"
        time.sleep(0.5)
    orphaned = {index for index, owner in owners.items() if owner == dead}
    deadline = time.monotonic() + 120
    while dead not in watch.emptied:
        assert time.monotonic() < deadline, "the surviving triggerer never took the orphaned triggers"
        time.sleep(0.25)
    handover_s = round(watch.emptied[dead] - killed_at, 1)
    report.events.append(
        (
            round(watch.emptied[dead] - report.started, 1),
            f"hand-over complete: the {len(orphaned)} orphaned triggers of triggerer job {dead} are on"
            f" job {alive}, {handover_s} s after the kill",
        )
    )
    print(f"[scaleout] hand-over {handover_s} s after the kill ({len(orphaned)} triggers)", flush=True)

    # 4. The run finishes (about 6 min on two idle cores; on a machine shared with other test runs
    # the generate phase alone took 10 min once, so the deadline leaves room).
    deadline = time.monotonic() + 1200
    while (state := _run_state(postgres)) not in ("success", "failed"):
        assert time.monotonic() < deadline, Counter(
            (ti["task_id"], ti["state"]) for ti in airflow.task_instances(DAG_ID, RUN_ID)
        )
        time.sleep(1)
    wall = report.at()
    report.note(f"run {state}")
    watch.stop()
    own = resource.getrusage(resource.RUSAGE_SELF)
    report.figures["cpu_s"] = {
        **airflow.cpu_seconds(),
        "pytest (emulator, watcher)": round(own.ru_utime + own.ru_stime, 1),
        **{name: session_cpu_seconds(server.proc.pid) for name, server in SERVERS.items() if server.proc},
    }
    report.figures["setup_s"] = {name: round(at - SETUP["begin"], 1) for name, at in SETUP.items()}
    report.figures["phases"] = _phases(postgres)
    report.figures["persist_latency_median_s"] = _persist_latencies(postgres)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "scaleout-timeline.json").write_text(
        json.dumps({"events": sorted(report.events), "figures": report.figures}, indent=2, default=str)
    )

    tis = airflow.task_instances(DAG_ID, RUN_ID)
    states = Counter((ti["task_id"], ti["state"]) for ti in tis)
    assert state == "success", states
    assert states == {
        ("prompts", "success"): 1,
        (GENERATE, "success"): COUNT,
        (PERSIST, "success"): COUNT,
    }

    # Exactly one submission per mapped task, across retries and hand-overs.
    submitted = _submitted(emu)
    assert emu.submissions == {ENDPOINT: COUNT}
    assert sorted(submitted) == list(range(COUNT)) and set(submitted.values()) == {1}
    assert not emu.cancellations

    # Every video persisted, byte for byte what fal produced.
    jobs = {job.request_id: job for job in emu.app.queue.jobs.values()}
    videos = airflow.home / "videos"
    persisted = dict(
        _sql(
            postgres,
            "SELECT map_index, value FROM xcom WHERE dag_id = %s AND run_id = %s AND task_id = %s"
            " AND key = 'return_value'",
            DAG_ID,
            RUN_ID,
            PERSIST,
        )
    )
    assert len(persisted) == COUNT
    for value in persisted.values():
        saved = value if isinstance(value, dict) else json.loads(value)
        job = jobs[saved["request_id"]]
        source = emu.app.storage.get(job.result_body["video"]["url"].split("/cdn/files/", 1)[1])
        path = Path(saved["path"])
        assert path.parent == videos and path.name == f"{job.request_id}.mp4"
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert digest == saved["sha256"] == hashlib.sha256(source.path.read_bytes()).hexdigest()
    assert len(list(videos.glob("*.mp4"))) == COUNT

    # The surviving triggerer ran every orphaned trigger: its log file exists for each of them.
    generate = {ti["map_index"]: ti for ti in tis if ti["task_id"] == GENERATE}
    for index in orphaned:
        survivor_logs = airflow.task_log_files(
            DAG_ID, RUN_ID, GENERATE, f"map_index={index}/*.log.trigger.{alive}.log"
        )
        assert survivor_logs, f"generate[{index}] was not followed by triggerer job {alive}"
        assert generate[index]["try_number"] == 1  # a hand-over is no retry

    # The killed worker's tasks were retried; the ones that had paid reattached instead of submitting.
    assert any(ti["paid"] for ti in killed_tis)
    for killed in killed_tis:
        final = next(
            ti for ti in tis if ti["task_id"] == killed["task_id"] and ti["map_index"] == killed["map_index"]
        )
        assert final["try_number"] == killed["try_number"] + 1, (killed, final)
        if killed["paid"]:
            [retry_log] = airflow.task_log_files(
                DAG_ID,
                RUN_ID,
                GENERATE,
                f"map_index={killed['map_index']}/attempt={final['try_number']}.log",
            )
            text = retry_log.read_text()
            assert "from an earlier try" in text, text[-2000:]
            assert "Submitting to" not in text

    # No task failed of its own: the fal limit and the pool cost no retry. (Tasks the dead worker
    # had taken from the broker but not started show no failure either; they are only re-queued.)
    killed_keys = {(ti["task_id"], ti["map_index"]) for ti in killed_tis}
    retried = {(ti["task_id"], ti["map_index"]): ti["try_number"] for ti in tis if ti["try_number"] > 1}
    assert killed_keys <= set(retried)
    for (task_id, index), tries in retried.items():
        for attempt in range(1, tries):
            for path in airflow.task_log_files(
                DAG_ID, RUN_ID, task_id, f"map_index={index}/attempt={attempt}.log"
            ):
                text = path.read_text()
                assert "Traceback" not in text and "KlingError" not in text, (task_id, index, text[-2000:])

    # The pool kept Airflow's requests at fal to its slots (a killed task's request stays at fal
    # while its retry waits for a slot again); fal queued what its account limit did not run.
    paid_killed = sum(1 for ti in killed_tis if ti["paid"])
    assert watch.peak_in_progress <= FAL_LIMIT
    assert watch.peak_in_flight <= POOL_SLOTS + paid_killed
    assert watch.peak_queued > 0
    positions = [
        line
        for path in airflow.task_log_files(DAG_ID, RUN_ID, GENERATE, "map_index=*/*.log.trigger.*")
        for line in path.read_text().splitlines()
        if "in queue, position" in line
    ]
    assert positions, "no queue position in any trigger log"

    report.figures |= {
        "jobs": COUNT,
        "wall_s": wall,
        "jobs_per_minute": round(COUNT / (wall / 60), 1),
        "handover_s": handover_s,
        "orphaned_triggers": len(orphaned),
        "killed_worker_tasks": [(ti["task_id"], ti["map_index"], ti["paid"]) for ti in killed_tis],
        "retried_tasks": len(retried),
        "submissions": sum(emu.submissions.values()),
        "peak_fal_in_progress": watch.peak_in_progress,
        "peak_fal_queued": watch.peak_queued,
        "peak_fal_in_flight": watch.peak_in_flight,
        "queue_position_lines": len(positions),
        "fal_bound_s": round(COUNT * sum(PROCESSING) / 2 / FAL_LIMIT, 1),
        "fal_utilisation": round(watch.busy_s / wall, 2),
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "scaleout-report.json").write_text(
        json.dumps({"events": sorted(report.events), "figures": report.figures}, indent=2, default=str)
    )
    print(json.dumps(report.figures, indent=2))
