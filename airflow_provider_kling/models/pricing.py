"""Price figures and the cost estimate reported in the task log and XCom.

An estimate, not a bill: fal's prices change and some depend on the input (lip-sync bills the
input video's length). Override per endpoint with the ``prices`` extra of the ``fal``
connection; the value is a JSON object keyed by endpoint id (``fnmatch`` patterns such as
``"fal-ai/kling-video/v3/*"`` are allowed; an exact id wins over a pattern, a longer pattern
over a shorter one)::

    {
      "fal-ai/kling-video/v1.6/standard/image-to-video": {"per_second": "0.045"},
      "fal-ai/kling-video/v2/master/*": {"per_clip_5s": "1.40", "per_extra_second": "0.28"},
      "fal-ai/kling-video/v2.6/pro/image-to-video":
          {"per_second": "0.07", "per_second_audio": "0.14", "per_second_voice": "0.168"},
      "fal-ai/kling-video/v1.6/pro/effects": {"per_clip": "0.49"}
    }

Amounts are USD, written as strings (or numbers) and read as :class:`~decimal.Decimal`.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from decimal import Decimal, InvalidOperation
from typing import Any

from airflow_provider_kling.exceptions import KlingConfigurationError


@dataclass(frozen=True)
class Price:
    """How an endpoint is billed (USD).

    :param per_second: per second of output video.
    :param per_second_audio: per second when ``generate_audio`` is on (v2.6).
    :param per_second_voice: per second when ``voice_ids`` are given (v2.6).
    :param per_clip_5s: for the first 5 seconds; with ``per_extra_second`` for each one after.
    :param per_extra_second: per second beyond the first 5.
    :param per_clip: flat price per clip, whatever its length.
    :param per_input_second: per second of *input* video (lip-sync); not estimable before
        the input is known, so :meth:`cost` returns None.
    :param source: where the figure comes from, with its date.
    """

    per_second: Decimal | None = None
    per_second_audio: Decimal | None = None
    per_second_voice: Decimal | None = None
    per_clip_5s: Decimal | None = None
    per_extra_second: Decimal | None = None
    per_clip: Decimal | None = None
    per_input_second: Decimal | None = None
    source: str = ""

    @classmethod
    def from_mapping(cls, key: str, value: Any) -> Price:
        """Read one entry of the connection's ``prices`` extra; a bad entry names its key."""
        if not isinstance(value, Mapping):
            raise KlingConfigurationError(
                f"prices[{key!r}] must be an object such as {{'per_second': '0.045'}}"
            )
        amounts = {f.name for f in fields(cls)} - {"source"}
        unknown = sorted(set(value) - amounts - {"source"})
        if unknown:
            raise KlingConfigurationError(
                f"prices[{key!r}] has unknown keys {unknown}; allowed: {sorted(amounts)}"
            )
        parsed: dict[str, Any] = {"source": str(value.get("source", "connection extra 'prices'"))}
        for name in amounts & set(value):
            raw = value[name]
            try:
                # str() first: Decimal(0.045) would carry the float's binary error.
                amount = Decimal(str(raw))
            except (InvalidOperation, ValueError):
                amount = Decimal("NaN")
            if isinstance(raw, bool) or not amount.is_finite() or amount < 0:
                raise KlingConfigurationError(
                    f"prices[{key!r}][{name!r}] must be a non-negative number, got {raw!r}"
                )
            parsed[name] = amount
        price = cls(**parsed)
        if price.per_extra_second is not None and price.per_clip_5s is None:
            raise KlingConfigurationError(f"prices[{key!r}]: per_extra_second needs per_clip_5s")
        return price

    def cost(self, arguments: Mapping[str, Any], *, default_duration: str = "5") -> Decimal | None:
        """Estimated cost of one request with these (validated) arguments, or None if unknown."""
        try:
            seconds = int(str(arguments.get("duration", default_duration)))
        except ValueError:
            return None
        if self.per_clip_5s is not None:
            extra = self.per_extra_second or Decimal(0)
            return self.per_clip_5s + extra * max(seconds - 5, 0)
        if self.per_second is not None:
            rate = self.per_second
            audio = arguments.get("generate_audio")
            if audio and self.per_second_audio is not None:
                rate = self.per_second_audio
            if audio and arguments.get("voice_ids") and self.per_second_voice is not None:
                rate = self.per_second_voice
            return rate * seconds
        if self.per_clip is not None:
            return self.per_clip
        return None

    def basis(self, arguments: Mapping[str, Any], *, default_duration: str = "5") -> str:
        """How :meth:`cost` prices these arguments, in words (for logs and refusals)."""
        seconds = str(arguments.get("duration", default_duration))
        source = f" ({self.source})" if self.source else ""
        if self.per_clip_5s is not None:
            extra = self.per_extra_second or Decimal(0)
            return f"${self.per_clip_5s} for the first 5 s + ${extra}/s after, {seconds} s{source}"
        if self.per_second is not None:
            rate, what = self.per_second, "per second"
            audio = arguments.get("generate_audio")
            if audio and self.per_second_audio is not None:
                rate, what = self.per_second_audio, "per second with generate_audio"
            if audio and arguments.get("voice_ids") and self.per_second_voice is not None:
                rate, what = self.per_second_voice, "per second with voice_ids"
            return f"{seconds} s x ${rate}/s ({what}){source}"
        if self.per_clip is not None:
            return f"${self.per_clip} per clip{source}"
        if self.per_input_second is not None:
            return f"${self.per_input_second} per second of input video, unknown before the job runs{source}"
        return f"no usable price{source}"


def _d(value: str) -> Decimal:
    return Decimal(value)


def per_second(amount: str, source: str, **variants: str) -> Price:
    """A per-second price (``variants``: ``per_second_audio``, ``per_second_voice``)."""
    return Price(per_second=_d(amount), source=source, **{k: _d(v) for k, v in variants.items()})


def per_clip_5s(first_five: str, extra_second: str, source: str) -> Price:
    """A price for the first 5 seconds plus a rate for each second after."""
    return Price(per_clip_5s=_d(first_five), per_extra_second=_d(extra_second), source=source)


def load_overrides(prices: Mapping[str, Any] | str | None) -> Mapping[str, Any]:
    """The ``prices`` extra as a mapping (it may arrive as a JSON string from a URI connection)."""
    if prices is None or prices == "":
        return {}
    if isinstance(prices, str):
        try:
            prices = json.loads(prices)
        except ValueError as err:
            raise KlingConfigurationError(f"connection extra 'prices' is not valid JSON: {err}") from None
    if not isinstance(prices, Mapping):
        raise KlingConfigurationError("connection extra 'prices' must be a JSON object keyed by endpoint id")
    return prices


def find_override(endpoint_id: str, prices: Mapping[str, Any]) -> Price | None:
    """The override for ``endpoint_id``: exact key first, then the longest matching pattern."""
    if endpoint_id in prices:
        return Price.from_mapping(endpoint_id, prices[endpoint_id])
    patterns = [k for k in prices if any(c in k for c in "*?[") and fnmatch.fnmatchcase(endpoint_id, k)]
    if not patterns:
        return None
    best = max(patterns, key=len)
    return Price.from_mapping(best, prices[best])
