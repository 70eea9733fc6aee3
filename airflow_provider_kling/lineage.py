"""OpenLineage facets for the Kling operators, following the OpenLineage provider's conventions.

The operators' ``get_openlineage_facets_on_start`` / ``_on_complete`` import this module only when
the OpenLineage provider calls them, so DAG parsing never imports OpenLineage, and a deployment
without the provider never runs any of this.

* inputs: every media file the request reads (image, video, audio, masks): an http(s) URL becomes
  the dataset ``namespace="https://host", name="/path"`` (query strings dropped: signed URLs carry
  secrets); a local file ``namespace="file", name=<absolute path>``; an ``ObjectStoragePath``
  ``namespace="<scheme>://<bucket>", name=<key>`` (OpenLineage's naming for object stores). Inline
  data (bytes, data: URIs) is not a dataset.
* outputs: the generated video's URL on fal's CDN; for :class:`KlingVideoToObjectStorageOperator`,
  the persisted file.
* run facets: ``klingRequest`` (:class:`KlingRequestRunFacet`: endpoint id, request id, model,
  tier, requested duration, cost estimate and cap, and a SHA-256 of the prompt; the prompt itself
  only with ``lineage_include_prompt=True``) and the standard ``externalQuery`` facet (the fal
  request id, source ``fal.ai``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs
from openlineage.client.event_v2 import Dataset
from openlineage.client.facet_v2 import RunFacet, external_query_run

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

RUN_FACET_NAME = "klingRequest"
PRODUCER_SOURCE = "fal.ai"
# Free-text fields that describe what to generate; hashed (not sent) by default.
_PROMPT_FIELDS = ("prompt", "text")


@attrs.define
class KlingRequestRunFacet(RunFacet):
    """What this run asked fal/Kling for.

    :param endpointId: fal endpoint id.
    :param requestId: fal request id (None before the submit).
    :param model: Kling model version (``"1.6"``), when known.
    :param tier: ``standard`` / ``pro`` / ``master``, when known.
    :param requestedDuration: seconds of video asked for.
    :param costEstimateUsd: the provider's estimate (decimal string), None when unknown.
    :param maxCostUsd: the cost cap in force (decimal string), None for none.
    :param promptSha256: SHA-256 of the prompt (or lip-sync text), hex.
    :param prompt: the prompt itself, only when the task sets ``lineage_include_prompt=True``.
    """

    endpointId: str
    requestId: str | None = None
    model: str | None = None
    tier: str | None = None
    requestedDuration: float | int | None = None
    costEstimateUsd: str | None = None
    maxCostUsd: str | None = None
    promptSha256: str | None = None
    prompt: str | None = None

    @staticmethod
    def _get_schema() -> str:
        # No hosted schema yet: a reserved (.invalid) host rather than a URL that pretends to exist.
        return "https://airflow-provider-kling.invalid/spec/facets/1-0-0/KlingRequestRunFacet.json"


def dataset_for(value: Any) -> Dataset | None:
    """The OpenLineage dataset of one file input or output, or None for inline data."""
    if isinstance(value, (bytes, bytearray, memoryview)) or value is None:
        return None
    if _is_object_storage_path(value):
        protocol = value.protocol if isinstance(value.protocol, str) else value.protocol[0]
        if protocol in ("file", "local", ""):
            return Dataset(namespace="file", name=str(value.path))
        bucket = getattr(value, "bucket", "") or ""
        key = getattr(value, "key", None) or str(value.path)
        return Dataset(namespace=f"{protocol}://{bucket}", name=str(key).lstrip("/") or "/")
    if isinstance(value, os.PathLike):
        return Dataset(namespace="file", name=os.path.abspath(os.fspath(value)))
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    lowered = text[:8].lower()
    if lowered.startswith("data:"):
        return None
    if lowered.startswith(("http://", "https://")):
        parts = urlsplit(text)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host  # never user:password@
        return Dataset(namespace=f"{parts.scheme.lower()}://{netloc}", name=parts.path or "/")
    if lowered.startswith("file://"):
        return Dataset(namespace="file", name=urlsplit(text).path)
    return Dataset(namespace="file", name=os.path.abspath(os.path.expanduser(text)))


def _is_object_storage_path(value: Any) -> bool:
    from airflow_provider_kling.models.files import _is_object_storage_path as check

    return bool(check(value))


def input_datasets(endpoint_id: str, arguments: Mapping[str, Any]) -> list[Dataset]:
    """Datasets for every file input of a request (deduplicated, in argument order)."""
    from airflow_provider_kling.models.files import guess_file_fields, iter_slots
    from airflow_provider_kling.models.registry import get_endpoint

    spec = get_endpoint(endpoint_id)
    fields = spec.request_model.file_fields if spec is not None else guess_file_fields(dict(arguments))
    found: list[Dataset] = []
    for path in fields:
        for _, container, key in iter_slots(arguments, path):
            dataset = dataset_for(container[key])
            if dataset is not None and dataset not in found:
                found.append(dataset)
    return found


def _model_and_tier(endpoint_id: str) -> tuple[str | None, str | None]:
    from airflow_provider_kling.models.registry import get_endpoint

    spec = get_endpoint(endpoint_id)
    if spec is not None:
        return spec.capabilities.version, spec.capabilities.tier
    parts = endpoint_id.strip("/").split("/")
    if len(parts) >= 4 and parts[1] == "kling-video" and parts[2].startswith("v"):
        return parts[2][1:], parts[3]
    return None, None


def prompt_of(arguments: Mapping[str, Any]) -> str | None:
    for name in _PROMPT_FIELDS:
        value = arguments.get(name)
        if isinstance(value, str):
            return value
    return None


def request_facets(
    endpoint_id: str,
    arguments: Mapping[str, Any],
    *,
    request_id: str | None,
    duration: Any,
    cost_estimate: str | None,
    max_cost_usd: str | None,
    include_prompt: bool,
) -> dict[str, RunFacet]:
    """The run facets of one Kling request: ``klingRequest`` and, once submitted, ``externalQuery``."""
    model, tier = _model_and_tier(endpoint_id)
    prompt = prompt_of(arguments)
    facets: dict[str, RunFacet] = {
        RUN_FACET_NAME: KlingRequestRunFacet(
            endpointId=endpoint_id,
            requestId=request_id,
            model=model,
            tier=tier,
            requestedDuration=duration,
            costEstimateUsd=cost_estimate,
            maxCostUsd=max_cost_usd,
            promptSha256=hashlib.sha256(prompt.encode()).hexdigest() if prompt is not None else None,
            prompt=prompt if include_prompt else None,
        )
    }
    if request_id:
        facets["externalQuery"] = external_query_run.ExternalQueryRunFacet(
            externalQueryId=request_id, source=PRODUCER_SOURCE
        )
    return facets


def operator_lineage(
    inputs: Iterable[Dataset | None], outputs: Iterable[Dataset | None], run_facets: dict[str, RunFacet]
) -> OperatorLineage:
    from airflow.providers.openlineage.extractors import OperatorLineage

    return OperatorLineage(
        inputs=[d for d in inputs if d is not None],
        outputs=[d for d in outputs if d is not None],
        run_facets=run_facets,
    )


def kling_operator_lineage(operator: Any, *, complete: bool) -> OperatorLineage:
    """Lineage of a Kling operator (``KlingVideoOperator`` and the typed ones) at start or completion."""
    from airflow_provider_kling.cost import effective_cap
    from airflow_provider_kling.lifecycle.output import requested_duration

    endpoint_id, arguments = operator.build_request()
    stored = getattr(operator, "_stored", None)
    budget = getattr(operator, "_budget", None)
    output = stored.output if stored is not None and complete else None
    cap, _ = effective_cap(operator.max_cost_usd, operator.hook.settings.max_cost_usd)
    cost = stored.cost_estimate if stored is not None else None
    if cost is None and budget is not None and budget.estimate is not None:
        cost = str(budget.estimate)
    facets = request_facets(
        endpoint_id,
        arguments,
        request_id=stored.request.request_id if stored is not None else None,
        duration=stored.duration if stored is not None else requested_duration(arguments),
        cost_estimate=cost,
        max_cost_usd=None if cap is None else str(cap),
        include_prompt=bool(getattr(operator, "lineage_include_prompt", False)),
    )
    video = dataset_for(output.get("video_url")) if output else None
    return operator_lineage(input_datasets(endpoint_id, arguments), [video], facets)


def storage_operator_lineage(operator: Any, *, complete: bool) -> OperatorLineage:
    """Lineage of ``KlingVideoToObjectStorageOperator``: the video URL in, the persisted file out."""
    from airflow_provider_kling.lifecycle.output import parse_source

    video = parse_source(operator.source)
    outputs = [dataset_for(operator.resolve_destination(video))] if complete else []
    facets: dict[str, RunFacet] = {}
    endpoint_id = video.info.get("endpoint_id")
    if isinstance(endpoint_id, str) and endpoint_id:
        facets = request_facets(
            endpoint_id,
            video.info,
            request_id=video.request_id,
            duration=video.info.get("duration"),
            cost_estimate=video.info.get("cost_estimate"),
            max_cost_usd=video.info.get("max_cost_usd"),
            include_prompt=False,
        )
    return operator_lineage([dataset_for(video.url)], outputs, facets)
