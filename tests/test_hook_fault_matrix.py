"""Fault matrix: status, result and cancel are idempotent reads, retried alike in sync and async.

Every cell is {call} x {fault} x {sync, async} x {once, persistent}, run with the real hook against the
emulator over loopback, and asserts how many requests the emulator saw on that route:

* once: the fault hits one request; the call then succeeds, so the emulator saw 2 requests.
* persistent: every request is hit; the call fails after ``max_attempts`` requests, with a message
  that says fal's answer was unclear (never that the job failed).

The result cells fetch a job whose status was COMPLETED without ``error``: a 5xx there is a hiccup,
not the job's failure. The job is completed before the matrix runs, so cancel answers
ALREADY_COMPLETED once the fault is gone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_kling.exceptions import KlingError, KlingRequestFailedError, KlingSubmitUncertainError
from airflow_provider_kling.hooks.kling import KlingHook
from airflow_provider_kling.protocol.retry import RetryPolicy
from airflow_provider_kling.protocol.types import FalRequest, RequestStatus

T2V = "fal-ai/kling-video/v1.6/standard/text-to-video"
KEY = "matrix-key-id:matrix-key-secret"
RETRY_AFTER = 0.2
READ_TIMEOUT = 0.2
POLICY = RetryPolicy(
    max_attempts=3, initial_delay=0.01, max_delay=0.02, max_total=30.0, jitter=0.0, max_retry_after=5.0
)

# fault name -> emulator.inject() arguments
FAULTS: dict[str, dict[str, Any]] = {
    "html_502": {"kind": "gateway_html", "status_code": 502},
    "html_503": {"kind": "gateway_html", "status_code": 503},
    "html_504": {"kind": "gateway_html", "status_code": 504},
    "fal_json_503": {
        "kind": "server_500",
        "status_code": 503,
        "detail": "Runner disconnected",
        "error_type": "runner_disconnected",
    },
    "fal_500": {"kind": "server_500"},
    "malformed_json": {"kind": "malformed_json"},
    "reset": {"kind": "reset"},
    "read_timeout": {"kind": "slow", "delay": READ_TIMEOUT * 3},
    "rate_limit_429": {"kind": "rate_limit", "retry_after": RETRY_AFTER},
}
CALLS = ("status", "result", "cancel")
CELLS = [(call, fault) for call in CALLS for fault in FAULTS]


@pytest.fixture(scope="module")
def matrix_emulator() -> Iterator[Any]:
    from airflow_provider_kling.emulator import FalEmulator

    with FalEmulator(processing_time=0.0, queue_delay=0.0) as emu, pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_FAL_MATRIX", emu.connection_json(key=KEY))
        yield emu


@pytest.fixture(scope="module")
def completed(matrix_emulator) -> FalRequest:
    with KlingHook("fal_matrix") as hook:
        request = hook.submit(T2V, {"prompt": "the matrix"})
        deadline = time.monotonic() + 20
        while not hook.get_status(request, logs=False).done:
            assert time.monotonic() < deadline, "the emulator job never completed"
            time.sleep(0.05)
    return request


def _arm(emulator: Any, call: str, fault: str, *, persistent: bool) -> None:
    emulator.app.faults.clear()
    params = dict(FAULTS[fault])
    emulator.inject(params.pop("kind"), route=call, times=None if persistent else 1, **params)


def _sync_call(hook: KlingHook, call: str, request: FalRequest) -> Any:
    if call == "status":
        return hook.get_status(request, logs=False)
    if call == "result":
        return hook.get_result(request, status=RequestStatus("COMPLETED", request.request_id))
    return hook.cancel(request)


async def _async_call(hook: KlingHook, call: str, request: FalRequest) -> Any:
    if call == "status":
        return await hook.aget_status(request, logs=False)
    if call == "result":
        return await hook.aget_result(request, status=RequestStatus("COMPLETED", request.request_id))
    return await hook.acancel(request)


def _check_value(call: str, value: Any, request: FalRequest) -> None:
    if call == "status":
        assert value.status == "COMPLETED" and value.request_id == request.request_id
    elif call == "result":
        assert value["video"]["url"]
    else:
        assert value == "ALREADY_COMPLETED"


def _check_failure(exc: KlingError, call: str, fault: str) -> None:
    text = str(exc)
    assert not isinstance(exc, (KlingRequestFailedError, KlingSubmitUncertainError)), text
    assert "does not mean the job failed" in text, text
    assert KEY not in text and "matrix-key-secret" not in text
    if fault.startswith(("reset", "read_timeout")):
        assert f"fal {call} of request" in text, text
    else:
        assert f"fal's answer to the {call} of request" in text and "was unclear" in text, text


def _run_sync(emulator: Any, request: FalRequest, call: str, fault: str, persistent: bool) -> None:
    _arm(emulator, call, fault, persistent=persistent)
    before = emulator.requests[call]
    started = time.monotonic()
    with KlingHook("fal_matrix", timeout=READ_TIMEOUT, retry_policy=POLICY) as hook:
        if persistent:
            with pytest.raises(KlingError) as info:
                _sync_call(hook, call, request)
            _check_failure(info.value, call, fault)
        else:
            _check_value(call, _sync_call(hook, call, request), request)
    _check_counts(emulator, call, fault, persistent, before, time.monotonic() - started)


async def _run_async(emulator: Any, request: FalRequest, call: str, fault: str, persistent: bool) -> None:
    _arm(emulator, call, fault, persistent=persistent)
    before = emulator.requests[call]
    started = time.monotonic()
    async with KlingHook("fal_matrix", timeout=READ_TIMEOUT, retry_policy=POLICY) as hook:
        if persistent:
            with pytest.raises(KlingError) as info:
                await _async_call(hook, call, request)
            _check_failure(info.value, call, fault)
        else:
            _check_value(call, await _async_call(hook, call, request), request)
    _check_counts(emulator, call, fault, persistent, before, time.monotonic() - started)


def _check_counts(
    emulator: Any, call: str, fault: str, persistent: bool, before: int, elapsed: float
) -> None:
    emulator.app.faults.clear()
    seen = emulator.requests[call] - before
    assert seen == (POLICY.max_attempts if persistent else 2), f"{call} x {fault}: the emulator saw {seen}"
    if fault == "rate_limit_429":  # Retry-After is honoured (the policy's own back-off is 0.01 s)
        waits = POLICY.max_attempts - 1 if persistent else 1
        assert elapsed >= waits * RETRY_AFTER * 0.9, elapsed


@pytest.mark.parametrize("persistent", [False, True], ids=["once", "persistent"])
@pytest.mark.parametrize(("call", "fault"), CELLS)
def test_sync(matrix_emulator, completed, call, fault, persistent):
    _run_sync(matrix_emulator, completed, call, fault, persistent)


@pytest.mark.parametrize("persistent", [False, True], ids=["once", "persistent"])
@pytest.mark.parametrize(("call", "fault"), CELLS)
async def test_async(matrix_emulator, completed, call, fault, persistent):
    await _run_async(matrix_emulator, completed, call, fault, persistent)


def test_a_failed_jobs_result_is_its_own_answer_and_is_not_retried(matrix_emulator):
    """The other side of the result cells: after COMPLETED *with* an error, fal's 503 on the result
    GET is the job's error, reported as such at once (one request)."""
    matrix_emulator.fail_next(error="Runner disconnected", error_type="runner_disconnected", status_code=503)
    with KlingHook("fal_matrix", retry_policy=POLICY) as hook:
        request = hook.submit(T2V, {"prompt": "doomed"})
        deadline = time.monotonic() + 20
        while not (status := hook.get_status(request, logs=False)).done:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert status.failed
        before = matrix_emulator.requests["result"]
        with pytest.raises(KlingRequestFailedError, match="Runner disconnected"):
            hook.get_result(request, status=status)
    assert matrix_emulator.requests["result"] - before == 1
