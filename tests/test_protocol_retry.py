"""The one retry predicate and policy both hook shells use (no network: scripted outcomes)."""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
import pytest

from airflow_provider_kling.exceptions import KlingDownloadError
from airflow_provider_kling.protocol.retry import RetryPolicy, should_retry_exception, should_retry_response

URL = "http://127.0.0.1:9/fal-ai/kling-video/requests/r/status"
FAST = RetryPolicy(max_attempts=4, initial_delay=0.001, max_delay=0.01, max_total=5.0)
NGINX = "<html><head><title>502 Bad Gateway</title></head><body><center>nginx</center></body></html>"


def resp(code: int, *, text: str = "{}", headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(code, text=text, headers=headers, request=httpx.Request("GET", URL))


def exc(cls: type[httpx.TransportError], *, headers: dict[str, str] | None = None) -> httpx.TransportError:
    return cls("boom", request=httpx.Request("POST", URL, headers=headers))


CLOUDFLARE = "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>cloudflare</body></html>"
FAL_JSON = '{"detail": "Runner disconnected", "error_type": "runner_disconnected"}'


# Columns: read (status, cancel, result after COMPLETED without error), idempotent (uploads, and a result
# that may be the job's own error), submit.
@pytest.mark.parametrize(
    ("outcome", "read", "idempotent", "submit"),
    [
        (lambda: resp(408), True, True, False),
        (lambda: resp(409), True, True, False),
        (lambda: resp(425), True, True, False),
        (lambda: resp(429, headers={"Retry-After": "1"}), True, True, True),
        (lambda: resp(502, text=NGINX), True, True, False),
        (lambda: resp(503, text=NGINX.replace("502", "503")), True, True, False),
        (lambda: resp(504, text=NGINX.replace("502", "504")), True, True, False),
        # A gateway page is a gateway page whoever wrote it: no "nginx" needed.
        (lambda: resp(502, text=CLOUDFLARE, headers={"content-type": "text/html"}), True, True, False),
        (lambda: resp(503, text="Service Unavailable"), True, True, False),
        (lambda: resp(504, text=""), True, True, False),
        # fal's own JSON 5xx: transient for a read; final for an upload or a result that may be the job's error.
        (lambda: resp(503, text=FAL_JSON, headers={"x-fal-request-id": "r"}), True, False, False),
        (lambda: resp(503, text=NGINX, headers={"x-fal-request-id": "r"}), True, False, False),
        (lambda: resp(502, text='{"detail": "bad gateway"}'), True, False, False),
        (lambda: resp(500, text='{"detail": "Internal Server Error"}'), True, False, False),
        # The user's own start deadline: never retried.
        (
            lambda: resp(504, text=NGINX, headers={"X-Fal-Request-Timeout-Type": "user"}),
            False,
            False,
            False,
        ),
        (lambda: resp(400), False, False, False),
        (lambda: resp(401), False, False, False),
        (lambda: resp(403), False, False, False),
        (lambda: resp(404), False, False, False),
        (lambda: resp(422), False, False, False),
        (lambda: resp(200), False, False, False),
        # A 2xx that breaks the protocol (truncated JSON, an HTML page): a read tries again.
        (lambda: resp(200, text='{"status": "IN_QUEUE", "request_id": "'), True, False, False),
        (lambda: resp(202, text="<html>ok</html>"), True, False, False),
        (lambda: resp(200, text="[1, 2]"), True, False, False),
        (lambda: exc(httpx.ConnectError), True, True, True),
        (lambda: exc(httpx.ConnectTimeout), True, True, True),
        (lambda: exc(httpx.PoolTimeout), True, True, True),
        (lambda: exc(httpx.ReadTimeout), True, True, False),
        (lambda: exc(httpx.ReadError), True, True, False),
        (lambda: exc(httpx.WriteError), True, True, False),
        (lambda: exc(httpx.RemoteProtocolError), True, True, False),
        (
            lambda: exc(httpx.ReadTimeout, headers={"X-Fal-Request-Timeout": "30.0"}),
            False,
            False,
            False,
        ),
        # Our own side fails the same way every time.
        (lambda: exc(httpx.UnsupportedProtocol), False, False, False),
        (lambda: exc(httpx.LocalProtocolError), False, False, False),
    ],
)
def test_retry_predicate_table(outcome, read, idempotent, submit):
    value = outcome()
    expected = {"read": read, "idempotent": idempotent, "submit": submit}
    for kind, retry in expected.items():
        if isinstance(value, httpx.Response):
            assert should_retry_response(value, kind=kind) is retry, kind
        else:
            assert should_retry_exception(value, kind=kind) is retry, kind


# A media download (the video from fal's CDN or any URL, no credentials): the body is a file, and a
# JSON 5xx from a CDN says nothing about it; a body the downloader found cut short is retried.
@pytest.mark.parametrize(
    ("outcome", "retry"),
    [
        (lambda: resp(503, text=FAL_JSON), True),
        (lambda: resp(500, text='{"detail": "Internal Server Error"}'), True),
        (lambda: resp(501), True),
        (lambda: resp(502, text=NGINX), True),
        (lambda: resp(408), True),
        (lambda: resp(425), True),
        (lambda: resp(429), True),
        (lambda: resp(403), False),
        (lambda: resp(404), False),
        (lambda: resp(200, text="\x00\x00\x00\x18ftypmp42"), False),
        (lambda: exc(httpx.RemoteProtocolError), True),
        (lambda: exc(httpx.ReadTimeout), True),
        (lambda: exc(httpx.ConnectError), True),
        (lambda: exc(httpx.UnsupportedProtocol), False),
        (lambda: KlingDownloadError("incomplete download", retryable=True), True),
        (lambda: KlingDownloadError("size mismatch", retryable=False), False),
        (lambda: ValueError("a bug"), False),
    ],
)
def test_download_kind_predicate(outcome, retry):
    value = outcome()
    if isinstance(value, httpx.Response):
        assert should_retry_response(value, kind="download") is retry
    else:
        assert should_retry_exception(value, kind="download") is retry


def test_a_download_error_is_retried_only_for_downloads():
    cut = KlingDownloadError("incomplete download", retryable=True)
    assert [should_retry_exception(cut, kind=kind) for kind in ("read", "idempotent", "submit")] == [
        False
    ] * 3


def scripted(*outcomes):
    """A send function that plays back outcomes and counts calls."""
    calls = []

    def send():
        calls.append(time.monotonic())
        item = outcomes[min(len(calls) - 1, len(outcomes) - 1)]
        value = item()
        if isinstance(value, BaseException):
            raise value
        return value

    return send, calls


def test_transient_errors_are_retried_until_success():
    send, calls = scripted(
        lambda: exc(httpx.ReadError), lambda: resp(429), lambda: resp(200, text='{"ok": 1}')
    )
    result = FAST.retrying("idempotent")(send)
    assert result.status_code == 200 and len(calls) == 3


def test_giving_up_returns_the_last_response_or_raises_the_last_error():
    send, calls = scripted(lambda: resp(503, text=NGINX))
    assert FAST.retrying("idempotent")(send).status_code == 503
    assert len(calls) == FAST.max_attempts
    send, calls = scripted(lambda: exc(httpx.ConnectError))
    with pytest.raises(httpx.ConnectError):
        FAST.retrying("idempotent")(send)
    assert len(calls) == FAST.max_attempts


def test_submit_is_never_retried_after_it_may_have_arrived():
    for outcome in (
        lambda: exc(httpx.ReadTimeout),
        lambda: exc(httpx.RemoteProtocolError),
        lambda: resp(502, text=NGINX),
    ):
        send, calls = scripted(outcome, lambda: resp(200))
        with contextlib.suppress(httpx.HTTPError):
            FAST.retrying("submit")(send)
        assert len(calls) == 1
    send, calls = scripted(lambda: exc(httpx.ConnectError), lambda: resp(429), lambda: resp(200))
    assert FAST.retrying("submit")(send).status_code == 200 and len(calls) == 3


def test_retry_after_is_honoured_and_capped():
    policy = RetryPolicy(max_attempts=2, initial_delay=0.0, max_delay=0.0, max_retry_after=0.3)
    send, calls = scripted(lambda: resp(429, headers={"Retry-After": "0.2"}), lambda: resp(200))
    policy.retrying("idempotent")(send)
    assert 0.18 <= calls[1] - calls[0] < 1.0
    send, calls = scripted(lambda: resp(429, headers={"Retry-After": "3600"}), lambda: resp(200))
    policy.retrying("idempotent")(send)
    assert calls[1] - calls[0] < 1.0  # capped at max_retry_after


def test_backoff_is_exponential_with_bounded_jitter():
    policy = RetryPolicy(initial_delay=1.0, max_delay=8.0, jitter=0.5)
    for attempt, base in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)):
        samples = [policy.backoff(attempt) for _ in range(50)]
        assert all(base * 0.5 <= s <= min(base * 1.5, 8.0) for s in samples)
    assert RetryPolicy(jitter=0.0, initial_delay=1.0).backoff(3) == 4.0


def test_total_time_budget_stops_retries():
    policy = RetryPolicy(max_attempts=100, initial_delay=0.05, max_delay=0.05, jitter=0.0, max_total=0.2)
    send, calls = scripted(lambda: resp(429))
    started = time.monotonic()
    assert policy.retrying("idempotent")(send).status_code == 429
    assert time.monotonic() - started < 1.0 and 2 <= len(calls) <= 6


def test_policy_rejects_nonsense():
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter=2)
    assert RetryPolicy.no_retry().max_attempts == 1


def test_async_retrying_uses_the_same_rules():
    calls = []

    async def send():
        calls.append(1)
        if len(calls) < 3:
            raise exc(httpx.ReadError)
        return resp(200)

    async def main():
        return await FAST.async_retrying("idempotent")(send)

    assert asyncio.run(main()).status_code == 200 and len(calls) == 3
    calls.clear()

    async def submit():
        calls.append(1)
        raise exc(httpx.ReadTimeout)

    async def main_submit():
        return await FAST.async_retrying("submit")(submit)

    with pytest.raises(httpx.ReadTimeout):
        asyncio.run(main_submit())
    assert len(calls) == 1


def test_retries_are_logged_without_secrets(caplog):
    send, _ = scripted(lambda: resp(429), lambda: resp(200))
    with caplog.at_level("WARNING", logger="airflow_provider_kling.protocol.retry"):
        FAST.retrying("idempotent", "status of r")(send)
    assert "status of r: HTTP 429, retrying" in caplog.text


def test_time_already_spent_on_a_first_attempt_counts_against_the_budget():
    # The async hook makes its first attempt before any retry controller exists (no controller on
    # the happy path): the controller it then builds only has what is left of max_total.
    policy = RetryPolicy(max_attempts=5, initial_delay=0.05, max_delay=0.05, jitter=0.0, max_total=0.5)

    def attempts(spent: float) -> int:
        calls = []

        async def send():
            calls.append(1)
            return resp(503)

        async def main():
            return await policy.async_retrying("read", spent=spent)(send)

        assert asyncio.run(main()).status_code == 503
        return len(calls)

    assert attempts(0.0) == 5
    assert attempts(0.48) == 1  # no room left for a 50 ms back-off
