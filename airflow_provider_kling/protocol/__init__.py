"""Sans-I/O core of fal's queue protocol: build requests, parse responses, decide retries.

Nothing in this package performs I/O; the sync and async hooks are thin shells around it.

Names are resolved lazily (PEP 562): ``protocol.types`` and ``protocol.endpoints`` are imported by the
DAG parser and by local validation, which must not pay for httpx and tenacity just to read a dataclass.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_kling._lazy import lazy_exports

if TYPE_CHECKING:
    from airflow_provider_kling.protocol.config import FalSettings, resolve_key, settings_from_connection
    from airflow_provider_kling.protocol.endpoints import EndpointId, derive_request, parse_endpoint_id
    from airflow_provider_kling.protocol.queue import QueueProtocol
    from airflow_provider_kling.protocol.retry import (
        RetryPolicy,
        should_retry_exception,
        should_retry_response,
    )
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

_HOMES: dict[str, str] = {
    "FalSettings": "config",
    "resolve_key": "config",
    "settings_from_connection": "config",
    "EndpointId": "endpoints",
    "derive_request": "endpoints",
    "parse_endpoint_id": "endpoints",
    "QueueProtocol": "queue",
    "RetryPolicy": "retry",
    "should_retry_exception": "retry",
    "should_retry_response": "retry",
    "LogDeduper": "status",
    "parse_status": "status",
    "QUEUE_STATES": "types",
    "CancelOutcome": "types",
    "FalRequest": "types",
    "LogEntry": "types",
    "QueueState": "types",
    "RequestStatus": "types",
    "UploadProtocol": "uploads",
}

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


__getattr__, __dir__ = lazy_exports(globals(), _HOMES)
