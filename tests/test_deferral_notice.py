"""A deferred task says that it needs a triggerer, and a trigger that started late says it waited.

Airflow offers nothing that runs while a deferred task waits for a triggerer to pick it up (the
scheduler only fails it once the ``defer(timeout=...)`` backstop passes), so the task log states the
requirement at deferral and the trigger, once it runs, warns how long it waited.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from airflow_provider_kling.hooks.kling import KlingHook
from airflow_provider_kling.operators.kling import KlingVideoOperator
from airflow_provider_kling.sensors.kling import KlingRequestSensor
from airflow_provider_kling.triggers.kling import START_DELAY_WARNING, KlingRequestTrigger
from tests.airflow_compat import TaskDeferred
from tests.test_operator_kling import _context

T2V = "fal-ai/kling-video/v1.6/standard/text-to-video"
CHECK = "airflow jobs check --job-type TriggererJob"


def logged(caplog, capsys) -> str:
    """Airflow's structlog writes task/hook lines to stdout; stdlib logging goes to caplog."""
    captured = capsys.readouterr()
    return caplog.text + captured.out + captured.err


def test_the_operator_says_a_triggerer_must_run_when_it_defers(emulator, fal_conn, caplog, capsys):
    caplog.set_level(logging.INFO)
    op = KlingVideoOperator(
        task_id="video", endpoint_id=T2V, arguments={"prompt": "a heron"}, deferrable=True, timeout=120
    )
    with pytest.raises(TaskDeferred) as info:
        op.execute(_context())
    text = logged(caplog, capsys)
    rid = info.value.trigger.request_id
    assert f"Deferring: the wait for fal request {rid} continues in the triggerer" in text
    assert "A triggerer must be running" in text and CHECK in text
    assert "until Airflow fails it after" in text


def test_the_sensor_says_it_too(emulator, fal_conn, caplog, capsys):
    with KlingHook() as hook:
        request = hook.submit(T2V, {"prompt": "a heron"})
    emulator.processing_time = 30  # still running when the sensor first looks
    caplog.set_level(logging.INFO)
    sensor = KlingRequestSensor(
        task_id="wait", request_id=request.request_id, endpoint_id=T2V, deferrable=True, timeout=60
    )
    with pytest.raises(TaskDeferred):
        sensor.execute(_context())
    assert CHECK in logged(caplog, capsys)


def _trigger(request, deferred_at: float) -> KlingRequestTrigger:
    return KlingRequestTrigger(
        fal_conn_id="fal_default",
        **request.to_dict(),
        poll_interval=0.05,
        end_time=time.time() + 30,
        deferred_at=deferred_at,
    )


@pytest.mark.parametrize(("waited", "warned"), [(START_DELAY_WARNING + 60, True), (1.0, False)])
def test_a_trigger_that_started_minutes_after_the_deferral_warns(
    emulator, fal_conn, caplog, capsys, waited, warned
):
    with KlingHook() as hook:
        request = hook.submit(T2V, {"prompt": "a heron"})
    caplog.set_level(logging.INFO)

    async def events():
        return [event.payload async for event in _trigger(request, time.time() - waited).run()]

    assert [e["status"] for e in asyncio.run(events())] == ["success"]
    text = logged(caplog, capsys)
    assert ("started" in text and "after the task deferred" in text and CHECK in text) is warned


def test_for_request_records_the_deferral_time_in_the_kwargs(emulator, fal_conn):
    with KlingHook() as hook:
        request = hook.submit(T2V, {"prompt": "a heron"})
    before = time.time()
    trigger = KlingRequestTrigger.for_request(request, fal_conn_id="fal_default", poll_interval=1, timeout=60)
    _classpath, kwargs = trigger.serialize()
    assert before <= kwargs["deferred_at"] <= time.time()
    assert KlingRequestTrigger(**kwargs).serialize()[1] == kwargs
