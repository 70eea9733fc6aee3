"""Endpoint registry: fal endpoint id → request model, output model, capabilities, price.

Covers every Kling family that fal types for v1 … v2.6 (kling-endpoints.md §1/§3). Ids not
listed here (v3, O1/O3, v4, ids fal adds next month) are still allowed by the validation module,
unchecked, with a warning.

Prices: kling-endpoints.md §5. "V S3" = fal's model page, "T S11" = a reseller quoting fal's
prices (2025-06). Endpoints without a sourced price have ``price=None`` (no estimate).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from decimal import Decimal

from pydantic import BaseModel

from airflow_provider_kling.models.common import FileKind, KlingInput
from airflow_provider_kling.models.effects import VideoEffectsInput
from airflow_provider_kling.models.elements import ElementsInput, MotionControlInput
from airflow_provider_kling.models.image_to_video import (
    ImageToVideoInput,
    ProImageToVideoInput,
    TailImageToVideoInput,
    V1ImageToVideoInput,
    V2MasterImageToVideoInput,
    V15ProImageToVideoInput,
    V26ImageToVideoInput,
)
from airflow_provider_kling.models.lipsync import LipsyncAudioToVideoInput, LipsyncTextToVideoInput
from airflow_provider_kling.models.outputs import VideoOutput
from airflow_provider_kling.models.pricing import Price, per_clip_5s, per_second
from airflow_provider_kling.models.text_to_video import (
    TextToVideoInput,
    V1TextToVideoInput,
    V2MasterTextToVideoInput,
    V26TextToVideoInput,
)

PREFIX = "fal-ai/kling-video/"


@dataclass(frozen=True)
class Capabilities:
    """What an endpoint accepts, derived from its request model (for operators and docs).

    :param version: Kling model version (``"1.6"``, ``"2.5-turbo"``, ...).
    :param tier: ``"standard"``, ``"pro"``, ``"master"`` or None.
    :param task: ``"text-to-video"``, ``"image-to-video"``, ``"elements"``, ``"effects"``,
        ``"motion-control"``, ``"lipsync-audio"`` or ``"lipsync-text"``.
    :param image_key: field of the first frame (``image_url`` / ``start_image_url``), if any.
    :param tail_key: field of the last frame (``tail_image_url`` / ``end_image_url``), if any.
    :param durations: accepted ``duration`` values.
    :param file_fields: URL-typed inputs and the kind of media they take.
    """

    version: str | None
    tier: str | None
    task: str
    has_prompt: bool
    has_aspect_ratio: bool
    has_cfg_scale: bool
    has_negative_prompt: bool
    image_key: str | None
    tail_key: str | None
    has_masks: bool
    has_camera_control: bool
    has_audio: bool
    durations: tuple[str, ...]
    file_fields: dict[str, FileKind] = field(default_factory=dict)


@dataclass(frozen=True)
class EndpointSpec:
    """One registry entry.

    :param endpoint_id: fal endpoint id, e.g. ``fal-ai/kling-video/v1.6/standard/image-to-video``.
    :param request_model: pydantic model of the request body.
    :param output_model: pydantic model of the result body.
    :param capabilities: what the endpoint accepts.
    :param price: how it is billed, or None when no sourced figure exists.
    """

    endpoint_id: str
    request_model: type[KlingInput]
    output_model: type[BaseModel]
    capabilities: Capabilities
    price: Price | None


def _durations(model: type[KlingInput]) -> tuple[str, ...]:
    info = model.model_fields.get("duration")
    if info is None:
        return ()
    return tuple(str(v) for v in typing.get_args(info.annotation))


def _capabilities(endpoint_id: str, model: type[KlingInput]) -> Capabilities:
    path = endpoint_id.removeprefix(PREFIX).split("/")
    names = set(model.model_fields)
    if path[0] == "lipsync":
        version, tier, task = None, None, "lipsync-" + path[1].split("-")[0]
    else:
        version, tier, task = path[0].lstrip("v"), path[1], path[2]
    return Capabilities(
        version=version,
        tier=tier,
        task=task,
        has_prompt="prompt" in names,
        has_aspect_ratio="aspect_ratio" in names,
        has_cfg_scale="cfg_scale" in names,
        has_negative_prompt="negative_prompt" in names,
        image_key=next((k for k in ("image_url", "start_image_url") if k in names), None),
        tail_key=next((k for k in ("tail_image_url", "end_image_url") if k in names), None),
        has_masks="dynamic_masks" in names,
        has_camera_control="camera_control" in names,
        has_audio="generate_audio" in names,
        durations=_durations(model),
        file_fields=dict(model.file_fields),
    )


# Prices shared by several endpoints (kling-endpoints.md §5; the source tag says where each came from).
_V16_STANDARD = per_second("0.045", "reseller quoting fal, 2025-06, T S11")
_V16_PRO = per_second("0.098", "fal model page, V S3")
# v2 master / v2.1 master: $1.40 per 5 s + $0.28 per extra second.
_V2_MASTER = per_clip_5s("1.40", "0.28", "fal model page, V S3")

# endpoint path (after "fal-ai/kling-video/") → (request model, price)
_ENTRIES: dict[str, tuple[type[KlingInput], Price | None]] = {
    # v1. Only v1 standard image-to-video has a sourced price.
    "v1/standard/text-to-video": (V1TextToVideoInput, None),
    "v1/standard/image-to-video": (V1ImageToVideoInput, per_second("0.045", "fal model page, V S3")),
    # Guess: v1 pro text-to-video has no camera control (Kling: camera only on v1 standard, S7).
    "v1/pro/text-to-video": (TextToVideoInput, None),
    "v1/pro/image-to-video": (V1ImageToVideoInput, None),
    # v1.5 pro
    "v1.5/pro/text-to-video": (TextToVideoInput, None),
    "v1.5/pro/image-to-video": (V15ProImageToVideoInput, None),
    # v1.6
    "v1.6/standard/text-to-video": (TextToVideoInput, _V16_STANDARD),
    "v1.6/standard/image-to-video": (ImageToVideoInput, _V16_STANDARD),
    "v1.6/standard/elements": (ElementsInput, _V16_STANDARD),
    "v1.6/pro/text-to-video": (TextToVideoInput, _V16_PRO),
    "v1.6/pro/image-to-video": (ProImageToVideoInput, _V16_PRO),
    "v1.6/pro/elements": (ElementsInput, _V16_PRO),
    # effects: identical schema on all four; no price found
    "v1/standard/effects": (VideoEffectsInput, None),
    "v1.5/pro/effects": (VideoEffectsInput, None),
    "v1.6/standard/effects": (VideoEffectsInput, None),
    "v1.6/pro/effects": (VideoEffectsInput, None),
    # v2 master / v2.1 master
    "v2/master/text-to-video": (V2MasterTextToVideoInput, _V2_MASTER),
    "v2/master/image-to-video": (V2MasterImageToVideoInput, _V2_MASTER),
    "v2.1/master/text-to-video": (V2MasterTextToVideoInput, _V2_MASTER),
    "v2.1/master/image-to-video": (V2MasterImageToVideoInput, _V2_MASTER),
    "v2.1/pro/image-to-video": (TailImageToVideoInput, per_clip_5s("0.49", "0.098", "fal model page, V S3")),
    "v2.1/standard/image-to-video": (ImageToVideoInput, per_clip_5s("0.28", "0.056", "fal model page, V S3")),
    # v2.5-turbo (no standard text-to-video on fal); text-to-video price not found
    "v2.5-turbo/pro/text-to-video": (TextToVideoInput, None),
    "v2.5-turbo/pro/image-to-video": (
        TailImageToVideoInput,
        per_clip_5s("0.35", "0.07", "fal model page, V S3"),
    ),
    "v2.5-turbo/standard/image-to-video": (
        ImageToVideoInput,
        per_clip_5s("0.21", "0.042", "fal model page, V S3"),
    ),
    # v2.6: $0.07/s without audio, $0.14/s with, $0.168/s with voice control (fal model page, V S3)
    "v2.6/pro/text-to-video": (V26TextToVideoInput, None),
    "v2.6/pro/image-to-video": (
        V26ImageToVideoInput,
        per_second("0.07", "fal model page, V S3", per_second_audio="0.14", per_second_voice="0.168"),
    ),
    "v2.6/pro/motion-control": (MotionControlInput, None),
    "v2.6/standard/motion-control": (MotionControlInput, None),
    # lip-sync: audio-to-video bills $0.014 per *input* video second, rounded up to 5 s (V S3)
    "lipsync/audio-to-video": (
        LipsyncAudioToVideoInput,
        Price(per_input_second=Decimal("0.014"), source="fal model page, V S3"),
    ),
    "lipsync/text-to-video": (LipsyncTextToVideoInput, None),
}

REGISTRY: dict[str, EndpointSpec] = {
    PREFIX + path: EndpointSpec(
        endpoint_id=PREFIX + path,
        request_model=model,
        output_model=VideoOutput,
        capabilities=_capabilities(PREFIX + path, model),
        price=price,
    )
    for path, (model, price) in _ENTRIES.items()
}


def get_endpoint(endpoint_id: str) -> EndpointSpec | None:
    """The registry entry for ``endpoint_id``, or None for ids this provider does not type.

    A trailing or leading slash is tolerated (``"/fal-ai/kling-video/…/"``).
    """
    return REGISTRY.get(endpoint_id.strip("/")) if isinstance(endpoint_id, str) else None


def list_endpoints() -> list[str]:
    """All typed endpoint ids, sorted."""
    return sorted(REGISTRY)
