"""KlingRequestSensor against the emulator: poke and deferrable modes, failures with fal's text."""

from __future__ import annotations

import time

import pytest
from airflow.sdk import PokeReturnValue

from airflow_provider_kling.exceptions import KlingConfigurationError, KlingError, KlingValidationError
from airflow_provider_kling.hooks.kling import KlingHook
from airflow_provider_kling.sensors.kling import KlingRequestSensor
from airflow_provider_kling.triggers.kling import KlingRequestTrigger
from tests.airflow_compat import TaskDeferred
from tests.test_operator_kling import RecordingTI, _run_trigger

T2V = "fal-ai/kling-video/v1.6/standard/text-to-video"


def _submit(arguments=None, endpoint=T2V):
    with KlingHook("fal_default") as hook:
        return hook.submit(endpoint, arguments or {"prompt": "rain on a window"})


def _sensor(request, **kwargs) -> KlingRequestSensor:
    kwargs.setdefault("poke_interval", 0.05)
    kwargs.setdefault("timeout", 30)
    return KlingRequestSensor(
        task_id="sense", request_id=request.request_id, endpoint_id=request.endpoint_id, **kwargs
    )


def _wait_done(emulator, request_id):
    deadline = time.monotonic() + 10
    while emulator.job_state(request_id) != "COMPLETED" and time.monotonic() < deadline:
        time.sleep(0.05)


def test_poke_is_false_while_running_then_returns_the_dict(emulator, fal_conn):
    emulator.processing_time = 1.0
    request = _submit()
    sensor = _sensor(request)
    context = {"ti": RecordingTI()}
    assert sensor.poke(context) is False
    _wait_done(emulator, request.request_id)
    done = sensor.poke(context)
    assert isinstance(done, PokeReturnValue) and done.is_done
    assert done.xcom_value["request_id"] == request.request_id
    assert done.xcom_value["video_url"] == context["ti"].xcoms["video_url"]
    assert done.xcom_value["duration"] is None and done.xcom_value["cost_estimate"] is None
    assert emulator.submissions[T2V] == 1  # the sensor never submits


def test_poke_mode_execute_waits_and_returns_the_dict(emulator, fal_conn):
    request = _submit()
    context = {"ti": RecordingTI()}
    output = _sensor(request).execute(context)
    assert output["request_id"] == request.request_id and output["video_url"]
    assert context["ti"].xcoms["request_id"] == request.request_id


def test_failed_request_fails_the_sensor_with_fal_text(emulator, fal_conn):
    emulator.fail_next(error="Runner disconnected", error_type="runner_disconnected", status_code=503)
    request = _submit()
    _wait_done(emulator, request.request_id)
    with pytest.raises(KlingError, match="Runner disconnected"):
        _sensor(request).poke({"ti": RecordingTI()})


def test_result_time_validation_error_names_the_field(emulator, fal_conn):
    endpoint = "fal-ai/kling-video/v1.6/standard/image-to-video"
    request = _submit({"prompt": "p", "image_url": f"{emulator.cdn_url}/files/none/x.png"}, endpoint)
    _wait_done(emulator, request.request_id)
    with pytest.raises(KlingValidationError, match="image_url"):
        _sensor(request).poke({"ti": RecordingTI()})


def test_deferrable_defers_with_the_shared_trigger_then_completes(emulator, fal_conn):
    emulator.processing_time = 1.0
    request = _submit()
    with pytest.raises(TaskDeferred) as info:
        _sensor(request, deferrable=True, timeout=120).execute({"ti": RecordingTI()})
    trigger = info.value.trigger
    assert isinstance(trigger, KlingRequestTrigger) and trigger.request_id == request.request_id
    assert trigger.end_time <= time.time() + 120 and trigger.poll_interval == 0.05
    events = _run_trigger(trigger)
    context = {"ti": RecordingTI()}
    fresh = _sensor(request, deferrable=True)
    output = fresh.execute_complete(context, event=events[0])
    assert (
        output["request_id"] == request.request_id and context["ti"].xcoms["video_url"] == output["video_url"]
    )


def test_deferrable_returns_at_once_when_already_done(emulator, fal_conn):
    request = _submit()
    _wait_done(emulator, request.request_id)
    output = _sensor(request, deferrable=True).execute({"ti": RecordingTI()})
    assert output["video_url"]


def test_sensor_timeout_event_fails_without_cancelling(emulator, fal_conn):
    emulator.processing_time = 30
    request = _submit()
    event = {"status": "timeout", "request_id": request.request_id, "endpoint_id": T2V, "message": "late"}
    with pytest.raises(KlingError, match="not cancelled"):
        _sensor(request, deferrable=True).execute_complete({"ti": RecordingTI()}, event=event)
    assert emulator.cancellations[request.request_id] == 0


@pytest.mark.parametrize("event", [None, {"status": "finished", "request_id": "r"}])
def test_bad_events_fail(emulator, fal_conn, event):
    request = _submit()
    with pytest.raises(KlingError):
        _sensor(request, deferrable=True).execute_complete({"ti": RecordingTI()}, event=event)


def test_missing_request_id_is_a_clear_error(emulator, fal_conn):
    sensor = KlingRequestSensor(task_id="sense", request_id="None", endpoint_id=T2V)  # an empty xcom_pull
    with pytest.raises(KlingConfigurationError, match="request_id must be a non-empty string"):
        sensor.execute({"ti": RecordingTI()})
    assert sum(emulator.requests.values()) == 0


def test_sensor_templates_its_inputs_and_carries_the_links():
    assert set(KlingRequestSensor.template_fields) == {"request_id", "endpoint_id", "fal_conn_id"}
    assert [link.name for link in KlingRequestSensor.operator_extra_links] == ["Kling video", "fal request"]


def test_deferred_sensor_timeout_is_a_sensor_timeout(emulator, fal_conn):
    # Like poke mode: soft_fail skips, and otherwise the task fails as a sensor timeout (no retries).
    try:
        from airflow.sdk.exceptions import AirflowSkipException
    except ImportError:  # Airflow 3.1
        from airflow.exceptions import AirflowSkipException  # type: ignore[no-redef,attr-defined]

    from airflow_provider_kling.sensors.kling import AirflowSensorTimeout

    request = _submit()
    event = {"status": "timeout", "request_id": request.request_id, "endpoint_id": T2V, "message": "late"}
    with pytest.raises(AirflowSkipException):
        _sensor(request, deferrable=True, soft_fail=True).resume_execution(
            "execute_complete", {"event": event}, {"ti": RecordingTI()}
        )
    with pytest.raises(AirflowSensorTimeout, match="not cancelled"):
        _sensor(request, deferrable=True).resume_execution(
            "execute_complete", {"event": event}, {"ti": RecordingTI()}
        )
    assert emulator.cancellations[request.request_id] == 0
