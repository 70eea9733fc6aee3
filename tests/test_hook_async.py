"""KlingHook's async half (what the trigger uses) against the fal emulator over loopback."""

from __future__ import annotations

import sys
import uuid

import httpx
import pytest

from airflow_provider_kling.exceptions import (
    KlingRateLimitedError,
    KlingRequestFailedError,
    KlingTransportError,
    KlingValidationError,
)
from airflow_provider_kling.hooks.kling import KlingHook
from airflow_provider_kling.protocol import LogDeduper, RetryPolicy

KEY = "test-key-id:test-key-secret"
T2V = "fal-ai/kling-video/v1.6/standard/text-to-video"
FAST = RetryPolicy(max_attempts=3, initial_delay=0.01, max_delay=0.05, max_total=10.0, max_retry_after=0.05)


class AsyncOnlyHook(KlingHook):
    """Proves the async path reads its connection through ``aget_connection`` only."""

    @classmethod
    def get_connection(cls, conn_id):
        raise AssertionError("the async path must not use the sync connection API")


@pytest.fixture
def submitted(fal_conn, emulator):
    """A request submitted through the sync hook (as the operator does in the worker)."""
    with KlingHook(fal_conn, retry_policy=FAST) as hook:
        return hook.submit(T2V, {"prompt": "a heron"})


async def collect(hook, request, **kwargs):
    return [status async for status in hook.astream_status(request, **kwargs)]


async def test_status_result_and_cancel(fal_conn, emulator, submitted):
    async with AsyncOnlyHook(fal_conn, retry_policy=FAST) as hook:
        first = await hook.aget_status(submitted)
        assert first.status in ("IN_QUEUE", "IN_PROGRESS")
        statuses = await collect(hook, submitted, poll_interval=0.05, use_sse=False)
        result = await hook.aget_result(submitted)
        assert await hook.acancel(submitted) == "ALREADY_COMPLETED"
        assert await hook.acancel(hook.request_from_id(T2V, str(uuid.uuid4()))) == "NOT_FOUND"
        client = hook._aclient
    assert statuses[-1].done and result["video"]["content_type"] == "video/mp4"
    assert client is not None and client.is_closed  # async with closed it


async def test_stream_status_uses_sse_until_completed(fal_conn, emulator, submitted):
    async with AsyncOnlyHook(fal_conn, retry_policy=FAST) as hook:
        statuses = await collect(hook, submitted, poll_interval=5.0)
    assert statuses[-1].status == "COMPLETED" and not any(s.done for s in statuses[:-1])
    assert emulator.requests["status_stream"] == 1 and emulator.requests["status"] == 0
    assert emulator.last_headers("status_stream")["authorization"] == f"Key {KEY}"
    # Logs repeat across events; the protocol's deduper turns them into each line once.
    dedupe = LogDeduper()
    lines = [entry.message for s in statuses for entry in dedupe.new_entries(s.logs)]
    assert len(lines) == len(set(lines)) and lines


@pytest.mark.parametrize("kind", ["nginx_502", "server_500", "malformed_json", "reset"])
async def test_stream_falls_back_to_polling(fal_conn, emulator, submitted, kind):
    # nginx/500: non-2xx; malformed_json: not text/event-stream; reset: no answer at all.
    emulator.inject(kind, route="status_stream")
    async with KlingHook(fal_conn, retry_policy=FAST) as hook:
        statuses = await collect(hook, submitted, poll_interval=0.05)
    assert statuses[-1].status == "COMPLETED"
    assert emulator.requests["status_stream"] == 1 and emulator.requests["status"] >= 1


async def test_polling_only_when_sse_disabled(fal_conn, emulator, submitted):
    async with KlingHook(fal_conn, retry_policy=FAST) as hook:
        statuses = await collect(hook, submitted, poll_interval=0.05, use_sse=False, logs=False)
    assert statuses[-1].done and all(s.logs == () for s in statuses)
    assert emulator.requests["status_stream"] == 0 and emulator.requests["status"] == len(statuses)


async def test_async_retries_follow_the_shared_policy(fal_conn, emulator, submitted):
    async with KlingHook(fal_conn, retry_policy=FAST) as hook:
        emulator.inject("rate_limit", route="status", times=2)
        await hook.aget_status(submitted)
        assert emulator.requests["status"] == 3
        emulator.inject("rate_limit", route="status", times=None)
        with pytest.raises(KlingRateLimitedError):
            await hook.aget_status(submitted)
        assert emulator.requests["status"] == 3 + FAST.max_attempts
        emulator.reset()
        emulator.inject("reset", route="result", times=None)
        with pytest.raises(KlingTransportError):
            await hook.aget_result(submitted)
        assert emulator.requests["result"] == FAST.max_attempts


async def test_failed_jobs_raise_from_aget_result(fal_conn, emulator):
    emulator.fail_next(error="Request timed out", error_type="request_timeout", status_code=504)
    with KlingHook(fal_conn, retry_policy=FAST) as sync_hook:
        failing = sync_hook.submit(T2V, {"prompt": "x"})
        invalid = sync_hook.submit(T2V, {"duration": "5"})
    async with KlingHook(fal_conn, retry_policy=FAST) as hook:
        assert (await collect(hook, failing, poll_interval=0.05))[-1].failed
        with pytest.raises(KlingRequestFailedError) as exc:
            await hook.aget_result(failing)
        assert exc.value.error_type == "request_timeout"
        await collect(hook, invalid, poll_interval=0.05)
        with pytest.raises(KlingValidationError) as invalid_exc:
            await hook.aget_result(invalid)
        assert any(e["loc"][-1] == "prompt" for e in invalid_exc.value.errors)


async def test_consumer_may_stop_early_without_leaking_the_stream(fal_conn, emulator, submitted):
    async with KlingHook(fal_conn, retry_policy=FAST) as hook:
        stream = hook.astream_status(submitted, poll_interval=0.05)
        first = await stream.__anext__()
        await stream.aclose()
        assert not first.done
        # The pooled client is still healthy afterwards.
        assert (await hook.aget_status(submitted)).request_id == submitted.request_id


async def test_async_client_loads_no_ca_bundle_on_the_event_loop(fal_conn):
    # Building an httpx client reads the CA bundle (~20 ms of file I/O): on the triggerer's loop that
    # stalls every other trigger. A profiler on this (the loop's) thread sees every C call it makes.
    loaded: list[str] = []

    def watch(frame, event, arg):
        if event == "c_call" and getattr(arg, "__name__", "") in (
            "load_verify_locations",
            "set_default_verify_paths",
        ):
            loaded.append(arg.__name__)

    hook = AsyncOnlyHook(fal_conn)
    sys.setprofile(watch)
    try:
        httpx.AsyncClient()  # the detector works: a plain client loads the bundle right here
        detected = list(loaded)
        loaded.clear()
        client = await hook._aget_client()
    finally:
        sys.setprofile(None)
    assert detected and loaded == []
    assert await hook._aget_client() is client  # still one client per hook
    await hook.aclose()
