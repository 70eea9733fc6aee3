"""One exception hierarchy for everything the provider raises, rooted at :class:`KlingError`.

The classes carry the HTTP facts a caller needs to decide what to do next (status code,
fal's ``error_type``, ``X-Fal-Retryable``, the request id) but never the API key.
"""

from __future__ import annotations

from typing import Any


class KlingError(Exception):
    """Base class of every error raised by airflow-provider-kling.

    :param message: human readable text (fal's own text where there is one).
    :param status_code: HTTP status code of the response that caused it, if any.
    :param request_id: the fal queue request id concerned, if known.
    :param error_type: fal's ``error_type`` (body or ``X-Fal-Error-Type`` header), if any.
    :param retryable: fal's ``X-Fal-Retryable`` header as a bool, or None when absent.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        request_id: str | None = None,
        error_type: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.request_id = request_id
        self.error_type = error_type
        self.retryable = retryable


class KlingConfigurationError(KlingError):
    """Local configuration is unusable (no API key, malformed endpoint id, bad option)."""


class KlingAuthenticationError(KlingError):
    """fal refused the key: 401, or 403 ("User is locked. Reason: Exhausted balance ...")."""


class KlingNotFoundError(KlingError):
    """404: unknown endpoint, path or request id."""


class KlingValidationError(KlingError):
    """Input was rejected: locally before any network call, or by fal with a 422.

    :param errors: one dict per offending field: ``loc`` (tuple of path parts), ``msg``, ``type``
        and, when fal sent them, ``ctx`` / ``url``.
    """

    def __init__(self, message: str, *, errors: list[dict[str, Any]] | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.errors: list[dict[str, Any]] = list(errors or [])


class KlingCostLimitError(KlingError):
    """The estimated cost exceeds the task's ``max_cost_usd`` (or is unknown under a cap); nothing was spent."""


class KlingRequestFailedError(KlingError):
    """The job reached COMPLETED with an error, and its result GET answered 4xx/5xx."""


class KlingRateLimitedError(KlingError):
    """429 that outlived the retry budget.

    :param retry_after: seconds fal asked us to wait, when it said.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class KlingServerError(KlingError):
    """5xx from fal or its ingress, or a response that breaks the protocol (malformed JSON,
    unknown status)."""


class KlingTransportError(KlingError):
    """The connection failed (refused, reset, DNS, read error) and retries were exhausted."""


class KlingTimeoutError(KlingError):
    """A wait outlived its deadline (client side), or fal reported a start timeout."""


class KlingSubmitUncertainError(KlingError):
    """A submit may or may not have reached fal; retrying could pay twice.

    The message always says that a paid job may exist, so that whoever reads the task log
    checks fal's dashboard before re-running.
    """


class KlingDownloadError(KlingError):
    """A video could not be copied to object storage (HTTP error, broken body, size mismatch, a
    destination that cannot be written, or a lost race for an ``overwrite=False`` name).

    :param retryable: whether another attempt may succeed (transport errors, 5xx, truncation).
    """
