"""Read what the Kling tasks left in XCom, defensively.

XCom values come back from the metadata DB as JSON (sometimes still as text, depending on the
backend and Airflow version), and other tasks or other provider versions may have written fields
of other types. Everything here returns plain ``str``/``float``/``dict`` or None, never raises.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any


def decode(value: Any) -> Any:
    """A stored XCom value as Python data (JSON text is parsed; at most twice for double encoding)."""
    for _ in range(2):
        if isinstance(value, (bytes, bytearray)):
            value = value.decode("utf-8", "replace")
        if not isinstance(value, str):
            break
        text = value.strip()
        if not text or (text[0] not in '{["' and text not in ("null", "true", "false")):
            break
        try:
            value = json.loads(text)
        except ValueError:
            break
    # The task SDK's serde wraps some values as {"__classname__": ..., "__data__": ...}.
    if isinstance(value, dict) and "__data__" in value and "__classname__" in value:
        value = value["__data__"]
    return value


def as_dict(value: Any) -> dict[str, Any]:
    value = decode(value)
    return value if isinstance(value, dict) else {}


def as_text(value: Any) -> str | None:
    value = decode(value)
    if isinstance(value, str) and value.strip():
        return value
    return None


def as_number(value: Any) -> float | None:
    value = decode(value)
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def as_cost(value: Any) -> Decimal | None:
    """A cost estimate (decimal string or number, USD) as a Decimal; None when unknown or nonsense."""
    value = decode(value)
    if isinstance(value, dict):  # a richer cost record: take its estimate
        value = value.get("estimate", value.get("cost_estimate", value.get("usd")))
    if value is None or isinstance(value, bool):
        return None
    try:
        cost = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return cost if cost.is_finite() and cost >= 0 else None


def endpoint_parts(endpoint_id: str | None) -> tuple[str | None, str | None, str | None]:
    """``(model, tier, mode)`` of a Kling endpoint id such as ``fal-ai/kling-video/v1.6/pro/image-to-video``."""
    if not endpoint_id:
        return None, None, None
    parts = [p for p in endpoint_id.split("/") if p]
    model = next((p for p in parts if len(p) > 1 and p[0] == "v" and p[1].isdigit()), None)
    tier = next((p for p in parts if p in ("standard", "pro", "master", "lite")), None)
    mode = parts[-1] if len(parts) > 2 and parts[-1] not in (model, tier) else None
    return model, tier, mode
