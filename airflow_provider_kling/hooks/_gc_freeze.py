"""Keep the triggerer's long-lived objects out of CPython's full garbage collections.

A triggerer follows every deferred job as a coroutine on one event loop, and a full collection
stops that loop while it walks every object tracked by the collector: Airflow and its providers
(~150,000-200,000 objects once imported) plus each trigger's own (a Kling trigger following a job
holds ~100). At 10,000 deferred jobs a full collection took 1-4 s, so every job's loop stalled that
long. ``gc.freeze()`` moves the objects alive now to a permanent generation that collections skip;
Airflow's own DAG processor manager does the same before it forks.

**When.** When the first Kling trigger in a process starts, and again after every
:data:`FREEZE_EVERY` set-up steps of Kling triggers (building the hook, handling the first status
from the stream or from polling): a restart that starts thousands of triggers at once freezes them in
batches as they start, so the collector only ever walks what was made since the last freeze. Each
freeze first runs a full collection (short: the unfrozen part is small), so no garbage is frozen.

**Why it is safe, although it acts on the whole process.** Frozen objects are still freed when
their last reference goes (reference counting is untouched); only garbage held together by a
reference cycle among frozen objects would never be reclaimed. A Kling trigger leaves no such
cycle behind: after 1,000 triggers completed or were cancelled (SSE and polling), unfreezing and
collecting found 0 objects (``benchmarks/triggerer_capacity.py`` reports this after every run,
and ``tests/test_gc_freeze.py`` checks it). Other providers' triggers that happen to be alive at a
freeze are frozen too; one that leaves a cycle when it ends keeps that cycle's memory until the
process ends. ``[kling] triggerer_gc_freeze =
False`` turns this off.
"""

from __future__ import annotations

import gc
import os

#: Set-up steps of Kling triggers between two freezes.
FREEZE_EVERY = 500

_state: dict[str, int] = {"pid": -1, "since": 0}
_enabled: bool | None = None


def _configured() -> bool:
    global _enabled
    if _enabled is None:
        try:
            from airflow_provider_kling.webhooks.config import option

            raw = option("triggerer_gc_freeze").lower()
        except Exception:  # no Airflow configuration to read: the default
            raw = "true"
        _enabled = raw not in ("false", "0", "no", "off")
    return _enabled


def note_follower() -> None:
    """A Kling trigger took a step that leaves long-lived objects (it built its hook, or handled
    the first status of its stream or of its polling): freeze what is alive when a batch is complete."""
    pid = os.getpid()
    if _state["pid"] != pid:  # first follower in this process (or in a forked child)
        _state["pid"], _state["since"] = pid, FREEZE_EVERY
    _state["since"] += 1
    if _state["since"] < FREEZE_EVERY:
        return
    _state["since"] = 0
    if not gc.isenabled() or not _configured():
        return
    gc.collect()
    gc.freeze()
