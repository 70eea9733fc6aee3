"""Remove the API key from everything fal sends back, before anyone logs, raises or stores it.

fal echoes request data in model log lines, error texts and results; a key that ended up in an
input (or in a misconfigured webhook URL) comes back in clear. Airflow's secret masker is not a
safe net: ``airflow dags test`` redacts nothing, and XComs are never masked. So the protocol core,
which knows the key, scrubs every fal-provided string it hands out: status logs and errors,
results, and the texts, error lists and types of the exceptions it builds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, TypeVar

from airflow_provider_kling.exceptions import KlingError, KlingValidationError
from airflow_provider_kling.protocol.errors import scrub
from airflow_provider_kling.protocol.types import RequestStatus

E = TypeVar("E", bound=BaseException)


def _contains(text: str, secrets: tuple[str, ...]) -> bool:
    return scrub(text, secrets) != text


def value(data: Any, secrets: Iterable[str]) -> Any:
    """``data`` (JSON-like) with the key (and each half of it) replaced in every string."""
    found = tuple(s for s in secrets if s)
    if not found:
        return data
    return _value(data, found)


def _value(data: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(data, str):
        return scrub(data, secrets)
    if isinstance(data, dict):
        return {_value(k, secrets): _value(v, secrets) for k, v in data.items()}
    if isinstance(data, list):
        return [_value(v, secrets) for v in data]
    if isinstance(data, tuple):
        return tuple(_value(v, secrets) for v in data)
    return data


def status(parsed: RequestStatus, secrets: Iterable[str]) -> RequestStatus:
    """A status whose log lines, error text and metrics carry no key."""
    found = tuple(s for s in secrets if s)
    if not found:
        return parsed
    logs = tuple(
        dataclasses.replace(entry, message=scrub(entry.message, found))
        if _contains(entry.message, found)
        else entry
        for entry in parsed.logs
    )
    return dataclasses.replace(
        parsed,
        logs=logs,
        error=None if parsed.error is None else scrub(parsed.error, found),
        error_type=None if parsed.error_type is None else scrub(parsed.error_type, found),
        metrics=_value(parsed.metrics, found),
    )


def error(exc: E, secrets: Iterable[str]) -> E:
    """``exc`` with the key removed from its text, fal's error type and a 422's error list (in place)."""
    found = tuple(s for s in secrets if s)
    if not found:
        return exc
    exc.args = tuple(_value(arg, found) for arg in exc.args)
    if isinstance(exc, KlingError):
        exc.message = scrub(exc.message, found)
        if exc.error_type is not None:
            exc.error_type = scrub(exc.error_type, found)
    if isinstance(exc, KlingValidationError):
        exc.errors = _value(exc.errors, found)
    return exc
