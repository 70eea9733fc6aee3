"""KlingRequestTrigger against the fal emulator over loopback: one event on every path, no key inside."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time

import pytest

from airflow_provider_kling.exceptions import KlingConfigurationError
from airflow_provider_kling.hooks.kling import KlingHook
from airflow_provider_kling.protocol.retry import RetryPolicy
from airflow_provider_kling.triggers.kling import KlingRequestTrigger

ENDPOINT = "fal-ai/kling-video/v1.6/standard/text-to-video"
ARGS = {"prompt": "a red fox running through snow"}
KEY = "test-key-id:test-key-secret"
FAST_RETRIES = RetryPolicy(max_attempts=2, initial_delay=0.01, max_delay=0.02, max_total=1.0, jitter=0.0)


class FastRetryTrigger(KlingRequestTrigger):
    """The real trigger with a real hook whose retry back-off is tiny (keeps failure tests fast)."""

    def _hook(self) -> KlingHook:
        return KlingHook(fal_conn_id=self.fal_conn_id, retry_policy=FAST_RETRIES)


def _submit(emulator) -> object:
    with KlingHook("fal_default") as hook:
        return hook.submit(ENDPOINT, ARGS)


def _trigger(request, cls=KlingRequestTrigger, **overrides) -> KlingRequestTrigger:
    kwargs = {
        "fal_conn_id": "fal_default",
        **request.to_dict(),
        "poll_interval": 0.05,
        "end_time": time.time() + 30,
        "use_sse": True,
        "submitted_at": time.time(),
    }
    kwargs.update(overrides)
    return cls(**kwargs)


async def _events(trigger) -> list[dict]:
    return [event.payload async for event in trigger.run()]


def test_serialize_round_trips_as_plain_json_without_the_key(emulator, fal_conn):
    request = _submit(emulator)
    trigger = _trigger(request)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_kling.triggers.kling.KlingRequestTrigger"
    assert KlingRequestTrigger(**kwargs).serialize() == (classpath, kwargs)
    text = json.dumps(kwargs)  # plain JSON: no objects cross the serialisation boundary
    assert KEY not in text and "test-key-secret" not in text
    assert kwargs["request_id"] == request.request_id
    assert kwargs["status_url"] == request.status_url


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("poll_interval", 0, "poll_interval must be a number > 0"),
        ("poll_interval", "10", "poll_interval must be a number > 0"),
        ("status_url", "/relative", "status_url must be an http(s) URL"),
        ("request_id", "", "request_id must be a non-empty string"),
        ("end_time", "tomorrow", "end_time must be epoch seconds"),
        ("use_sse", "yes", "use_sse must be a bool"),
        ("max_consecutive_failures", 0, "max_consecutive_failures must be an int >= 1"),
    ],
)
def test_bad_kwargs_are_rejected_in_init(field, value, expected):
    kwargs = {
        "fal_conn_id": "fal_default",
        "request_id": "r1",
        "endpoint_id": ENDPOINT,
        "status_url": "http://127.0.0.1:1/fal-ai/kling-video/requests/r1/status",
        "response_url": "http://127.0.0.1:1/fal-ai/kling-video/requests/r1",
        "cancel_url": "http://127.0.0.1:1/fal-ai/kling-video/requests/r1/cancel",
        field: value,
    }
    with pytest.raises(KlingConfigurationError, match=re.escape(expected)):
        KlingRequestTrigger(**kwargs)


@pytest.mark.parametrize("use_sse", [True, False])
async def test_success_yields_exactly_one_event_and_never_posts(emulator, fal_conn, use_sse):
    request = _submit(emulator)
    events = await _events(_trigger(request, use_sse=use_sse))
    assert events == [
        {
            "status": "success",
            "request_id": request.request_id,
            "endpoint_id": ENDPOINT,
            "message": f"fal request {request.request_id} completed",
        }
    ]
    assert emulator.submissions[ENDPOINT] == 1  # only the test's own submit: the trigger never POSTs
    if use_sse:
        assert emulator.requests["status_stream"] >= 1
    else:
        assert emulator.requests["status_stream"] == 0
        assert emulator.requests["status"] >= 1


async def test_sse_unavailable_falls_back_to_polling(emulator, fal_conn):
    emulator.inject("nginx_503", route="status_stream", times=None)
    request = _submit(emulator)
    events = await _events(_trigger(request))
    assert [e["status"] for e in events] == ["success"]
    assert emulator.requests["status"] >= 1


async def test_failed_job_yields_one_error_event_with_fal_text(emulator, fal_conn):
    emulator.fail_next(error="Runner disconnected", error_type="runner_disconnected", status_code=503)
    request = _submit(emulator)
    events = await _events(_trigger(request))
    assert len(events) == 1
    assert events[0]["status"] == "error"
    assert events[0]["source"] == "job"
    assert events[0]["error_type"] == "runner_disconnected"
    assert "Runner disconnected" in events[0]["message"]


async def test_deadline_yields_timeout_while_the_job_still_runs(emulator, fal_conn):
    emulator.processing_time = 30
    request = _submit(emulator)
    started = time.monotonic()
    events = await _events(_trigger(request, end_time=time.time() + 0.5))
    assert [e["status"] for e in events] == ["timeout"]
    assert events[0]["request_id"] == request.request_id
    assert time.monotonic() - started < 5


async def test_past_deadline_times_out_without_calling_fal(emulator, fal_conn):
    request = _submit(emulator)
    before = dict(emulator.requests)
    events = await _events(_trigger(request, end_time=time.time() - 1))
    assert [e["status"] for e in events] == ["timeout"]
    assert dict(emulator.requests) == before


async def test_transient_errors_are_tolerated(emulator, fal_conn):
    # Two failed polls in a row (a 500 from fal itself is not retried by the hook): below the bound.
    emulator.inject("server_500", route="status", times=2)
    request = _submit(emulator)
    events = await _events(_trigger(request, cls=FastRetryTrigger, use_sse=False, max_consecutive_failures=3))
    assert [e["status"] for e in events] == ["success"]
    assert emulator.requests["status"] >= 3


async def test_persistent_transient_errors_end_in_one_error_event(emulator, fal_conn):
    emulator.inject("nginx_502", route="status", times=None)
    request = _submit(emulator)
    events = await _events(_trigger(request, cls=FastRetryTrigger, use_sse=False, max_consecutive_failures=3))
    assert len(events) == 1
    assert events[0]["status"] == "error"
    assert events[0]["source"] == "poll"
    assert "after 3 consecutive failures" in events[0]["message"]
    # 3 failed polls x 2 attempts each (the hook's retry policy), nothing more.
    assert emulator.requests["status"] == 6


async def test_bad_key_fails_fast_with_one_error_event(emulator, fal_conn):
    emulator.require_key = "the-right-id:the-right-secret"
    request = _submit_as(emulator, "the-right-id:the-right-secret")
    events = await _events(_trigger(request, use_sse=False))
    assert len(events) == 1 and events[0]["status"] == "error"
    assert events[0]["source"] == "poll"
    assert emulator.requests["status"] == 1  # no retries on an authentication error
    assert "test-key-secret" not in json.dumps(events)


def _submit_as(emulator, key):
    import os

    saved = os.environ["AIRFLOW_CONN_FAL_DEFAULT"]
    os.environ["AIRFLOW_CONN_FAL_DEFAULT"] = emulator.connection_json(key=key)
    try:
        return _submit(emulator)
    finally:
        os.environ["AIRFLOW_CONN_FAL_DEFAULT"] = saved


async def test_running_request_keeps_the_trigger_waiting(emulator, fal_conn):
    emulator.processing_time = 30
    request = _submit(emulator)
    task = asyncio.ensure_future(_trigger(request).run().__anext__())
    await asyncio.sleep(0.5)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_progress_is_logged_once_per_change(emulator, fal_conn, capsys):
    # Held IN_QUEUE until the trigger has polled once, then released: a fixed queue delay raced
    # with a loaded machine starting the trigger late.
    emulator.queue_delay = 3600
    request = _submit(emulator)
    capsys.readouterr()
    running = asyncio.ensure_future(_events(_trigger(request, use_sse=False)))
    while emulator.requests["status"] == 0 and not running.done():
        await asyncio.sleep(0.01)
    emulator.queue_delay = 0
    events = await running
    assert [e["status"] for e in events] == ["success"]
    # Airflow's structlog set-up writes task/trigger logs to stdout.
    lines = [line for line in capsys.readouterr().out.splitlines() if request.request_id in line]
    assert any("in queue, position" in line for line in lines), lines
    assert any(": IN_PROGRESS (elapsed" in line for line in lines), lines
    model_lines = [line.split("] ", 1)[1] for line in lines if f"fal request {request.request_id} [" in line]
    assert model_lines, lines
    assert len(model_lines) == len(set(model_lines))  # sliding windows de-duplicated


async def test_on_kill_cancels_the_remote_request(emulator, fal_conn):
    emulator.processing_time = 30
    emulator.queue_delay = 30
    request = _submit(emulator)
    await _trigger(request).on_kill()
    assert emulator.cancellations[request.request_id] == 1


async def test_cleanup_never_cancels(emulator, fal_conn):
    emulator.processing_time = 30
    request = _submit(emulator)
    await _trigger(request).cleanup()
    assert emulator.cancellations[request.request_id] == 0


def test_run_never_blocks_the_event_loop(emulator, fal_conn):
    """asyncio debug mode reports any step of the trigger's task that holds the loop for > 100 ms.

    Only the trigger's own task counts: the emulator shares this process (and the GIL), so
    unrelated loop callbacks can be delayed by its video encoding.
    """
    request = _submit(emulator)
    slow: list[str] = []

    async def blocking_control() -> None:
        time.sleep(0.15)  # proves the detector works in this logging set-up

    async def main() -> tuple[list[dict], int]:
        loop = asyncio.get_running_loop()
        loop.slow_callback_duration = 0.1
        handler = logging.Handler()
        handler.emit = lambda record: slow.append(record.getMessage())  # type: ignore[method-assign]
        logging.getLogger("asyncio").addHandler(handler)
        try:
            events = await asyncio.ensure_future(_events(_trigger(request, use_sse=True)))
            during_trigger = len([m for m in slow if "took" in m and "coro=<_events()" in m])
            await asyncio.ensure_future(blocking_control())
            return events, during_trigger
        finally:
            logging.getLogger("asyncio").removeHandler(handler)

    events, during_trigger = asyncio.run(main(), debug=True)
    assert [e["status"] for e in events] == ["success"]
    assert during_trigger == 0, slow
    assert any("took" in m and "blocking_control" in m for m in slow)  # the control was caught


async def test_model_lines_come_before_the_completed_line(emulator, fal_conn, capsys):
    # The final snapshot carries the model's last lines; they happened before the job finished.
    request = _submit(emulator)
    capsys.readouterr()
    events = await _events(_trigger(request, use_sse=False))
    assert [e["status"] for e in events] == ["success"]
    lines = [line for line in capsys.readouterr().out.splitlines() if request.request_id in line]
    completed = [i for i, line in enumerate(lines) if ": COMPLETED (elapsed" in line]
    model = [i for i, line in enumerate(lines) if f"fal request {request.request_id} [" in line]
    assert len(completed) == 1 and model, lines
    assert max(model) < completed[0], lines  # "Video uploaded to the CDN" is not logged after COMPLETED
    in_progress = next(i for i, line in enumerate(lines) if ": IN_PROGRESS (elapsed" in line)
    assert in_progress < min(model), lines  # the job's first lines follow the state it entered


def test_for_request_builds_the_trigger_and_a_later_backstop(emulator, fal_conn):
    request = _submit(emulator)
    before = time.time()
    trigger = KlingRequestTrigger.for_request(
        request, fal_conn_id="fal_default", poll_interval=2, timeout=100, use_sse=False, submitted_at=before
    )
    _classpath, kwargs = trigger.serialize()
    assert {k: kwargs[k] for k in request.to_dict()} == request.to_dict()
    assert before + 100 <= kwargs["end_time"] <= time.time() + 100
    assert kwargs["use_sse"] is False and kwargs["submitted_at"] == before
    # Airflow's own deferral timeout fires only after the trigger had its chance to time out.
    backstop = trigger.defer_timeout()
    assert backstop is not None and 160 <= backstop.total_seconds() <= 162
    forever = KlingRequestTrigger.for_request(
        request, fal_conn_id="fal_default", poll_interval=2, timeout=None
    )
    assert forever.end_time is None and forever.defer_timeout() is None
