"""A cancel-safe deadline for one awaitable, the same on every supported Python (3.10 included).

``asyncio.wait_for`` on Python 3.10 and 3.11 swallows a ``cancel()`` that arrives just as the awaited
operation completes: it returns the result and the task goes on as if nothing had happened. A
trigger cancelled that way (the triggerer cancels a trigger's task when its task instance is
cleared, marked or moved) keeps polling fal until the process ends. ``asyncio.timeout`` fixes
this, but only from 3.11 on.

:func:`wait_within` never cancels the caller to enforce its deadline: it runs the awaitable as a
task of its own and waits for it with :func:`asyncio.wait`, which never converts a cancellation
into a result. So the caller's cancellation always propagates, and the deadline only ever
cancels the inner task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["wait_within"]


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
