"""A cancelled trigger stops: no poll after ``cancel()``, even when it lands as a poll completes.

The triggerer cancels a trigger's task when its task instance is cleared, marked or moved. On
Python 3.10 / 3.11, ``asyncio.wait_for`` returned the poll's result instead of raising when the
cancel arrived in the instant the awaited poll completed, and the trigger polled on forever.
These tests cancel many real triggers (real hook, emulator over loopback) at exactly that instant.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pytest

from airflow_provider_kling.deadline import wait_within
from airflow_provider_kling.hooks.kling import KlingHook
from airflow_provider_kling.triggers.kling import KlingRequestTrigger

ENDPOINT = "fal-ai/kling-video/v1.6/standard/text-to-video"


class _CancelAfterPoll(KlingHook):
    """The real hook; once its trigger's ``polls_before_cancel``-th status poll has its answer, the
    trigger's task is cancelled the way the triggerer does it (``task.cancel()``)."""

    def __init__(self, owner: _Followed, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.owner = owner

    async def aget_status(self, request, *, logs: bool = True):
        status = await super().aget_status(request, logs=logs)
        owner = self.owner
        owner.polls += 1
        if owner.cancelled_after is not None:
            owner.polls_after_cancel += 1
        elif owner.polls == owner.polls_before_cancel:
            owner.cancelled_after = owner.polls
            assert owner.task is not None
            owner.task.cancel()
        return status


class _Followed:
    def __init__(self, polls_before_cancel: int) -> None:
        self.polls_before_cancel = polls_before_cancel
        self.polls = 0
        self.polls_after_cancel = 0
        self.cancelled_after: int | None = None
        self.task: asyncio.Task[Any] | None = None


class _Trigger(KlingRequestTrigger):
    followed: _Followed

    def _hook(self) -> KlingHook:
        return _CancelAfterPoll(self.followed, fal_conn_id=self.fal_conn_id)


async def _run(trigger: KlingRequestTrigger) -> list[Any]:
    return [event async for event in trigger.run()]


async def test_triggers_cancelled_as_their_poll_completes_never_poll_again(emulator, fal_conn):
    count = 40
    emulator.processing_time = 600  # every job stays unfinished: only a cancel can end a trigger
    with KlingHook("fal_default") as hook:
        requests = [hook.submit(ENDPOINT, {"prompt": f"clip {i}"}) for i in range(count)]
    rng = random.Random(8)
    followed = []
    for request in requests:
        trigger = _Trigger.for_request(
            request, fal_conn_id="fal_default", poll_interval=0.001, timeout=60, use_sse=False
        )
        trigger.followed = _Followed(polls_before_cancel=rng.randint(1, 4))
        trigger.followed.task = asyncio.ensure_future(_run(trigger))
        followed.append(trigger.followed)

    tasks = [f.task for f in followed]
    done, pending = await asyncio.wait(tasks, timeout=30)
    assert not pending, f"{len(pending)} of {count} triggers ignored their cancel and kept polling"
    assert all(t.cancelled() for t in done), "a cancelled trigger returned instead of being cancelled"
    assert [f.polls_after_cancel for f in followed] == [0] * count
    assert [f.cancelled_after for f in followed] == [f.polls_before_cancel for f in followed]
    # The server saw exactly the polls made before each cancel, and nothing since.
    seen = emulator.requests["status"]
    await asyncio.sleep(0.2)
    assert emulator.requests["status"] == seen == sum(f.polls for f in followed)


@pytest.fixture(params=["asyncio.timeout", "inner task"])
def deadline_impl(request, monkeypatch):
    """Both ways wait_within enforces a deadline: asyncio.timeout (Python >= 3.11.3) and an inner task
    (older Pythons), whichever this interpreter would pick."""
    from airflow_provider_kling import deadline

    if request.param == "asyncio.timeout" and not hasattr(asyncio, "timeout"):
        pytest.skip("asyncio.timeout needs Python 3.11")
    monkeypatch.setattr(deadline, "_TIMEOUT_IS_CANCEL_SAFE", request.param == "asyncio.timeout")
    return request.param


async def test_wait_within_returns_in_time_and_times_out_late_work(deadline_impl):
    assert await wait_within(asyncio.sleep(0, result="ok"), 1) == "ok"
    assert await wait_within(asyncio.sleep(0, result="no deadline"), None) == "no deadline"
    started = time.monotonic()
    inner = asyncio.ensure_future(asyncio.sleep(30))
    with pytest.raises(asyncio.TimeoutError):
        await wait_within(inner, 0.05)
    assert inner.cancelled()  # the late work is cancelled and finished before the error
    assert time.monotonic() - started < 5


async def test_wait_within_never_turns_a_cancel_into_a_result(deadline_impl):
    """The exact race: the awaited work completes, then the caller is cancelled before it resumes."""
    outcomes = []

    async def caller() -> None:
        owner = asyncio.current_task()
        assert owner is not None

        async def work() -> str:
            await asyncio.sleep(0)
            owner.cancel()
            return "result"

        outcomes.append(await wait_within(work(), 10))

    for _ in range(50):
        task = asyncio.ensure_future(caller())
        await asyncio.wait({task})
        assert task.cancelled()
    assert outcomes == []
