"""The UI plugin inside Airflow's own api-server app (``airflow.api_fastapi.app.create_app``, plugins
loaded from the entry point): Video tab, gallery, persisted files, authentication and escaping.

Data comes from a real ``dag.test()`` run of tests/dags/kling_ui.py against the emulator; the
gallery's scale checks copy that run's rows to 1,200+ Kling task instances (tests/ui_data.py).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

pytestmark = pytest.mark.dagtest

FAL_KEY = "ui-key-id:ui-key-secret"
DAG_ID = "kling_ui"


@pytest.fixture(scope="module")
def emu() -> Iterator[Any]:
    from airflow_provider_kling.emulator import FalEmulator

    with FalEmulator(processing_time=0.3, queue_delay=0.0) as emulator:
        old = os.environ.get("AIRFLOW_CONN_FAL_DEFAULT")
        os.environ["AIRFLOW_CONN_FAL_DEFAULT"] = emulator.connection_json(key=FAL_KEY)
        try:
            yield emulator
        finally:
            if old is None:
                os.environ.pop("AIRFLOW_CONN_FAL_DEFAULT", None)
            else:
                os.environ["AIRFLOW_CONN_FAL_DEFAULT"] = old


@pytest.fixture(scope="module")
def run(airflow_db, emu) -> Any:
    from tests.airflow_compat import DagBag

    emu.fail_next(error="Model crashed while sampling", error_type="runner_disconnected", status_code=503)
    path = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / f"{DAG_ID}.py"
    bag = DagBag(dag_folder=str(path))
    assert not bag.import_errors, bag.import_errors
    dr = bag.get_dag(DAG_ID).test()
    states = {(ti.task_id, ti.map_index): ti.state for ti in dr.get_task_instances()}
    assert states == {
        ("fails", -1): "failed",
        ("invalid", -1): "failed",
        ("generate", 0): "success",
        ("generate", 1): "success",
        ("persist", 0): "success",
        ("persist", 1): "success",
    }
    return dr


@pytest.fixture(scope="module")
def client(run) -> Any:
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    app = create_app()
    with TestClient(app) as test_client:
        token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
        test_client.cookies.set("_token", token)
        yield test_client


def _video(client: Any, run: Any, task_id: str, map_index: Any = -1, **kw: Any) -> Any:
    params = {"dag_id": DAG_ID, "run_id": run.run_id, "task_id": task_id, "map_index": map_index}
    return client.get("/kling/ui/video", params=params, **kw)


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_plugin_registers_the_video_tab_and_the_gallery_entry():
    from airflow import plugins_manager

    from airflow_provider_kling.plugins import KlingPlugin

    loaded = plugins_manager.get_plugin_info()
    kling = next(p for p in loaded if p["name"] == "kling")
    views = {v["name"]: v for v in kling["external_views"]}
    assert views["Video"]["destination"] == "task_instance"
    assert views["Video"]["href"].startswith("/kling/ui/video?")
    for placeholder in ("{DAG_ID}", "{RUN_ID}", "{TASK_ID}", "{MAP_INDEX}"):
        assert placeholder in views["Video"]["href"]
    assert views["Kling videos"]["destination"] == "nav"
    assert views["Kling videos"]["href"] == "/kling/ui/gallery"
    assert KlingPlugin.fastapi_apps[0]["url_prefix"] == "/kling"


def test_pages_refuse_requests_airflow_did_not_authenticate(client, run):
    from fastapi.testclient import TestClient

    anonymous = TestClient(client.app)
    params = {"dag_id": DAG_ID, "run_id": run.run_id, "task_id": "persist", "map_index": 0}
    for path in ("/kling/ui/gallery", "/kling/ui/video", "/kling/ui/file", "/kling/ui/poster"):
        response = anonymous.get(path, params=params)
        assert response.status_code == 401, (path, response.text)
        assert "kling" not in response.text.lower() or "detail" in response.text
    forged = anonymous.get("/kling/ui/gallery", headers={"Authorization": "Bearer not-a-jwt"})
    assert forged.status_code in (401, 403)


def test_video_tab_of_a_mapped_task_plays_the_persisted_copy(client, run):
    response = _video(client, run, "generate", 0)
    assert response.status_code == 200
    html = response.text
    text = _text(html)
    assert 'id="kling-video"' in html and "controls" in html
    assert "A lighthouse on a cliff at dawn, waves breaking below" in text
    assert "fal-ai/kling-video/v1.6/standard/text-to-video" in text
    assert "v1.6 / standard" in text and "(text-to-video)" in text
    assert "5 s requested" in text and "$0.225 USD" in text
    # fal's own generation time (status metrics), asked once and remembered for a finished request.
    assert re.search(r"Generation \(fal\) 0\.\d s", text), text
    generate = _xcom(run, "generate", "return_value", 0)
    persisted = _xcom(run, "persist", "return_value", 0)
    assert generate["request_id"] in text and persisted["path"] in text
    assert "map index 0" in text and "/tasks/generate/mapped/0" in html
    # The player loads the saved copy through the plugin; the fal links sit beside it.
    src = re.search(r'<video id="kling-video"[^>]* src="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert src.startswith("/kling/ui/file?") and "task_id=persist" in src and "map_index=0" in src
    assert f'href="{generate["video_url"]}"' in html
    assert "https://fal.ai/dashboard/requests/" + generate["request_id"] in html
    video = client.get(src)
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    assert video.content == Path(persisted["path"]).read_bytes()
    # Seeking works: the player asks for byte ranges.
    part = client.get(src, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == video.content[:100]
    poster = re.search(r'poster="([^"]+)"', html).group(1).replace("&amp;", "&")
    image = client.get(poster)
    assert image.status_code == 200 and image.content[:3] == b"\xff\xd8\xff"  # a JPEG first frame

    # The storage task's own tab shows the same video with what the generating task knew.
    text = _text(_video(client, run, "persist", 1).text)
    assert "A cat on a" in text and "$0.225 USD" in text and "map index 1" in text


def test_video_tab_of_failed_tasks_shows_the_error_instead_of_a_player(client, run):
    # Airflow leaves {MAP_INDEX} unreplaced on unmapped tasks.
    html = _video(client, run, "fails", "{MAP_INDEX}").text
    assert "<video" not in html
    text = _text(html)
    assert "failed" in text and "Model crashed while sampling" in text
    assert "runner_disconnected" in text
    assert _xcom(run, "fails", "request_id") in text
    assert "A storm over the sea" in text

    text = _text(_video(client, run, "invalid").text)
    assert "before anything was sent to fal" in text
    assert "aspect_ratio: must be one of" in text

    # A mapped task asked for without an index offers its indexes.
    html = _video(client, run, "generate", -1).text
    assert "is mapped" in html and "map_index=1" in html
    missing = _video(client, run, "nope")
    assert missing.status_code == 404


def test_prompts_and_error_texts_are_escaped(client, run):
    from tests.dags.kling_ui import XSS_ERROR_VALUE, XSS_PROMPT

    pages = [
        _video(client, run, "generate", 1),
        _video(client, run, "invalid"),
        client.get("/kling/ui/gallery"),
    ]
    for response in pages:
        html = response.text
        assert "<script>window.__kling_xss" not in html
        assert "<img src=x" not in html and "onerror=" not in html.replace("onerror=&#34;", "").replace(
            "onerror=window.__kling_xss=3&gt;", ""
        )
        # Only the page's own script, allowed by hash: no inline script from data could run.
        csp = response.headers["content-security-policy"]
        assert (
            "script-src 'self' 'sha256-" in csp
            and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
        )
        assert len(re.findall(r"<script", html)) == 1
    assert "&lt;script&gt;window.__kling_xss = 1&lt;/script&gt;" in pages[0].text
    assert "A cat on a &#34;mat&#34; &lt;script&gt;" in pages[0].text
    assert XSS_PROMPT not in pages[0].text
    assert "&lt;img src=x onerror=window.__kling_xss=3&gt;" in pages[1].text
    assert XSS_ERROR_VALUE not in pages[1].text


def test_no_key_or_connection_detail_reaches_a_page(client, run, emu):
    pages = [client.get("/kling/ui/gallery").text]
    for task_id, index in (("generate", 0), ("generate", 1), ("persist", 0), ("fails", -1), ("invalid", -1)):
        pages.append(_video(client, run, task_id, index).text)
    for html in pages:
        assert "ui-key-secret" not in html and "ui-key-id" not in html
        assert emu.url + "/rest" not in html and "queue_url" not in html and "fal_default" not in html


def test_a_waiting_task_shows_its_live_queue_position(client, run, emu):
    from airflow_provider_kling.hooks.kling import KlingHook
    from tests.ui_data import clone_runs

    emu.concurrency, emu.processing_time = 1, 60.0
    try:
        hook = KlingHook()
        endpoint = "fal-ai/kling-video/v1.6/standard/text-to-video"
        running = hook.submit(endpoint, {"prompt": "first in line"})
        queued = hook.submit(endpoint, {"prompt": "second in line"})
        [(dag_id, run_id)] = clone_runs(
            DAG_ID, run.run_id, runs=1, dag_ids=[DAG_ID], ti_overrides={"state": "deferred"}
        )
        _set_request_id(dag_id, run_id, "fails", queued.request_id)
        params = {"dag_id": dag_id, "run_id": run_id, "task_id": "fails", "map_index": -1}
        text = _text(client.get("/kling/ui/video", params=params).text)
        assert "queued at fal, position 0" in text or "queued at fal, position 1" in text, text
        _set_request_id(dag_id, run_id, "fails", running.request_id)
        text = _text(client.get("/kling/ui/video", params=params).text)
        assert "in progress at fal" in text, text
        hook.cancel(queued)
        hook.cancel(running)
    finally:
        emu.concurrency, emu.processing_time = 8, 0.3


def test_gallery_pages_filters_and_spend_at_1200_tasks(client, run):
    from tests.ui_data import clone_runs

    statements = _count_statements()
    first = client.get("/kling/ui/gallery")
    assert first.status_code == 200
    few = statements()
    # 200 more runs of 6 Kling tasks (2 DAGs, spread over 30 days): 1,200+ Kling task instances.
    clone_runs(DAG_ID, run.run_id, runs=200, dag_ids=["kling_ui_bulk_a", "kling_ui_bulk_b"], days=30)
    statements = _count_statements()
    html = client.get("/kling/ui/gallery").text
    many = statements()
    assert many == few, "the gallery's query count must not grow with the number of tasks"

    text = _text(html)
    # Each run holds three fal requests (two videos, one failure).
    before = int(_count_line(first.text).split()[0])
    assert _count_line(html) == f"{before + 600} fal requests, page 1 of {(before + 600 + 23) // 24}"
    assert html.count('class="card"') == 24
    assert "kling_ui_bulk_a" in text and "kling_ui_bulk_b" in text
    assert html.count('class="bar"') >= 28  # a bar per DAG and day over 30 days
    spent_before = Decimal(_spend_total(first.text))
    assert Decimal(_spend_total(html)) == spent_before + Decimal("90.00")  # 400 more videos at $0.225

    page_two = client.get("/kling/ui/gallery", params={"page": 2}).text
    assert _count_line(page_two).endswith(f"page 2 of {(before + 600 + 23) // 24}")
    only_a = client.get("/kling/ui/gallery", params={"dag_id": "kling_ui_bulk_a"}).text
    assert _count_line(only_a) == "300 fal requests, page 1 of 13" and "/dags/kling_ui_bulk_b/" not in only_a
    # The newest 8 copied runs, 2 videos and 1 failure each (unfiltered, page 1 also holds whatever
    # other test modules of this xdist worker left in its DB).
    assert only_a.count('class="card"') == 24 and only_a.count("<video ") == 16
    assert _spend_total(only_a) == "45.00"  # 100 runs x 2 videos x $0.225
    failed = client.get("/kling/ui/gallery", params={"status": "failed", "dag_id": "kling_ui_bulk_b"}).text
    assert _count_line(failed) == "100 fal requests, page 1 of 5" and "Model crashed while sampling" in failed
    from datetime import datetime, timedelta, timezone

    today = datetime.now(timezone.utc).date()
    recent = client.get(
        "/kling/ui/gallery", params={"since": str(today - timedelta(days=2)), "until": str(today)}
    )
    count = int(_count_line(recent.text).split()[0])
    assert 0 < count < before + 600
    assert client.get("/kling/ui/gallery", params={"since": "yesterday"}).status_code == 400
    assert client.get("/kling/ui/gallery", params={"status": "weird"}).status_code == 400


def test_amounts_are_shown_to_the_tenth_of_a_cent_so_totals_add_up():
    from airflow_provider_kling.plugins.ui.chart import money

    # 0.900 + 0.450 + 0.225 + 0.450: the total shown must not round to $2.02 beside its parts.
    assert money(Decimal("2.025")) == "$2.025"
    assert money(Decimal("0.225")) == "$0.225" and money(Decimal("0.45")) == "$0.45"
    assert money(Decimal("1234.5")) == "$1,234.50" and money(Decimal(0)) == "$0.00"


def test_users_see_only_the_dags_they_may_read(client, run, monkeypatch):
    from airflow.api_fastapi.app import get_auth_manager

    manager = get_auth_manager()
    original = manager.is_authorized_dag

    def only_bulk_a(*, method, user, access_entity=None, details=None):
        if details is not None and details.id not in (None, "kling_ui_bulk_a"):
            return False
        return original(method=method, user=user, access_entity=access_entity, details=details)

    monkeypatch.setattr(manager, "is_authorized_dag", only_bulk_a)
    html = client.get("/kling/ui/gallery").text
    assert "/dags/kling_ui_bulk_a/" in html
    assert "/dags/kling_ui/" not in html and "kling_ui_bulk_b" not in html
    assert _video(client, run, "generate", 0).status_code == 403
    persist = {"dag_id": DAG_ID, "run_id": run.run_id, "task_id": "persist", "map_index": 0}
    assert client.get("/kling/ui/file", params=persist).status_code == 403


# -- helpers -------------------------------------------------------------------------------------


def _spend_total(html: str) -> str:
    return re.search(r'id="kling-spend-total">\$([0-9.,]+)<', html).group(1).replace(",", "")


def _count_line(html: str) -> str:
    return re.search(r'id="kling-count">([^<]*)<', html).group(1).strip()


def _xcom(run: Any, task_id: str, key: str, map_index: int = -1) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(
                run_id=run.run_id, dag_ids=DAG_ID, task_ids=task_id, map_indexes=map_index, key=key
            )
        ).first()
        return None if row is None else XComModel.deserialize_value(row)


def _set_request_id(dag_id: str, run_id: str, task_id: str, request_id: str) -> None:
    import json

    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import update

    with create_session() as session:
        for key in ("kling_error", "return_value"):
            session.execute(
                XComModel.__table__.delete().where(
                    XComModel.dag_id == dag_id,
                    XComModel.run_id == run_id,
                    XComModel.task_id == task_id,
                    XComModel.key == key,
                )
            )
        session.execute(
            update(XComModel)
            .where(
                XComModel.dag_id == dag_id,
                XComModel.run_id == run_id,
                XComModel.task_id == task_id,
                XComModel.key == "request_id",
            )
            .values(value=json.dumps(request_id))
        )


def _count_statements():
    from airflow import settings

    seen: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    engine = settings.engine
    event.listen(engine, "before_cursor_execute", count)

    def stop() -> int:
        event.remove(engine, "before_cursor_execute", count)
        return len([s for s in seen if s.lstrip().upper().startswith("SELECT")])

    return stop
