"""A cancel-safe deadline for one awaitable, the same on every supported Python (3.10 included).

``asyncio.wait_for`` on Python 3.10 and 3.11 swallows a ``cancel()`` that arrives just as the awaited
operation completes: it returns the result and the task goes on as if nothing had happened. A
trigger cancelled that way (the triggerer cancels a trigger's task when its task instance is
cleared, marked or moved) keeps polling fal until the process ends. ``asyncio.timeout`` fixes
this, but only from 3.11 on.

:func:`wait_within` never turns a cancellation into a result. From Python 3.11.3 on it uses
``asyncio.timeout``, which tells its own deadline's cancel from anyone else's; before, it runs the
awaitable as a task of its own and waits for it with :func:`asyncio.wait`, so the deadline only
ever cancels the inner task. Either way the caller's cancellation always propagates.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["wait_within"]


#: ``asyncio.timeout`` counts cancellations (it only turns its own into ``TimeoutError``) from
#: Python 3.11.3 on (gh-102780); there it needs no task of its own per wait, which matters when
#: thousands of triggers wait at once (a task, its context, a waiter and a callback per poll).
_TIMEOUT_IS_CANCEL_SAFE = sys.version_info >= (3, 11, 3)


async def _within_timeout(awaitable: Awaitable[T], timeout: float) -> T:
    task = asyncio.current_task()
    if task is None:  # pragma: no cover - awaited outside a task: nothing to cancel it with
        raise RuntimeError("wait_within must run inside a task")
    cancels = task.cancelling()
    deadline: Any = asyncio.timeout(max(0.0, timeout))  # type: ignore[attr-defined,unused-ignore]
    try:
        async with deadline:
            result = await awaitable
        if task.cancelling() > cancels:
            # Cancelled while the work was completing, before this task ran again: the cancel wins
            # over the result (the triggerer cancelled the trigger).
            raise asyncio.CancelledError
        return result
    finally:
        # A cancelled task keeps its CancelledError, whose traceback keeps this frame: holding the
        # task here (or in the timeout) would make that a reference cycle, one that a task frozen
        # by hooks/_gc_freeze.py would keep for good.
        task = deadline = None


def _retrieve(task: asyncio.Future[Any]) -> None:
    # An abandoned inner task's exception is consumed here, so asyncio never logs
    # "Task exception was never retrieved" for an outcome nobody waits for any more.
    if not task.cancelled():
        task.exception()


async def _discard(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` and wait until it has finished (so e.g. an async generator it was
    advancing can be closed afterwards)."""
    task.cancel()
    await asyncio.wait({task})


async def wait_within(awaitable: Awaitable[T], timeout: float | None) -> T:
    """Await ``awaitable`` for at most ``timeout`` seconds.

    :param awaitable: a coroutine, task or other awaitable (e.g. ``stream.__anext__()``).
    :param timeout: seconds; None waits without a deadline, <= 0 gives it no time at all.
    :raises asyncio.TimeoutError: when the deadline passes first (the awaitable is cancelled and
        has finished by then).
    :raises asyncio.CancelledError: whenever the caller is cancelled, even if the awaitable
        completed in the same instant: a cancellation is never turned into a result.
    """
    if timeout is None:
        return await awaitable
    if _TIMEOUT_IS_CANCEL_SAFE:
        return await _within_timeout(awaitable, timeout)
    task: asyncio.Future[T] = asyncio.ensure_future(awaitable)
    task.add_done_callback(_retrieve)
    try:
        done, _ = await asyncio.wait({task}, timeout=max(0.0, timeout))
    except asyncio.CancelledError:
        if not task.done():
            await _discard(task)
        raise
    if task in done:
        return task.result()
    await _discard(task)
    raise asyncio.TimeoutError(f"no result within {timeout:g} s")
