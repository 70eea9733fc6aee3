"""Never pay twice, the hard way: SIGKILL the worker right after submit, then run the retry.

Try 1 runs in a subprocess (``dag.test()``: a real task runner, real execution API, real task
state store) and is SIGKILLed as soon as its fal request handle is durable. The test then does
what the scheduler does when a worker vanishes (heartbeat timeout → ``handle_failure`` →
UP_FOR_RETRY) and runs the scheduling loop ``dag.test()`` uses, without clearing the run, so try 2
is a genuine new try of the same task instance. The emulator must have seen exactly one submit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_kling.version_compat import AIRFLOW_V_3_3_PLUS

pytestmark = pytest.mark.dagtest

TRY_ONE = r"""
import sys
from datetime import datetime
try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:  # Airflow 3.1
    from airflow.models.dagbag import DagBag

path, dag_id, logical_date = sys.argv[1:4]
DagBag(dag_folder=path).get_dag(dag_id).test(logical_date=datetime.fromisoformat(logical_date))
"""


def _dag_file() -> Path:
    return Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / "kling_reattach.py"


def _stored_handle(dag_id: str) -> dict[str, Any] | None:
    """The reattach handle try 1 wrote: task state store row (3.3+), or the Variable (3.1/3.2 path)."""
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        if AIRFLOW_V_3_3_PLUS:  # the task state store table exists from 3.3 on
            from airflow.models.task_state_store import TaskStateStoreModel

            row = session.scalars(
                select(TaskStateStoreModel).where(
                    TaskStateStoreModel.dag_id == dag_id,
                    TaskStateStoreModel.task_id == "video",
                    TaskStateStoreModel.key == "kling_request",
                )
            ).first()
            if row is not None:
                return json.loads(row.value) if isinstance(row.value, str) else row.value
        var = session.scalars(
            select(Variable).where(Variable.key.like(f"kling_reattach__{dag_id}__video__%"))
        ).first()
        return None if var is None else json.loads(var.val)


def _variable_count(dag_id: str) -> int:
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        return session.scalar(
            select(func.count())
            .select_from(Variable)
            .where(Variable.key.like(f"kling_reattach__{dag_id}__%"))
        )


def _forget_runs(dag_id: str) -> None:
    """Start from no run of ``dag_id`` (tests share one metadata DB and look their run up by DAG)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        for run in session.scalars(select(DagRun).where(DagRun.dag_id == dag_id)):
            session.delete(run)


def _fail_like_the_scheduler(dag_id: str) -> None:
    """The worker is gone: mark try 1 failed the way heartbeat-timeout handling does (→ UP_FOR_RETRY)."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    with create_session() as session:
        run = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id)).one()
        ti = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == dag_id,
                TaskInstance.run_id == run.run_id,
                TaskInstance.task_id == "video",
            )
        ).one()
        assert ti.state == TaskInstanceState.RUNNING and ti.try_number == 1
        ti.handle_failure("Task did not emit heartbeat within time limit (worker SIGKILLed)", session=session)
        assert ti.state == TaskInstanceState.UP_FOR_RETRY


def _resume_run(dag) -> Any:
    """The scheduling loop of ``dag.test()`` minus its initial clear: runs the retry for real."""
    from airflow import settings
    from airflow.models.dagrun import DagRun
    from airflow.sdk.definitions.dag import _run_task
    from airflow.utils.state import DagRunState, TaskInstanceState
    from sqlalchemy import select

    from tests.airflow_compat import DagSerialization

    session = settings.Session()
    run = session.scalars(select(DagRun).where(DagRun.dag_id == dag.dag_id)).one()
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


def _try_one_until_submitted(dag_id: str, log_path: Path) -> dict[str, Any]:
    from airflow.configuration import conf

    logical_date = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    # Like every component of one deployment, the "worker" must share this process's Fernet key
    # (this process may have loaded its config before `airflow db migrate` wrote airflow.cfg).
    env = {**os.environ, "AIRFLOW__CORE__FERNET_KEY": conf.get("core", "fernet_key")}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", TRY_ONE, str(_dag_file()), dag_id, logical_date],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 90
            # The in-flight marker comes first; the request handle replaces it once submit answered.
            while (handle := _stored_handle(dag_id)) is None or "request" not in handle:
                assert proc.poll() is None, f"try 1 ended on its own:\n{log_path.read_text()[-3000:]}"
                assert time.monotonic() < deadline, "try 1 never submitted"
                time.sleep(0.02)
            os.killpg(proc.pid, signal.SIGKILL)  # the worker dies right after submit
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    return handle


@pytest.mark.parametrize(
    ("dag_id", "store"),
    [
        # Before 3.3 there is no task state store: both DAGs go through the Variable.
        ("kling_reattach_sync", "task_state_store" if AIRFLOW_V_3_3_PLUS else "variable"),
        ("kling_reattach_deferred", "variable"),
    ],
)
def test_sigkill_after_submit_then_retry_follows_the_same_request(
    airflow_db, emulator, fal_conn, tmp_path, capsys, dag_id, store
):
    from tests.airflow_compat import DagBag

    # Still running when try 2 starts, so it must reattach. Generous: on a loaded CI machine the
    # retry's task runner alone can take several seconds to start.
    _forget_runs(dag_id)
    emulator.processing_time = 8.0
    handle = _try_one_until_submitted(dag_id, tmp_path / "try1.log")
    request_id = handle["request"]["request_id"]
    assert sum(emulator.submissions.values()) == 1
    assert "key" not in json.dumps(handle).lower()
    assert emulator.job_state(request_id) in ("IN_QUEUE", "IN_PROGRESS")

    _fail_like_the_scheduler(dag_id)
    capsys.readouterr()
    dag = DagBag(dag_folder=str(_dag_file())).get_dag(dag_id)
    run = _resume_run(dag)

    (ti,) = run.get_task_instances()
    assert run.state == "success" and ti.state == "success"
    assert ti.try_number == 2
    output = _xcom(run, "return_value")
    assert output["request_id"] == request_id and output["video_url"]
    assert sum(emulator.submissions.values()) == 1  # never paid twice
    assert emulator.cancellations[request_id] == 0
    assert f"Reattaching to fal request {request_id} from an earlier try" in capsys.readouterr().out
    if store == "task_state_store":
        assert _stored_handle(dag_id)["output"] == output  # kept for a later clear of the task
    else:
        assert _variable_count(dag_id) == 0  # the Variable is cleaned up on success


@pytest.mark.parametrize(
    "dag_id",
    [
        "kling_reattach_sync",  # task state store on 3.3+, Variable before
        "kling_reattach_deferred",  # Variable
    ],
)
def test_sigkill_while_the_submit_is_in_flight_then_retry_does_not_pay_again(
    airflow_db, emulator, fal_conn, tmp_path, capsys, dag_id
):
    """The worker dies after the submit POST left and before its answer came back: fal creates the
    (paid) job anyway, and the retry has no request id. It must not submit a second time."""
    from airflow.configuration import conf

    from tests.airflow_compat import DagBag

    _forget_runs(dag_id)
    emulator.processing_time = 0.5
    emulator.inject("slow", route="submit", delay=3.0)  # the answer is on its way when the worker dies
    logical_date = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    env = {**os.environ, "AIRFLOW__CORE__FERNET_KEY": conf.get("core", "fernet_key")}
    log_path = tmp_path / "try1.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", TRY_ONE, str(_dag_file()), dag_id, logical_date],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 90
            while emulator.requests["submit"] == 0:
                assert proc.poll() is None, f"try 1 ended on its own:\n{log_path.read_text()[-3000:]}"
                assert time.monotonic() < deadline, "try 1 never submitted"
                time.sleep(0.02)
            os.killpg(proc.pid, signal.SIGKILL)  # the POST has reached fal; its answer has not come back
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    marker = _stored_handle(dag_id)
    assert marker is not None and "request" not in marker and marker["submit_in_flight"]["try_number"] == 1
    deadline = time.monotonic() + 10
    while sum(emulator.submissions.values()) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sum(emulator.submissions.values()) == 1  # fal created the job: it is paid for

    _fail_like_the_scheduler(dag_id)
    capsys.readouterr()
    run = _resume_run(DagBag(dag_folder=str(_dag_file())).get_dag(dag_id))

    (ti,) = run.get_task_instances()
    assert run.state == "failed" and ti.state == "failed" and ti.try_number == 2
    assert sum(emulator.submissions.values()) == 1 and emulator.requests["submit"] == 1  # never paid twice
    log = capsys.readouterr().out
    assert "may have created a paid fal job: try 1 sent a submit to" in log
    assert "Not submitting again, to avoid paying twice" in log and "resubmit_if_uncertain=True" in log


def test_sigkill_while_the_trigger_runs_inline_then_resume_follows_again(
    airflow_db, emulator, fal_conn, tmp_path, capsys
):
    """``dag.test()`` / ``airflow dags test`` run the trigger inline, in the process that ran the task.
    Killed there, the task instance is left QUEUED with ``next_method=execute_complete`` and only the
    deferral kwargs: whatever resumes it calls ``execute_complete`` without a trigger event. That used to
    fail the task without submitting and with no useful reason ("no usable event"); it must follow the
    request again instead."""
    from airflow.configuration import conf
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    from tests.airflow_compat import DagBag

    dag_id = "kling_reattach_deferred"
    _forget_runs(dag_id)
    emulator.processing_time = 4.0
    logical_date = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    env = {**os.environ, "AIRFLOW__CORE__FERNET_KEY": conf.get("core", "fernet_key")}
    log_path = tmp_path / "try1.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", TRY_ONE, str(_dag_file()), dag_id, logical_date],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 90
            while emulator.requests["status_stream"] + emulator.requests["status"] == 0:
                assert proc.poll() is None, f"try 1 ended on its own:\n{log_path.read_text()[-3000:]}"
                assert time.monotonic() < deadline, "the trigger never started"
                time.sleep(0.02)
            os.killpg(proc.pid, signal.SIGKILL)  # the inline trigger dies with the process
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    with create_session() as session:
        run = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id)).one()
        ti = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run.run_id)
        ).one()
        assert ti.state == TaskInstanceState.QUEUED and ti.next_method == "execute_complete"
        assert "event" not in (ti.next_kwargs or {})
        ti.state = TaskInstanceState.SCHEDULED  # resumed as it stands, like a scheduler would

    capsys.readouterr()
    run = _resume_run(DagBag(dag_folder=str(_dag_file())).get_dag(dag_id))
    (ti,) = run.get_task_instances()
    assert run.state == "success" and ti.state == "success"
    assert sum(emulator.submissions.values()) == 1
    assert "Resumed without a trigger event" in capsys.readouterr().out


def _xcom(run, key: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(
                run_id=run.run_id, dag_ids=run.dag_id, task_ids="video", map_indexes=-1, key=key
            )
        ).first()
        return None if row is None else XComModel.deserialize_value(row)


def test_submit_only_success_leaves_no_variable_behind(airflow_db, emulator, fal_conn):
    """Airflow 3.1/3.2 store: a task that only submits succeeds at once, so its Variable must go too."""
    from tests.airflow_compat import DagBag

    dag_id = "kling_submit_only_variable"
    run = DagBag(dag_folder=str(_dag_file())).get_dag(dag_id).test()
    assert run.state == "success"
    assert _xcom(run, "return_value")["video_url"] is None
    assert sum(emulator.submissions.values()) == 1
    assert _variable_count(dag_id) == 0
