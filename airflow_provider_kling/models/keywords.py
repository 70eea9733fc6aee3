"""Map the typed operators' readable keyword arguments to a fal endpoint id and its input.

The endpoint registry (:mod:`airflow_provider_kling.models.registry`, mirrored as plain data in
:mod:`.capability_table` for parse time) says which (version, tier, task) combinations exist and
what each accepts; this module only translates names and turns an impossible combination into an
error that lists the possible ones, before any network call. It builds no pydantic model: the typed
operators call it while DAG files are parsed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, TypeAlias, TypedDict

from airflow_provider_kling.exceptions import KlingConfigurationError

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack is Python >= 3.11

    from airflow_provider_kling.models.capability_table import Spec

#: A file input as the typed operators take it: a URL, data URI or local path, ``bytes``, or an
#: ``ObjectStoragePath`` (local files and object storage are uploaded before submit).
FileInput: TypeAlias = "str | os.PathLike[str] | bytes | Any"
#: Seconds of video: fal takes ``"5"`` or ``"10"``; ints are accepted and validated at run time.
Duration: TypeAlias = "int | str | None"


# Each typed operator's keywords, declared once: the operators take exactly these (their
# ``input_fields`` and templated fields are the keys, in this order), the functions below map them.


class _Prompted(TypedDict):
    prompt: str


class _Generation(TypedDict, total=False):
    model: str
    tier: str
    duration: Duration
    aspect_ratio: str | None
    negative_prompt: str | None
    cfg_scale: float | None


class _ImageToVideoNeeds(_Prompted):
    image: FileInput


class ImageToVideoKeywords(_ImageToVideoNeeds, _Generation, total=False):
    """``KlingImageToVideoOperator``'s keywords (``prompt`` and ``image`` are required)."""

    tail_image: FileInput | None
    extra_arguments: Mapping[str, Any] | None


class TextToVideoKeywords(_Prompted, _Generation, total=False):
    """``KlingTextToVideoOperator``'s keywords (``prompt`` is required)."""

    camera_control: str | None
    advanced_camera_control: Mapping[str, Any] | None
    extra_arguments: Mapping[str, Any] | None


class _LipSyncNeeds(TypedDict):
    video: FileInput


class LipSyncKeywords(_LipSyncNeeds, total=False):
    """``KlingLipSyncOperator``'s keywords (``video``, and ``audio`` or ``text`` + ``voice_id``)."""

    audio: FileInput | None
    text: str | None
    voice_id: str | None
    voice_language: str | None
    voice_speed: float | None
    extra_arguments: Mapping[str, Any] | None


class _VideoEffectsNeeds(TypedDict):
    effect_scene: str


class VideoEffectsKeywords(_VideoEffectsNeeds, total=False):
    """``KlingVideoEffectsOperator``'s keywords (``effect_scene`` is required)."""

    images: FileInput | Sequence[FileInput] | None
    model: str
    tier: str
    duration: Duration
    extra_arguments: Mapping[str, Any] | None


def keyword_names(keywords: type[Any]) -> tuple[str, ...]:
    """The keys of one of the ``*Keywords`` dicts, in declaration order (required ones first)."""
    return tuple(keywords.__annotations__)


class EndpointInput(NamedTuple):
    """What a set of typed keywords maps to (unpacks as ``endpoint_id, arguments``).

    :param endpoint_id: the fal endpoint id, e.g. ``fal-ai/kling-video/v1.6/pro/image-to-video``.
    :param arguments: the endpoint's input, in fal's field names (not validated yet).
    """

    endpoint_id: str
    arguments: dict[str, Any]


# Optional keywords that only some endpoints take, and the capability that says which.
_CAPABILITY_OF: dict[str, str] = {
    "aspect_ratio": "has_aspect_ratio",
    "cfg_scale": "has_cfg_scale",
    "negative_prompt": "has_negative_prompt",
    "camera_control": "has_camera_control",
    "advanced_camera_control": "has_camera_control",
}

LIPSYNC_AUDIO = "fal-ai/kling-video/lipsync/audio-to-video"
LIPSYNC_TEXT = "fal-ai/kling-video/lipsync/text-to-video"


def _norm_version(model: Any) -> str:
    text = str(model).strip().lower()
    return text[1:] if text.startswith("v") else text


def _specs(task: str) -> list[Spec]:
    # The plain-data table, not the registry: DAG parsing must not build the pydantic models.
    from airflow_provider_kling.models.capability_table import SPECS

    return [spec for spec in SPECS if spec.capabilities.task == task]


def _choices(specs: Sequence[Spec]) -> str:
    return ", ".join(sorted(f"v{s.capabilities.version}/{s.capabilities.tier}" for s in specs))


def resolve_endpoint(task: str, model: Any, tier: Any) -> Spec:
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


def _unsupported(spec: Spec, field: str, fitting: list[Spec]) -> KlingConfigurationError:
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


def _check_common(spec: Spec, task: str, keywords: Mapping[str, object], names: Sequence[str]) -> None:
    for name in names:
        flag = _CAPABILITY_OF[name]
        if keywords.get(name) is not None and not getattr(spec.capabilities, flag):
            raise _unsupported(spec, name, [s for s in _specs(task) if getattr(s.capabilities, flag)])


def _copy(arguments: dict[str, Any], keywords: Mapping[str, object], names: Sequence[str]) -> None:
    """Keywords named as the fal field they fill, copied when given."""
    for name in names:
        _put(arguments, name, keywords.get(name))


def image_to_video_request(**keywords: Unpack[ImageToVideoKeywords]) -> EndpointInput:
    """Endpoint id + input for image-to-video (v2.6 names the frames start/end_image_url)."""
    task = "image-to-video"
    spec = resolve_endpoint(task, keywords.get("model"), keywords.get("tier"))
    caps = spec.capabilities
    _check_common(spec, task, keywords, ("aspect_ratio", "cfg_scale", "negative_prompt"))
    image, tail_image = keywords["image"], keywords.get("tail_image")
    if image is None:
        raise KlingConfigurationError("image is required for image-to-video")
    if tail_image is not None and caps.tail_key is None:
        raise _unsupported(spec, "tail_image", [s for s in _specs(task) if s.capabilities.tail_key])
    if caps.image_key is None:  # every image-to-video row names its image field
        raise KlingConfigurationError(f"{spec.endpoint_id} takes no image")
    arguments: dict[str, Any] = {"prompt": keywords["prompt"], caps.image_key: image}
    if caps.tail_key:
        _put(arguments, caps.tail_key, tail_image)
    _copy(arguments, keywords, ("duration", "aspect_ratio", "cfg_scale", "negative_prompt"))
    return EndpointInput(spec.endpoint_id, _merge_extra(arguments, keywords.get("extra_arguments")))


def text_to_video_request(**keywords: Unpack[TextToVideoKeywords]) -> EndpointInput:
    """Endpoint id + input for text-to-video (camera control only where the endpoint has it)."""
    task = "text-to-video"
    spec = resolve_endpoint(task, keywords.get("model"), keywords.get("tier"))
    optional = ("aspect_ratio", "cfg_scale", "negative_prompt", "camera_control", "advanced_camera_control")
    _check_common(spec, task, keywords, optional)
    arguments: dict[str, Any] = {"prompt": keywords["prompt"]}
    _copy(arguments, keywords, ("duration", *optional))
    return EndpointInput(spec.endpoint_id, _merge_extra(arguments, keywords.get("extra_arguments")))


def lipsync_request(**keywords: Unpack[LipSyncKeywords]) -> EndpointInput:
    """``lipsync/audio-to-video`` when ``audio`` is given, ``lipsync/text-to-video`` for ``text``."""
    video, audio, text = keywords["video"], keywords.get("audio"), keywords.get("text")
    voice_id, voice_language = keywords.get("voice_id"), keywords.get("voice_language")
    voice_speed, extra_arguments = keywords.get("voice_speed"), keywords.get("extra_arguments")
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
    return EndpointInput(endpoint_id, _merge_extra(arguments, extra_arguments))


def video_effects_request(**keywords: Unpack[VideoEffectsKeywords]) -> EndpointInput:
    """Endpoint id + input for the effects endpoints (one image, or two for hug/kiss/heart)."""
    effect_scene, images = keywords["effect_scene"], keywords.get("images")
    model, tier, duration = keywords.get("model"), keywords.get("tier"), keywords.get("duration")
    extra_arguments = keywords.get("extra_arguments")
    spec = resolve_endpoint("effects", model, tier)
    if not effect_scene:
        raise KlingConfigurationError("effect_scene is required, e.g. 'hug' or 'squish'")
    arguments: dict[str, Any] = {"effect_scene": effect_scene}
    if images is not None:
        listed = list(images) if isinstance(images, (list, tuple)) else [images]
        arguments["input_image_urls"] = listed
    _put(arguments, "duration", duration)
    return EndpointInput(spec.endpoint_id, _merge_extra(arguments, extra_arguments))
