"""Typed Kling request/response models, the endpoint registry, validation, file inputs, cost.

Cheap to import (no Airflow, no Pillow at import time). Names are resolved lazily (PEP 562): the
typed operators read :mod:`.keywords` and :mod:`.capability_table` while DAG files are parsed, and
must not build the registry's pydantic models (~70 ms) to do so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_kling._lazy import lazy_exports

if TYPE_CHECKING:
    from airflow_provider_kling.models.common import (
        DEFAULT_ASPECT_RATIO,
        DEFAULT_CFG_SCALE,
        DEFAULT_DURATION,
        DEFAULT_NEGATIVE_PROMPT,
        MAX_PROMPT_LENGTH,
        KlingInput,
    )
    from airflow_provider_kling.models.effects import (
        DUAL_IMAGE_EFFECT_SCENES,
        KNOWN_EFFECT_SCENES,
        SINGLE_IMAGE_EFFECT_SCENES,
        VideoEffectsInput,
    )
    from airflow_provider_kling.models.elements import (
        ElementsInput,
        MotionControlInput,
    )
    from airflow_provider_kling.models.image_to_video import (
        DynamicMask,
        ImageToVideoInput,
        ProImageToVideoInput,
        TailImageToVideoInput,
        Trajectory,
        V1ImageToVideoInput,
        V2MasterImageToVideoInput,
        V15ProImageToVideoInput,
        V26ImageToVideoInput,
    )
    from airflow_provider_kling.models.lipsync import (
        VOICE_IDS,
        LipsyncAudioToVideoInput,
        LipsyncTextToVideoInput,
    )
    from airflow_provider_kling.models.outputs import (
        File,
        VideoOutput,
    )
    from airflow_provider_kling.models.pricing import Price
    from airflow_provider_kling.models.registry import (
        REGISTRY,
        Capabilities,
        EndpointSpec,
        get_endpoint,
        list_endpoints,
    )
    from airflow_provider_kling.models.text_to_video import (
        CameraControl,
        TextToVideoInput,
        V1TextToVideoInput,
        V2MasterTextToVideoInput,
        V26TextToVideoInput,
    )
    from airflow_provider_kling.models.validation import (
        CheckedArguments,
        check_arguments,
        cost_budget,
        estimate_cost,
        fal_validation_errors,
        prepare_arguments,
        validate_arguments,
    )

_HOMES: dict[str, str] = {
    "DEFAULT_ASPECT_RATIO": "common",
    "DEFAULT_CFG_SCALE": "common",
    "DEFAULT_DURATION": "common",
    "DEFAULT_NEGATIVE_PROMPT": "common",
    "DUAL_IMAGE_EFFECT_SCENES": "effects",
    "KNOWN_EFFECT_SCENES": "effects",
    "MAX_PROMPT_LENGTH": "common",
    "REGISTRY": "registry",
    "SINGLE_IMAGE_EFFECT_SCENES": "effects",
    "VOICE_IDS": "lipsync",
    "CameraControl": "text_to_video",
    "Capabilities": "registry",
    "DynamicMask": "image_to_video",
    "ElementsInput": "elements",
    "EndpointSpec": "registry",
    "File": "outputs",
    "ImageToVideoInput": "image_to_video",
    "KlingInput": "common",
    "LipsyncAudioToVideoInput": "lipsync",
    "LipsyncTextToVideoInput": "lipsync",
    "MotionControlInput": "elements",
    "Price": "pricing",
    "ProImageToVideoInput": "image_to_video",
    "TailImageToVideoInput": "image_to_video",
    "TextToVideoInput": "text_to_video",
    "Trajectory": "image_to_video",
    "V1ImageToVideoInput": "image_to_video",
    "V1TextToVideoInput": "text_to_video",
    "V2MasterImageToVideoInput": "image_to_video",
    "V2MasterTextToVideoInput": "text_to_video",
    "V15ProImageToVideoInput": "image_to_video",
    "V26ImageToVideoInput": "image_to_video",
    "V26TextToVideoInput": "text_to_video",
    "VideoEffectsInput": "effects",
    "VideoOutput": "outputs",
    "CheckedArguments": "validation",
    "check_arguments": "validation",
    "cost_budget": "validation",
    "estimate_cost": "validation",
    "fal_validation_errors": "validation",
    "get_endpoint": "registry",
    "list_endpoints": "registry",
    "prepare_arguments": "validation",
    "validate_arguments": "validation",
}

__all__ = [
    "DEFAULT_ASPECT_RATIO",
    "DEFAULT_CFG_SCALE",
    "DEFAULT_DURATION",
    "DEFAULT_NEGATIVE_PROMPT",
    "DUAL_IMAGE_EFFECT_SCENES",
    "KNOWN_EFFECT_SCENES",
    "MAX_PROMPT_LENGTH",
    "REGISTRY",
    "SINGLE_IMAGE_EFFECT_SCENES",
    "VOICE_IDS",
    "CameraControl",
    "Capabilities",
    "CheckedArguments",
    "DynamicMask",
    "ElementsInput",
    "EndpointSpec",
    "File",
    "ImageToVideoInput",
    "KlingInput",
    "LipsyncAudioToVideoInput",
    "LipsyncTextToVideoInput",
    "MotionControlInput",
    "Price",
    "ProImageToVideoInput",
    "TailImageToVideoInput",
    "TextToVideoInput",
    "Trajectory",
    "V1ImageToVideoInput",
    "V1TextToVideoInput",
    "V2MasterImageToVideoInput",
    "V2MasterTextToVideoInput",
    "V15ProImageToVideoInput",
    "V26ImageToVideoInput",
    "V26TextToVideoInput",
    "VideoEffectsInput",
    "VideoOutput",
    "check_arguments",
    "cost_budget",
    "estimate_cost",
    "fal_validation_errors",
    "get_endpoint",
    "list_endpoints",
    "prepare_arguments",
    "validate_arguments",
]


__getattr__, __dir__ = lazy_exports(globals(), _HOMES)
