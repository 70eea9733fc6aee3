"""KlingHook's sync half against the fal emulator over loopback."""

from __future__ import annotations

import json
import socket
import uuid

import pytest

from airflow_provider_kling.exceptions import (
    KlingAuthenticationError,
    KlingConfigurationError,
    KlingRateLimitedError,
    KlingRequestFailedError,
    KlingServerError,
    KlingSubmitUncertainError,
    KlingTimeoutError,
    KlingTransportError,
    KlingValidationError,
)
from airflow_provider_kling.hooks.kling import KlingHook
from airflow_provider_kling.protocol import FalRequest, RetryPolicy

KEY = "test-key-id:test-key-secret"
T2V = "fal-ai/kling-video/v1.6/standard/text-to-video"
FAST = RetryPolicy(max_attempts=3, initial_delay=0.01, max_delay=0.05, max_total=10.0, max_retry_after=0.05)


@pytest.fixture
def hook(fal_conn):
    with KlingHook(fal_conn, retry_policy=FAST) as h:
        yield h


def set_conn(monkeypatch, emulator, *, password=KEY, **extra):
    conn = json.loads(emulator.connection_json(key=KEY))
    conn["password"] = password
    conn["extra"].update(extra)
    monkeypatch.setenv("AIRFLOW_CONN_FAL_DEFAULT", json.dumps(conn))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the happy path --------------------------------------------------------------------------------
def test_submit_then_wait_returns_the_video(hook, emulator):
    updates = []
    request = hook.submit(T2V, {"prompt": "a red fox"})
    assert isinstance(request, FalRequest) and request.endpoint_id == T2V
    assert request.status_url == f"{emulator.url}/fal-ai/kling-video/requests/{request.request_id}/status"
    result = hook.wait(request, poll_interval=0.05, on_update=updates.append)
    assert result["video"]["content_type"] == "video/mp4"
    assert result["video"]["url"].startswith(emulator.cdn_url)
    assert updates[-1].status == "COMPLETED" and updates[-1].metrics["inference_time"] > 0
    assert all(not u.done for u in updates[:-1])
    assert emulator.submissions[T2V] == 1
    assert emulator.requests["status"] == len(updates) and emulator.requests["result"] == 1
    headers = emulator.last_headers("submit")
    assert headers["authorization"] == f"Key {KEY}"
    assert headers["user-agent"].startswith("airflow-provider-kling/")


def test_submit_options_reach_fal(hook, emulator):
    hook.submit(T2V, {"prompt": "x"}, priority="low", start_timeout=30, webhook_url="http://127.0.0.1:1/hook")
    headers = emulator.last_headers("submit")
    assert headers["x-fal-queue-priority"] == "low" and headers["x-fal-request-timeout"] == "30.0"


def test_bad_options_fail_before_any_request(hook, emulator):
    with pytest.raises(KlingConfigurationError, match="priority"):
        hook.submit(T2V, {"prompt": "x"}, priority="urgent")
    with pytest.raises(KlingConfigurationError, match="start_timeout"):
        hook.submit(T2V, {"prompt": "x"}, start_timeout=1)
    with pytest.raises(KlingConfigurationError, match="endpoint_id"):
        hook.submit("kling", {"prompt": "x"})
    assert sum(emulator.requests.values()) == 0


def test_queue_position_and_status_logs(hook, emulator):
    emulator.concurrency = 1
    emulator.processing_time = 1.0
    first = hook.submit(T2V, {"prompt": "one"})
    second = hook.submit(T2V, {"prompt": "two"})
    queued = hook.get_status(second)
    assert queued.status == "IN_QUEUE" and queued.queue_position == 0
    running = hook.get_status(first, logs=True)
    assert running.status == "IN_PROGRESS" and running.logs
    assert hook.get_status(first, logs=False).logs == ()
    assert hook.cancel(second) == "CANCELLATION_REQUESTED"
    assert emulator.cancellations[second.request_id] == 1


def test_request_from_id_follows_an_existing_request(hook, emulator):
    original = hook.submit(T2V, {"prompt": "x"})
    rebuilt = hook.request_from_id(T2V, original.request_id)
    assert rebuilt == original  # the emulator's URLs are owner/alias URLs too
    assert hook.wait(rebuilt, poll_interval=0.05)["video"]["url"]


def test_cancel_outcomes(hook, emulator):
    request = hook.submit(T2V, {"prompt": "x"})
    hook.wait(request, poll_interval=0.05)
    assert hook.cancel(request) == "ALREADY_COMPLETED"
    assert hook.cancel(hook.request_from_id(T2V, str(uuid.uuid4()))) == "NOT_FOUND"


# -- failed jobs -----------------------------------------------------------------------------------
def test_failed_job_raises_request_failed_with_fal_details(hook, emulator):
    emulator.fail_next(error="Runner disconnected", error_type="runner_disconnected", status_code=503)
    updates = []
    request = hook.submit(T2V, {"prompt": "x"})
    with pytest.raises(KlingRequestFailedError) as exc:
        hook.wait(request, poll_interval=0.05, on_update=updates.append)
    assert updates[-1].failed and updates[-1].error_type == "runner_disconnected"
    assert exc.value.error_type == "runner_disconnected" and exc.value.status_code == 503
    assert exc.value.retryable is True and request.request_id in str(exc.value)
    # fal's own 5xx on a result is the job's answer, not a glitch: exactly one result GET.
    assert emulator.requests["result"] == 1


def test_invalid_input_fails_at_result_time_with_field_errors(hook, emulator):
    request = hook.submit(T2V, {"duration": "5"})  # no prompt: fal accepts the submit, fails the job
    with pytest.raises(KlingValidationError) as exc:
        hook.wait(request, poll_interval=0.05)
    assert exc.value.status_code == 422
    assert any(e["loc"][-1] == "prompt" for e in exc.value.errors)
    assert "prompt" in str(exc.value)


def test_wait_timeout_cancels_then_raises(hook, emulator):
    emulator.processing_time = 5.0
    request = hook.submit(T2V, {"prompt": "slow"})
    with pytest.raises(KlingTimeoutError, match=r"did not complete within 0\.3 s") as exc:
        hook.wait(request, poll_interval=0.05, timeout=0.3)
    assert "CANCELLATION_REQUESTED" in str(exc.value)
    assert emulator.cancellations[request.request_id] == 1


# -- retries ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["rate_limit", "nginx_502", "nginx_503", "nginx_504", "reset"])
def test_idempotent_calls_retry_transient_failures(hook, emulator, kind):
    request = hook.submit(T2V, {"prompt": "x"})
    emulator.inject(kind, route="status", times=2)
    assert hook.get_status(request).status in ("IN_QUEUE", "IN_PROGRESS", "COMPLETED")
    assert emulator.requests["status"] == 3


def test_retries_stop_after_the_budget(hook, emulator):
    request = hook.submit(T2V, {"prompt": "x"})
    emulator.inject("rate_limit", route="status", times=None)
    with pytest.raises(KlingRateLimitedError):
        hook.get_status(request)
    assert emulator.requests["status"] == FAST.max_attempts
    emulator.reset()
    emulator.inject("reset", route="cancel", times=None)
    with pytest.raises(KlingTransportError, match="cancel"):
        hook.cancel(request)
    assert emulator.requests["cancel"] == FAST.max_attempts


def test_status_hiccups_are_retried_and_persistent_ones_are_unclear_not_failed(hook, emulator):
    request = hook.submit(T2V, {"prompt": "x"})
    for kind in ("server_500", "malformed_json"):
        emulator.inject(kind, route="status")
        assert hook.get_status(request).request_id == request.request_id
    assert emulator.requests["status"] == 4
    emulator.inject("server_500", route="status", times=None)
    with pytest.raises(KlingServerError, match=r"answer to the status of .* was unclear") as exc:
        hook.get_status(request)
    assert "does not mean the job failed" in str(exc.value)
    assert emulator.requests["status"] == 4 + FAST.max_attempts


@pytest.mark.parametrize(
    "kind", ["server_500", "nginx_502", "nginx_504", "reset", "reset_after_accept", "malformed_json"]
)
def test_uncertain_submit_is_sent_exactly_once(hook, emulator, kind):
    emulator.inject(kind, route="submit")
    with pytest.raises(KlingSubmitUncertainError) as exc:
        hook.submit(T2V, {"prompt": "x"})
    assert emulator.requests["submit"] == 1
    assert "paid job may exist" in str(exc.value) and T2V in str(exc.value) and KEY not in str(exc.value)
    # The lost-answer case really did create a job: that is why it must not be retried.
    assert emulator.submissions[T2V] == (1 if kind == "reset_after_accept" else 0)


def test_submit_read_timeout_is_uncertain(fal_conn, emulator):
    emulator.inject("slow", route="submit", delay=1.0)
    with (
        KlingHook(fal_conn, timeout=0.3, retry_policy=FAST) as hook,
        pytest.raises(KlingSubmitUncertainError),
    ):
        hook.submit(T2V, {"prompt": "x"})
    assert emulator.requests["submit"] == 1


def test_submit_is_retried_after_429(hook, emulator):
    emulator.inject("rate_limit", route="submit", times=2, retry_after=0)
    request = hook.submit(T2V, {"prompt": "x"})
    assert request.request_id
    assert emulator.requests["submit"] == 3 and emulator.submissions[T2V] == 1


def test_submit_is_retried_when_the_connection_never_opened(monkeypatch, caplog):
    port = closed_port()
    monkeypatch.setenv(
        "AIRFLOW_CONN_FAL_DEFAULT",
        json.dumps({"conn_type": "fal", "host": f"http://127.0.0.1:{port}", "password": KEY}),
    )
    with KlingHook(retry_policy=FAST) as hook, pytest.raises(KlingTransportError) as exc:
        hook.submit(T2V, {"prompt": "x"})
    assert "no job was created" in str(exc.value)
    assert caplog.text.count("retrying in") == FAST.max_attempts - 1


def test_errors_that_repeat_on_every_attempt_are_not_retried(hook, emulator, caplog):
    # A URL fal handed back with a scheme httpx cannot speak fails the same way every time: retrying
    # only delays the error by the whole back-off budget.
    request = hook.submit(T2V, {"prompt": "x"})
    broken = FalRequest.from_dict({**request.to_dict(), "status_url": "ftp://queue.example/status"})
    with pytest.raises(KlingTransportError, match="UnsupportedProtocol"):
        hook.get_status(broken)
    assert "retrying in" not in caplog.text


# -- auth, keys and masking ------------------------------------------------------------------------
def test_wrong_key_and_locked_account(hook, emulator):
    emulator.require_key = "other-id:other-secret"
    with pytest.raises(KlingAuthenticationError, match="No user found") as exc:
        hook.submit(T2V, {"prompt": "x"})
    assert exc.value.status_code == 401
    emulator.require_key = None
    emulator.locked = True
    with pytest.raises(KlingAuthenticationError, match=r"User is locked\. Reason: Exhausted balance") as exc:
        hook.submit(T2V, {"prompt": "x"})
    assert exc.value.status_code == 403
    assert emulator.requests["submit"] == 2  # auth failures are final


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"FAL_KEY": "env-id:env-secret"}, "env-id:env-secret"),
        ({"FAL_KEY_ID": "split-id", "FAL_KEY_SECRET": "split-secret"}, "split-id:split-secret"),
    ],
)
def test_key_from_the_environment_when_the_password_is_empty(monkeypatch, emulator, env, expected):
    set_conn(monkeypatch, emulator, password="")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with KlingHook(retry_policy=FAST) as hook:
        hook.submit(T2V, {"prompt": "x"})
    assert emulator.last_headers("submit")["authorization"] == f"Key {expected}"


def test_no_key_anywhere_names_both_options_and_sends_nothing(monkeypatch, emulator):
    set_conn(monkeypatch, emulator, password="")
    with KlingHook() as hook, pytest.raises(KlingConfigurationError) as exc:
        hook.submit(T2V, {"prompt": "x"})
    message = str(exc.value)
    assert (
        "password" in message
        and "FAL_KEY" in message
        and "FAL_KEY_ID" in message
        and "FAL_KEY_SECRET" in message
    )
    assert sum(emulator.requests.values()) == 0


def test_the_key_never_reaches_logs_or_errors(monkeypatch, emulator, caplog):
    secret_key = "masked-key-id:masked-key-secret-value"
    set_conn(monkeypatch, emulator, password=secret_key)
    emulator.require_key = "someone:else"
    caplog.set_level("DEBUG")
    texts = []
    with KlingHook(retry_policy=FAST) as hook:
        for call in (
            lambda: hook.submit(T2V, {"prompt": "x"}),
            lambda: hook.get_status(hook.request_from_id(T2V, "r1")),
            lambda: hook.upload_file(b"data"),
        ):
            with pytest.raises(Exception) as exc:
                call()
            texts.append(str(exc.value))
        ok, message = hook.test_connection()
    assert not ok
    texts.append(message)
    for text in [*texts, caplog.text]:
        assert secret_key not in text and "masked-key-secret-value" not in text
    from airflow.sdk.log import redact

    assert secret_key not in redact(f"leaked {secret_key}")


# -- connection settings, links, lifecycle ---------------------------------------------------------
def test_connection_uri_form_and_extras(monkeypatch, emulator):
    monkeypatch.setenv("AIRFLOW_CONN_FAL_DEFAULT", emulator.connection_uri(key=KEY))
    with KlingHook(retry_policy=FAST) as hook:
        assert hook.settings.queue_url == emulator.url
        assert hook.submit(T2V, {"prompt": "x"}).request_id
    set_conn(
        monkeypatch,
        emulator,
        request_timeout="12",
        prices={T2V: "0.07"},
        dashboard_url_template="https://dash.example/{endpoint_id}/{request_id}",
    )
    with KlingHook() as hook:
        assert hook.get_conn().timeout.read == 12 and hook.get_conn().timeout.connect == 12
        assert hook.prices == {T2V: "0.07"}
        assert hook.dashboard_url("r1", T2V) == f"https://dash.example/{T2V}/r1"
    with KlingHook(timeout=3) as hook:
        assert hook.get_conn().timeout.read == 3
    set_conn(monkeypatch, emulator, dashboard_url_template="https://dash.example/{run_id}")
    with KlingHook() as hook, pytest.raises(KlingConfigurationError, match="dashboard_url_template"):
        hook.dashboard_url("r1", T2V)


def test_defaults_for_dashboard_and_prices(hook):
    assert hook.dashboard_url("abc", T2V) == "https://fal.ai/dashboard/requests/abc"
    assert hook.prices == {}


def test_one_pooled_client_per_hook(fal_conn):
    hook = KlingHook(fal_conn)
    client = hook.get_conn()
    hook.submit(T2V, {"prompt": "x"})
    assert hook.get_conn() is client
    with hook:
        pass
    assert client.is_closed
    hook.close()  # idempotent


def test_test_connection(fal_conn, emulator, monkeypatch):
    with KlingHook(fal_conn, retry_policy=FAST) as hook:
        ok, message = hook.test_connection()
    assert ok and emulator.url in message and KEY not in message
    assert emulator.requests["cdn_token"] == 1 and emulator.submissions.total() == 0
    emulator.require_key = "other:key"
    with KlingHook(fal_conn, retry_policy=FAST) as hook:
        ok, message = hook.test_connection()
    assert not ok and "401" in message
    monkeypatch.setenv(
        "AIRFLOW_CONN_FAL_DEFAULT",
        json.dumps(
            {"conn_type": "fal", "password": KEY, "extra": {"rest_url": f"http://127.0.0.1:{closed_port()}"}}
        ),
    )
    with KlingHook(retry_policy=RetryPolicy.no_retry()) as hook:
        ok, message = hook.test_connection()
    assert not ok and "fal upload (storage token) could not reach http://127.0.0.1:" in message
    assert "of fal" not in message


def test_hook_metadata():
    assert KlingHook.conn_type == "fal"
    assert KlingHook.default_conn_name == "fal_default"
    assert KlingHook.conn_name_attr == "fal_conn_id"
    assert KlingHook.hook_name == "fal.ai (Kling)"
    assert KlingHook.get_ui_field_behaviour()["relabeling"]["password"] == "API Key"
