"""Typed Kling operators: readable keyword arguments instead of an endpoint id and a raw dict.

Each one only maps its keywords to ``(endpoint_id, arguments)`` through
:mod:`airflow_provider_kling.models.keywords`; submitting, waiting, reattaching and the
result are :class:`~airflow_provider_kling.operators.kling.KlingVideoOperator`'s (from :mod:`._video`).
Import them from :mod:`airflow_provider_kling.operators.kling`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from airflow_provider_kling.exceptions import KlingConfigurationError
from airflow_provider_kling.models.keywords import (
    EndpointInput,
    ImageToVideoKeywords,
    LipSyncKeywords,
    TextToVideoKeywords,
    VideoEffectsKeywords,
    image_to_video_request,
    keyword_names,
    lipsync_request,
    text_to_video_request,
    video_effects_request,
)
from airflow_provider_kling.operators._video import KlingVideoOperator, is_lazy

# Each typed operator's own keywords (declared in models.keywords): all templated, passed by name to
# its request builder.
_I2V_FIELDS = keyword_names(ImageToVideoKeywords)
_T2V_FIELDS = keyword_names(TextToVideoKeywords)
_LIPSYNC_FIELDS = keyword_names(LipSyncKeywords)
_EFFECTS_FIELDS = keyword_names(VideoEffectsKeywords)


class _KlingTypedOperator(KlingVideoOperator):
    """Shared shape of the typed operators: ``input_fields`` in, ``(endpoint_id, arguments)`` out.

    Subclasses declare their keywords in ``input_fields`` and the
    :mod:`~airflow_provider_kling.models.keywords` function that maps them (called with exactly
    those keywords), and call :meth:`_check_early` at the end of ``__init__``.

    :param kwargs: :class:`KlingVideoOperator` arguments except ``endpoint_id`` / ``arguments``,
        which the typed keywords determine.
    """

    input_fields: ClassVar[tuple[str, ...]] = ()
    request_builder: ClassVar[Callable[..., EndpointInput]]

    def __init__(self, **kwargs: Any) -> None:
        for name in ("endpoint_id", "arguments"):
            if kwargs.get(name) is not None:
                raise KlingConfigurationError(
                    f"{type(self).__name__} picks {name} from its keywords (model, tier, ...); pass "
                    "further endpoint fields as extra_arguments, or use KlingVideoOperator"
                )
        super().__init__(**kwargs)

    def build_request(self) -> tuple[str, dict[str, Any]]:
        builder = type(self).request_builder
        return builder(**{name: getattr(self, name) for name in self.input_fields})

    def _check_early(self) -> None:
        """Fail at DAG parse time on an impossible combination, unless a value is only known later."""
        if not any(is_lazy(getattr(self, name)) for name in self.input_fields):
            self.build_request()


class KlingImageToVideoOperator(_KlingTypedOperator):
    """Animate an image into a Kling video.

    :param prompt: what happens in the video (up to 2500 characters).
    :param image: the first frame: URL, data URI or local file path (uploaded first).
    :param model: Kling version: ``v1``, ``v1.5``, ``v1.6``, ``v2``, ``v2.1``, ``v2.5-turbo``, ``v2.6``.
    :param tier: ``standard``, ``pro`` or ``master`` (the combinations fal offers).
    :param duration: seconds of video, 5 or 10.
    :param aspect_ratio: ``16:9``, ``9:16`` or ``1:1`` (only where the endpoint takes it).
    :param negative_prompt: what to avoid.
    :param cfg_scale: prompt adherence, 0..1 (not on v2.6).
    :param tail_image: the last frame (pro tiers of v1, v1.5, v1.6, v2.1, v2.5-turbo; v2.6 end frame).
    :param extra_arguments: any further endpoint fields, passed as they are.
    """

    input_fields = _I2V_FIELDS
    request_builder = staticmethod(image_to_video_request)
    template_fields: Sequence[str] = (*KlingVideoOperator.template_fields, *_I2V_FIELDS)

    def __init__(
        self,
        *,
        prompt: str,
        image: str | Any,
        model: str = "v1.6",
        tier: str = "standard",
        duration: int | str | None = None,
        aspect_ratio: str | None = None,
        negative_prompt: str | None = None,
        cfg_scale: float | None = None,
        tail_image: str | Any | None = None,
        extra_arguments: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.prompt = prompt
        self.image = image
        self.model = model
        self.tier = tier
        self.duration = duration
        self.aspect_ratio = aspect_ratio
        self.negative_prompt = negative_prompt
        self.cfg_scale = cfg_scale
        self.tail_image = tail_image
        self.extra_arguments = extra_arguments
        self._check_early()


class KlingTextToVideoOperator(_KlingTypedOperator):
    """Generate a Kling video from a text prompt.

    :param prompt: what happens in the video (up to 2500 characters).
    :param model: Kling version: ``v1``, ``v1.5``, ``v1.6``, ``v2``, ``v2.1``, ``v2.5-turbo``, ``v2.6``.
    :param tier: ``standard``, ``pro`` or ``master`` (the combinations fal offers).
    :param duration: seconds of video, 5 or 10.
    :param aspect_ratio: ``16:9``, ``9:16`` or ``1:1``.
    :param negative_prompt: what to avoid.
    :param cfg_scale: prompt adherence, 0..1.
    :param camera_control: a camera preset (``down_back``, ``forward_up``, ``right_turn_forward``,
        ``left_turn_forward``; v1 standard).
    :param advanced_camera_control: ``{"movement_type": "pan", "movement_value": 5}`` (v1 standard).
    :param extra_arguments: any further endpoint fields, passed as they are.
    """

    input_fields = _T2V_FIELDS
    request_builder = staticmethod(text_to_video_request)
    template_fields: Sequence[str] = (*KlingVideoOperator.template_fields, *_T2V_FIELDS)

    def __init__(
        self,
        *,
        prompt: str,
        model: str = "v1.6",
        tier: str = "standard",
        duration: int | str | None = None,
        aspect_ratio: str | None = None,
        negative_prompt: str | None = None,
        cfg_scale: float | None = None,
        camera_control: str | None = None,
        advanced_camera_control: Mapping[str, Any] | None = None,
        extra_arguments: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.prompt = prompt
        self.model = model
        self.tier = tier
        self.duration = duration
        self.aspect_ratio = aspect_ratio
        self.negative_prompt = negative_prompt
        self.cfg_scale = cfg_scale
        self.camera_control = camera_control
        self.advanced_camera_control = advanced_camera_control
        self.extra_arguments = extra_arguments
        self._check_early()


class KlingLipSyncOperator(_KlingTypedOperator):
    """Lip-sync a video of a person to speech: either ``audio`` or ``text`` + ``voice_id``.

    :param video: the video (URL or local path): a person's face, 2-10 s, 720p/1080p.
    :param audio: speech to sync to (URL or local path); picks ``lipsync/audio-to-video``.
    :param text: words to speak (up to 120 characters); picks ``lipsync/text-to-video``.
    :param voice_id: one of fal's Kling voice ids (with ``text``).
    :param voice_language: ``en`` or ``zh`` (with ``text``).
    :param voice_speed: 0.8..2.0 (with ``text``).
    :param extra_arguments: any further endpoint fields, passed as they are.
    """

    input_fields = _LIPSYNC_FIELDS
    request_builder = staticmethod(lipsync_request)
    template_fields: Sequence[str] = (*KlingVideoOperator.template_fields, *_LIPSYNC_FIELDS)

    def __init__(
        self,
        *,
        video: str | Any,
        audio: str | Any | None = None,
        text: str | None = None,
        voice_id: str | None = None,
        voice_language: str | None = None,
        voice_speed: float | None = None,
        extra_arguments: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.video = video
        self.audio = audio
        self.text = text
        self.voice_id = voice_id
        self.voice_language = voice_language
        self.voice_speed = voice_speed
        self.extra_arguments = extra_arguments
        self._check_early()


class KlingVideoEffectsOperator(_KlingTypedOperator):
    """Apply a Kling video effect (hug, kiss, squish, ...) to one or two images.

    :param effect_scene: the effect name, e.g. ``hug`` (two images) or ``squish`` (one image).
    :param images: one image, or a list of images (URLs or local paths).
    :param model: ``v1``, ``v1.5`` or ``v1.6``.
    :param tier: ``standard`` or ``pro`` (v1: standard; v1.5: pro; v1.6: both).
    :param duration: seconds of video, 5 or 10.
    :param extra_arguments: any further endpoint fields, passed as they are.
    """

    input_fields = _EFFECTS_FIELDS
    request_builder = staticmethod(video_effects_request)
    template_fields: Sequence[str] = (*KlingVideoOperator.template_fields, *_EFFECTS_FIELDS)

    def __init__(
        self,
        *,
        effect_scene: str,
        images: str | Any | Sequence[Any] | None = None,
        model: str = "v1.6",
        tier: str = "standard",
        duration: int | str | None = None,
        extra_arguments: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.effect_scene = effect_scene
        self.images = images
        self.model = model
        self.tier = tier
        self.duration = duration
        self.extra_arguments = extra_arguments
        self._check_early()
