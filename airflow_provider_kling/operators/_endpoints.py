"""Map the typed operators' readable keyword arguments to a fal endpoint id and its input.

The endpoint registry (:mod:`airflow_provider_kling.models.registry`, mirrored as plain data in
:mod:`._capabilities` for parse time) says which (version, tier, task) combinations exist and what
each accepts; this module only translates names and turns an
impossible combination into an error that lists the possible ones, before any network call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_kling.exceptions import KlingConfigurationError

LIPSYNC_AUDIO = "fal-ai/kling-video/lipsync/audio-to-video"
LIPSYNC_TEXT = "fal-ai/kling-video/lipsync/text-to-video"


def _norm_version(model: Any) -> str:
    text = str(model).strip().lower()
    return text[1:] if text.startswith("v") else text


def _specs(task: str) -> list[Any]:
    # The plain-data table, not the registry: DAG parsing must not build the pydantic models.
    from airflow_provider_kling.operators._capabilities import SPECS

    return [spec for spec in SPECS if spec.capabilities.task == task]


def _choices(specs: Sequence[Any]) -> str:
    return ", ".join(sorted(f"v{s.capabilities.version}/{s.capabilities.tier}" for s in specs))


def resolve_endpoint(task: str, model: Any, tier: Any) -> Any:
    """The registry entry of ``task`` for Kling ``model`` (``"v1.6"``) and ``tier`` (``"pro"``)."""
    version, tier_name = _norm_version(model), str(tier).strip().lower()
    specs = _specs(task)
    for spec in specs:
        if spec.capabilities.version == version and spec.capabilities.tier == tier_name:
            return spec
    raise KlingConfigurationError(
        f"fal has no Kling {task} endpoint for model={model!r}, tier={tier!r}; "
        f"available (model/tier): {_choices(specs)}"
    )


def _unsupported(spec: Any, field: str, fitting: list[Any]) -> KlingConfigurationError:
    where = _choices(fitting) if fitting else "none"
    return KlingConfigurationError(
        f"{field} is not accepted by {spec.endpoint_id}; model/tier combinations that take it: {where}"
    )


def _put(arguments: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        arguments[key] = value


def _merge_extra(arguments: dict[str, Any], extra: Mapping[str, Any] | None) -> dict[str, Any]:
    if extra is None:
        return arguments
    if not isinstance(extra, Mapping):
        raise KlingConfigurationError(f"extra_arguments must be a dict, got {type(extra).__name__}")
    clash = sorted(set(extra) & set(arguments))
    if clash:
        raise KlingConfigurationError(f"extra_arguments repeats fields already given as keywords: {clash}")
    return {**arguments, **extra}


def _check_common(spec: Any, task: str, **given: Any) -> None:
    caps = spec.capabilities
    flags = {
        "aspect_ratio": "has_aspect_ratio",
        "cfg_scale": "has_cfg_scale",
        "negative_prompt": "has_negative_prompt",
        "camera_control": "has_camera_control",
        "advanced_camera_control": "has_camera_control",
    }
    for name, value in given.items():
        if value is not None and not getattr(caps, flags[name]):
            raise _unsupported(spec, name, [s for s in _specs(task) if getattr(s.capabilities, flags[name])])


def image_to_video_request(
    *,
    model: Any,
    tier: Any,
    prompt: Any,
    image: Any,
    tail_image: Any = None,
    duration: Any = None,
    aspect_ratio: Any = None,
    negative_prompt: Any = None,
    cfg_scale: Any = None,
    extra_arguments: Mapping[str, Any] | None = None,
) -> tuple[str, dict[str, Any]]:
    """Endpoint id + input for image-to-video (v2.6 names the frames start/end_image_url)."""
    task = "image-to-video"
    spec = resolve_endpoint(task, model, tier)
    caps = spec.capabilities
    _check_common(spec, task, aspect_ratio=aspect_ratio, cfg_scale=cfg_scale, negative_prompt=negative_prompt)
    if image is None:
        raise KlingConfigurationError("image is required for image-to-video")
    if tail_image is not None and caps.tail_key is None:
        raise _unsupported(spec, "tail_image", [s for s in _specs(task) if s.capabilities.tail_key])
    arguments: dict[str, Any] = {"prompt": prompt, caps.image_key: image}
    if caps.tail_key:
        _put(arguments, caps.tail_key, tail_image)
    for key, value in (
        ("duration", duration),
        ("aspect_ratio", aspect_ratio),
        ("negative_prompt", negative_prompt),
        ("cfg_scale", cfg_scale),
    ):
        _put(arguments, key, value)
    return spec.endpoint_id, _merge_extra(arguments, extra_arguments)


def text_to_video_request(
    *,
    model: Any,
    tier: Any,
    prompt: Any,
    duration: Any = None,
    aspect_ratio: Any = None,
    negative_prompt: Any = None,
    cfg_scale: Any = None,
    camera_control: Any = None,
    advanced_camera_control: Any = None,
    extra_arguments: Mapping[str, Any] | None = None,
) -> tuple[str, dict[str, Any]]:
    """Endpoint id + input for text-to-video (camera control only where the endpoint has it)."""
    task = "text-to-video"
    spec = resolve_endpoint(task, model, tier)
    _check_common(
        spec,
        task,
        aspect_ratio=aspect_ratio,
        cfg_scale=cfg_scale,
        negative_prompt=negative_prompt,
        camera_control=camera_control,
        advanced_camera_control=advanced_camera_control,
    )
    arguments: dict[str, Any] = {"prompt": prompt}
    for key, value in (
        ("duration", duration),
        ("aspect_ratio", aspect_ratio),
        ("negative_prompt", negative_prompt),
        ("cfg_scale", cfg_scale),
        ("camera_control", camera_control),
        ("advanced_camera_control", advanced_camera_control),
    ):
        _put(arguments, key, value)
    return spec.endpoint_id, _merge_extra(arguments, extra_arguments)


def lipsync_request(
    *,
    video: Any,
    audio: Any = None,
    text: Any = None,
    voice_id: Any = None,
    voice_language: Any = None,
    voice_speed: Any = None,
    extra_arguments: Mapping[str, Any] | None = None,
) -> tuple[str, dict[str, Any]]:
    """``lipsync/audio-to-video`` when ``audio`` is given, ``lipsync/text-to-video`` for ``text``."""
    if video is None:
        raise KlingConfigurationError("video is required for lip-sync")
    voice = {"voice_id": voice_id, "voice_language": voice_language, "voice_speed": voice_speed}
    if (audio is None) == (text is None):
        raise KlingConfigurationError(
            "lip-sync needs exactly one of audio (lipsync/audio-to-video) or text + voice_id "
            "(lipsync/text-to-video)"
        )
    if audio is not None:
        given = sorted(k for k, v in voice.items() if v is not None)
        if given:
            raise KlingConfigurationError(f"{', '.join(given)} only apply to text lip-sync, not with audio")
        arguments: dict[str, Any] = {"video_url": video, "audio_url": audio}
        endpoint_id = LIPSYNC_AUDIO
    else:
        if voice_id is None:
            raise KlingConfigurationError("voice_id is required with text (lipsync/text-to-video)")
        arguments = {"video_url": video, "text": text}
        for key, value in voice.items():
            _put(arguments, key, value)
        endpoint_id = LIPSYNC_TEXT
    return endpoint_id, _merge_extra(arguments, extra_arguments)


def video_effects_request(
    *,
    model: Any,
    tier: Any,
    effect_scene: Any,
    images: Any = None,
    duration: Any = None,
    extra_arguments: Mapping[str, Any] | None = None,
) -> tuple[str, dict[str, Any]]:
    """Endpoint id + input for the effects endpoints (one image, or two for hug/kiss/heart)."""
    spec = resolve_endpoint("effects", model, tier)
    if not effect_scene:
        raise KlingConfigurationError("effect_scene is required, e.g. 'hug' or 'squish'")
    arguments: dict[str, Any] = {"effect_scene": effect_scene}
    if images is not None:
        listed = list(images) if isinstance(images, (list, tuple)) else [images]
        arguments["input_image_urls"] = listed
    _put(arguments, "duration", duration)
    return spec.endpoint_id, _merge_extra(arguments, extra_arguments)
