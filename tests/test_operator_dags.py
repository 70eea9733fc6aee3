"""The Kling tasks inside real Airflow (dag.test(): triggers inline, serialization included).

Each DAG run exercises several scenarios at once to keep the number of (slow) runs small.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.dagtest

T2V = "fal-ai/kling-video/v1.6/standard/text-to-video"


def _dag(dag_id: str):
    from tests.airflow_compat import DagBag

    path = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / f"{dag_id}.py"
    bag = DagBag(dag_folder=str(path))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag(dag_id)


def _states(dr) -> dict[str, str]:
    return {
        (ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"): ti.state
        for ti in dr.get_task_instances()
    }


def _xcom(dr, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(
                run_id=dr.run_id, dag_ids=dr.dag_id, task_ids=task_id, map_indexes=map_index, key=key
            )
        ).first()
        return None if row is None else XComModel.deserialize_value(row)


@pytest.fixture
def image_path(tmp_path) -> str:
    from PIL import Image

    path = tmp_path / "cat.png"
    Image.new("RGB", (320, 320), (200, 120, 40)).save(path)
    return str(path)


def test_happy_paths_sync_deferred_sensors_mapping_assets_links(
    airflow_db, emulator, fal_conn, image_path, capsys
):
    dr = _dag("kling_modes").test(run_conf={"image_path": image_path, "beach": "a black sand beach"})
    states = _states(dr)
    assert dr.state == "success", states
    assert set(states.values()) == {"success"}

    # sync operator: small dict, XComs, links, asset event extra
    sync = _xcom(dr, "sync_t2v")
    assert sync["endpoint_id"] == T2V and sync["video_url"].startswith(emulator.cdn_url)
    assert _xcom(dr, "sync_t2v", "request_id") == sync["request_id"]
    assert _xcom(dr, "sync_t2v", "video_url") == sync["video_url"]
    assert _xcom(dr, "sync_t2v", "_link_KlingVideoLink") == sync["video_url"]
    assert _xcom(dr, "sync_t2v", "_link_FalRequestLink") == _xcom(dr, "sync_t2v", "fal_request_url")
    assert sync["request_id"] in _xcom(dr, "sync_t2v", "fal_request_url")
    assert _asset_extra(dr, "kling_fox_video") == {
        "video_url": sync["video_url"],
        "request_id": sync["request_id"],
        "endpoint_id": T2V,
    }
    # dag.test() sends task (and inline trigger) logs to stdout
    log = capsys.readouterr().out
    assert f"Submitting to {T2V}; estimated cost 0.225 USD" in log
    assert "IN_PROGRESS (elapsed" in log and "Generating video: step" in log

    # deferrable operator: local image uploaded, v2.6 field names, trigger ran inline
    deferred = _xcom(dr, "deferred_i2v")
    assert deferred["endpoint_id"] == "fal-ai/kling-video/v2.6/pro/image-to-video"
    assert deferred["video_url"] and deferred["content_type"] == "video/mp4"
    assert emulator.requests["cdn_upload"] + emulator.requests["storage_initiate"] >= 1
    assert _xcom(dr, "deferred_i2v", "_link_KlingVideoLink") == deferred["video_url"]

    # wait_for_completion=False + both sensor modes on the same request
    submitted = _xcom(dr, "submit")
    assert submitted["video_url"] is None and submitted["request_id"]
    for sensor in ("sense", "sense_deferred"):
        sensed = _xcom(dr, sensor)
        assert sensed["request_id"] == submitted["request_id"]
        assert sensed["video_url"] and _xcom(dr, sensor, "video_url") == sensed["video_url"]

    # dynamic task mapping: three requests, three videos
    mapped = [_xcom(dr, "mapped", map_index=i) for i in range(3)]
    assert len({m["request_id"] for m in mapped}) == 3
    assert _xcom(dr, "collect") == [m["video_url"] for m in mapped]

    # one submission per task: sync, deferred, submit, 3 mapped
    assert sum(emulator.submissions.values()) == 6


def _asset_extra(dr, name: str) -> dict[str, Any] | None:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        event = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name == name, AssetEvent.source_run_id == dr.run_id)
        ).first()
        return None if event is None else dict(event.extra)


def test_failures_carry_fal_error_text_and_timeouts_cancel(airflow_db, emulator, fal_conn, capsys):
    emulator.fail_next(
        error="Runner disconnected", error_type="runner_disconnected", status_code=503, times=2
    )
    emulator.processing_time = 2.0
    missing = f"{emulator.cdn_url}/files/nope/missing.png"
    dr = _dag("kling_failures").test(run_conf={"missing_image_url": missing})
    states = _states(dr)
    assert dr.state == "failed"
    assert set(states.values()) == {"failed"}, states
    log = capsys.readouterr().out

    # fal's own error text, in both modes
    assert log.count("Runner disconnected") >= 2
    assert "KlingRequestFailedError" in log
    # a 422 at result time names the field and fal's error type
    assert "KlingValidationError" in log and "image_url" in log and "file_download_error" in log
    assert sum(emulator.submissions.values()) == 3
    # No video, no link, and no error line about it (the extra links resolve quietly).
    assert "XCom not found" not in log
    assert _xcom(dr, "job_fails", "_link_KlingVideoLink") == ""
    assert _xcom(dr, "job_fails", "_link_FalRequestLink") == _xcom(dr, "job_fails", "fal_request_url")
    # Why each task failed is kept for the UI's Video tab: fal's words, its error type.
    error = _xcom(dr, "job_fails_sync", "kling_error")
    assert "Runner disconnected" in error["message"] and error["error_type"] == "runner_disconnected"
    assert error["request_id"] == _xcom(dr, "job_fails_sync", "request_id")
    assert _xcom(dr, "job_fails", "kling_request")["prompt"] == "a storm"

    # execution_timeout while deferred: the trigger's timeout event, then a cancel. The job never
    # finishes on its own (it used to take 2 s, and a slow resume, e.g. Airflow 3.1's dag.test
    # rebuilding its in-process API for every task run, let it complete before the cancel).
    emulator.processing_time = 3600
    dr = _dag("kling_deadline").test()
    assert _states(dr) == {"too_slow": "failed"}
    log = capsys.readouterr().out
    slow_id = _xcom(dr, "too_slow", "request_id")
    assert slow_id is not None, "too_slow never recorded its request (did execute outlive its timeout?)"
    assert emulator.cancellations[slow_id] == 1
    assert f"cancellation of fal request {slow_id} requested (CANCELLATION_REQUESTED)" in log
    assert "KlingTimeoutError" in log
    # nothing was submitted twice
    assert sum(emulator.submissions.values()) == 4
    assert "XCom not found" not in log  # the timed-out task has no video either


def test_both_modes_return_the_same_url_sources_keep_both_videos_and_a_clear_never_pays_again(
    airflow_db, emulator, fal_conn, tmp_path
):
    from datetime import datetime, timezone

    from airflow_provider_kling.version_compat import AIRFLOW_V_3_3_PLUS

    dag = _dag("kling_integrity")
    folder = tmp_path / "videos"
    conf = {"folder": f"{folder}/"}
    days = [datetime(2026, 3, day, tzinfo=timezone.utc) for day in (1, 2)]
    runs = [dag.test(logical_date=day, run_conf=conf) for day in days]
    for dr in runs:
        assert dr.state == "success", _states(dr)
    assert sum(emulator.submissions.values()) == 4

    differs = {"request_id", "video_url"}
    deferred_outputs = []
    for dr in runs:
        sync, deferred = _xcom(dr, "sync_t2v"), _xcom(dr, "deferred_t2v")
        # The same inputs give the same return value in both modes (not None under dag.test()).
        assert {k: v for k, v in deferred.items() if k not in differs} == {
            k: v for k, v in sync.items() if k not in differs
        }
        assert (deferred["duration"], deferred["cost_estimate"]) == (5, "0.225")
        # The bare URL source got its request id from the task it came from: one file per video.
        saved = _xcom(dr, "persist")
        assert saved["request_id"] == deferred["request_id"]
        assert saved["path"].endswith(f"/{deferred['request_id']}.mp4")
        deferred_outputs.append(deferred)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"{d['request_id']}.mp4" for d in deferred_outputs
    )

    # Clear the first run's tasks and run them again (dag.test() itself would replace the run).
    cleared = _clear_and_rerun(dag, runs[0].run_id)
    assert cleared.state == "success", _states(cleared)
    if AIRFLOW_V_3_3_PLUS:
        # The task state store kept both tasks' handles with their outputs: nothing is paid again.
        assert sum(emulator.submissions.values()) == 4
        assert _xcom(cleared, "deferred_t2v") == deferred_outputs[0]
    else:
        # Airflow < 3.3 keeps the handle in a Variable deleted on success: a clear generates anew.
        assert sum(emulator.submissions.values()) == 6


def _clear_and_rerun(dag, run_id: str) -> Any:
    """What ``airflow tasks clear`` and the scheduler do to a finished run: the same run (and its
    task state store rows) runs its cleared tasks again, through dag.test()'s own task runner."""
    import time

    from airflow import settings
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import clear_task_instances
    from airflow.sdk.definitions.dag import _run_task
    from airflow.utils.state import DagRunState, TaskInstanceState
    from sqlalchemy import select

    from tests.airflow_compat import DagSerialization

    session = settings.Session()
    run = session.scalars(select(DagRun).where(DagRun.dag_id == dag.dag_id, DagRun.run_id == run_id)).one()
    clear_task_instances(
        list(run.get_task_instances(session=session)), session, dag_run_state=DagRunState.RUNNING
    )
    session.commit()
    run.dag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    deadline = time.monotonic() + 120
    while run.state == DagRunState.RUNNING and time.monotonic() < deadline:
        session.expire_all()
        schedulable, _ = run.update_state(session=session)
        for ti in schedulable:
            ti.try_number += 1
            ti.state = TaskInstanceState.SCHEDULED
        session.commit()
        scheduled = [
            ti for ti in run.get_task_instances(session=session) if ti.state == TaskInstanceState.SCHEDULED
        ]
        for ti in scheduled:
            _run_task(ti=ti, task=dag.task_dict[ti.task_id], run_triggerer=True)
        if not scheduled:
            time.sleep(0.2)
    return run
