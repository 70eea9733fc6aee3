"""Operators that generate Kling videos through fal.ai's queue API (import them from here).

:class:`KlingVideoOperator` takes any Kling endpoint id and its arguments. The typed operators
(:class:`KlingImageToVideoOperator`, :class:`KlingTextToVideoOperator`, :class:`KlingLipSyncOperator`,
:class:`KlingVideoEffectsOperator`) take readable keyword arguments and pick the endpoint for you.

All of them validate locally, upload local files, submit once, and wait in the worker (sync) or in
the triggerer (``deferrable=True``). A retry follows the request the previous try paid for instead
of submitting again (see :mod:`airflow_provider_kling.lifecycle.reattach`).

This module only re-exports: the generic operator lives in :mod:`._video`, the typed ones in
:mod:`._typed` (which subclasses it), so neither imports this module.
"""

from __future__ import annotations

from airflow_provider_kling.operators._typed import (
    KlingImageToVideoOperator,
    KlingLipSyncOperator,
    KlingTextToVideoOperator,
    KlingVideoEffectsOperator,
)
from airflow_provider_kling.operators._video import DEFAULT_POLL_INTERVAL, DEFAULT_TIMEOUT, KlingVideoOperator

__all__ = [
    "DEFAULT_POLL_INTERVAL",
    "DEFAULT_TIMEOUT",
    "KlingImageToVideoOperator",
    "KlingLipSyncOperator",
    "KlingTextToVideoOperator",
    "KlingVideoEffectsOperator",
    "KlingVideoOperator",
]
