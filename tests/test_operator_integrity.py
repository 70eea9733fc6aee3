"""A failed task never leaves a paid job orphaned; a resumed deferrable task stores the same handle
(and returns the same value) as a sync one. No DB: the runtime is the small stand-in of
tests/test_operator_kling.py, fal is the emulator, faults are the emulator's own.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from airflow_provider_kling.exceptions import KlingError, KlingServerError
from airflow_provider_kling.hooks.kling import KlingHook
from airflow_provider_kling.lifecycle.reattach import STATE_KEY
from airflow_provider_kling.protocol.retry import RetryPolicy
from tests.airflow_compat import TaskDeferred
from tests.test_operator_kling import T2V, DictStateStore, RecordingTI, _op, _run_trigger

FAST_RETRIES = RetryPolicy(max_attempts=2, initial_delay=0.01, max_delay=0.02, max_total=1.0, jitter=0.0)


def _fast(op):
    op.hook = KlingHook("fal_default", retry_policy=FAST_RETRIES)  # the real hook, short back-off
    return op


def _ctx(try_number: int, max_tries: int, store: DictStateStore | None = None) -> dict[str, Any]:
    return {
        "ti": RecordingTI(try_number=try_number, max_tries=max_tries),
        "task_state_store": store if store is not None else DictStateStore(),
    }


# -- 9.1: a task that fails for good cancels; one that will be retried leaves it to the retry ---------


def test_sync_task_failing_for_good_cancels_its_running_request_and_logs_it(emulator, fal_conn, capsys):
    emulator.processing_time = 30
    emulator.inject("malformed_json", route="status", times=None)
    context = _ctx(try_number=1, max_tries=0)
    with pytest.raises(KlingServerError):
        _fast(_op(deferrable=False)).execute(context)
    rid = context["ti"].xcoms["request_id"]
    assert emulator.cancellations[rid] == 1
    deadline = time.monotonic() + 10  # fal stops a running job shortly after the cancel
    while emulator.job_state(rid) != "COMPLETED" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert emulator.job_state(rid) == "COMPLETED"
    log = capsys.readouterr().out
    assert f"fails for good while fal request {rid} may still run; cancelling it" in log
    assert f"Cancellation of fal request {rid} after the failure: CANCELLATION_REQUESTED" in log


def test_sync_task_with_a_retry_coming_leaves_the_request_for_the_retry(emulator, fal_conn, capsys):
    emulator.processing_time = 1.0
    # Status reads are retried: garbage on every attempt of the first poll makes it fail.
    emulator.inject("malformed_json", route="status", times=FAST_RETRIES.max_attempts)
    store = DictStateStore()
    first = _ctx(try_number=1, max_tries=1, store=store)
    with pytest.raises(KlingServerError):
        _fast(_op(deferrable=False)).execute(first)
    rid = first["ti"].xcoms["request_id"]
    assert emulator.cancellations[rid] == 0
    assert "the next try follows it" in capsys.readouterr().out
    # The retry reattaches to the same request: one submission, one video.
    output = _fast(_op(deferrable=False)).execute(_ctx(try_number=2, max_tries=1, store=store))
    assert output["request_id"] == rid and output["video_url"]
    assert emulator.submissions[T2V] == 1 and emulator.cancellations[rid] == 0


def test_retry_whose_status_check_fails_for_good_cancels_the_earlier_request(emulator, fal_conn):
    emulator.processing_time = 30
    store = DictStateStore()
    emulator.inject("malformed_json", route="status", times=None)
    first = _ctx(try_number=1, max_tries=1, store=store)
    with pytest.raises(KlingServerError):
        _fast(_op(deferrable=False)).execute(first)
    rid = first["ti"].xcoms["request_id"]
    # The last try cannot even learn the request's state: it must not leave it running either.
    with pytest.raises(KlingServerError):
        _fast(_op(deferrable=False)).execute(_ctx(try_number=2, max_tries=1, store=store))
    assert emulator.cancellations[rid] == 1 and emulator.submissions[T2V] == 1


@pytest.mark.parametrize(("max_tries", "cancels"), [(0, 1), (1, 0)])
def test_deferrable_task_whose_trigger_gives_up_follows_the_same_rule(
    emulator, fal_conn, monkeypatch, max_tries, cancels
):
    # The trigger builds its own hook: keep its status-read retries short, or its deadline wins.
    monkeypatch.setattr(KlingHook, "default_retry_policy", FAST_RETRIES)
    emulator.processing_time = 30
    store = DictStateStore()
    op = _op(deferrable=True, use_sse=False)
    with pytest.raises(TaskDeferred) as info:
        op.execute(_ctx(1, max_tries, store))
    trigger = info.value.trigger
    trigger.max_consecutive_failures = 2
    emulator.inject("malformed_json", route="status", times=None)
    [event] = _run_trigger(trigger)
    assert event["status"] == "error" and event["source"] == "poll"
    with pytest.raises(KlingError):
        _op(deferrable=True).execute_complete(_ctx(1, max_tries, store), event=event, **info.value.kwargs)
    assert emulator.cancellations[trigger.request_id] == cancels


def test_job_failure_is_not_cancelled_again(emulator, fal_conn):
    emulator.fail_next(error="Runner disconnected", error_type="runner_disconnected", status_code=503)
    with pytest.raises(KlingError, match="Runner disconnected"):
        _op(deferrable=False).execute(_ctx(1, 0))
    assert sum(emulator.cancellations.values()) == 0  # fal already ended the job


# -- 9.2 / 10.2: the resumed task stores and returns what a sync task does ----------------------------


def test_resume_without_deferral_kwargs_stores_the_submit_handle_and_a_clear_reuses_it(emulator, fal_conn):
    store = DictStateStore()
    op = _op(deferrable=True)
    with pytest.raises(TaskDeferred) as info:
        op.execute(_ctx(1, 0, store))
    submitted = dict(store.data[STATE_KEY])
    [event] = _run_trigger(info.value.trigger)
    # dag.test() resumes with the event alone (no "stored" kwarg).
    output = _op(deferrable=True).execute_complete(_ctx(1, 0, store), event=event)
    kept = store.data[STATE_KEY]
    assert kept["fingerprint"] == submitted["fingerprint"]
    assert (kept["cost_estimate"], kept["duration"]) == ("0.225", 5)
    assert kept["output"] == output
    # Clearing the succeeded task: the next run reuses the video, no new submission.
    again = _op(deferrable=True).execute(_ctx(1, 0, store))
    assert again == output and emulator.submissions[T2V] == 1


@pytest.mark.parametrize("reattach_on_retry", [True, False])
def test_deferrable_and_sync_return_the_same_value(emulator, fal_conn, reattach_on_retry):
    sync = _op(deferrable=False, reattach_on_retry=reattach_on_retry).execute(_ctx(1, 0))
    op = _op(deferrable=True, reattach_on_retry=reattach_on_retry)
    context = _ctx(1, 0)
    with pytest.raises(TaskDeferred) as info:
        op.execute(context)
    [event] = _run_trigger(info.value.trigger)
    deferred = _op(deferrable=True, reattach_on_retry=reattach_on_retry).execute_complete(
        context, event=event
    )
    differs = {"request_id", "video_url"}
    assert {k: v for k, v in deferred.items() if k not in differs} == {
        k: v for k, v in sync.items() if k not in differs
    }
    assert deferred["duration"] == 5 and deferred["cost_estimate"] == "0.225"
