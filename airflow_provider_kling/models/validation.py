"""Validate arguments before any money is spent, and answer as fal would at result time.

fal validates a request only after queueing it (submit answers 200; the 422 shows up at result
time), so a bad argument costs a queue slot and sometimes GPU time. :func:`check_arguments` (and
its two views, :func:`validate_arguments` and :func:`prepare_arguments`) refuses bad input locally,
naming each field and its limit;
:func:`fal_validation_errors` is the server's view of the same models, used by the emulator.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from airflow_provider_kling.cost import CostBudget, effective_cap
from airflow_provider_kling.exceptions import KlingValidationError
from airflow_provider_kling.models.errors import (
    Loc,
    format_loc,
    raise_validation_error,
    short_repr,
    to_client_errors,
    to_fal_detail,
)
from airflow_provider_kling.models.files import (
    PendingUpload,
    collect_file_inputs,
    copy_tree,
    guess_file_fields,
    run_uploads,
    set_at,
)
from airflow_provider_kling.models.pricing import Price, find_override, load_overrides
from airflow_provider_kling.models.registry import EndpointSpec, get_endpoint
from airflow_provider_kling.protocol.endpoints import parse_endpoint_id

log = logging.getLogger(__name__)

_SERVER_CONTEXT = {"defer_cross_checks": True}
_KLING_PREFIX = "fal-ai/kling-video/"


def _client_context(allow_unknown_effect_scene: bool) -> dict[str, Any]:
    return {
        "client": True,
        "defer_cross_checks": True,
        "allow_unknown_effect_scene": allow_unknown_effect_scene,
    }


def _check_endpoint_id(endpoint_id: Any) -> str:
    # The queue protocol's own parser: validation must refuse exactly the ids the hook cannot submit.
    stripped = endpoint_id.strip().strip("/") if isinstance(endpoint_id, str) else endpoint_id
    parse_endpoint_id(stripped)
    _check_endpoint_case(stripped)
    return stripped


def _check_endpoint_case(endpoint_id: str) -> None:
    """Refuse ``.../V1.6/...``: fal routes ids case-sensitively, so it would skip local validation
    as an "unknown endpoint" and then fail (or worse, reach another app) after the submit."""
    if get_endpoint(endpoint_id) is not None:
        return
    lowered = endpoint_id.lower()
    known = get_endpoint(lowered)
    if known is None and not (lowered.startswith(_KLING_PREFIX) and endpoint_id != lowered):
        return
    suggestion = known.endpoint_id if known is not None else lowered
    msg = (
        f"fal endpoint ids are case-sensitive and Kling's are lower-case; did you mean {suggestion!r}? "
        f"(got {endpoint_id!r})"
    )
    raise KlingValidationError(
        f"Invalid endpoint_id: {msg}",
        errors=[{"loc": ("endpoint_id",), "msg": msg, "type": "endpoint_case"}],
    )


def _key_errors(value: Any, loc: Loc = ()) -> list[dict[str, Any]]:
    """Non-string keys anywhere in the tree: JSON has none, and the models would choke on them."""
    errors: list[dict[str, Any]] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str):
                errors.extend(_key_errors(item, (*loc, key)))
            else:
                errors.append(
                    {
                        "loc": loc,
                        "msg": f"key {short_repr(key)} ({type(key).__name__}) is not a string; "
                        "argument names must be strings",
                        "type": "key_type",
                    }
                )
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            errors.extend(_key_errors(item, (*loc, i)))
    return errors


def _check_mapping(endpoint_id: str, arguments: Any) -> dict[str, Any]:
    if not isinstance(arguments, Mapping):
        raise KlingValidationError(
            f"Invalid arguments for {endpoint_id}: arguments must be a dict (JSON object), "
            f"got {type(arguments).__name__}",
            errors=[{"loc": (), "msg": "must be a dict (JSON object)", "type": "dict_type"}],
        )
    errors = _key_errors(arguments)
    if errors:
        raise_validation_error(endpoint_id, errors)
    return copy_tree(dict(arguments))


def _json_errors(value: Any, loc: Loc = ()) -> list[dict[str, Any]]:
    """Values ``json.dumps`` would refuse (or turn into invalid JSON such as NaN), by location."""
    if isinstance(value, dict):
        errors = []
        for key, item in value.items():
            if not isinstance(key, str):
                errors.append({"loc": loc, "msg": f"key {key!r} is not a string", "type": "json_type"})
            else:
                errors.extend(_json_errors(item, (*loc, key)))
        return errors
    if isinstance(value, list):
        return [e for i, item in enumerate(value) for e in _json_errors(item, (*loc, i))]
    if isinstance(value, float) and not math.isfinite(value):
        return [{"loc": loc, "msg": f"{value} is not valid JSON", "type": "json_type"}]
    if value is None or isinstance(value, (str, int, float, bool)):
        return []
    return [{"loc": loc, "msg": f"{type(value).__name__} is not JSON-serialisable", "type": "json_type"}]


def _validate_unknown(endpoint_id: str, data: dict[str, Any]) -> tuple[dict[str, Any], list[PendingUpload]]:
    # New Kling models appear monthly; blocking them would force users to wait for a release.
    pending, errors = collect_file_inputs(data, guess_file_fields(data))
    errors += _json_errors(data)
    if errors:
        raise_validation_error(endpoint_id, errors)
    log.warning(
        "Endpoint %s is not in this provider's registry: its arguments were only checked to be JSON "
        "and were NOT validated locally (fal reports mistakes only after the job was queued).",
        endpoint_id,
    )
    return data, pending


def _validate_known(
    spec: EndpointSpec, data: dict[str, Any], context: dict[str, Any]
) -> tuple[dict[str, Any], list[PendingUpload]]:
    model_cls = spec.request_model
    pending, errors = collect_file_inputs(data, model_cls.file_fields)
    try:
        model = model_cls.model_validate(data, context=context)
    except ValidationError as exc:
        errors += to_client_errors(exc.errors(include_url=False), model_cls, spec.endpoint_id)
        raise_validation_error(spec.endpoint_id, errors)
    errors += model.cross_field_errors()
    if errors:
        raise_validation_error(spec.endpoint_id, errors)
    return model.model_dump(mode="json", exclude_none=True), pending


def _validate(
    endpoint_id: str, arguments: Any, allow_unknown_effect_scene: bool = False
) -> tuple[dict[str, Any], list[PendingUpload]]:
    endpoint_id = _check_endpoint_id(endpoint_id)
    data = _check_mapping(endpoint_id, arguments)
    spec = get_endpoint(endpoint_id)
    if spec is None:
        return _validate_unknown(endpoint_id, data)
    return _validate_known(spec, data, _client_context(allow_unknown_effect_scene))


@dataclass(frozen=True)
class CheckedArguments:
    """Arguments validated once: the body fal will get, and the files to upload into it first.

    :param payload: exactly the body that will be submitted (fal's defaults filled in,
        ``duration`` as a string, None values dropped), except that file inputs still needing an
        upload (local paths, bytes, ObjectStoragePath) stand as given. What a retry's fingerprint
        and the cost estimate read.
    :param uploads: those file inputs, checked (type, size, image header) and ready to upload.
    """

    payload: dict[str, Any]
    uploads: tuple[PendingUpload, ...] = ()

    def upload(self, upload: Callable[..., str]) -> dict[str, Any]:
        """The body to submit: each distinct file uploaded once and replaced by its URL.

        :param upload: called as ``upload(source, content_type=..., file_name=...)`` for each file
            (in practice :meth:`KlingHook.upload_file`); returns the file's URL. ``source`` is a
            :class:`~pathlib.Path`, ``bytes``, or an open binary file (object storage).
        """
        body = copy_tree(self.payload)
        run_uploads(body, list(self.uploads), upload)
        return body


def check_arguments(
    endpoint_id: str, arguments: Mapping[str, Any], *, allow_unknown_effect_scene: bool = False
) -> CheckedArguments:
    """Check ``arguments`` for ``endpoint_id`` once, without any network call.

    Unknown endpoint ids get a JSON check and a logged warning.

    :param endpoint_id: fal endpoint id, e.g. ``fal-ai/kling-video/v1.6/standard/image-to-video``.
    :param arguments: the request body as a user wrote it.
    :param allow_unknown_effect_scene: send an ``effect_scene`` this provider does not know (fal
        adds scenes monthly) with a logged warning. By default an unknown scene is refused, with a
        "did you mean" when it is close to a known one (``sqiush``).
    :raises KlingValidationError: listing each bad field with its limit (``.errors`` has
        ``loc``/``msg``/``type`` per field), or for an endpoint id in the wrong case.
    :raises KlingConfigurationError: when ``endpoint_id`` is malformed.
    """
    payload, pending = _validate(endpoint_id, arguments, allow_unknown_effect_scene)
    for item in pending:
        set_at(payload, item.loc, item.original)
    return CheckedArguments(payload, tuple(pending))


def validate_arguments(
    endpoint_id: str, arguments: dict[str, Any], *, allow_unknown_effect_scene: bool = False
) -> dict[str, Any]:
    """Check ``arguments`` for ``endpoint_id`` without any network call; return fal's JSON.

    The result is exactly the body that will be submitted, with file inputs that still need an
    upload left as given (see :func:`check_arguments`, whose ``payload`` this is).
    """
    return check_arguments(
        endpoint_id, arguments, allow_unknown_effect_scene=allow_unknown_effect_scene
    ).payload


def prepare_arguments(
    endpoint_id: str,
    arguments: dict[str, Any],
    *,
    upload: Callable[..., str],
    allow_unknown_effect_scene: bool = False,
) -> dict[str, Any]:
    """Validate everything (including local files' headers), then upload files, then return fal's JSON.

    Nothing is uploaded unless every argument passed, and each distinct file is uploaded once.

    :param endpoint_id: fal endpoint id.
    :param arguments: the request body as a user wrote it.
    :param upload: called as ``upload(source, content_type=..., file_name=...)`` for each file
        that is not a URL (in practice :meth:`KlingHook.upload_file`); returns the file's URL.
        ``source`` is a :class:`~pathlib.Path`, ``bytes``, or an open binary file (object storage).
    :param allow_unknown_effect_scene: see :func:`validate_arguments`.
    """
    checked = check_arguments(endpoint_id, arguments, allow_unknown_effect_scene=allow_unknown_effect_scene)
    return checked.upload(upload)


def fal_validation_errors(endpoint_id: str, arguments: Any) -> list[dict[str, Any]] | None:
    """What fal itself answers for these arguments at result time.

    A fal-style 422 ``detail`` list (``{"loc": ["body", ...], "msg": ..., "type": ...}``), ``[]``
    when valid, None for endpoint ids not in the registry. Only what fal's schema checks
    (fields, types, enums, ranges, lengths, URL schemes) plus Kling's cross-field rules, which
    fal passes through and Kling rejects; unknown fields are ignored as fal does. Client-only
    checks (image headers, local files) are not applied.
    """
    spec = get_endpoint(endpoint_id) if isinstance(endpoint_id, str) else None
    if spec is None:
        return None
    if not isinstance(arguments, dict):
        return [{"loc": ["body"], "msg": "Input should be a valid dictionary", "type": "dict_type"}]
    data = copy_tree(arguments)
    for _ in range(2):
        try:
            model = spec.request_model.model_validate(data, context=_SERVER_CONTEXT)
            break
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            extras = [e for e in errors if e["type"] == "extra_forbidden"]
            if len(extras) < len(errors):
                return [to_fal_detail(e) for e in errors if e["type"] != "extra_forbidden"]
            # fal's models ignore unknown fields: drop them and validate again.
            for e in extras:
                _drop(data, tuple(e["loc"]))
    else:  # pragma: no cover - the second pass has no extras left
        return []
    return [to_fal_detail(e) for e in model.cross_field_errors()]


def _drop(data: Any, loc: Loc) -> None:
    for part in loc[:-1]:
        data = data[part]
    data.pop(loc[-1], None)


def estimate_cost(
    endpoint_id: str, arguments: Mapping[str, Any], *, prices: Mapping[str, Any] | str | None = None
) -> Decimal | None:
    """Estimated USD cost of one request, or None when no price is known.

    Reads the registry price unless ``prices`` (the ``fal`` connection's ``prices`` extra, see
    :mod:`airflow_provider_kling.models.pricing` for the format) has an entry for the id.
    Missing arguments take fal's defaults (``duration "5"``, ``generate_audio`` on for v2.6).
    Never raises for bad arguments (returns None); raises KlingConfigurationError for a bad
    ``prices`` entry.
    """
    price, filled = _price_and_arguments(endpoint_id, arguments, prices)
    if price is None or filled is None:
        return None
    return price.cost(filled)


def _price_and_arguments(
    endpoint_id: str, arguments: Any, prices: Mapping[str, Any] | str | None
) -> tuple[Price | None, dict[str, Any] | None]:
    """The price in force for ``endpoint_id`` and the arguments with fal's defaults filled in."""
    spec = get_endpoint(endpoint_id)
    override = find_override(str(endpoint_id).strip("/"), load_overrides(prices))
    price = override or (spec.price if spec else None)
    if not isinstance(arguments, Mapping):
        return price, None
    filled: dict[str, Any] = {}
    if spec is not None:
        for name, info in spec.request_model.model_fields.items():
            if not info.is_required() and info.default is not None:
                filled[name] = info.default
    filled.update({k: v for k, v in arguments.items() if v is not None})
    return price, filled


def cost_budget(
    endpoint_id: str,
    arguments: Mapping[str, Any],
    *,
    prices: Mapping[str, Any] | str | None = None,
    max_cost_usd: Any = None,
    connection_max_cost_usd: Any = None,
    allow_unknown_cost: bool = False,
) -> CostBudget:
    """The estimate of one request, how it was computed, and the cap it must stay under.

    :param endpoint_id: fal endpoint id.
    :param arguments: the validated arguments (:func:`validate_arguments`).
    :param prices: the connection's ``prices`` extra (see :func:`estimate_cost`).
    :param max_cost_usd: the task's cap (USD; number or string); wins over the connection's.
    :param connection_max_cost_usd: the connection extra ``max_cost_usd``.
    :param allow_unknown_cost: let an endpoint without a known price through a cap.
    :raises KlingConfigurationError: for a malformed cap or ``prices`` entry.
    """
    cap, cap_source = effective_cap(max_cost_usd, connection_max_cost_usd)
    price, filled = _price_and_arguments(endpoint_id, arguments, prices)
    if price is None:
        estimate, basis = None, "no price in the built-in table or the connection extra 'prices'"
    else:
        estimate = price.cost(filled or {})
        basis = price.basis(filled or {})
    return CostBudget(
        endpoint_id=endpoint_id,
        estimate=estimate,
        basis=basis,
        cap=cap,
        cap_source=cap_source,
        allow_unknown_cost=allow_unknown_cost,
    )


def describe_errors(errors: list[dict[str, Any]]) -> str:
    """``"prompt: at most 2500 characters (got 2600); cfg_scale: ..."`` for a list of errors."""
    return "; ".join(f"{format_loc(e['loc'])}: {e['msg']}" for e in errors)
