"""Turn pydantic errors into our two error shapes.

* client: ``{"loc": (...), "msg": "at most 2500 characters (got 2600)", "type": ...}`` where the
  message always states the limit, for :class:`~airflow_provider_kling.exceptions.KlingValidationError`;
* fal: a 422 ``detail`` item ``{"loc": ["body", ...], "msg": ..., "type": ...}`` as fal answers it.
"""

from __future__ import annotations

import difflib
import re
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import annotated_types
from pydantic import BaseModel

from airflow_provider_kling.exceptions import KlingValidationError

Loc = tuple[str | int, ...]

_MAX_LISTED_CHOICES = 8


def format_loc(loc: Sequence[str | int]) -> str:
    """``("dynamic_masks", 0, "mask_url")`` → ``dynamic_masks[0].mask_url``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "arguments"


def short_repr(value: Any, limit: int = 60) -> str:
    """A repr that never floods the log with a 2500-character prompt or a data URI."""
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    if isinstance(value, str) and len(value) > limit:
        return f"{value[: limit - 20]!r}… ({len(value)} characters)"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _unwrap(annotation: Any) -> list[Any]:
    """Classes inside ``X | None``, ``list[X]``, ``Annotated[X, ...]``."""
    origin = typing.get_origin(annotation)
    if origin is None:
        return [annotation]
    found = []
    for arg in typing.get_args(annotation):
        found.extend(_unwrap(arg))
    return found


def _field_at(model: type[BaseModel], loc: Loc) -> tuple[type[BaseModel] | None, Any]:
    """The model that owns ``loc[-1]`` and that field's FieldInfo (None when not found)."""
    current: type[BaseModel] | None = model
    for part in loc[:-1]:
        if isinstance(part, int) or current is None:
            continue
        info = current.model_fields.get(part)
        if info is None:
            return None, None
        current = next(
            (c for c in _unwrap(info.annotation) if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
    if current is None or not loc or isinstance(loc[-1], int):
        return current, None
    return current, current.model_fields.get(str(loc[-1]))


def _bounds(model: type[BaseModel], loc: Loc) -> tuple[Any, Any]:
    _, info = _field_at(model, loc)
    low = high = None
    for meta in getattr(info, "metadata", []) or []:
        if isinstance(meta, annotated_types.Ge):
            low = meta.ge
        elif isinstance(meta, annotated_types.Le):
            high = meta.le
    return low, high


def _choices(expected: str) -> list[str]:
    return re.findall(r"'((?:[^'\\]|\\.)*)'", expected)


def _literal_msg(err: Mapping[str, Any]) -> str:
    given = err.get("input")
    choices = _choices(str(err.get("ctx", {}).get("expected", "")))
    if 0 < len(choices) <= _MAX_LISTED_CHOICES:
        listed = ", ".join(repr(c) for c in choices)
        msg = f"must be one of {listed} (got {short_repr(given)})"
    else:
        msg = f"must be one of the {len(choices)} allowed values (got {short_repr(given)})"
    if isinstance(given, str):
        close = difflib.get_close_matches(given, choices, n=1)
        if close:
            msg += f"; did you mean {close[0]!r}?"
    if isinstance(given, int) and not isinstance(given, bool) and str(given) in choices:
        msg += f" — write it as the string {str(given)!r}"
    return msg


def _extra_msg(model: type[BaseModel], loc: Loc, endpoint_id: str) -> str:
    owner, _ = _field_at(model, loc)
    allowed = sorted(owner.model_fields) if owner is not None else []
    msg = f"unknown field for {endpoint_id}"
    close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
    if close:
        msg += f"; did you mean {close[0]!r}?"
    if allowed:
        msg += f" (allowed: {', '.join(allowed)})"
    return msg


def client_message(err: Mapping[str, Any], model: type[BaseModel], endpoint_id: str) -> str:
    """One pydantic error as a sentence that states the limit that was broken."""
    type_, ctx, given = err["type"], err.get("ctx") or {}, err.get("input")
    loc: Loc = tuple(err["loc"])
    if type_ == "missing":
        return "required field is missing"
    if type_ == "extra_forbidden":
        return _extra_msg(model, loc, endpoint_id)
    if type_ == "string_too_long":
        return f"at most {ctx['max_length']} characters (got {len(str(given))})"
    if type_ == "string_too_short":
        return f"at least {ctx['min_length']} characters (got {len(str(given))})"
    if type_ == "too_long":
        return f"at most {ctx['max_length']} items (got {ctx.get('actual_length', '?')})"
    if type_ == "too_short":
        return f"at least {ctx['min_length']} items (got {ctx.get('actual_length', '?')})"
    if type_ in ("greater_than_equal", "less_than_equal"):
        low, high = _bounds(model, loc)
        if low is not None and high is not None:
            return f"must be between {low} and {high} (got {short_repr(given)})"
        bound = f">= {ctx['ge']}" if "ge" in ctx else f"<= {ctx.get('le')}"
        return f"must be {bound} (got {short_repr(given)})"
    if type_ == "literal_error":
        return _literal_msg(err)
    if type_ == "url_scheme":
        return f"must be an http(s) or data: URL (got {short_repr(given)})"
    return f"{err['msg']} (got {short_repr(given)})"


def to_client_errors(
    pydantic_errors: Iterable[Mapping[str, Any]], model: type[BaseModel], endpoint_id: str
) -> list[dict[str, Any]]:
    """pydantic errors → ``[{loc, msg, type}]`` with messages that state the limit."""
    return [
        {"loc": tuple(e["loc"]), "msg": client_message(e, model, endpoint_id), "type": e["type"]}
        for e in pydantic_errors
    ]


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def to_fal_detail(err: Mapping[str, Any]) -> dict[str, Any]:
    """One error as an item of fal's 422 ``detail`` list."""
    item: dict[str, Any] = {"loc": ["body", *err["loc"]], "msg": err["msg"], "type": err["type"]}
    if err.get("ctx"):
        item["ctx"] = {k: _json_safe(v) for k, v in err["ctx"].items()}
    return item


def raise_validation_error(endpoint_id: str, errors: list[dict[str, Any]]) -> typing.NoReturn:
    """Raise one KlingValidationError listing every field with its limit."""
    lines = "; ".join(f"{format_loc(e['loc'])}: {e['msg']}" for e in errors)
    count = f"{len(errors)} error" + ("s" if len(errors) != 1 else "")
    raise KlingValidationError(
        f"Invalid arguments for {endpoint_id} ({count}): {lines}",
        errors=errors,
    )
