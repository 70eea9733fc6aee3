"""Fault injection: each kind looks on the wire like the real failure, is counted, and (except
``reset_after_accept``) never creates a job."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

T2V = "fal-ai/kling-video/v1.6/standard/text-to-video"


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10, headers={"Authorization": "Key a:b"}) as c:
        yield c


def post_submit(client: httpx.Client, emu) -> httpx.Response:
    return client.post(f"{emu.url}/{T2V}", json={"prompt": "x"})


def test_rate_limit_has_retry_after(emulator, client):
    emulator.inject("rate_limit", route="submit", retry_after=3)
    response = post_submit(client, emulator)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    assert emulator.submissions == {}
    assert emulator.requests == {"submit": 1}
    assert post_submit(client, emulator).status_code == 200  # times=1: the next one passes
    assert emulator.submissions == {T2V: 1}


@pytest.mark.parametrize("code", [502, 503, 504])
def test_nginx_errors_are_html_without_request_id(emulator, client, code):
    emulator.inject(f"nginx_{code}", route="any")
    response = post_submit(client, emulator)
    assert response.status_code == code
    assert response.headers["content-type"].startswith("text/html")
    assert "nginx" in response.text
    assert "x-fal-request-id" not in response.headers
    assert emulator.submissions == {}


def test_server_500_is_json_from_fal(emulator, client):
    body = post_submit(client, emulator).json()
    emulator.inject("server_500", route="status")
    response = client.get(body["status_url"])
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal Server Error", "error_type": "internal_error"}
    assert response.headers["x-fal-request-id"] == body["request_id"]
    assert response.headers["x-fal-error-type"] == "internal_error"
    assert client.get(body["status_url"]).status_code in (200, 202)
    assert emulator.requests["status"] == 2


def test_reset_closes_connection_without_response_and_creates_no_job(emulator, client):
    emulator.inject("reset", route="submit")
    # An aborted socket reads as EOF or as ECONNRESET, depending on whether the request was still
    # unread in the kernel buffer: both mean "no response".
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        post_submit(client, emulator)
    assert emulator.requests == {"submit": 1}
    assert emulator.submissions == {}
    assert emulator.app.queue.jobs == {}
    assert post_submit(client, emulator).status_code == 200


def test_reset_after_accept_creates_the_job_then_drops_the_answer(emulator, client):
    emulator.processing_time = 0.05
    emulator.inject("reset_after_accept", route="submit")
    with pytest.raises(httpx.TransportError):
        post_submit(client, emulator)
    assert emulator.submissions == {T2V: 1}
    (job,) = emulator.app.queue.jobs.values()
    deadline = time.monotonic() + 5
    while emulator.job_state(job.request_id) != "COMPLETED" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert emulator.job_state(job.request_id) == "COMPLETED"  # the paid job exists and runs


def test_slow_delays_the_answer(emulator, client):
    emulator.inject("slow", route="submit", delay=0.3)
    started = time.monotonic()
    response = post_submit(client, emulator)
    assert time.monotonic() - started >= 0.3
    assert response.status_code == 200
    assert emulator.submissions == {T2V: 1}  # slow, not failed
    with pytest.raises(httpx.ReadTimeout):
        emulator.inject("slow", route="submit", delay=0.5)
        client.post(f"{emulator.url}/{T2V}", json={"prompt": "x"}, timeout=0.2)


def test_malformed_json(emulator, client):
    emulator.inject("malformed_json", route="submit")
    response = post_submit(client, emulator)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        response.json()
    assert emulator.submissions == {}


def test_route_targeting_times_and_unlimited(emulator, client):
    emulator.inject("nginx_503", route="result", times=2)
    body = post_submit(client, emulator).json()  # not a result route: unaffected
    assert [client.get(body["response_url"]).status_code for _ in range(3)] == [503, 503, 400]

    emulator.inject("rate_limit", route="status", times=None)
    assert all(client.get(body["status_url"]).status_code == 429 for _ in range(4))
    emulator.reset()
    assert client.get(body["status_url"]).status_code == 404


def test_faults_on_storage_routes(emulator, client):
    emulator.inject("reset", route="cdn_token")
    # EOF or ECONNRESET, as for the queue routes above (seen as ECONNRESET under the lowest versions).
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.post(f"{emulator.rest_url}/storage/auth/token", params={"storage_type": "fal-cdn-v3"}, json={})
    assert emulator.requests == {"cdn_token": 1}


def test_bad_fault_arguments_are_rejected(emulator):
    with pytest.raises(ValueError, match="unknown fault kind"):
        emulator.inject("explode")
    with pytest.raises(ValueError, match="unknown route"):
        emulator.inject("reset", route="nowhere")
