"""fal webhooks end to end: a real api-server (the provider's plugin), scheduler, dag-processor and
triggerer; the emulator completes requests and POSTs signed webhooks to the real endpoint.

The tests share one stack and run in file order: JWKS unreachable (before the api-server has ever
fetched keys), the event-driven batch (N submissions -> N consumer runs, no status requests), then
the adversarial table and a second api-server that must refuse replays the first one accepted.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from airflow_stack import BIN, AirflowStack, free_port
from webhook_cases import adversarial, body_for, signed

from airflow_provider_kling.webhooks.registry import Registration, variable_key

ROOT = Path(__file__).resolve().parents[2]
FAL_KEY = "e2e-key-id:e2e-key-secret"
PRODUCER, CONSUMER = "example_kling_webhook_batch", "example_kling_webhook_persist"
ASSET = "kling_webhook_videos"
MAX_BODY = 65536
N = 4

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def emu():
    from airflow_provider_kling.emulator import FalEmulator

    with FalEmulator(processing_time=1.0, queue_delay=0.0, concurrency=8, require_key=FAL_KEY) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def stack(tmp_path_factory, emu):
    home = tmp_path_factory.mktemp("e2e-webhooks-home")
    airflow = AirflowStack(
        home,
        [ROOT / "example_dags" / "example_kling_webhooks.py"],
        {
            "AIRFLOW_CONN_FAL_DEFAULT": emu.connection_json(key=FAL_KEY),
            "KLING_OUTPUT_DIR": str(home / "videos"),
            # The receiver trusts the emulator's keys; everything else is the default.
            "AIRFLOW__KLING__WEBHOOK_JWKS_URL": f"{emu.rest_url}/.well-known/jwks.json",
            "AIRFLOW__KLING__WEBHOOK_JWKS_MIN_REFRESH_INTERVAL": "1",
            "AIRFLOW__KLING__WEBHOOK_MAX_BODY_BYTES": str(MAX_BODY),
        },
    )
    try:
        airflow.start()
        yield airflow
    finally:
        airflow.stop()


def _post(url: str, headers: dict[str, str], body: bytes) -> httpx.Response:
    return httpx.post(f"{url}/kling/webhooks/fal", content=body, headers=headers, timeout=30)


def _asset_id(stack: AirflowStack) -> int:
    assets = stack.api.get("/assets", params={"name_pattern": ASSET}).json()["assets"]
    return next(a["id"] for a in assets if a["name"] == ASSET)


def _events(stack: AirflowStack) -> list[dict[str, Any]]:
    response = stack.api.get("/assets/events", params={"asset_id": _asset_id(stack), "limit": 100})
    response.raise_for_status()
    return response.json()["asset_events"]


def _seen_rows(stack: AirflowStack) -> int:
    with sqlite3.connect(stack.home / "airflow.db") as db:
        try:
            return db.execute("SELECT count(*) FROM kling_webhook_seen").fetchone()[0]
        except sqlite3.OperationalError:  # not created yet: nothing was ever recorded
            return 0


def _register(stack: AirflowStack, request_id: str) -> None:
    """What a webhook-mode submit leaves behind, written through the REST API."""
    registration = Registration(
        request_id=request_id,
        endpoint_id="fal-ai/kling-video/v1.6/standard/text-to-video",
        asset_name=ASSET,
        asset_uri=ASSET,
        dag_id=PRODUCER,
        run_id="adversarial",
        task_id="submit",
        map_index=-1,
        try_number=1,
        submitted_at=time.time(),
    )
    response = stack.api.post(
        "/variables", json={"key": variable_key(request_id), "value": registration.to_json()}
    )
    response.raise_for_status()


def _variable_exists(stack: AirflowStack, request_id: str) -> bool:
    return stack.api.get(f"/variables/{variable_key(request_id)}").status_code == 200


def _ts(value: str | None) -> float:
    assert value is not None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def test_jwks_unreachable_refuses_with_503_and_records_nothing(stack, emu):
    stack.wait_dag(CONSUMER)
    emu.inject("nginx_503", route="jwks", times=None)
    try:
        request_id = str(uuid.uuid4())
        _register(stack, request_id)
        body = body_for(request_id)
        response = _post(stack.url, signed(emu.app.webhooks, request_id, body), body)
        assert response.status_code == 503, response.text
        assert emu.requests["jwks"] == 1
    finally:
        emu.app.faults.clear()
    assert _events(stack) == []
    assert _seen_rows(stack) == 0
    assert _variable_exists(stack, request_id)
    time.sleep(1.2)  # the receiver's refresh interval in this stack


def test_batch_with_webhooks_runs_the_consumer_once_per_video_without_polling(stack, emu):
    stack.wait_dag(PRODUCER)
    before = {run["dag_run_id"] for run in stack.runs(CONSUMER)}
    prompts = [f"Webhook clip {i}: a lantern sways in the wind" for i in range(N)]
    stack.trigger(PRODUCER, "e2e_webhooks", conf={"prompts": prompts})
    run = stack.wait_run(PRODUCER, "e2e_webhooks", timeout=120)
    assert run["state"] == "success", stack.task_states(PRODUCER, "e2e_webhooks")
    submitted = {stack.xcom(PRODUCER, "e2e_webhooks", "submit", map_index=i)["request_id"] for i in range(N)}
    assert len(submitted) == N

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        runs = [r for r in stack.runs(CONSUMER) if r["dag_run_id"] not in before]
        if len(runs) >= N and all(r["state"] in ("success", "failed") for r in runs):
            break
        time.sleep(1)
    runs = [r for r in stack.runs(CONSUMER) if r["dag_run_id"] not in before]
    assert len(runs) == N, runs
    assert all(r["state"] == "success" for r in runs), [
        stack.task_states(CONSUMER, r["dag_run_id"]) for r in runs
    ]
    # One run per video: the receiver keys each event by fal's request id (partitioned asset).
    assert {r["partition_key"] for r in runs} == submitted

    # Zero polling: fal was asked to run the jobs and nothing else.
    assert emu.requests["submit"] == N
    for route in ("status", "status_stream", "result"):
        assert emu.requests[route] == 0, route
    deliveries = [d for d in emu.webhook_deliveries if d["request_id"] in submitted]
    assert {d["request_id"] for d in deliveries if d.get("status_code") == 200} == submitted

    # Each event carries the video and links back to the task instance that paid for it.
    events = {e["extra"]["request_id"]: e for e in _events(stack)}
    assert set(events) == submitted
    for request_id, event in events.items():
        assert event["extra"]["status"] == "OK"
        assert event["extra"]["video_url"].startswith(emu.url)
        assert event["source_dag_id"] == PRODUCER and event["source_task_id"] == "submit"
        assert event["source_run_id"] == "e2e_webhooks"
        saved = Path(stack.home / "videos" / "webhooks" / f"{request_id}.mp4")
        assert saved.stat().st_size > 0
        assert not _variable_exists(stack, request_id)  # routing consumed

    # Latency from the emulator completing a job to the consumer run being queued.
    completed = {d["request_id"]: d["completed_at"] for d in deliveries if d.get("status_code") == 200}
    latencies = sorted(_ts(r["queued_at"]) - completed[r["partition_key"]] for r in runs)
    print(f"\nwebhook latency, completion -> consumer run queued (s): {[round(x, 2) for x in latencies]}")
    assert latencies[-1] < 30

    # fal retrying a delivered completion (newly signed): 200, nothing new.
    request_id = sorted(submitted)[0]
    body = emu.app.webhooks.body_for(emu.app.queue.jobs[request_id])
    retry = _post(stack.url, signed(emu.app.webhooks, request_id, body, timestamp=int(time.time()) + 2), body)
    assert retry.status_code == 200 and retry.json() == {"status": "duplicate"}
    time.sleep(3)  # a scheduler loop or two: no new consumer run
    assert len(_events(stack)) == N
    assert len([r for r in stack.runs(CONSUMER) if r["dag_run_id"] not in before]) == N


def _start_second_api_server(stack: AirflowStack) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**stack.env, "AIRFLOW__API__PORT": str(port)}
    log = (stack.home / "api-server-b.log").open("wb")
    proc = subprocess.Popen(
        [str(BIN / "airflow"), "api-server"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, (stack.home / "api-server-b.log").read_text()[-3000:]
        try:
            if httpx.get(f"{url}/api/v2/monitor/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError("second api-server did not start")


def test_adversarial_table_on_the_real_endpoint_and_replays_across_api_servers(stack, emu):
    delivered = next(d for d in emu.webhook_deliveries if d.get("status_code") == 200)
    body = emu.app.webhooks.body_for(emu.app.queue.jobs[delivered["request_id"]])
    # Byte for byte the delivery fal (the emulator) made and the receiver accepted.
    replay = (
        signed(emu.app.webhooks, delivered["request_id"], body, timestamp=int(delivered["timestamp"])),
        body,
    )

    registered, unknown = str(uuid.uuid4()), str(uuid.uuid4())
    _register(stack, registered)
    events, seen = len(_events(stack)), _seen_rows(stack)
    runs = len(stack.runs(CONSUMER))
    jwks_fetches = emu.requests["jwks"]
    table = []
    for case in adversarial(emu.app.webhooks, registered, unknown, max_body=MAX_BODY, replay_of=replay):
        if case.setup == "jwks_down":
            continue  # sent first, by test_jwks_unreachable_refuses_with_503_and_records_nothing
        response = _post(stack.url, case.headers, case.body)
        table.append((case.name, response.status_code, case.status))
        assert case.body.decode(errors="replace")[:200] not in stack.component_log("api-server", tail=200_000)
    print("\n" + "\n".join(f"{name:40s} {got} (want {want})" for name, got, want in table))
    assert [got for _, got, _ in table] == [want for _, _, want in table], table
    assert len(_events(stack)) == events and _seen_rows(stack) == seen
    assert _variable_exists(stack, registered)
    assert emu.requests["jwks"] - jwks_fetches <= 1  # forgeries never fetch per request

    # A second api-server (fresh process, same metadata DB): the replay is refused there too, and
    # the registered request's real delivery is accepted exactly once across both servers.
    proc, url_b = _start_second_api_server(stack)
    try:
        assert _post(url_b, *replay).status_code == 401
        good_body = body_for(registered, video_url=f"{emu.url}/cdn/files/none/output.mp4")
        good = signed(emu.app.webhooks, registered, good_body)
        first = _post(url_b, good, good_body)
        assert first.status_code == 200 and first.json() == {"status": "recorded"}
        assert _post(stack.url, good, good_body).status_code == 401  # same delivery again: a replay
        retry = signed(emu.app.webhooks, registered, good_body, timestamp=int(time.time()) + 1)
        assert _post(stack.url, retry, good_body).json() == {"status": "duplicate"}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    assert len(_events(stack)) == events + 1
    deadline = time.monotonic() + 60
    while len(stack.runs(CONSUMER)) < runs + 1 and time.monotonic() < deadline:
        time.sleep(1)
    assert len(stack.runs(CONSUMER)) == runs + 1
