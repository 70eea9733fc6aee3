"""Reattach decisions of a retry (no DB): follow, reuse or resubmit — never pay twice.

The previous try's handle is put in a dict-backed task state store exactly as the operator
writes it; fal is the emulator.
"""

from __future__ import annotations

import time
import uuid

import pytest

from airflow_provider_kling.exceptions import KlingServerError
from airflow_provider_kling.hooks.kling import KlingHook
from airflow_provider_kling.lifecycle.reattach import STATE_KEY, StoredRequest, fingerprint
from airflow_provider_kling.protocol.retry import RetryPolicy
from airflow_provider_kling.protocol.types import FalRequest
from tests.test_operator_kling import ARGS, T2V, DictStateStore, RecordingTI, _op

FAST_RETRIES = RetryPolicy(max_attempts=2, initial_delay=0.01, max_delay=0.02, max_total=1.0, jitter=0.0)


def _previous_try(emulator, *, arguments=ARGS, output=None) -> tuple[FalRequest, DictStateStore]:
    from airflow_provider_kling.models import validate_arguments

    with KlingHook("fal_default") as hook:
        request = hook.submit(T2V, validate_arguments(T2V, arguments))
    store = DictStateStore()
    stored = StoredRequest(
        request=request,
        fingerprint=fingerprint(T2V, validate_arguments(T2V, arguments)),
        submitted_at=time.time(),
        cost_estimate="0.225",
        duration=5,
        output=output,
    )
    store.set(STATE_KEY, stored.to_json())
    return request, store


def _retry(store, **op_kwargs):
    context = {"ti": RecordingTI(try_number=2, max_tries=1), "task_state_store": store}
    return _op(deferrable=False, **op_kwargs).execute(context), context


def test_running_request_is_followed_not_resubmitted(emulator, fal_conn):
    emulator.processing_time = 1.0
    request, store = _previous_try(emulator)
    output, context = _retry(store)
    assert output["request_id"] == request.request_id
    assert context["ti"].xcoms["request_id"] == request.request_id  # pushed again for this try
    assert emulator.submissions[T2V] == 1
    assert store.data[STATE_KEY]["output"] == output


def test_completed_request_is_reused(emulator, fal_conn):
    request, store = _previous_try(emulator)
    deadline = time.monotonic() + 10
    while emulator.job_state(request.request_id) != "COMPLETED" and time.monotonic() < deadline:
        time.sleep(0.05)
    output, _ = _retry(store)
    assert output["request_id"] == request.request_id and output["video_url"]
    assert emulator.submissions[T2V] == 1


def test_stored_output_is_reused_without_calling_fal(emulator, fal_conn):
    done = {"request_id": "r-old", "endpoint_id": T2V, "video_url": "https://cdn.example/v.mp4"}
    _, store = _previous_try(emulator, output=done)
    before = sum(emulator.requests.values())
    output, context = _retry(store)
    assert output == {**done, "max_cost_usd": None}  # the cap this try ran under
    assert context["ti"].xcoms["video_url"] == "https://cdn.example/v.mp4"
    assert sum(emulator.requests.values()) == before


def test_failed_request_is_resubmitted(emulator, fal_conn):
    emulator.fail_next(error="Runner disconnected", error_type="runner_disconnected", status_code=503)
    request, store = _previous_try(emulator)
    deadline = time.monotonic() + 10
    while emulator.job_state(request.request_id) != "COMPLETED" and time.monotonic() < deadline:
        time.sleep(0.05)
    output, _ = _retry(store)
    assert output["request_id"] != request.request_id
    assert emulator.submissions[T2V] == 2


def test_changed_arguments_submit_a_new_request(emulator, fal_conn):
    request, store = _previous_try(emulator, arguments={"prompt": "something else"})
    output, _ = _retry(store)
    assert output["request_id"] != request.request_id
    assert emulator.submissions[T2V] == 2


def test_request_unknown_to_fal_is_resubmitted(emulator, fal_conn):
    _, store = _previous_try(emulator)
    ghost = uuid.uuid4().hex
    handle = store.data[STATE_KEY]["request"]
    for field in ("status_url", "response_url", "cancel_url"):
        handle[field] = handle[field].replace(handle["request_id"], ghost)
    handle["request_id"] = ghost
    output, _ = _retry(store)
    assert output["request_id"] != ghost
    assert emulator.submissions[T2V] == 2


def test_unclear_status_raises_instead_of_paying_again(emulator, fal_conn, monkeypatch):
    monkeypatch.setattr(KlingHook, "default_retry_policy", FAST_RETRIES)
    _, store = _previous_try(emulator)
    emulator.inject("server_500", route="status", times=None)
    with pytest.raises(KlingServerError, match="unclear"):
        _retry(store)
    assert emulator.submissions[T2V] == 1
    assert emulator.requests["status"] == FAST_RETRIES.max_attempts


def test_unclear_result_of_a_completed_request_raises_instead_of_paying_again(
    emulator, fal_conn, monkeypatch
):
    """COMPLETED without error, then the result GET keeps failing: a hiccup, not a reason to pay again."""
    monkeypatch.setattr(KlingHook, "default_retry_policy", FAST_RETRIES)
    request, store = _previous_try(emulator)
    deadline = time.monotonic() + 10
    while emulator.job_state(request.request_id) != "COMPLETED" and time.monotonic() < deadline:
        time.sleep(0.05)
    emulator.inject("server_500", route="result", times=None)
    with pytest.raises(KlingServerError, match="unclear"):
        _retry(store)
    assert emulator.submissions[T2V] == 1
    assert emulator.requests["result"] == FAST_RETRIES.max_attempts


def test_reattach_can_be_switched_off(emulator, fal_conn):
    emulator.processing_time = 1.0
    request, store = _previous_try(emulator)
    output, _ = _retry(store, reattach_on_retry=False)
    assert output["request_id"] != request.request_id
    assert emulator.submissions[T2V] == 2


class BrokenStore(DictStateStore):
    def set(self, key, value, **_):
        raise RuntimeError("state store unavailable")


class BreaksAfterMarkerStore(DictStateStore):
    """Records the in-flight marker, then fails to record the request handle."""

    def set(self, key, value, **kwargs):
        if "submit_in_flight" not in value:
            raise RuntimeError("state store unavailable")
        super().set(key, value, **kwargs)


def test_a_submit_that_cannot_be_recorded_is_never_sent(emulator, fal_conn):
    context = {"ti": RecordingTI(), "task_state_store": BrokenStore()}
    with pytest.raises(RuntimeError, match="state store unavailable"):
        _op(deferrable=False).execute(context)
    assert emulator.submissions == {} and emulator.requests["submit"] == 0


def test_unrecorded_request_is_cancelled_so_a_retry_cannot_pay_twice(emulator, fal_conn):
    context = {"ti": RecordingTI(), "task_state_store": BreaksAfterMarkerStore()}
    with pytest.raises(RuntimeError, match="state store unavailable"):
        _op(deferrable=False).execute(context)
    (request_id,) = emulator.cancellations
    assert emulator.submissions[T2V] == 1 and emulator.cancellations[request_id] == 1
    assert "request_id" not in context["ti"].xcoms


def test_unreachable_result_of_a_completed_request_raises_instead_of_paying_again(emulator, fal_conn):
    # fal said COMPLETED; its ingress failing on the result GET is no proof the video is gone.
    request, store = _previous_try(emulator)
    deadline = time.monotonic() + 10
    while emulator.job_state(request.request_id) != "COMPLETED" and time.monotonic() < deadline:
        time.sleep(0.05)
    emulator.inject("nginx_502", route="result", times=None)
    op = _op(deferrable=False)
    op.hook = KlingHook("fal_default", retry_policy=FAST_RETRIES)  # the real hook, with short back-off
    with pytest.raises(KlingServerError, match="502"):
        op.execute({"ti": RecordingTI(try_number=2, max_tries=1), "task_state_store": store})
    assert emulator.submissions[T2V] == 1
