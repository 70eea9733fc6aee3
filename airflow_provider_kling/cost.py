"""Per-task cost cap: refuse a request whose estimated price exceeds ``max_cost_usd``.

Pure functions and data (no I/O, no Airflow, no pydantic): the operator asks for a
:class:`CostBudget` once the arguments are validated and calls :meth:`CostBudget.enforce` right
before it would upload files and submit, so a refused task has spent nothing. A retry that
reattaches to (or reuses) the request an earlier try paid for does not pass through the check
again: no new money is spent, and the request is never counted twice.

The estimate is the one in the task log and the return XCom (``cost_estimate``): the built-in
price table or the connection's ``prices`` extra, applied to the validated arguments with fal's
defaults filled in (see :mod:`airflow_provider_kling.models.pricing`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from airflow_provider_kling.exceptions import KlingConfigurationError, KlingCostLimitError

#: ``error_type`` of the refusal (also the metrics tag of the failure).
COST_CAP_ERROR_TYPE = "cost_cap_exceeded"
UNKNOWN_COST_ERROR_TYPE = "cost_unknown"


def parse_usd(value: Any, name: str) -> Decimal | None:
    """A non-negative USD amount from a number or a (templated) string; None/"" mean "no cap".

    :param value: ``0.5``, ``"0.50"``, ``Decimal("0.5")``; a bool is refused.
    :param name: what to call the value in the error (``max_cost_usd``, ``connection extra ...``).
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        amount = Decimal(str(value).strip()) if not isinstance(value, bool) else Decimal("NaN")
    except (InvalidOperation, ValueError):
        amount = Decimal("NaN")
    if not amount.is_finite() or amount < 0:
        raise KlingConfigurationError(f"{name} must be a non-negative number of US dollars, got {value!r}")
    return amount


@dataclass(frozen=True)
class CostBudget:
    """The estimate of one request and the cap it must stay under.

    :param endpoint_id: the endpoint priced.
    :param estimate: USD, or None when no price is known for the endpoint.
    :param basis: how the estimate was computed (``"10 s x $0.098/s (fal model page, V S3)"``).
    :param cap: the effective cap in USD, or None for no cap.
    :param cap_source: ``"task max_cost_usd"`` or ``"connection extra max_cost_usd"``.
    :param allow_unknown_cost: submit under a cap even when no estimate exists.
    """

    endpoint_id: str
    estimate: Decimal | None
    basis: str
    cap: Decimal | None = None
    cap_source: str = ""
    allow_unknown_cost: bool = False

    @property
    def estimate_cents(self) -> int | None:
        """The estimate in whole US cents, rounded up (what the cost metric counts)."""
        if self.estimate is None:
            return None
        return int((self.estimate * 100).to_integral_value(rounding="ROUND_CEILING"))

    def describe(self) -> str:
        """One log line: the estimate, how it was computed, and the cap."""
        if self.estimate is None:
            estimate = f"no cost estimate for this endpoint ({self.basis})"
        else:
            estimate = f"estimated cost {self.estimate} USD ({self.basis})"
        cap = f"cap {self.cap} USD ({self.cap_source})" if self.cap is not None else "no cost cap"
        return f"{estimate}; {cap}"

    def enforce(self) -> None:
        """Raise :class:`KlingCostLimitError` when the request must not be submitted."""
        if self.cap is None:
            return
        if self.estimate is None:
            if self.allow_unknown_cost:
                return
            raise KlingCostLimitError(
                f"Refusing to submit to {self.endpoint_id}: {self.cap_source} is ${self.cap}, but the cost "
                f"of this endpoint cannot be estimated ({self.basis}), so the cap cannot be checked. Add its price "
                "to the connection extra 'prices', or set allow_unknown_cost=True on the task to submit "
                "anyway. Nothing was uploaded or submitted.",
                error_type=UNKNOWN_COST_ERROR_TYPE,
            )
        if self.estimate > self.cap:
            raise KlingCostLimitError(
                f"Refusing to submit to {self.endpoint_id}: the estimated cost ${self.estimate} exceeds "
                f"{self.cap_source} ${self.cap}. Estimate: {self.basis}. Nothing was uploaded or "
                "submitted; raise max_cost_usd or ask for less (a shorter duration, a cheaper tier).",
                error_type=COST_CAP_ERROR_TYPE,
            )

    def as_xcom(self) -> dict[str, str | None]:
        """``cost_estimate`` and ``max_cost_usd`` for the return value (decimal strings or None)."""
        return {
            "cost_estimate": None if self.estimate is None else str(self.estimate),
            "max_cost_usd": None if self.cap is None else str(self.cap),
        }


def effective_cap(task_value: Any, connection_value: Any) -> tuple[Decimal | None, str]:
    """The cap in force and where it came from: the task's ``max_cost_usd`` wins over the connection's."""
    task_cap = parse_usd(task_value, "max_cost_usd")
    if task_cap is not None:
        return task_cap, "task max_cost_usd"
    connection_cap = parse_usd(connection_value, "connection extra 'max_cost_usd'")
    if connection_cap is not None:
        return connection_cap, "connection extra max_cost_usd"
    return None, ""
