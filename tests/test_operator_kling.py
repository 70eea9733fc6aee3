"""KlingVideoOperator without a DB: execute / execute_complete against the fal emulator.

The Airflow runtime around ``execute`` is reduced to the two things the operator touches: a task
instance that records XCom pushes, and a task state store (a dict, like the real one keyed by
task instance). HTTP goes to the emulator for real.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_kling.exceptions import (
    KlingError,
    KlingTimeoutError,
    KlingValidationError,
)
from airflow_provider_kling.operators.kling import KlingVideoOperator
from airflow_provider_kling.triggers.kling import KlingRequestTrigger
from tests.airflow_compat import TaskDeferred

T2V = "fal-ai/kling-video/v1.6/standard/text-to-video"
ARGS = {"prompt": "a lighthouse in a storm", "duration": 5}
SECRET = "test-key-secret"


class RecordingTI:
    """The parts of Airflow's runtime task instance the operator uses."""

    def __init__(self, try_number: int = 1, max_tries: int = 0) -> None:
        self.xcoms: dict[str, Any] = {}
        self.try_number = try_number
        self.max_tries = max_tries
        self.start_date = datetime.now(timezone.utc)
        self.dag_id, self.task_id, self.run_id, self.map_index = "d", "t", "r", -1

    def xcom_push(self, key: str, value: Any) -> None:
        json.dumps(value)  # XCom values must be JSON
        self.xcoms[key] = value


class DictStateStore:
    """Same get/set/delete surface as ``context["task_state_store"]``."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any, **_: Any) -> None:
        self.data[key] = json.loads(json.dumps(value))

    def delete(self, key: str) -> None:
        self.data.pop(key, None)


def _context(ti: RecordingTI | None = None, store: DictStateStore | None = None) -> dict[str, Any]:
    return {"ti": ti or RecordingTI(), "task_state_store": store if store is not None else DictStateStore()}


def _op(**kwargs: Any) -> KlingVideoOperator:
    kwargs.setdefault("task_id", "video")
    kwargs.setdefault("endpoint_id", T2V)
    kwargs.setdefault("arguments", ARGS)
    kwargs.setdefault("poll_interval", 0.05)
    kwargs.setdefault("timeout", 30)
    return KlingVideoOperator(**kwargs)


def test_sync_mode_returns_the_small_dict_and_pushes_xcoms(emulator, fal_conn):
    context = _context()
    output = _op(deferrable=False).execute(context)
    assert set(output) == {
        "request_id",
        "endpoint_id",
        "video_url",
        "content_type",
        "file_name",
        "file_size",
        "duration",
        "cost_estimate",
        "max_cost_usd",
    }
    assert output["max_cost_usd"] is None  # no cap on this task or its connection
    assert output["endpoint_id"] == T2V
    assert output["video_url"].startswith(emulator.cdn_url + "/files/")
    assert output["content_type"] == "video/mp4"
    assert output["duration"] == 5
    assert output["cost_estimate"] == "0.225"  # v1.6 standard: 0.045 USD/s x 5 s
    assert context["ti"].xcoms["request_id"] == output["request_id"]
    assert context["ti"].xcoms["video_url"] == output["video_url"]
    assert context["ti"].xcoms["fal_request_url"].endswith(output["request_id"])
    assert emulator.submissions[T2V] == 1
    assert len(json.dumps(output)) < 1000


def test_bad_input_fails_before_any_network_call(emulator, fal_conn):
    with pytest.raises(KlingValidationError, match="prompt") as info:
        _op(arguments={"prompt": "x" * 2501}).execute(_context())
    assert "2500" in str(info.value)
    assert sum(emulator.requests.values()) == 0


def test_execute_defers_with_json_trigger_kwargs_and_no_key(emulator, fal_conn):
    context = _context()
    op = _op(deferrable=True, timeout=120, poll_interval=2)
    before = time.time()
    with pytest.raises(TaskDeferred) as info:
        op.execute(context)
    deferred = info.value
    assert isinstance(deferred.trigger, KlingRequestTrigger)
    assert deferred.method_name == "execute_complete"
    _classpath, kwargs = deferred.trigger.serialize()
    text = json.dumps(kwargs)
    assert SECRET not in text and SECRET not in json.dumps(deferred.kwargs)
    rid = context["ti"].xcoms["request_id"]  # pushed before deferring
    assert kwargs["request_id"] == rid
    assert kwargs["fal_conn_id"] == "fal_default"
    assert kwargs["poll_interval"] == 2
    assert before + 119 <= kwargs["end_time"] <= time.time() + 120
    # Backstop: the trigger's own timeout event must come first.
    assert timedelta(seconds=180) <= deferred.timeout <= timedelta(seconds=183)
    assert context["task_state_store"].data["kling_request"]["request"]["request_id"] == rid
    assert emulator.submissions[T2V] == 1


def test_execution_timeout_caps_the_trigger_deadline(emulator, fal_conn):
    op = _op(deferrable=True, timeout=3600, execution_timeout=timedelta(seconds=60))
    with pytest.raises(TaskDeferred) as info:
        op.execute(_context())
    assert info.value.trigger.end_time <= time.time() + 60


def _deferred(emulator, **op_kwargs: Any) -> tuple[KlingVideoOperator, dict[str, Any], TaskDeferred]:
    context = _context()
    op = _op(deferrable=True, **op_kwargs)
    with pytest.raises(TaskDeferred) as info:
        op.execute(context)
    return op, context, info.value


def _fresh(op_kwargs: dict[str, Any] | None = None) -> KlingVideoOperator:
    # "The deferred task is a fresh instance": nothing set in execute() survives.
    return _op(deferrable=True, **(op_kwargs or {}))


@pytest.mark.parametrize("event", [None, {"status": "weird", "request_id": "r"}, {"status": "success"}])
def test_execute_complete_rejects_missing_or_unknown_events(event):
    with pytest.raises(KlingError, match=r"event|status"):
        _fresh().execute_complete(_context(), event=event)


def test_execute_complete_success_fetches_the_result_in_the_worker(emulator, fal_conn):
    _, _, deferred = _deferred(emulator)
    rid = deferred.trigger.request_id
    events = _run_trigger(deferred.trigger)
    context = _context()
    output = _fresh().execute_complete(context, event=events[0], **deferred.kwargs)
    assert output["request_id"] == rid
    assert output["video_url"] and context["ti"].xcoms["video_url"] == output["video_url"]
    assert output["cost_estimate"] == "0.225"
    assert emulator.requests["result"] == 1
    assert context["task_state_store"].data["kling_request"]["output"] == output


def test_execute_complete_job_failure_raises_fal_error_text(emulator, fal_conn):
    emulator.fail_next(error="Runner disconnected", error_type="runner_disconnected", status_code=503)
    _, _, deferred = _deferred(emulator)
    events = _run_trigger(deferred.trigger)
    with pytest.raises(KlingError, match="Runner disconnected") as info:
        _fresh().execute_complete(_context(), event=events[0], **deferred.kwargs)
    assert info.value.error_type == "runner_disconnected"


def test_execute_complete_result_time_validation_lists_fal_detail(emulator, fal_conn):
    missing = f"{emulator.cdn_url}/files/nope/missing.png"
    kwargs = {
        "endpoint_id": "fal-ai/kling-video/v1.6/standard/image-to-video",
        "arguments": {"prompt": "p", "image_url": missing},
    }
    _, _, deferred = _deferred(emulator, **kwargs)
    events = _run_trigger(deferred.trigger)
    assert events[0]["status"] == "error" and events[0]["source"] == "job"
    with pytest.raises(KlingValidationError, match="image_url") as info:
        _fresh(kwargs).execute_complete(_context(), event=events[0], **deferred.kwargs)
    assert info.value.errors and info.value.errors[0]["type"] == "file_download_error"


def test_execute_complete_timeout_cancels_and_says_so(emulator, fal_conn):
    emulator.processing_time = 30
    _, _, deferred = _deferred(emulator)
    rid = deferred.trigger.request_id
    event = {"status": "timeout", "request_id": rid, "endpoint_id": T2V, "message": "deadline passed"}
    with pytest.raises(KlingTimeoutError, match="cancellation") as info:
        _fresh().execute_complete(_context(), event=event, **deferred.kwargs)
    assert rid in str(info.value)
    assert emulator.cancellations[rid] == 1


def test_poll_error_on_last_try_cancels_but_a_retry_would_reattach(emulator, fal_conn):
    emulator.processing_time = 30
    _, _, deferred = _deferred(emulator)
    rid = deferred.trigger.request_id
    event = {"status": "error", "request_id": rid, "endpoint_id": T2V, "message": "gave up", "source": "poll"}
    with pytest.raises(KlingError, match="gave up"):
        _fresh().execute_complete(
            _context(RecordingTI(try_number=1, max_tries=2)), event=event, **deferred.kwargs
        )
    assert emulator.cancellations[rid] == 0  # the next try follows the same request
    with pytest.raises(KlingError, match="gave up"):
        _fresh().execute_complete(
            _context(RecordingTI(try_number=3, max_tries=2)), event=event, **deferred.kwargs
        )
    assert emulator.cancellations[rid] == 1


def test_wait_for_completion_false_returns_pending_dict(emulator, fal_conn):
    context = _context()
    output = _op(wait_for_completion=False).execute(context)
    assert output["request_id"] == context["ti"].xcoms["request_id"]
    assert output["video_url"] is None and output["file_size"] is None
    assert output["cost_estimate"] == "0.225"
    assert emulator.requests["status"] == 0 and emulator.requests["result"] == 0


def test_sync_timeout_cancels_the_request(emulator, fal_conn):
    emulator.processing_time = 30
    with pytest.raises(KlingTimeoutError, match="cancel"):
        _op(deferrable=False, timeout=0.5).execute(_context())
    (rid,) = emulator.cancellations
    assert emulator.cancellations[rid] == 1


def test_on_kill_cancels_while_waiting_in_the_worker(emulator, fal_conn):
    emulator.processing_time = 30
    op = _op(deferrable=False, timeout=10)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            op.execute(_context())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 10
    while emulator.requests["status"] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    op.on_kill()
    rid = op._stored.request.request_id
    assert emulator.cancellations[rid] == 1
    thread.join(15)
    assert not thread.is_alive()


def test_template_fields_cover_inputs_and_never_the_key():
    from airflow_provider_kling.operators import kling as mod

    classes = [
        mod.KlingVideoOperator,
        mod.KlingImageToVideoOperator,
        mod.KlingTextToVideoOperator,
        mod.KlingLipSyncOperator,
        mod.KlingVideoEffectsOperator,
    ]
    for cls in classes:
        fields = set(cls.template_fields)
        assert {"endpoint_id", "arguments", "fal_conn_id"} <= fields
        assert not {f for f in fields if any(s in f for s in ("key", "password", "secret", "token"))}
    assert {"prompt", "image", "tail_image", "model", "tier"} <= set(
        mod.KlingImageToVideoOperator.template_fields
    )
    assert {"video", "audio", "text", "voice_id"} <= set(mod.KlingLipSyncOperator.template_fields)


def _run_trigger(trigger: KlingRequestTrigger) -> list[dict[str, Any]]:
    import asyncio

    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(collect())


def test_sync_mode_logs_submit_and_each_state_once(emulator, fal_conn, capsys):
    emulator.queue_delay = 0.2
    capsys.readouterr()
    output = _op(deferrable=False).execute(_context())
    rid = output["request_id"]
    lines = [line for line in capsys.readouterr().out.splitlines() if rid in line]
    assert len([line for line in lines if f"Submitted fal request {rid}" in line]) == 1, lines
    for state in ("in queue, position", ": IN_PROGRESS (elapsed", ": COMPLETED (elapsed"):
        assert len([line for line in lines if state in line]) == 1, (state, lines)
    assert not [line for line in lines if f"fal request {rid} is " in line], lines


def test_sync_timeout_logs_the_cancel_once_and_says_so(emulator, fal_conn, capsys):
    emulator.processing_time = 30
    capsys.readouterr()
    with pytest.raises(KlingTimeoutError) as info:
        _op(deferrable=False, timeout=0.5).execute(_context())
    (rid,) = emulator.cancellations
    assert f"cancellation of fal request {rid} requested (CANCELLATION_REQUESTED)" in str(info.value)
    out = capsys.readouterr().out
    assert len([line for line in out.splitlines() if rid in line and "CANCELLATION_REQUESTED" in line]) == 1


def test_airflow_backstop_timeout_cancels_the_request(emulator, fal_conn):
    # The triggerer never delivered an event: Airflow resumes the task with "__fail__" instead.
    from airflow.sdk.bases.operator import TriggerFailureReason

    from airflow_provider_kling.operators._video import TaskDeferralTimeout  # where this Airflow has it

    emulator.processing_time = 30
    _, context, deferred = _deferred(emulator)
    rid = deferred.trigger.request_id
    failure = {"error": TriggerFailureReason.TRIGGER_TIMEOUT}
    with pytest.raises(TaskDeferralTimeout):
        _fresh().resume_execution("__fail__", failure, context)
    assert emulator.cancellations[rid] == 1
