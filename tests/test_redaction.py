"""fal's own text never carries the key: model log lines, error texts, 422 error lists, results.

The emulator plays a fal that echoes the key back (a job failing with the key in its error text,
which fal also writes to the job's log, and in a 422's field list). Nothing here relies on
Airflow's secret masker, which ``airflow dags test`` does not apply.
"""

from __future__ import annotations

import json

import httpx
import pytest

from airflow_provider_kling.exceptions import KlingError, KlingValidationError
from airflow_provider_kling.protocol.config import settings_from_connection
from airflow_provider_kling.protocol.queue import QueueProtocol
from airflow_provider_kling.protocol.types import FalRequest
from tests.airflow_compat import TaskDeferred
from tests.test_operator_kling import RecordingTI, _context, _op, _run_trigger

KEY_ID, KEY_SECRET = "test-key-id", "test-key-secret"  # the fal_conn fixture's key
ECHO = f"upstream said: Authorization Key {KEY_ID}:{KEY_SECRET} (secret {KEY_SECRET}, id {KEY_ID})"


def _assert_clean(*texts: str) -> None:
    for text in texts:
        assert KEY_ID not in text and KEY_SECRET not in text, text


def _echoing_failure(emulator, **extra) -> None:
    emulator.fail_next(error=ECHO, error_type="runner_disconnected", status_code=503, **extra)


def test_sync_task_logs_and_raises_fal_text_without_the_key(emulator, fal_conn, capsys):
    _echoing_failure(emulator)
    with pytest.raises(KlingError) as info:
        _op(deferrable=False).execute(_context(RecordingTI()))
    log = capsys.readouterr().out
    assert "upstream said: Authorization Key ***" in log  # the model's log line, scrubbed
    assert "upstream said" in str(info.value)
    _assert_clean(log, str(info.value), repr(info.value.args), str(info.value.error_type))


def test_deferred_task_event_and_error_carry_no_key(emulator, fal_conn, capsys):
    _echoing_failure(emulator)
    context = _context(RecordingTI())
    with pytest.raises(TaskDeferred) as deferred:
        _op(deferrable=True).execute(context)
    [event] = _run_trigger(deferred.value.trigger)
    with pytest.raises(KlingError) as info:
        _op(deferrable=True).execute_complete(context, event=event, **deferred.value.kwargs)
    log = capsys.readouterr().out
    assert "upstream said" in event["message"]
    _assert_clean(json.dumps(event), log, str(info.value))


def test_a_422_field_list_from_fal_carries_no_key(emulator, fal_conn):
    detail = [{"loc": ["body", "prompt"], "msg": f"cannot use {KEY_ID}:{KEY_SECRET}", "type": "value_error"}]
    emulator.fail_next(error=ECHO, error_type="value_error", status_code=422, detail=detail)
    with pytest.raises(KlingValidationError) as info:
        _op(deferrable=False).execute(_context(RecordingTI()))
    assert info.value.errors and info.value.errors[0]["msg"] == "cannot use ***"
    _assert_clean(str(info.value), json.dumps(info.value.errors, default=str))


def test_results_and_unknown_status_words_are_scrubbed():
    settings = settings_from_connection(
        host="http://fal.test", port=None, password=f"{KEY_ID}:{KEY_SECRET}", extra=None, environ={}
    )
    queue = QueueProtocol(settings)
    request = FalRequest(
        "r1", "fal-ai/kling-video", "http://fal.test/s", "http://fal.test/r", "http://fal.test/c"
    )
    result = queue.parse_result(
        httpx.Response(
            200, json={"video": {"url": "http://cdn/v.mp4", "file_name": KEY_SECRET}, "echo": ECHO}
        ),
        request,
    )
    _assert_clean(json.dumps(result))
    assert result["video"]["url"] == "http://cdn/v.mp4"
    with pytest.raises(KlingError) as info:
        queue.parse_status(httpx.Response(200, json={"status": f"WEIRD {KEY_SECRET}"}), request)
    _assert_clean(str(info.value))
