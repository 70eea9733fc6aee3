"""The sans-I/O protocol core: ids, URLs, headers, settings, status parsing, log dedupe, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from airflow_provider_kling import __version__
from airflow_provider_kling.exceptions import (
    KlingAuthenticationError,
    KlingConfigurationError,
    KlingError,
    KlingNotFoundError,
    KlingRateLimitedError,
    KlingRequestFailedError,
    KlingServerError,
    KlingSubmitUncertainError,
    KlingTimeoutError,
    KlingTransportError,
    KlingValidationError,
)
from airflow_provider_kling.protocol import (
    FalSettings,
    LogDeduper,
    LogEntry,
    QueueProtocol,
    UploadProtocol,
    derive_request,
    parse_endpoint_id,
    parse_status,
    resolve_key,
    settings_from_connection,
)
from airflow_provider_kling.protocol.errors import error_from_response, parse_retry_after, scrub
from airflow_provider_kling.protocol.headers import submit_headers
from airflow_provider_kling.protocol.uploads import CdnToken, guess_content_type, parse_expiry

KEY = "kid-123456:ksecret-abcdefgh"
Q = "http://127.0.0.1:9"
SETTINGS = FalSettings(queue_url=Q, rest_url=f"{Q}/rest", cdn_url=f"{Q}/cdn", key=KEY)
KLING = "fal-ai/kling-video/v1.6/standard/image-to-video"


def response(
    code: int, body: object = None, *, headers: dict[str, str] | None = None, text: str | None = None
):
    content = text.encode() if text is not None else json.dumps(body).encode() if body is not None else b""
    hdrs = {"content-type": "text/html" if text is not None else "application/json", **(headers or {})}
    return httpx.Response(code, content=content, headers=hdrs, request=httpx.Request("GET", f"{Q}/x"))


# -- endpoint ids and URLs -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("endpoint_id", "namespace", "owner", "alias", "path", "app"),
    [
        (KLING, None, "fal-ai", "kling-video", "v1.6/standard/image-to-video", "fal-ai/kling-video"),
        ("fal-ai/fast-sdxl", None, "fal-ai", "fast-sdxl", None, "fal-ai/fast-sdxl"),
        ("workflows/me/wf/sub/path", "workflows", "me", "wf", "sub/path", "workflows/me/wf"),
        ("comfy/me/flow", "comfy", "me", "flow", None, "comfy/me/flow"),
        ("123-myapp", None, "123", "myapp", None, "123/myapp"),
    ],
)
def test_endpoint_ids_parse_like_fal(endpoint_id, namespace, owner, alias, path, app):
    parsed = parse_endpoint_id(endpoint_id)
    assert (parsed.namespace, parsed.owner, parsed.alias, parsed.path, parsed.app) == (
        namespace,
        owner,
        alias,
        path,
        app,
    )


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "kling",
        "fal-ai/",
        "/fal-ai/kling",
        "fal-ai//kling",
        "fal ai/kling",
        "a/b?x=1",
        "workflows/me",
        "a/../b",
    ],
)
def test_malformed_endpoint_ids_are_refused_with_a_clear_error(bad):
    with pytest.raises(KlingConfigurationError, match="endpoint_id"):
        parse_endpoint_id(bad)


def test_submit_goes_to_the_full_id_and_derived_urls_drop_the_sub_path():
    queue = QueueProtocol(SETTINGS)
    request = queue.submit_request(KLING, {"prompt": "x"}, webhook_url="https://example.com/hook?x=1")
    assert str(request.url) == f"{Q}/{KLING}?fal_webhook=https%3A%2F%2Fexample.com%2Fhook%3Fx%3D1"
    assert request.method == "POST"
    assert json.loads(request.content) == {"prompt": "x"}
    handle = derive_request(f"{Q}/", KLING, "rid-9")
    assert handle.status_url == f"{Q}/fal-ai/kling-video/requests/rid-9/status"
    assert handle.response_url == f"{Q}/fal-ai/kling-video/requests/rid-9"
    assert handle.cancel_url == f"{Q}/fal-ai/kling-video/requests/rid-9/cancel"
    assert handle.endpoint_id == KLING
    legacy = QueueProtocol(SETTINGS).submit_request("123-myapp", {})
    assert str(legacy.url) == f"{Q}/123/myapp"


def test_submit_uses_the_urls_fal_returned_verbatim():
    body = {
        "request_id": "r1",
        "status_url": "https://elsewhere.example/q/r1/status",
        "response_url": "https://elsewhere.example/q/r1",
        "cancel_url": "https://elsewhere.example/q/r1/cancel",
    }
    handle = QueueProtocol(SETTINGS).parse_submit(response(200, body), KLING)
    assert handle.to_dict() == {**body, "endpoint_id": KLING}
    # A response that forgets the URLs still yields a usable handle: the job exists.
    partial = QueueProtocol(SETTINGS).parse_submit(response(200, {"request_id": "r2"}), KLING)
    assert partial.status_url == f"{Q}/fal-ai/kling-video/requests/r2/status"


def test_queue_calls_bundle_the_request_its_parser_and_its_error_mapping():
    # Both hook shells run these; the protocol decides what is sent and what the answer means.
    handle = QueueProtocol(SETTINGS).parse_submit(
        response(200, {"request_id": "r1", "status_url": "https://other.example/s"}), KLING
    )
    queue = QueueProtocol(SETTINGS)
    status = queue.status_call(handle, logs=False)
    assert (status.operation, status.label) == ("status", "status of r1")
    assert str(status.request.url) == "https://other.example/s?logs=0"
    assert status.parse(response(202, {"status": "IN_QUEUE", "queue_position": 3})).queue_position == 3
    result = queue.result_call(handle)
    assert (result.request.method, result.request.url) == ("GET", handle.response_url)
    assert result.parse(response(200, {"video": {"url": "u"}})) == {"video": {"url": "u"}}
    cancel = queue.cancel_call(handle)
    assert (cancel.request.method, cancel.request.url) == ("PUT", handle.cancel_url)
    assert cancel.parse(response(400, {"status": "ALREADY_COMPLETED"})) == "ALREADY_COMPLETED"
    failure = cancel.transport_failure(httpx.ConnectError(f"refused for {KEY}"))
    assert isinstance(failure, KlingTransportError) and KEY not in str(failure)
    assert "cancel of request r1" in str(failure)


def test_status_stream_url_and_query():
    handle = derive_request(Q, KLING, "r1")
    queue = QueueProtocol(SETTINGS)
    assert str(queue.status_request(handle, logs=True).url) == f"{handle.status_url}?logs=1"
    assert str(queue.status_request(handle, logs=False).url) == f"{handle.status_url}?logs=0"
    stream = queue.status_stream_request(handle)
    assert str(stream.url) == f"{handle.status_url}/stream?logs=1"
    assert stream.headers["accept"] == "text/event-stream"
    assert queue.cancel_request(handle).method == "PUT"


# -- headers ---------------------------------------------------------------------------------------
def test_every_call_carries_the_key_and_our_user_agent():
    request = QueueProtocol(SETTINGS).submit_request(KLING, {}, priority="low", start_timeout=30)
    assert request.headers["authorization"] == f"Key {KEY}"
    assert request.headers["user-agent"] == f"airflow-provider-kling/{__version__}"
    assert request.headers["x-fal-queue-priority"] == "low"
    assert request.headers["x-fal-request-timeout"] == "30.0"
    assert request.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"priority": "high"}, "priority"),
        ({"start_timeout": 1}, "start_timeout"),
        ({"start_timeout": 0.5}, "start_timeout"),
        ({"start_timeout": "soon"}, "start_timeout"),
        ({"start_timeout": float("inf")}, "start_timeout"),
    ],
)
def test_bad_submit_options_name_the_field_and_limit(kwargs, field):
    with pytest.raises(KlingConfigurationError, match=field) as exc:
        submit_headers(**kwargs)
    assert "'normal' or 'low'" in str(exc.value) or "greater than 1" in str(exc.value)


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"prompt": float("nan")}, KlingValidationError),
        ({"prompt": object()}, KlingValidationError),
        (["not", "a", "dict"], KlingValidationError),
    ],
)
def test_bad_arguments_fail_before_sending(arguments, error):
    with pytest.raises(error, match="arguments"):
        QueueProtocol(SETTINGS).submit_request(KLING, arguments)


def test_webhook_must_be_an_http_url():
    with pytest.raises(KlingConfigurationError, match="webhook_url"):
        QueueProtocol(SETTINGS).submit_request(KLING, {}, webhook_url="ftp://x")


# -- settings and key resolution -------------------------------------------------------------------
def test_settings_defaults_are_fal_production():
    settings = settings_from_connection(host=None, port=None, password="k:s", extra=None, environ={})
    assert (settings.queue_url, settings.rest_url, settings.cdn_url) == (
        "https://queue.fal.run",
        "https://rest.fal.ai",
        "https://v3.fal.media",
    )
    assert settings.request_timeout == 120 and settings.connect_timeout == 30
    assert settings.dashboard_url_template == "https://fal.ai/dashboard/requests/{request_id}"
    assert settings.prices == {}
    assert "k:s" not in repr(settings)


def test_settings_from_host_port_and_string_extras():
    bare = settings_from_connection(
        host="queue.falrun.com", port=8443, password="k:s", extra=None, environ={}
    )
    assert bare.queue_url == "https://queue.falrun.com:8443"
    plain = settings_from_connection(host="http://127.0.0.1", port=8765, password="k:s", extra="", environ={})
    assert plain.queue_url == "http://127.0.0.1:8765"
    extra = json.dumps(
        {
            "queue_url": "http://q.local:1/",
            "extra__fal__rest_url": "http://r.local",
            "cdn_url": "http://c.local",
            "request_timeout": "7.5",
            "prices": json.dumps({KLING: 0.05}),
            "dashboard_url_template": "",
        }
    )
    settings = settings_from_connection(
        host="ignored.example", port=None, password="k:s", extra=extra, environ={}
    )
    assert settings.queue_url == "http://q.local:1"
    assert settings.rest_url == "http://r.local"
    assert settings.cdn_url == "http://c.local"
    assert settings.request_timeout == 7.5 and settings.connect_timeout == 7.5
    assert settings.prices == {KLING: 0.05}
    assert settings.dashboard_url_template.startswith("https://fal.ai/")
    nested = settings_from_connection(
        host=None, port=None, password="k:s", extra={"prices": {KLING: 1}}, environ={}, timeout=3
    )
    assert nested.prices == {KLING: 1} and nested.request_timeout == 3


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"rest_url": "rest.fal.ai"}, "rest_url"),
        ({"queue_url": "ftp://x"}, "queue_url"),
        ({"request_timeout": "-1"}, "request_timeout"),
        ({"request_timeout": "abc"}, "request_timeout"),
        ({"prices": "[1, 2]"}, "prices"),
    ],
)
def test_bad_connection_fields_are_named(extra, field):
    with pytest.raises(KlingConfigurationError, match=field):
        settings_from_connection(host=None, port=None, password="k:s", extra=extra, environ={})


def test_key_resolution_order():
    env = {"FAL_KEY": "env:key", "FAL_KEY_ID": "id", "FAL_KEY_SECRET": "secret"}
    assert resolve_key("pw:key", env) == ("pw:key", "password")
    assert resolve_key("", env) == ("env:key", "FAL_KEY")
    assert resolve_key(None, {"FAL_KEY_ID": "id", "FAL_KEY_SECRET": "secret"}) == (
        "id:secret",
        "FAL_KEY_ID+FAL_KEY_SECRET",
    )
    with pytest.raises(KlingConfigurationError) as exc:
        resolve_key(None, {"FAL_KEY_ID": "only-id"})
    assert "password" in str(exc.value) and "FAL_KEY" in str(exc.value) and "FAL_KEY_SECRET" in str(exc.value)


# -- status parsing and log dedupe -----------------------------------------------------------------
def test_status_parsing_for_each_state():
    queued = parse_status({"status": "IN_QUEUE", "queue_position": 2, "logs": None}, request_id="r")
    assert (queued.status, queued.queue_position, queued.logs, queued.done) == ("IN_QUEUE", 2, (), False)
    running = parse_status(
        {
            "status": "IN_PROGRESS",
            "request_id": "r",
            "logs": [{"message": "Loading", "level": "INFO", "source": "USER", "timestamp": "t1"}],
        },
        request_id="ignored",
    )
    assert running.logs == (LogEntry("Loading", "INFO", "USER", "t1"),) and not running.done
    ok = parse_status(
        {"status": "COMPLETED", "logs": [], "metrics": {"inference_time": 41.7}}, request_id="r"
    )
    assert ok.done and not ok.failed and ok.metrics == {"inference_time": 41.7}
    failed = parse_status(
        {"status": "COMPLETED", "error": "Runner disconnected", "error_type": "runner_disconnected"},
        request_id="r",
    )
    assert failed.failed and failed.error_type == "runner_disconnected" and failed.metrics == {}


@pytest.mark.parametrize("state", ["FAILED", "CANCELED", "", None, "completed"])
def test_unknown_status_is_an_error_not_a_success(state):
    with pytest.raises(KlingServerError, match="unknown status"):
        parse_status({"status": state}, request_id="r")


def test_status_http_errors_and_garbage_are_mapped():
    queue = QueueProtocol(SETTINGS)
    handle = derive_request(Q, KLING, "r")
    with pytest.raises(KlingNotFoundError):
        queue.parse_status(response(404, {"detail": "Request not found"}), handle)
    with pytest.raises(KlingServerError, match="not JSON"):
        queue.parse_status(response(200, text="{oops"), handle)


def test_log_dedupe_with_a_sliding_window():
    entries = [LogEntry(f"step {i}", timestamp=f"2025-01-01T00:00:0{i}") for i in range(6)]
    dedupe = LogDeduper()
    seen: list[LogEntry] = []
    # Each poll shows the last 3 entries: a window sliding by one or two.
    for end in (2, 3, 5, 6, 6):
        seen += dedupe.new_entries(entries[max(0, end - 3) : end])
    assert seen == entries
    # Same message, new timestamp: a new line. Same (timestamp, message): the same line.
    again = LogEntry("step 0", timestamp="2025-01-01T00:01:00")
    assert dedupe.new_entries([entries[0], again]) == [again]
    small = LogDeduper(max_keys=2)
    small.new_entries(entries[:3])
    assert len(small) == 2 and small.new_entries([entries[0]]) == [entries[0]]


# -- error mapping ---------------------------------------------------------------------------------
def _err(code, body=None, *, headers=None, text=None, operation="status"):
    return error_from_response(
        response(code, body, headers=headers, text=text),
        operation=operation,
        endpoint_id=KLING,
        request_id="r1",
        secrets=(KEY,),
    )


def test_error_mapping_for_every_class():
    auth = _err(401, {"detail": "No user found for Key ID and Secret"})
    assert isinstance(auth, KlingAuthenticationError) and "No user found" in str(auth)
    locked = _err(
        403, {"detail": "User is locked. Reason: Exhausted balance. Top up your balance at fal.ai."}
    )
    assert isinstance(locked, KlingAuthenticationError)
    assert "User is locked. Reason: Exhausted balance" in str(locked) and locked.status_code == 403
    assert isinstance(_err(404, {"error": "Error", "message": "Path /quality not found"}), KlingNotFoundError)
    assert "Path /quality not found" in str(
        _err(404, {"error": "Error", "message": "Path /quality not found"})
    )
    limited = _err(429, {"detail": "slow down"}, headers={"Retry-After": "3"})
    assert isinstance(limited, KlingRateLimitedError) and limited.retry_after == 3
    assert isinstance(_err(500, {"detail": "boom"}, headers={"x-fal-request-id": "r1"}), KlingServerError)
    nginx = _err(502, text="<html><center>nginx</center></html>", operation="result")
    assert isinstance(nginx, KlingServerError) and "gateway" in str(nginx)
    timeout = _err(504, {"detail": "Request timed out"}, headers={"x-fal-request-timeout-type": "user"})
    assert isinstance(timeout, KlingTimeoutError)
    other = _err(400, {"detail": "Bad request"})
    assert type(other) is KlingError and other.status_code == 400


def test_validation_errors_keep_loc_msg_type_per_field():
    detail = [
        {"loc": ["body", "prompt"], "msg": "Field required", "type": "missing"},
        {
            "loc": ["body", "cfg_scale"],
            "msg": "less than or equal to 1",
            "type": "less_than_equal",
            "ctx": {"le": 1},
        },
    ]
    error = _err(422, {"detail": detail}, headers={"x-fal-billable-units": "0"}, operation="result")
    assert isinstance(error, KlingValidationError)
    assert [(e["loc"], e["type"]) for e in error.errors] == [
        (("body", "prompt"), "missing"),
        (("body", "cfg_scale"), "less_than_equal"),
    ]
    assert error.errors[1]["ctx"] == {"le": 1}
    assert "prompt: Field required (missing)" in str(error) and "cfg_scale" in str(error)
    plain = _err(422, {"detail": "Prompt too long", "error_type": "sequence_too_long"})
    assert plain.errors == [{"loc": (), "msg": "Prompt too long", "type": "sequence_too_long"}]


def test_failed_job_result_keeps_error_type_and_retryable():
    error = _err(
        503,
        {"detail": "Runner disconnected", "error_type": "runner_disconnected"},
        headers={"x-fal-request-id": "r1", "X-Fal-Retryable": "true"},
        operation="result",
    )
    assert isinstance(error, KlingRequestFailedError)
    assert (error.error_type, error.retryable, error.request_id) == ("runner_disconnected", True, "r1")
    header_only = _err(
        500, {"detail": "x"}, headers={"x-fal-error-type": "internal_error"}, operation="result"
    )
    assert header_only.error_type == "internal_error" and header_only.retryable is None


def test_messages_never_contain_the_key():
    echoed = _err(401, {"detail": f"Bad key {KEY}"})
    assert KEY not in str(echoed) and "ksecret-abcdefgh" not in str(echoed) and "***" in str(echoed)
    assert scrub(f"x {KEY} y", [KEY]) == "x *** y"


def test_retry_after_parsing():
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    when = datetime.now(timezone.utc) + timedelta(seconds=30)
    http_date = when.strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert 25 < (parse_retry_after(http_date) or 0) <= 31


# -- submit safety ---------------------------------------------------------------------------------
def test_submit_outcomes_are_certain_only_when_they_can_be():
    queue = QueueProtocol(SETTINGS)
    for code, body in ((500, {"detail": "boom"}), (502, None), (503, {"detail": "x"})):
        with pytest.raises(KlingSubmitUncertainError) as exc:
            queue.parse_submit(response(code, body), KLING)
        assert "paid job may exist" in str(exc.value) and KLING in str(exc.value)
    with pytest.raises(KlingSubmitUncertainError, match="request id"):
        queue.parse_submit(response(200, text='{"status": "IN_QUEUE", "request_id": "'), KLING)
    with pytest.raises(KlingValidationError):
        queue.parse_submit(
            response(422, {"detail": [{"loc": ["body", "prompt"], "msg": "x", "type": "y"}]}), KLING
        )
    request = httpx.Request("POST", f"{Q}/{KLING}")
    never_sent = queue.submit_transport_failure(httpx.ConnectError("refused", request=request), KLING)
    assert isinstance(never_sent, KlingTransportError) and "no job was created" in str(never_sent)
    for exc in (httpx.ReadTimeout("t", request=request), httpx.RemoteProtocolError("reset", request=request)):
        uncertain = queue.submit_transport_failure(exc, KLING)
        assert isinstance(uncertain, KlingSubmitUncertainError)
        assert "paid job may exist" in str(uncertain) and KEY not in str(uncertain)


def test_cancel_outcomes_never_raise():
    queue = QueueProtocol(SETTINGS)
    handle = derive_request(Q, KLING, "r")
    assert (
        queue.parse_cancel(response(202, {"status": "CANCELLATION_REQUESTED"}), handle)
        == "CANCELLATION_REQUESTED"
    )
    assert queue.parse_cancel(response(200, {"status": "OK"}), handle) == "CANCELLATION_REQUESTED"
    assert queue.parse_cancel(response(400, {"status": "ALREADY_COMPLETED"}), handle) == "ALREADY_COMPLETED"
    assert queue.parse_cancel(response(404, {"status": "NOT_FOUND"}), handle) == "NOT_FOUND"
    with pytest.raises(KlingAuthenticationError):
        queue.parse_cancel(response(401, {"detail": "No user found for Key ID and Secret"}), handle)


# -- upload builders -------------------------------------------------------------------------------
def test_upload_requests():
    storage = UploadProtocol(SETTINGS)
    token_req = storage.token_request()
    assert str(token_req.url) == f"{Q}/rest/storage/auth/token?storage_type=fal-cdn-v3"
    assert token_req.headers["authorization"] == f"Key {KEY}"
    token = storage.parse_token(
        response(
            200,
            {
                "token": "t",
                "token_type": "Bearer",
                "base_url": f"{Q}/cdn/",
                "expires_at": "2999-01-01T00:00:00Z",
            },
        )
    )
    assert token.base_url == f"{Q}/cdn" and token.usable() and "'t'" not in repr(token)
    single = storage.single_upload_request(token, b"abc", size=3, content_type="image/png", file_name="a.png")
    assert str(single.url) == f"{Q}/cdn/files/upload"
    assert single.headers["authorization"] == "Bearer t" and single.headers["x-fal-file-name"] == "a.png"
    part = storage.multipart_part_request(
        token, f"{Q}/cdn/files/u/a.bin", "up1", 2, b"x", content_type="video/mp4"
    )
    assert str(part.url) == f"{Q}/cdn/files/u/a.bin/multipart/up1/2" and part.method == "PUT"
    complete = storage.multipart_complete_request(
        token, f"{Q}/cdn/files/u/a.bin", "up1", [{"partNumber": 1, "etag": "e"}]
    )
    assert json.loads(complete.content) == {"parts": [{"partNumber": 1, "etag": "e"}]}
    initiate = storage.initiate_request(content_type="video/mp4", file_name=None)
    assert str(initiate.url) == f"{Q}/rest/storage/upload/initiate?storage_type=gcs"
    assert json.loads(initiate.content) == {"file_name": "upload.bin", "content_type": "video/mp4"}
    put = storage.presigned_put_request(
        "https://bucket.example/p?sig=1", b"abc", size=3, content_type="video/mp4"
    )
    assert "authorization" not in put.headers and KEY not in str(put.headers)


def test_token_expiry_and_content_types():
    assert parse_expiry("2030-01-01T00:00:00+00:00") == datetime(2030, 1, 1, tzinfo=timezone.utc)
    assert parse_expiry("2030-01-01T00:00:00") == datetime(2030, 1, 1, tzinfo=timezone.utc)
    assert parse_expiry("garbage") is None
    soon = CdnToken("t", "Bearer", Q, datetime.now(timezone.utc) + timedelta(seconds=30))
    assert not soon.usable()  # inside the renewal margin
    assert not CdnToken("t", "Bearer", Q, None).usable()
    assert guess_content_type("clip.mp4") == "video/mp4"
    assert guess_content_type("frame.PNG") == "image/png"
    assert guess_content_type("blob") == "application/octet-stream"
    assert guess_content_type(None) == "application/octet-stream"


def test_value_types_import_without_the_http_stack():
    # The DAG parser and local validation read FalRequest / parse endpoint ids: neither may pull
    # httpx or tenacity in through the package's __init__.
    code = (
        "import sys, airflow_provider_kling.protocol.types, airflow_provider_kling.protocol.endpoints; "
        "print(sorted(x for x in ('httpx', 'tenacity', 'airflow') if x in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    from airflow_provider_kling import protocol

    assert protocol.QueueProtocol.__name__ == "QueueProtocol"  # lazy names still resolve
    with pytest.raises(AttributeError):
        protocol.no_such_name  # noqa: B018
