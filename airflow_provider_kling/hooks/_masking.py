"""Register the fal key with Airflow's secret masker, wherever this Airflow version keeps it.

A key from ``FAL_KEY`` is not a connection field, so Airflow would not mask it on its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


def _parts(key: str) -> list[str]:
    # Mask the whole "key_id:key_secret" and the secret half, which may be logged on its own.
    parts = [key]
    _, sep, secret = key.partition(":")
    if sep and secret:
        parts.append(secret)
    return parts


def _sync_masker() -> Callable[..., Any] | None:
    try:
        from airflow.sdk.log import mask_secret  # Airflow 3.x task SDK
    except ImportError:
        try:
            from airflow.sdk.execution_time.secrets_masker import mask_secret  # type: ignore[no-redef]
        except ImportError:
            try:
                from airflow.utils.log.secrets_masker import mask_secret  # type: ignore[no-redef]
            except ImportError:  # pragma: no cover - no masker at all: nothing to register with
                return None
    return mask_secret


def mask_key(key: str) -> None:
    """Register ``key`` with the masker (sync contexts: workers, the API server)."""
    masker = _sync_masker()
    if masker is None or not key:  # pragma: no cover
        return
    for part in _parts(key):
        try:
            masker(part)
        except Exception:  # pragma: no cover - masking must never break a task
            log.debug("Could not register the fal key with the secret masker", exc_info=True)


async def amask_key(key: str) -> None:
    """Register ``key`` from async code (the triggerer), without the sync supervisor round trip that
    can deadlock a loop that already has a call in flight."""
    try:
        from airflow.sdk.log import amask_secret
    except ImportError:  # Airflow < 3.3: the sync masker is all there is
        mask_key(key)
        return
    for part in _parts(key):
        try:
            await amask_secret(part)
        except Exception:  # pragma: no cover
            log.debug("Could not register the fal key with the secret masker", exc_info=True)
