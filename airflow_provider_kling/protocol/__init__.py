"""Sans-I/O core of fal's queue protocol: build requests, parse responses, decide retries.

Nothing in this package performs I/O; the sync and async hooks are thin shells around it.
"""

from __future__ import annotations

from airflow_provider_kling.protocol.config import FalSettings, resolve_key, settings_from_connection
from airflow_provider_kling.protocol.endpoints import EndpointId, derive_request, parse_endpoint_id
from airflow_provider_kling.protocol.queue import QueueProtocol
from airflow_provider_kling.protocol.retry import RetryPolicy, should_retry_exception, should_retry_response
from airflow_provider_kling.protocol.status import LogDeduper, parse_status
from airflow_provider_kling.protocol.types import (
    QUEUE_STATES,
    CancelOutcome,
    FalRequest,
    LogEntry,
    QueueState,
    RequestStatus,
)
from airflow_provider_kling.protocol.uploads import UploadProtocol

__all__ = [
    "QUEUE_STATES",
    "CancelOutcome",
    "EndpointId",
    "FalRequest",
    "FalSettings",
    "LogDeduper",
    "LogEntry",
    "QueueProtocol",
    "QueueState",
    "RequestStatus",
    "RetryPolicy",
    "UploadProtocol",
    "derive_request",
    "parse_endpoint_id",
    "parse_status",
    "resolve_key",
    "settings_from_connection",
    "should_retry_exception",
    "should_retry_response",
]
