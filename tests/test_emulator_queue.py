"""The emulator's queue API over loopback with plain httpx: routes, codes, positions, logs, cancel, auth."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest

from airflow_provider_kling.emulator import FalEmulator

I2V = "fal-ai/kling-video/v1.6/standard/image-to-video"
T2V = "fal-ai/kling-video/v1.6/standard/text-to-video"
KEY = "kid:ksecret"


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10, headers={"Authorization": f"Key {KEY}"}) as c:
        yield c


def submit(client: httpx.Client, emu: FalEmulator, endpoint: str = T2V, **arguments) -> dict:
    response = client.post(f"{emu.url}/{endpoint}", json=arguments or {"prompt": "a red fox"})
    assert response.status_code == 200, response.text
    return response.json()


def wait_completed(client: httpx.Client, status_url: str, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(status_url)
        if response.status_code == 200:
            return response.json()
        time.sleep(0.02)
    raise AssertionError("request did not complete")


def test_submit_answers_in_queue_with_owner_alias_urls(emulator, client):
    body = submit(client, emulator, I2V, prompt="p", image_url="https://example.com/cat.png")

    assert body["status"] == "IN_QUEUE"
    assert uuid.UUID(body["request_id"]).version == 4
    base = f"{emulator.url}/fal-ai/kling-video/requests/{body['request_id']}"
    assert body["response_url"] == base
    assert body["status_url"] == f"{base}/status"
    assert body["cancel_url"] == f"{base}/cancel"
    assert body["queue_position"] == 0
    assert "gateway_request_id" not in body
    assert emulator.submissions == {I2V: 1}


def test_status_codes_logs_key_and_metrics(emulator, client):
    emulator.processing_time = 0.4
    body = submit(client, emulator)

    in_flight = client.get(body["status_url"])
    assert in_flight.status_code == 202
    assert in_flight.json()["status"] in ("IN_QUEUE", "IN_PROGRESS")
    assert "logs" in in_flight.json() and in_flight.json()["logs"] is None
    for truthy in ("1", "true"):
        logs = client.get(body["status_url"], params={"logs": truthy}).json()["logs"]
        assert isinstance(logs, list)
    for falsy in ("0", "false"):
        assert client.get(body["status_url"], params={"logs": falsy}).json()["logs"] is None

    done = wait_completed(client, body["status_url"])
    assert done["status"] == "COMPLETED"
    assert done["logs"] is None
    assert done["metrics"]["inference_time"] >= 0.3
    assert "error" not in done and "queue_position" not in done
    # fal keeps answering after completion (clients poll once more).
    again = client.get(body["status_url"], params={"logs": 1})
    assert again.status_code == 200 and again.json()["status"] == "COMPLETED"
    assert isinstance(again.json()["logs"], list)


def test_queue_positions_move_fifo_with_one_worker(emulator, client):
    emulator.concurrency = 1
    emulator.processing_time = 0.3
    first, second, third = (submit(client, emulator) for _ in range(3))
    time.sleep(0.05)

    assert client.get(first["status_url"]).json()["status"] == "IN_PROGRESS"
    assert client.get(second["status_url"]).json()["queue_position"] == 0
    assert client.get(third["status_url"]).json()["queue_position"] == 1

    wait_completed(client, first["status_url"])
    time.sleep(0.05)
    assert client.get(second["status_url"]).json()["status"] == "IN_PROGRESS"
    third_status = client.get(third["status_url"])
    assert third_status.status_code == 202
    assert third_status.json()["queue_position"] == 0


def test_account_concurrency_limits_each_key_and_queues_the_rest(emulator):
    # fal's limit is per account: a busy account's next job waits IN_QUEUE (never rejected)
    # while another account's job is served by a free runner.
    emulator.concurrency, emulator.account_concurrency, emulator.processing_time = 4, 1, 3.0
    with (
        httpx.Client(timeout=10, headers={"Authorization": "Key acct-a:s1"}) as a,
        httpx.Client(timeout=10, headers={"Authorization": "Key acct-b:s2"}) as b,
    ):
        a1, a2, b1 = submit(a, emulator), submit(a, emulator), submit(b, emulator)
        # One dispatch pass starts a1 and b1 (b1 overtakes a2: another account). Wait for it rather
        # than sleep, so a loaded machine cannot fail the test; a1 then runs 3 s, long enough to look.
        deadline = time.monotonic() + 10
        while b.get(b1["status_url"]).json()["status"] != "IN_PROGRESS":
            assert time.monotonic() < deadline, "the other account's job never started"
            time.sleep(0.02)
        assert [a.get(r["status_url"]).json()["status"] for r in (a1, a2)] == ["IN_PROGRESS", "IN_QUEUE"]

        wait_completed(a, a1["status_url"])
        assert wait_completed(a, a2["status_url"])["status"] == "COMPLETED"
    assert emulator.submissions == {T2V: 3}
    # a2 started only once a1 had finished: the account never had two jobs in progress.
    logs = {
        request_id: {e["message"]: datetime.fromisoformat(e["timestamp"]) for e in job.logs}
        for request_id, job in emulator.app.queue.jobs.items()
    }
    a1_done = logs[a1["request_id"]]["Generating video: step 4/4 (100%)"]
    assert logs[a2["request_id"]]["Loading model weights"] >= a1_done


def test_processing_jitter_varies_each_job_within_bounds(emulator, client):
    emulator.concurrency, emulator.processing_time, emulator.processing_jitter = 8, 0.2, 0.4
    emulator.log_window = 20
    bodies = [submit(client, emulator) for _ in range(6)]
    times = []
    for body in bodies:
        wait_completed(client, body["status_url"])
        logs = {
            e["message"]: e["timestamp"]
            for e in client.get(body["status_url"], params={"logs": 1}).json()["logs"]
        }
        start, end = (
            datetime.fromisoformat(logs[m])
            for m in ("Loading model weights", "Generating video: step 4/4 (100%)")
        )
        times.append((end - start).total_seconds())
    # No upper bound: a loaded machine wakes the emulator's sleeps late, never early.
    assert all(t >= 0.2 for t in times), times
    assert max(times) - min(times) > 0.02, times  # not all the same length
    with pytest.raises(ValueError, match="account_concurrency"):
        emulator.account_concurrency = 0


def test_queue_delay_keeps_jobs_queued(emulator, client):
    emulator.queue_delay = 0.3
    emulator.processing_time = 0.05
    body = submit(client, emulator)
    time.sleep(0.15)
    assert client.get(body["status_url"]).json()["status"] == "IN_QUEUE"
    assert wait_completed(client, body["status_url"])["status"] == "COMPLETED"


def test_logs_slide_in_a_window_with_iso_timestamps(emulator, client):
    emulator.app.knobs.log_window = 2
    emulator.processing_time = 0.4
    body = submit(client, emulator)
    seen: list[tuple[str, str]] = []
    while True:
        response = client.get(body["status_url"], params={"logs": 1})
        logs = response.json()["logs"]
        assert len(logs) <= 2
        for entry in logs:
            assert set(entry) >= {"message", "level", "source", "timestamp"}
            datetime.fromisoformat(entry["timestamp"])
            if (entry["timestamp"], entry["message"]) not in seen:
                seen.append((entry["timestamp"], entry["message"]))
        if response.status_code == 200:
            break
        time.sleep(0.03)

    final = [e["message"] for e in logs]
    assert seen[0][1] == "Request picked up by a runner"
    assert "Request picked up by a runner" not in final  # it slid out of the window
    assert len(seen) > 2


def test_trailing_slash_and_workflows_namespace(emulator, client):
    emulator.processing_time = 0.05
    response = client.post(f"{emulator.url}/workflows/me/my-flow/sub/path/", json={"prompt": "x"})
    body = response.json()
    assert body["status_url"] == f"{emulator.url}/workflows/me/my-flow/requests/{body['request_id']}/status"
    assert emulator.submissions == {"workflows/me/my-flow/sub/path": 1}

    wait_completed(client, body["status_url"] + "/")
    assert client.get(body["response_url"] + "/").status_code == 200
    assert client.put(body["cancel_url"] + "/").json() == {"status": "ALREADY_COMPLETED"}


def test_unknown_ids_and_wrong_app_are_404_json(emulator, client):
    body = submit(client, emulator)
    unknown = f"{emulator.url}/fal-ai/kling-video/requests/{uuid.uuid4()}"
    for response in (client.get(f"{unknown}/status"), client.get(unknown)):
        assert response.status_code == 404
        assert response.json() == {"detail": "Request not found"}
    # Requests belong to owner/alias: another app never sees them.
    other = f"{emulator.url}/fal-ai/other-app/requests/{body['request_id']}/status"
    assert client.get(other).status_code == 404
    assert client.get(f"{emulator.url}/nothing-here").status_code == 404


def test_result_before_completion_is_400(emulator, client):
    emulator.processing_time = 0.5
    body = submit(client, emulator)
    response = client.get(body["response_url"])
    assert response.status_code == 400
    assert response.json() == {"detail": "Request is still in progress"}


def test_result_is_video_output(emulator, client):
    emulator.processing_time = 0.05
    body = submit(client, emulator)
    wait_completed(client, body["status_url"])
    response = client.get(body["response_url"])
    assert response.status_code == 200
    assert response.headers["x-fal-request-id"] == body["request_id"]
    video = response.json()["video"]
    assert video["url"].startswith(f"{emulator.cdn_url}/files/") and video["url"].endswith("/output.mp4")
    assert video["content_type"] == "video/mp4" and video["file_name"] == "output.mp4"
    served = client.get(video["url"])
    assert served.headers["content-type"] == "video/mp4"
    assert len(served.content) == video["file_size"] == int(served.headers["content-length"])


def test_cancel_outcomes(emulator, client):
    emulator.concurrency = 1
    emulator.processing_time = 0.5
    running, queued = submit(client, emulator), submit(client, emulator)
    time.sleep(0.05)

    response = client.put(queued["cancel_url"])
    assert (response.status_code, response.json()) == (202, {"status": "CANCELLATION_REQUESTED"})
    status = client.get(queued["status_url"], params={"logs": 1})
    assert status.status_code == 200
    assert status.json()["error_type"] == "client_cancelled"
    assert status.json()["logs"] == []  # removed from the queue: never processed

    response = client.put(running["cancel_url"])
    assert (response.status_code, response.json()) == (202, {"status": "CANCELLATION_REQUESTED"})
    done = wait_completed(client, running["status_url"], timeout=0.4)  # well before processing would end
    assert done["error_type"] == "client_cancelled"
    result = client.get(running["response_url"])
    assert result.status_code == 499
    assert result.json() == {"detail": "Request cancelled by the client", "error_type": "client_cancelled"}

    response = client.put(running["cancel_url"])
    assert (response.status_code, response.json()) == (400, {"status": "ALREADY_COMPLETED"})
    missing = str(uuid.uuid4())
    response = client.put(f"{emulator.url}/fal-ai/kling-video/requests/{missing}/cancel")
    assert (response.status_code, response.json()) == (404, {"status": "NOT_FOUND"})
    assert emulator.cancellations == {queued["request_id"]: 1, running["request_id"]: 2, missing: 1}


def test_fail_next_completes_with_error_type(emulator, client):
    emulator.processing_time = 0.05
    emulator.fail_next()
    failed, fine = submit(client, emulator), submit(client, emulator)

    status = wait_completed(client, failed["status_url"])
    assert (status["error"], status["error_type"]) == ("Runner disconnected", "runner_disconnected")
    result = client.get(failed["response_url"])
    assert result.status_code == 503
    assert result.json() == {"detail": "Runner disconnected", "error_type": "runner_disconnected"}
    assert result.headers["x-fal-request-id"] == failed["request_id"]
    assert result.headers["x-fal-error-type"] == "runner_disconnected"
    assert result.headers["x-fal-retryable"] == "true"

    wait_completed(client, fine["status_url"])
    assert client.get(fine["response_url"]).status_code == 200


def test_fail_next_with_422_detail_list(emulator, client):
    emulator.processing_time = 0.05
    detail = [{"loc": ["body", "prompt"], "msg": "Prompt flagged", "type": "content_policy_violation"}]
    emulator.fail_next("Invalid status code: 422", "content_policy_violation", 422, detail=detail)
    body = submit(client, emulator)
    wait_completed(client, body["status_url"])
    result = client.get(body["response_url"])
    assert (result.status_code, result.json()) == (422, {"detail": detail})
    assert result.headers["x-fal-billable-units"] == "0"
    assert result.headers["x-fal-retryable"] == "false"


def test_start_timeout_expires_in_queue_with_504(emulator, client):
    emulator.concurrency = 1
    emulator.processing_time = 0.5
    submit(client, emulator)
    headers = {"X-Fal-Request-Timeout": "0.1"}
    late = client.post(f"{emulator.url}/{T2V}", json={"prompt": "x"}, headers=headers)
    status = wait_completed(client, late.json()["status_url"], timeout=0.4)
    assert status["error_type"] == "request_timeout"
    result = client.get(late.json()["response_url"])
    assert result.status_code == 504
    assert result.headers["x-fal-request-timeout-type"] == "user"


def test_low_priority_queues_behind_normal(emulator, client):
    emulator.concurrency = 1
    emulator.processing_time = 0.3
    submit(client, emulator)
    low = client.post(f"{emulator.url}/{T2V}", json={"prompt": "x"}, headers={"X-Fal-Queue-Priority": "low"})
    normal = submit(client, emulator)
    assert client.get(normal["status_url"]).json()["queue_position"] == 0
    assert client.get(low.json()["status_url"]).json()["queue_position"] == 1


def test_require_key_and_locked_account(emulator):
    emulator.require_key = KEY
    url = f"{emulator.url}/{T2V}"
    with httpx.Client(timeout=5) as anonymous:
        for headers in ({}, {"Authorization": "Key other:key"}):
            response = anonymous.post(url, json={"prompt": "x"}, headers=headers)
            assert (response.status_code, response.json()) == (
                401,
                {"detail": "No user found for Key ID and Secret"},
            )
        malformed = anonymous.post(url, json={"prompt": "x"}, headers={"Authorization": "Key nocolon"})
        assert malformed.status_code == 401
        assert "Expected '<key_id>:<key_secret>'" in malformed.json()["detail"]
        ok = anonymous.post(url, json={"prompt": "x"}, headers={"Authorization": f"Key {KEY}"})
        assert ok.status_code == 200
        assert anonymous.get(ok.json()["status_url"]).status_code == 401

        emulator.locked = True
        locked = anonymous.post(url, json={"prompt": "x"}, headers={"Authorization": f"Key {KEY}"})
        assert locked.status_code == 403
        assert locked.json()["detail"].startswith("User is locked. Reason: Exhausted balance.")
        # A locked user can still read status (fal-ai/fal #1147).
        status = anonymous.get(ok.json()["status_url"], headers={"Authorization": f"Key {KEY}"})
        assert status.status_code in (200, 202)
    assert emulator.submissions == {T2V: 1}


def test_webhook_param_echoes_gateway_id(emulator, client):
    hook = {"fal_webhook": "http://127.0.0.1:9/hook"}
    response = client.post(f"{emulator.url}/{T2V}", params=hook, json={"prompt": "x"})
    body = response.json()
    assert body["gateway_request_id"] == body["request_id"]


def test_counters_and_last_headers(emulator, client):
    body = submit(client, emulator)
    client.get(body["status_url"], headers={"X-Custom": "yes"})
    client.get(body["status_url"])
    assert emulator.requests == {"submit": 1, "status": 2}
    submit_headers = emulator.last_headers("submit")
    assert submit_headers["authorization"] == f"Key {KEY}"
    assert submit_headers["content-type"] == "application/json"
    assert "x-custom" not in emulator.last_headers("status")
    assert emulator.last_headers("cancel") == {}


def test_reset_forgets_jobs_counters_and_faults(emulator, client):
    body = submit(client, emulator)
    emulator.inject("nginx_502", route="status", times=None)
    emulator.fail_next()
    emulator.reset()
    assert emulator.submissions == {} and emulator.requests == {}
    assert client.get(body["status_url"]).status_code == 404  # no fault any more, and no job
    emulator.processing_time = 0.05
    fresh = submit(client, emulator)
    assert "error" not in wait_completed(client, fresh["status_url"])


def test_sse_stream_sends_each_change_and_closes(emulator, client):
    emulator.processing_time = 0.3
    body = submit(client, emulator)
    events = []
    with client.stream("GET", body["status_url"] + "/stream", params={"logs": 1}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[len("data: ") :]))
    assert len(events) >= 3
    assert events[-1]["status"] == "COMPLETED" and events[-1]["metrics"]["inference_time"] > 0
    assert all(e["status"] != "COMPLETED" for e in events[:-1])
    assert all(e["request_id"] == body["request_id"] for e in events)
    assert any(e["logs"] for e in events)
    assert emulator.requests["status_stream"] == 1


def test_sse_keepalive_comments(emulator, client):
    emulator.sse_keepalive = 0.05
    emulator.processing_time = 0.4
    body = submit(client, emulator)
    lines = []
    with client.stream("GET", body["status_url"] + "/stream") as response:
        lines = [line for line in response.iter_lines() if line]
    assert ": ping" in lines
    data = [json.loads(line[6:]) for line in lines if line.startswith("data: ")]
    assert data[-1]["status"] == "COMPLETED" and data[-1]["logs"] is None


def test_sse_for_completed_request_sends_one_event(emulator, client):
    emulator.processing_time = 0.05
    body = submit(client, emulator)
    wait_completed(client, body["status_url"])
    with client.stream("GET", body["status_url"] + "/stream") as response:
        lines = [line for line in response.iter_lines() if line]
    assert len(lines) == 1 and json.loads(lines[0][6:])["status"] == "COMPLETED"
    missing = client.get(f"{emulator.url}/fal-ai/kling-video/requests/{uuid.uuid4()}/status/stream")
    assert missing.status_code == 404
