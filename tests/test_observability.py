"""Lineage and metrics of a real run (issue 14): one dag.test() in a fresh process.

The process is configured the way a deployment configures a worker: ``[openlineage] transport``
(the OpenLineage provider's file transport) and ``[metrics] statsd_on`` pointing at a UDP StatsD
listener on loopback in this test. A fresh process because both are read once per process (the
OpenLineage plugin's listener and Airflow's ``Stats`` backend), and every other test runs with
OpenLineage disabled.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.test_operator_dags import _xcom

pytestmark = pytest.mark.dagtest

ROOT = Path(__file__).resolve().parent.parent
I2V = "fal-ai/kling-video/v1.6/standard/image-to-video"
T2V = "fal-ai/kling-video/v1.6/standard/text-to-video"
PROMPT = "the cat turns its head"

RUN = """
import json, os, sys
from tests.airflow_compat import DagBag
try:  # Airflow >= 3.2: the task runner initialises Stats from [metrics]; dag.test() does not
    from airflow.sdk.observability import stats
    from airflow.sdk.observability.metrics import stats_utils
    stats.initialize(factory=stats_utils.get_stats_factory(), export_legacy_names=False)
except ImportError:  # Airflow 3.1: Stats configures itself from [metrics] on first use
    pass
bag = DagBag(dag_folder=os.path.join(os.environ["AIRFLOW__CORE__DAGS_FOLDER"], "kling_observability.py"))
dr = bag.get_dag("kling_observability").test(run_conf=json.loads(sys.argv[1]))
states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
# A file, not stdout: Airflow's background threads log to stdout and can land on the same line.
with open(os.environ["KLING_RESULT_FILE"], "w") as fh:
    json.dump({"run_id": dr.run_id, "states": states}, fh)
"""


class StatsdListener:
    """A UDP StatsD server on loopback that keeps every metric line it receives."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65535)
            except OSError:
                continue
            self.lines.extend(data.decode().splitlines())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def metrics(self, prefix: str = "airflow.kling.") -> dict[str, list[tuple[float, str]]]:
        """``{"airflow.kling.submissions": [(1.0, "c"), ...]}`` for lines under ``prefix``."""
        found: dict[str, list[tuple[float, str]]] = {}
        for line in self.lines:
            name, _, rest = line.partition(":")
            if name.startswith(prefix):
                value, _, kind = rest.partition("|")
                found.setdefault(name, []).append((float(value), kind.split("|")[0]))
        return found


@pytest.fixture
def statsd() -> Iterator[StatsdListener]:
    listener = StatsdListener()
    yield listener
    listener.close()


@pytest.fixture(scope="module")
def observed(tmp_path_factory, airflow_db) -> Iterator[dict[str, Any]]:
    """Run the DAG once for every test of this module: events, metric lines, XComs."""
    from airflow_provider_kling.emulator import FalEmulator

    tmp = tmp_path_factory.mktemp("observability")
    image = tmp / "cat.png"
    Image.new("RGB", (640, 360), (10, 120, 200)).save(image)
    events_file = tmp / "openlineage.jsonl"
    result_file = tmp / "result.json"
    listener = StatsdListener()
    # 1 s per job: long enough that the 0.3 s wait of "too_slow" always times out and cancels.
    with FalEmulator(processing_time=1.0, queue_delay=0.0) as emulator:
        env = {
            **os.environ,
            "AIRFLOW_CONN_FAL_DEFAULT": emulator.connection_json(key="test-key-id:test-key-secret"),
            "AIRFLOW__OPENLINEAGE__DISABLED": "False",
            "AIRFLOW__OPENLINEAGE__NAMESPACE": "kling-tests",
            "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
                {"type": "file", "log_file_path": str(events_file), "append": True}
            ),
            "AIRFLOW__METRICS__STATSD_ON": "True",
            "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
            "AIRFLOW__METRICS__STATSD_PORT": str(listener.port),
            "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
            "PYTHONPATH": str(ROOT),
            "KLING_RESULT_FILE": str(result_file),
        }
        conf = {"prompt": PROMPT, "image_path": str(image), "cap": "1.00", "out_dir": str(tmp / "videos")}
        proc = subprocess.run(
            [sys.executable, "-c", RUN, json.dumps(conf)],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=240,
        )
        submissions = dict(emulator.submissions)
        cancellations = dict(getattr(emulator, "cancellations", {}) or {})
    listener.close()
    assert result_file.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(result_file.read_text())
    events = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
    if os.environ.get("KLING_KEEP_EVENTS"):
        Path(os.environ["KLING_KEEP_EVENTS"]).write_text(events_file.read_text())
    yield {
        "result": result,
        "events": events,
        "metrics": listener.metrics(),
        "lines": listener.lines,
        "submissions": submissions,
        "cancellations": cancellations,
        "image": image,
        "log": proc.stdout + proc.stderr,
    }


def _events(observed: dict[str, Any], task_id: str, event_type: str) -> list[dict[str, Any]]:
    return [
        e
        for e in observed["events"]
        if e.get("eventType") == event_type and e["job"]["name"] == f"kling_observability.{task_id}"
    ]


def test_the_run_did_what_the_dag_says(observed) -> None:
    states = observed["result"]["states"]
    assert states == {
        "generate": "success",
        "deferred": "success",
        "persist": "success",
        "too_slow": "failed",
    }
    assert observed["submissions"] == {I2V: 1, T2V: 2}


def test_lineage_of_the_kling_operator(observed) -> None:
    run_id = observed["result"]["run_id"]
    generated = _xcom_in(run_id, "generate")
    (start,) = _events(observed, "generate", "START")
    (complete,) = _events(observed, "generate", "COMPLETE")
    image = observed["image"]
    for event in (start, complete):
        assert [(d["namespace"], d["name"]) for d in event["inputs"]] == [("file", str(image))]
    facet = complete["run"]["facets"]["klingRequest"]
    assert facet["endpointId"] == I2V and facet["requestId"] == generated["request_id"]
    assert (facet["model"], facet["tier"], facet["requestedDuration"]) == ("1.6", "standard", 5)
    assert facet["costEstimateUsd"] == "0.225" and facet["maxCostUsd"] == "1.00"
    assert facet["promptSha256"] == __import__("hashlib").sha256(PROMPT.encode()).hexdigest()
    assert "prompt" not in facet or facet["prompt"] is None  # only the hash by default
    # Nothing this provider adds carries the prompt (Airflow's own facet repeats the run's conf).
    ours = {"inputs": complete["inputs"], "outputs": complete["outputs"], "facets": complete["run"]["facets"]}
    ours["facets"] = {k: v for k, v in ours["facets"].items() if k not in ("airflow", "airflowDagRun")}
    assert PROMPT not in json.dumps(ours)
    external = complete["run"]["facets"]["externalQuery"]
    assert external["externalQueryId"] == generated["request_id"] and external["source"] == "fal.ai"
    (video,) = complete["outputs"]
    assert f"{video['namespace']}{video['name']}" == generated["video_url"].split("?")[0]
    # Before the submit there is no request yet: the START event has the facet without an id.
    assert start["run"]["facets"]["klingRequest"].get("requestId") is None and not start["outputs"]


def test_lineage_of_the_storage_operator_and_the_deferrable_task(observed) -> None:
    run_id = observed["result"]["run_id"]
    saved = _xcom_in(run_id, "persist")
    (complete,) = _events(observed, "persist", "COMPLETE")
    (source,) = complete["inputs"]
    assert f"{source['namespace']}{source['name']}" == saved["source_url"]
    assert [(d["namespace"], d["name"]) for d in complete["outputs"]] == [("file", saved["path"])]
    assert complete["run"]["facets"]["klingRequest"]["requestId"] == saved["request_id"]

    deferred = _xcom_in(run_id, "deferred")
    (done,) = _events(observed, "deferred", "COMPLETE")
    assert done["run"]["facets"]["klingRequest"]["requestId"] == deferred["request_id"]
    assert done["inputs"] == [] and len(done["outputs"]) == 1


def test_metrics_reach_a_statsd_listener(observed) -> None:
    metrics = observed["metrics"]
    assert metrics["airflow.kling.submissions"] == [(1.0, "c")] * 3, observed["lines"]
    assert metrics[f"airflow.kling.submissions.{I2V.replace('/', '_').replace('.', '_')}"] == [(1.0, "c")]
    # 0.225 USD per 5 s clip, rounded up to cents, once per submitted request
    assert metrics["airflow.kling.cost_estimate_cents"] == [(23.0, "c")] * 3
    assert metrics["airflow.kling.cancellations"] == [(1.0, "c")]
    assert metrics["airflow.kling.failures"] == [(1.0, "c")]
    assert metrics["airflow.kling.failures.timeout"] == [(1.0, "c")]
    # the two finished requests: queue wait and generation (fal's inference_time, about 1 s)
    assert [kind for _, kind in metrics["airflow.kling.queue_wait"]] == ["ms", "ms"]
    assert all(900 <= ms <= 30_000 for ms, _ in metrics["airflow.kling.generation"])
    assert len(metrics["airflow.kling.generation"]) == 2


def _xcom_in(run_id: str, task_id: str) -> Any:
    class _Run:
        dag_id = "kling_observability"

    run = _Run()
    run.run_id = run_id  # type: ignore[attr-defined]
    return _xcom(run, task_id)


def test_facets_in_process_include_the_prompt_only_when_asked(emulator, fal_conn) -> None:
    from airflow_provider_kling.operators.kling import KlingVideoOperator
    from tests.test_operator_kling import _context

    op = KlingVideoOperator(
        task_id="t",
        endpoint_id=T2V,
        arguments={"prompt": "a lighthouse"},
        poll_interval=0.05,
        lineage_include_prompt=True,
    )
    start = op.get_openlineage_facets_on_start()
    assert start.inputs == [] and start.outputs == [] and start.run_facets["klingRequest"].requestId is None
    output = op.execute(_context())  # type: ignore[arg-type]
    done = op.get_openlineage_facets_on_complete(None)
    facet = done.run_facets["klingRequest"]
    assert facet.prompt == "a lighthouse" and facet.requestId == output["request_id"]
    assert facet.costEstimateUsd == "0.225" and facet.maxCostUsd is None
    assert [f"{d.namespace}{d.name}" for d in done.outputs] == [output["video_url"]]


def test_datasets_never_carry_secrets_or_inline_data(tmp_path) -> None:
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_kling.lineage import dataset_for, input_datasets

    signed = dataset_for("https://cdn.example.com:8443/a/b.png?X-Amz-Signature=secret#frag")
    assert (signed.namespace, signed.name) == ("https://cdn.example.com:8443", "/a/b.png")
    assert dataset_for("data:image/png;base64,AAAA") is None and dataset_for(b"\x89PNG") is None
    s3 = dataset_for(ObjectStoragePath("s3://bucket/in/cat.png"))
    assert (s3.namespace, s3.name) == ("s3://bucket", "in/cat.png")
    local = dataset_for(ObjectStoragePath(f"file://{tmp_path}/cat.png"))
    assert (local.namespace, local.name) == ("file", f"{tmp_path}/cat.png")
    assert dataset_for(tmp_path / "x.png").name == str(tmp_path / "x.png")
    masks = input_datasets(
        "fal-ai/kling-video/v1/standard/image-to-video",
        {
            "prompt": "p",
            "image_url": "https://e.com/a.png",
            "dynamic_masks": [{"mask_url": "https://e.com/m.png", "trajectories": []}],
        },
    )
    assert [d.name for d in masks] == ["/a.png", "/m.png"]


def test_operators_do_not_import_openlineage_while_a_dag_parses() -> None:
    code = (
        "import sys\n"
        "import airflow_provider_kling.operators.kling, airflow_provider_kling.operators.storage\n"
        "from airflow_provider_kling.operators.kling import KlingTextToVideoOperator\n"
        "KlingTextToVideoOperator(task_id='t', prompt='x', max_cost_usd='{{ params.cap }}')\n"
        # Airflow's providers manager reads every provider's get_provider_info: not ours to avoid.
        "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'openlineage'"
        " or m == 'airflow_provider_kling.lineage' or m.startswith('airflow.providers.openlineage.extractors'))\n"
        "print(bad)\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@contextmanager
def _airflow_stats_to(listener: StatsdListener, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point this process's ``Stats`` at ``listener`` the way a worker configures it from [metrics]."""
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_ON", "True")
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_HOST", "127.0.0.1")
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_PORT", str(listener.port))
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_PREFIX", "airflow")
    try:
        from airflow.sdk.observability import stats
        from airflow.sdk.observability.metrics import stats_utils
    except ImportError:  # Airflow 3.1: a class-level singleton built from [metrics]
        from airflow.metrics.statsd_logger import get_statsd_logger
        from airflow.stats import Stats

        Stats.instance, Stats._instance_pid = get_statsd_logger(Stats), os.getpid()
        try:
            yield
        finally:
            Stats.instance = None
        return
    stats.initialize(factory=stats_utils.get_stats_factory(), export_legacy_names=False)
    try:
        yield
    finally:
        stats.initialize(factory=lambda: stats_utils.NoStatsLogger(), export_legacy_names=False)


def test_reattach_and_refusals_are_counted_once(emulator, fal_conn, statsd, monkeypatch) -> None:
    from airflow_provider_kling.exceptions import KlingCostLimitError
    from airflow_provider_kling.operators.kling import KlingVideoOperator
    from tests.test_operator_kling import DictStateStore, RecordingTI, _context

    store = DictStateStore()
    args = {"prompt": "a lighthouse", "duration": 5}

    def op() -> KlingVideoOperator:
        return KlingVideoOperator(task_id="r", endpoint_id=T2V, arguments=args, poll_interval=0.05)

    with _airflow_stats_to(statsd, monkeypatch):
        first = op().execute(_context(RecordingTI(try_number=1, max_tries=2), store))  # type: ignore[arg-type]
        again = op().execute(_context(RecordingTI(try_number=2, max_tries=2), store))  # type: ignore[arg-type]
        capped = KlingVideoOperator(task_id="c", endpoint_id=T2V, arguments=args, max_cost_usd="0.10")
        with pytest.raises(KlingCostLimitError):
            capped.execute(_context())  # type: ignore[arg-type]
        deadline = time.monotonic() + 5
        while "airflow.kling.failures" not in statsd.metrics() and time.monotonic() < deadline:
            time.sleep(0.02)
    assert again["request_id"] == first["request_id"] and emulator.submissions[T2V] == 1
    metrics = statsd.metrics()
    assert metrics["airflow.kling.submissions"] == [(1.0, "c")]  # the reuse did not count again
    assert metrics["airflow.kling.cost_estimate_cents"] == [(23.0, "c")]
    assert metrics["airflow.kling.reattaches"] == [(1.0, "c")]
    assert metrics["airflow.kling.failures.cost_cap_exceeded"] == [(1.0, "c")]
