"""The triggerer's gc.freeze() (hooks/_gc_freeze.py): batches, the off switch, and nothing frozen
that outlives its use once triggers complete or are cancelled."""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from airflow_provider_kling.hooks import _gc_freeze
from airflow_provider_kling.triggers.kling import KlingRequestTrigger

FAKE_FAL = Path(__file__).resolve().parent.parent / "benchmarks" / "_fake_fal.py"
KEY = "test-key-id:test-key-secret"


@pytest.fixture
def freezing(monkeypatch):
    """gc.freeze() on, every 3 set-up steps; everything unfrozen again afterwards."""
    monkeypatch.setattr(_gc_freeze, "_enabled", True)
    monkeypatch.setattr(_gc_freeze, "FREEZE_EVERY", 3)
    monkeypatch.setattr(_gc_freeze, "_state", {"pid": -1, "since": 0})
    gc.collect()
    try:
        yield
    finally:
        gc.unfreeze()


def test_freezes_at_the_first_step_then_every_batch(freezing):
    _gc_freeze.note_follower()
    frozen = gc.get_freeze_count()
    assert frozen > 0
    made_after = [[i] for i in range(1000)]
    _gc_freeze.note_follower()
    _gc_freeze.note_follower()
    assert gc.get_freeze_count() < frozen + len(made_after)  # not a batch yet
    _gc_freeze.note_follower()
    assert gc.get_freeze_count() >= frozen + len(made_after)
    del made_after


def test_the_off_switch_and_a_disabled_collector_freeze_nothing(freezing, monkeypatch):
    monkeypatch.setattr(_gc_freeze, "_enabled", False)
    for _ in range(7):
        _gc_freeze.note_follower()
    assert gc.get_freeze_count() == 0
    monkeypatch.setattr(_gc_freeze, "_enabled", True)
    gc.disable()
    try:
        for _ in range(7):
            _gc_freeze.note_follower()
    finally:
        gc.enable()
    assert gc.get_freeze_count() == 0


def test_the_option_is_read_from_airflow_config(monkeypatch):
    monkeypatch.setattr(_gc_freeze, "_enabled", None)
    monkeypatch.setenv("AIRFLOW__KLING__TRIGGERER_GC_FREEZE", "False")
    assert _gc_freeze._configured() is False
    monkeypatch.setattr(_gc_freeze, "_enabled", None)
    monkeypatch.setenv("AIRFLOW__KLING__TRIGGERER_GC_FREEZE", "True")
    assert _gc_freeze._configured() is True


async def test_triggers_frozen_while_running_leave_no_garbage_frozen(freezing, monkeypatch):
    server = subprocess.Popen([sys.executable, str(FAKE_FAL)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        base = f"http://127.0.0.1:{int(server.stdout.readline().split()[1])}"
        monkeypatch.setenv(
            "AIRFLOW_CONN_FAL_GC", json.dumps({"conn_type": "fal", "host": base, "password": KEY})
        )
        now = time.time()
        triggers = []
        for i in range(12):
            # The fake server reads the job's life from its id: queued 0.3 s, done after 1.0-1.6 s.
            rid = f"{i}-{int((now + 0.3) * 1000)}-{int((now + 1.0 + i * 0.05) * 1000)}"
            url = f"{base}/fal-ai/kling-video/requests/{rid}"
            triggers.append(
                KlingRequestTrigger(
                    fal_conn_id="fal_gc",
                    request_id=rid,
                    endpoint_id="fal-ai/kling-video/v1.6/standard/text-to-video",
                    status_url=f"{url}/status",
                    response_url=url,
                    cancel_url=f"{url}/cancel",
                    poll_interval=0.1,
                    end_time=now + 30,
                    use_sse=i % 2 == 0,
                    submitted_at=now,
                )
            )

        async def run(trigger):
            return [event.payload async for event in trigger.run()]

        tasks = [asyncio.ensure_future(run(t)) for t in triggers]
        await asyncio.sleep(0.6)  # every trigger is following (streams open, polls under way)
        assert gc.get_freeze_count() > 0
        for task in tasks[:4]:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        server.terminate()
        server.wait(10)
    assert [r if isinstance(r, BaseException) else [e["status"] for e in r] for r in results[4:]] == [
        ["success"]
    ] * 8
    assert all(isinstance(r, asyncio.CancelledError) for r in results[:4])
    del tasks, results, triggers, task
    await asyncio.sleep(0.1)
    gc.collect()  # what was never frozen
    gc.unfreeze()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        kinds = [type(o).__name__ for o in gc.garbage]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    ours = {
        "KlingRequestTrigger",
        "KlingHook",
        "HTTPConnection",
        "EventStream",
        "EventReader",
        "SharedFalClient",
        "Connection",
        "_SelectorSocketTransport",
        "RequestStatus",
        "PollSchedule",
    }
    assert [kind for kind in kinds if kind in ours] == []


async def test_polls_that_need_no_retry_leave_no_reference_cycles(emulator, fal_conn):
    # A poll's garbage is freed by reference counting, so polling thousands of jobs does not keep
    # the collector busy (the retry controller, built only when a retry is due, is cyclic).
    from airflow_provider_kling.hooks.kling import KlingHook

    emulator.processing_time = 30.0
    with KlingHook(fal_conn) as sync_hook:
        request = sync_hook.submit("fal-ai/kling-video/v1.6/standard/text-to-video", {"prompt": "fox"})
    hook = KlingHook(fal_conn, shared_client=True)
    await hook.aget_status(request)  # first use: connection read, shared client, imports
    gc.collect()
    gc.disable()
    try:
        for _ in range(20):
            await hook.aget_status(request)
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        kinds = [f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert [kind for kind in kinds if kind.startswith(("tenacity", "httpx", "airflow_provider_kling"))] == []
    assert len(kinds) < 20  # not one cycle per poll
