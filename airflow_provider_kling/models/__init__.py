"""Typed Kling request/response models, the endpoint registry, validation, file inputs, cost.

Cheap to import (no Airflow, no Pillow at import time): DAG files import it while parsing.
"""

from __future__ import annotations

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
from airflow_provider_kling.models.elements import ElementsInput, MotionControlInput
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
from airflow_provider_kling.models.outputs import File, VideoOutput
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
    cost_budget,
    estimate_cost,
    fal_validation_errors,
    prepare_arguments,
    validate_arguments,
)

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
    "cost_budget",
    "estimate_cost",
    "fal_validation_errors",
    "get_endpoint",
    "list_endpoints",
    "prepare_arguments",
    "validate_arguments",
]
