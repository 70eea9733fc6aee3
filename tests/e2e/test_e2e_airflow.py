"""End to end on a real Airflow: api-server, scheduler, dag-processor and triggerer as separate
processes on loopback, the fal emulator in this process, the example DAGs in the dags folder.

One stack for the whole module (about 15 s to start). The tests run in file order and share it:
the batch through the triggerer with its asset-scheduled catalog, a triggerer crash while a job is
deferred, the human review answered through the REST API, and UI checks in headless Chromium.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from airflow_stack import AirflowStack
from chromium import Browser, find_chromium

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "example_dags"
ARTIFACTS = ROOT / "test-artifacts"
FAL_KEY = "e2e-key-id:e2e-key-secret"

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def emu():
    from airflow_provider_kling.emulator import FalEmulator

    # require_key: the components must send the connection's key, and only that one.
    with FalEmulator(processing_time=0.5, queue_delay=0.0, concurrency=8, require_key=FAL_KEY) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def stack(tmp_path_factory, emu):
    home = tmp_path_factory.mktemp("e2e-airflow-home")
    files = [p for p in EXAMPLES.iterdir() if p.suffix in {".py", ".csv", ".png"}]
    airflow = AirflowStack(
        home,
        files,
        {
            "AIRFLOW_CONN_FAL_DEFAULT": emu.connection_json(key=FAL_KEY),
            "KLING_OUTPUT_DIR": str(home / "videos"),
            "KLING_POLL_INTERVAL": "1",
        },
    )
    try:
        airflow.start()
        yield airflow
    finally:
        airflow.stop()


def _log_text(stack: AirflowStack, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str:
    """The task's log as the UI gets it (worker and trigger parts), via the REST API."""
    response = stack.api.get(
        f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/1",
        params={"full_content": True, "map_index": map_index},
        headers={"Accept": "application/json"},
    )
    response.raise_for_status()
    content = response.json()["content"]
    return "\n".join(item.get("event", "") if isinstance(item, dict) else str(item) for item in content)


def test_batch_waits_in_the_triggerer_and_feeds_the_asset_scheduled_catalog(stack, emu):
    # One fal runner for three jobs, each longer than the triggerer takes to start following
    # them: later jobs are still queued when their trigger starts, so positions show in the log.
    # Each job also outlasts the scheduler's handling of the worker's exit after defer(): Airflow
    # 3.3.2 fails a task whose trigger fired before that (seen at 3 s jobs on a loaded machine;
    # real Kling jobs take minutes).
    emu.concurrency, emu.processing_time = 1, 8.0
    emu.reset()
    stack.wait_dag("example_kling_batch")
    stack.wait_dag("example_kling_batch_catalog")
    stack.trigger("example_kling_batch", "e2e_batch")
    run = stack.wait_run("example_kling_batch", "e2e_batch", timeout=180)
    assert run["state"] == "success", stack.task_states("example_kling_batch", "e2e_batch")

    assert emu.submissions == {"fal-ai/kling-video/v1.6/standard/text-to-video": 3}
    saved_paths = set()
    for index in range(3):
        generated = stack.xcom("example_kling_batch", "e2e_batch", "generate", map_index=index)
        video_url = stack.xcom(
            "example_kling_batch", "e2e_batch", "generate", key="video_url", map_index=index
        )
        assert video_url == generated["video_url"]
        assert video_url.startswith(f"{emu.cdn_url}/files/")
        saved = stack.xcom("example_kling_batch", "e2e_batch", "persist", map_index=index)
        path = Path(saved["path"])
        assert path == stack.home / "videos" / "batch" / f"{generated['request_id']}.mp4"
        assert path.stat().st_size == saved["size"] == generated["file_size"]
        assert json.loads(path.with_suffix(".json").read_text())["request_id"] == generated["request_id"]
        saved_paths.add(str(path))

        # The wait ran in the triggerer: its progress lines are in the task's trigger log file.
        trigger_logs = stack.task_log_files(
            "example_kling_batch", "e2e_batch", "generate", f"map_index={index}/*.log.trigger.*"
        )
        assert trigger_logs, f"no trigger log for generate[{index}]"
        trigger_text = "".join(p.read_text() for p in trigger_logs)
        assert f"fal request {generated['request_id']}" in trigger_text
        assert "COMPLETED" in trigger_text
        [worker_log] = stack.task_log_files(
            "example_kling_batch", "e2e_batch", "generate", f"map_index={index}/attempt=1.log"
        )
        assert "COMPLETED (elapsed" not in worker_log.read_text()  # the worker did not poll

    # Queue positions moved while three jobs shared one fal worker.
    logs = "".join(
        _log_text(stack, "example_kling_batch", "e2e_batch", "generate", index) for index in range(3)
    )
    assert "in queue, position 1" in logs or "in queue, position 2" in logs, logs

    # Each saved video emitted an asset event carrying its path.
    [asset] = stack.api.get("/assets", params={"name_pattern": "kling_batch_videos"}).json()["assets"]
    # Airflow 3.3.2 answers this with a 500 while a run the events triggered exists but has not
    # started yet (its start_date None fails the response model): ask again until that run starts.
    deadline = time.monotonic() + 60
    while (
        answer := stack.api.get("/assets/events", params={"asset_id": asset["id"], "limit": 50})
    ).status_code == 500:
        assert time.monotonic() < deadline, answer.text
        time.sleep(1)
    answer.raise_for_status()
    events = answer.json()
    batch_events = [e for e in events["asset_events"] if e["source_run_id"] == "e2e_batch"]
    assert {e["extra"]["path"] for e in batch_events} == saved_paths

    # ... and the catalog DAG scheduled on that asset ran, listing every file.
    deadline = time.monotonic() + 60
    catalog: dict[str, Any] = {}
    while time.monotonic() < deadline and set(catalog.get("paths", ())) != saved_paths:
        for run in stack.runs("example_kling_batch_catalog"):
            if run["state"] == "success" and run["run_type"] == "asset_triggered":
                catalog = stack.xcom("example_kling_batch_catalog", run["dag_run_id"], "catalog")
        time.sleep(1)
    assert set(catalog["paths"]) == saved_paths
    assert catalog["announced"] and set(catalog["announced"]) <= saved_paths


def test_triggerer_crash_while_deferred_does_not_pay_twice(stack, emu):
    emu.reset()
    # The job is held IN_QUEUE until the first triggerer has logged its queue position, however long
    # a loaded machine takes to defer and start the trigger (a fixed delay raced with that).
    emu.concurrency, emu.queue_delay, emu.processing_time = 8, 3600.0, 20.0
    stack.trigger("example_kling_image_to_video", "e2e_restart")
    stack.wait_task_state("example_kling_image_to_video", "e2e_restart", "generate", {"deferred"}, timeout=90)

    def first_trigger_log() -> str:
        files = stack.task_log_files(
            "example_kling_image_to_video", "e2e_restart", "generate", "*.log.trigger.*"
        )
        return "".join(f.read_text(errors="replace") for f in files)

    # Let the first triggerer pick the trigger up and see the queue before it dies.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "in queue, position" not in first_trigger_log():
        time.sleep(0.5)
    assert "in queue, position" in first_trigger_log(), "the triggerer never reported the queued job"

    stack.kill_component("triggerer", signal.SIGKILL)  # a crash: no graceful hand-over
    emu.queue_delay = 0.0  # released: the replacement triggerer follows it through IN_PROGRESS
    assert stack.task_states("example_kling_image_to_video", "e2e_restart")["generate"] == "deferred"
    stack.start_component("triggerer")

    run = stack.wait_run("example_kling_image_to_video", "e2e_restart", timeout=150)
    assert run["state"] == "success", stack.task_states("example_kling_image_to_video", "e2e_restart")
    assert emu.submissions == {"fal-ai/kling-video/v1.6/standard/image-to-video": 1}
    # Two triggerer jobs followed the same request: the killed one and its replacement.
    after = stack.task_log_files("example_kling_image_to_video", "e2e_restart", "generate", "*.log.trigger.*")
    assert len(after) == 2, after
    saved = stack.xcom("example_kling_image_to_video", "e2e_restart", "persist")
    assert Path(saved["path"]).stat().st_size == saved["size"] > 0
    emu.queue_delay, emu.processing_time = 0.0, 0.5


def _review_detail(stack: AirflowStack, run_id: str) -> dict[str, Any]:
    stack.wait_task_state("example_kling_human_review", run_id, "review", {"awaiting_input"}, timeout=120)
    # Answer like a human, not within milliseconds: Airflow 3.3.2 fails the task if the response
    # lands before the scheduler has seen the parked worker exit (its executor event then meets a
    # TI already re-queued by the response). So wait for that event first.
    stack.wait_log(
        "scheduler",
        "Received executor event with state success for task instance TaskInstanceKey("
        f"dag_id='example_kling_human_review', task_id='review', run_id='{run_id}'",
    )
    response = stack.api.get(
        f"/dags/example_kling_human_review/dagRuns/{run_id}/taskInstances/review/-1/hitlDetails"
    )
    response.raise_for_status()
    return response.json()


def test_human_review_answered_through_the_rest_api(stack, emu):
    emu.reset()
    for run_id in ("e2e_review_approve", "e2e_review_reject"):
        stack.trigger("example_kling_human_review", run_id)

    answers = {"e2e_review_approve": "Approve", "e2e_review_reject": "Reject"}
    request_ids: dict[str, str] = {}
    reviewers: dict[str, str] = {}
    for run_id, choice in answers.items():
        detail = _review_detail(stack, run_id)
        generated = stack.xcom("example_kling_human_review", run_id, "generate")
        request_ids[run_id] = generated["request_id"]
        assert detail["options"] == ["Approve", "Reject"]
        assert f"[Watch the video]({generated['video_url']})" in detail["body"]
        # What the reviewer's click in the UI sends.
        response = stack.api.patch(
            f"/dags/example_kling_human_review/dagRuns/{run_id}/taskInstances/review/-1/hitlDetails",
            json={"chosen_options": [choice], "params_input": {}},
        )
        assert response.status_code == 200, response.text
        reviewers[run_id] = response.json()["responded_by"]["name"]

    for run_id in answers:
        assert stack.wait_run("example_kling_human_review", run_id, timeout=120)["state"] == "success"
    approved = stack.task_states("example_kling_human_review", "e2e_review_approve")
    rejected = stack.task_states("example_kling_human_review", "e2e_review_reject")
    assert approved == {"generate": "success", "review": "success", "persist": "success"}
    assert rejected == {"generate": "success", "review": "success", "persist": "skipped"}

    reviewed = stack.home / "videos" / "reviewed"
    assert (reviewed / f"{request_ids['e2e_review_approve']}.mp4").exists()
    assert not (reviewed / f"{request_ids['e2e_review_reject']}.mp4").exists()
    sidecar = json.loads((reviewed / f"{request_ids['e2e_review_approve']}.json").read_text())
    assert sidecar["approved_by"] == reviewers["e2e_review_approve"]  # "Anonymous" with all-admins auth
    assert emu.submissions == {"fal-ai/kling-video/v1.6/standard/text-to-video": 2}


def test_the_fal_key_never_reaches_logs_or_xcom(stack):
    for path in stack.home.rglob("*.log*"):
        assert FAL_KEY not in path.read_text(errors="replace"), path
        assert "e2e-key-secret" not in path.read_text(errors="replace"), path
    xcoms = stack.api.get(
        "/dags/~/dagRuns/~/taskInstances/~/xcomEntries", params={"limit": 1000, "deserialize": True}
    )
    xcoms.raise_for_status()
    assert "e2e-key-secret" not in xcoms.text


# -- UI in a real browser ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(stack):
    binary = find_chromium()
    if binary is None:
        if os.environ.get("KLING_REQUIRE_UI") == "1":
            pytest.fail("KLING_REQUIRE_UI=1 but no chromium binary on PATH (apt-get install -y chromium)")
        pytest.skip("chromium is not installed: UI checks skipped (apt-get install -y chromium)")
    with Browser(binary) as chromium:
        stack.api  # noqa: B018 - fetches the token
        chromium.set_cookie(stack.url, "_token", stack.token)
        yield chromium


def test_ui_connection_form_offers_fal_with_api_key_field(stack, browser):
    meta = {
        item["connection_type"]: item
        for item in stack.api.get(f"{stack.url}/ui/connections/hook_meta").json()
    }
    fal = meta["fal"]
    assert fal["hook_name"] == "fal.ai (Kling)"
    assert fal["standard_fields"]["password"]["title"] == "API Key"
    assert fal["standard_fields"]["login"]["hidden"] is True
    assert {"rest_url", "cdn_url", "request_timeout", "dashboard_url_template"} <= set(fal["extra_fields"])

    browser.goto(f"{stack.url}/connections")
    browser.wait_text("Add Connection")
    browser.evaluate(
        "Array.from(document.querySelectorAll('button')).find(b => b.innerText.includes('Add Connection')).click()"
    )
    browser.wait_for("!!document.querySelector('input[role=combobox]')")
    browser.evaluate("document.querySelector('input[name=connection_id]').focus()")
    browser.type_text("fal_default")
    browser.evaluate("document.querySelector('input[role=combobox]').focus()")
    browser.type_text("fal")
    browser.wait_for(
        "Array.from(document.querySelectorAll('[role=option]')).some(o => o.innerText.includes('fal.ai (Kling)'))"
    )
    browser.press("Enter")
    browser.wait_text("API Key")
    text = browser.text()
    assert "Queue URL" in text
    assert "Login" not in text  # hidden for fal
    time.sleep(0.5)  # let the form settle before the picture
    browser.screenshot(ARTIFACTS / "ui-connection-form-fal.png")


def test_ui_task_page_shows_the_kling_video_link(stack, browser):
    dag_id, run_id = "example_kling_image_to_video", "e2e_restart"
    video_url = stack.xcom(dag_id, run_id, "generate", key="video_url")
    links = stack.api.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/generate/links").json()
    assert links["extra_links"]["Kling video"] == video_url
    assert links["extra_links"]["fal request"]

    # The UI lists a task's extra links on its Details tab.
    browser.goto(f"{stack.url}/dags/{dag_id}/runs/{run_id}/tasks/generate/details")
    browser.wait_text("Kling video")
    href = browser.wait_for(
        "(Array.from(document.querySelectorAll('a')).find(a => a.innerText.trim() === 'Kling video') || {}).href"
    )
    assert href == video_url
    browser.screenshot(ARTIFACTS / "ui-task-kling-video-link.png")


def test_ui_task_log_shows_queue_position_and_progress(stack, browser):
    dag_id, run_id = "example_kling_image_to_video", "e2e_restart"
    request_id = stack.xcom(dag_id, run_id, "generate")["request_id"]
    text = _log_text(stack, dag_id, run_id, "generate")
    assert f"fal request {request_id}: in queue, position" in text
    assert f"fal request {request_id}: IN_PROGRESS" in text

    browser.goto(f"{stack.url}/dags/{dag_id}/runs/{run_id}/tasks/generate")
    browser.wait_text(f"fal request {request_id}", timeout=45)
    assert "in queue, position" in browser.text()
    browser.screenshot(ARTIFACTS / "ui-task-log-progress.png")


def test_clearing_a_succeeded_deferrable_task_reuses_its_video(stack, emu):
    """Runs last (it adds a try to the crash test's run, whose try-1 log the UI test reads): the
    deferrable ``generate`` of the crash test succeeded; clear it and let the
    scheduler run it again. The retry finds the handle execute_complete stored (with the inputs'
    fingerprint) and reuses the video: no new submission."""
    dag_id, run_id = "example_kling_image_to_video", "e2e_restart"
    first = stack.xcom(dag_id, run_id, "generate")
    before = dict(emu.submissions)
    response = stack.api.post(
        f"/dags/{dag_id}/clearTaskInstances",
        json={"dry_run": False, "dag_run_id": run_id, "task_ids": ["generate"], "only_failed": False},
    )
    response.raise_for_status()
    deadline = time.monotonic() + 120
    generate: dict[str, Any] = {}
    while time.monotonic() < deadline:
        generate = next(ti for ti in stack.task_instances(dag_id, run_id) if ti["task_id"] == "generate")
        if generate["try_number"] >= 2 and generate["state"] in ("success", "failed"):
            break
        time.sleep(1)
    assert generate.get("state") == "success", generate
    assert emu.submissions == before  # nothing paid again
    assert stack.xcom(dag_id, run_id, "generate") == first
    [log] = stack.task_log_files(dag_id, run_id, "generate", "attempt=2.log")
    assert f"Reusing the video of fal request {first['request_id']} from an earlier try" in log.read_text()
