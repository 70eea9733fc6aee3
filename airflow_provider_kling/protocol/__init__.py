"""Sans-I/O core of fal's queue protocol: build requests, parse responses, decide retries.

Nothing in this package performs I/O; the sync and async hooks are thin shells around it.
"""

from __future__ import annotations

from airflow_provider_kling.protocol.types import (
    QUEUE_STATES,
    CancelOutcome,
    FalRequest,
    LogEntry,
    QueueState,
    RequestStatus,
)

__all__ = ["QUEUE_STATES", "CancelOutcome", "FalRequest", "LogEntry", "QueueState", "RequestStatus"]
