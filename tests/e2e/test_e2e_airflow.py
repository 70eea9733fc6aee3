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
    files.append(ROOT / "tests" / "dags" / "kling_ui.py")  # the UI plugin's pages (Video tab, gallery)
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


# -- the Kling UI plugin: Video tab, gallery, auth, escaping -------------------------------------

UI_FRAME = "document.querySelector('iframe[src*=\\'/kling/ui/\\']')"


def _frame(expression: str) -> str:
    """A JS expression evaluated inside the plugin page Airflow frames (same origin)."""
    return f"(() => {{ const d = {UI_FRAME} && {UI_FRAME}.contentDocument; return d && ({expression}); }})()"


def _wait_frame(browser: Browser, expression: str) -> Any:
    try:
        return browser.wait_for(_frame(expression), timeout=45)
    except TimeoutError as exc:
        frames = browser.evaluate("Array.from(document.querySelectorAll('iframe')).map(f => f.src)")
        inner = browser.evaluate(_frame("d.body && d.body.innerText.slice(0, 1500)"))
        raise AssertionError(f"{exc}\nframes: {frames}\nframe text: {inner!r}") from None


@pytest.fixture(scope="module")
def ui_run(stack, emu):
    emu.reset()
    emu.concurrency, emu.queue_delay, emu.processing_time = 8, 0.0, 0.5
    emu.fail_next(error="Model crashed while sampling", error_type="runner_disconnected", status_code=503)
    stack.wait_dag("kling_ui")
    stack.trigger("kling_ui", "e2e_ui")
    run = stack.wait_run("kling_ui", "e2e_ui", timeout=180)
    states = stack.task_states("kling_ui", "e2e_ui")
    assert states == {
        "fails": "failed",
        "invalid": "failed",
        "generate[0]": "success",
        "generate[1]": "success",
        "persist[0]": "success",
        "persist[1]": "success",
    }, (run, states)
    return "e2e_ui"


def test_ui_pages_refuse_requests_airflow_did_not_authenticate(tmp_path, stack, browser, ui_run):
    """A second api-server with real logins on the main stack's metadata DB (the main one lets
    everyone in as admin): refused without Airflow's token, the pages for a logged-in viewer."""
    import httpx

    passwords = tmp_path / "passwords.json"
    passwords.write_text(json.dumps({"viewer": "viewer-pw"}))
    shared = {k: v for k, v in stack.env.items() if k.startswith(("AIRFLOW", "KLING"))}
    for own in ("AIRFLOW__API__PORT", "AIRFLOW__API__BASE_URL"):
        del shared[own]  # its own port; AIRFLOW_HOME (and so the metadata DB) stays the stack's
    secured = AirflowStack(
        tmp_path / "secured",  # its log files only
        [],
        {
            **shared,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "viewer:viewer",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            # Not the main stack's secret: its cookie (cookies ignore ports) must not count here.
            "AIRFLOW__API_AUTH__JWT_SECRET": "kling-e2e-secured-" + "y" * 64,
        },
    )
    secured.start_component("api-server")
    try:
        secured.wait_healthy(components=["metadatabase"], timeout=120)
        for path in ("/kling/ui/gallery", "/kling/ui/video?dag_id=d&run_id=r&task_id=t&map_index=-1"):
            response = httpx.get(secured.url + path, timeout=30)
            assert response.status_code == 401, (path, response.text)
            assert "<video" not in response.text and "Kling videos" not in response.text
        forged = httpx.get(secured.url + "/kling/ui/gallery", cookies={"_token": "forged"}, timeout=30)
        assert forged.status_code in (401, 403) and "Kling videos" not in forged.text
        main_token = httpx.get(secured.url + "/kling/ui/gallery", cookies={"_token": stack.token}, timeout=30)
        assert main_token.status_code in (401, 403) and "Kling videos" not in main_token.text

        # In a browser without Airflow's cookie: refused; after logging in: the page, with the run.
        browser.send("Network.clearBrowserCookies")
        browser.goto(secured.url + "/kling/ui/gallery")
        browser.wait_text("Not authenticated")
        assert "Kling videos" not in browser.text()
        token = httpx.post(
            secured.url + "/auth/token", json={"username": "viewer", "password": "viewer-pw"}, timeout=30
        ).json()["access_token"]
        browser.set_cookie(secured.url, "_token", token)
        browser.goto(secured.url + "/kling/ui/gallery?dag_id=kling_ui")
        browser.wait_text("Kling videos")
        assert "A lighthouse on a cliff at dawn" in browser.text() and ui_run in browser.text()
    finally:
        secured.stop()
        browser.send("Network.clearBrowserCookies")
        browser.set_cookie(stack.url, "_token", stack.token)


def test_ui_video_tab_plays_the_generated_video(stack, browser, ui_run):
    # The tab's route: the task instance's page + plugin/<url_route>.
    browser.goto(f"{stack.url}/dags/kling_ui/runs/{ui_run}/tasks/generate/mapped/0/plugin/kling-video")
    _wait_frame(browser, "!!d.querySelector('#kling-video')")
    # The player loaded the file's metadata: it knows the clip's length.
    duration = browser.wait_for(
        _frame(
            "(v => v && v.readyState >= 1 && v.duration > 0 && v.duration)(d.querySelector('#kling-video'))"
        ),
        timeout=45,
    )
    assert duration > 0
    text = browser.evaluate(_frame("d.body.innerText"))
    assert "A lighthouse on a cliff at dawn" in text
    assert "fal-ai/kling-video/v1.6/standard/text-to-video" in text and "map index 0" in text
    assert "$0.225 USD" in text and "persist[0]" in text
    assert browser.evaluate(_frame("!!d.querySelector('video[poster]')"))
    time.sleep(0.5)
    browser.screenshot(ARTIFACTS / "ui-kling-video-tab.png")

    # A task that failed at fal shows fal's words instead of an empty player.
    browser.goto(f"{stack.url}/dags/kling_ui/runs/{ui_run}/tasks/fails/plugin/kling-video")
    _wait_frame(browser, "!!d.querySelector('#kling-error')")
    text = browser.evaluate(_frame("d.body.innerText"))
    assert "Model crashed while sampling" in text and not browser.evaluate(
        _frame("!!d.querySelector('video')")
    )
    browser.screenshot(ARTIFACTS / "ui-kling-video-tab-failed.png")


def test_failed_kling_tasks_log_no_xcom_not_found_lines(stack, ui_run):
    """Issue 10 point 6 on the real task logs: tasks that failed before a video existed (at fal,
    after a deferral; and before any submit) resolve their extra links quietly."""
    failed_at_fal = _log_text(stack, "kling_ui", ui_run, "fails")
    assert "Model crashed while sampling" in failed_at_fal  # the real log of the failed try
    invalid = _log_text(stack, "kling_ui", ui_run, "invalid")
    assert "Task failed with exception" in invalid
    for log in (failed_at_fal, invalid):
        assert "XCom not found" not in log
    # The link that has a target still resolves (the dashboard link of the request fal failed).
    links = stack.api.get(f"/dags/kling_ui/dagRuns/{ui_run}/taskInstances/fails/links").json()["extra_links"]
    assert (links.get("fal request") or "").startswith("https://fal.ai/dashboard/requests/"), links
    assert not links.get("Kling video"), links


def test_ui_gallery_lists_videos_with_the_spend_chart(stack, browser, ui_run):
    browser.goto(f"{stack.url}/plugin/kling-videos")
    _wait_frame(browser, "!!d.querySelector('#kling-spend svg')")
    bars = browser.wait_for(_frame("d.querySelectorAll('#kling-spend svg rect.bar').length"))
    assert bars >= 1
    text = browser.evaluate(_frame("d.body.innerText"))
    assert "Kling videos" in text and "kling_ui" in text and "e2e_ui" in text
    assert "A lighthouse on a cliff at dawn" in text
    assert browser.evaluate(_frame("d.querySelectorAll('.card video').length")) >= 2
    browser.wait_for(
        _frame(
            "Array.from(d.querySelectorAll('.card video')).some(v => v.readyState >= 1 && v.duration > 0)"
        ),
        timeout=45,
    )
    # The navigation offers the page by name.
    assert "Kling videos" in browser.text()
    time.sleep(0.5)
    browser.screenshot(ARTIFACTS / "ui-kling-gallery.png")


def test_ui_xss_probe_nothing_from_prompts_or_errors_executes(stack, browser, ui_run):
    pages = {
        "prompt": f"{stack.url}/kling/ui/video?dag_id=kling_ui&run_id={ui_run}&task_id=generate&map_index=1",
        "error": f"{stack.url}/kling/ui/video?dag_id=kling_ui&run_id={ui_run}&task_id=invalid&map_index=-1",
        "gallery": f"{stack.url}/kling/ui/gallery?dag_id=kling_ui",
    }
    for name, url in pages.items():
        browser.goto(url)
        browser.wait_for("document.readyState === 'complete' && !!document.body")
        time.sleep(0.5)  # let an injected onerror fire, if any
        assert browser.evaluate("typeof window.__kling_xss") == "undefined", name
        assert browser.evaluate("document.querySelectorAll('script').length") == 1, name
        assert browser.evaluate("document.querySelectorAll('img[src=x], [onerror]').length") == 0, name
    browser.goto(pages["prompt"])
    browser.wait_for("!!document.querySelector('#kling-prompt')")
    assert "<script>window.__kling_xss = 1</script>" in browser.evaluate(
        "document.querySelector('#kling-prompt').innerText"
    )
    browser.screenshot(ARTIFACTS / "ui-kling-xss-probe.png")


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
