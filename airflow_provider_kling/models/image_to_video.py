"""Image-to-video request models (v1 … v2.6), including tail frames and motion masks."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import Field

from airflow_provider_kling.models.common import (
    DEFAULT_ASPECT_RATIO,
    DEFAULT_CFG_SCALE,
    DEFAULT_DURATION,
    DEFAULT_NEGATIVE_PROMPT,
    AspectRatio,
    CfgScale,
    Duration,
    FileKind,
    FileUrl,
    KlingInput,
    NegativePrompt,
    NotBool,
    Prompt,
    cross_error,
)

# Kling's rules for motion brushes (upstream API doc, kling-endpoints.md §2, S6); fal's schema
# states none of them and passes the request through, so Kling rejects it after queueing.
MAX_DYNAMIC_MASKS = 6
MIN_TRAJECTORY_POINTS = 2
MAX_TRAJECTORY_POINTS = 77


class ImageToVideoInput(KlingInput):
    """v1.6 standard image-to-video (also v2.1 standard, v2.5-turbo standard).

    :param prompt: what should happen, at most 2500 characters.
    :param image_url: the first frame: URL, data URI, local path, bytes or ObjectStoragePath.
    :param duration: ``"5"`` or ``"10"`` seconds.
    :param negative_prompt: what to avoid, at most 2500 characters.
    :param cfg_scale: prompt adherence, 0-1 (default 0.5).
    """

    file_fields: ClassVar[dict[str, FileKind]] = {"image_url": "image"}

    prompt: Prompt
    image_url: FileUrl
    duration: Duration = DEFAULT_DURATION
    negative_prompt: NegativePrompt = DEFAULT_NEGATIVE_PROMPT
    cfg_scale: CfgScale = DEFAULT_CFG_SCALE


class V2MasterImageToVideoInput(ImageToVideoInput):
    """v2 / v2.1 master image-to-video (same shape as :class:`ImageToVideoInput`)."""


class TailImageToVideoInput(ImageToVideoInput):
    """Image-to-video with a last frame but no aspect ratio (v2.1 pro, v2.5-turbo pro).

    :param tail_image_url: the last frame.
    """

    file_fields: ClassVar[dict[str, FileKind]] = {"image_url": "image", "tail_image_url": "image"}

    tail_image_url: FileUrl | None = None


class ProImageToVideoInput(TailImageToVideoInput):
    """v1.6 pro image-to-video: adds an aspect ratio and a last frame (5 or 10 s: Kling's capability
    map, S6, allows a tail frame at 10 s on kling-v1-6 pro).

    :param aspect_ratio: ``"16:9"`` (default), ``"9:16"`` or ``"1:1"``.
    """

    aspect_ratio: AspectRatio = DEFAULT_ASPECT_RATIO


class Trajectory(KlingInput):
    """One point of a motion path, in pixels of the input image, origin bottom-left (Kling).

    :param x: horizontal coordinate.
    :param y: vertical coordinate.
    """

    x: Annotated[int, NotBool] = Field(ge=0)
    y: Annotated[int, NotBool] = Field(ge=0)


class DynamicMask(KlingInput):
    """A region of the image and the path it should move along.

    :param mask_url: mask image (same aspect ratio and resolution as the input image).
    :param trajectories: 2-77 points (Kling's limit for a 5 s clip).
    """

    file_fields: ClassVar[dict[str, FileKind]] = {"mask_url": "image"}

    mask_url: FileUrl
    trajectories: list[Trajectory] = Field(min_length=MIN_TRAJECTORY_POINTS, max_length=MAX_TRAJECTORY_POINTS)


class _MaskedImageToVideoInput(TailImageToVideoInput):
    """Image-to-video with a tail frame or motion masks (exclusive; masks force 5 s).

    :param static_mask_url: region of the image that must stay still.
    :param dynamic_masks: up to 6 :class:`DynamicMask` regions with trajectories.
    """

    file_fields: ClassVar[dict[str, FileKind]] = {
        "image_url": "image",
        "tail_image_url": "image",
        "static_mask_url": "image",
        "dynamic_masks[].mask_url": "image",
    }
    #: Whether a tail frame alone also limits the clip to 5 s.
    tail_forces_five_seconds: ClassVar[bool] = True

    static_mask_url: FileUrl | None = None
    dynamic_masks: list[DynamicMask] | None = Field(default=None, max_length=MAX_DYNAMIC_MASKS)

    def cross_field_errors(self) -> list[dict[str, Any]]:
        """Kling's exclusivity rules for tail frames and motion masks (upstream doc, S6/S7)."""
        errors = []
        has_masks = self.static_mask_url is not None or bool(self.dynamic_masks)
        mask_field = "static_mask_url" if self.static_mask_url is not None else "dynamic_masks"
        if self.tail_image_url is not None and has_masks:
            errors.append(
                cross_error(
                    ("tail_image_url",),
                    f"cannot be combined with {mask_field} (tail frame and motion masks are exclusive)",
                )
            )
        if self.duration != "5":
            if has_masks:
                errors.append(
                    cross_error((mask_field,), f'motion masks require duration "5" (got "{self.duration}")')
                )
            if self.tail_image_url is not None and self.tail_forces_five_seconds:
                errors.append(
                    cross_error(
                        ("tail_image_url",), f'a tail frame requires duration "5" (got "{self.duration}")'
                    )
                )
        return errors


class V1ImageToVideoInput(_MaskedImageToVideoInput):
    """v1 standard/pro image-to-video: tail frame or motion masks (exclusive, 5 s only).

    :param static_mask_url: region of the image that must stay still.
    :param dynamic_masks: up to 6 :class:`DynamicMask` regions with trajectories.
    """

    # v1: a tail frame is limited to 5 s as well (S7 "v1 tail/masks supported at 5 s only"; S6's
    # capability map has no kling-v1 10 s tail column).
    tail_forces_five_seconds: ClassVar[bool] = True


class V15ProImageToVideoInput(_MaskedImageToVideoInput, ProImageToVideoInput):
    """v1.5 pro image-to-video: aspect ratio, tail frame and (2026 schema) motion masks.

    :param static_mask_url: region of the image that must stay still.
    :param dynamic_masks: up to 6 :class:`DynamicMask` regions with trajectories.
    """

    # Kling's capability map (S6, betasecond/KlingDemo APIDoc.md) ticks "image_tail" at 10 s for
    # kling-v1-5 pro and kling-v1-6 pro, masks at 5 s only; its general "tail frame ⇒ 5 s" note
    # predates v1.5 and is contradicted by the map. So v1.5 (and v1.6 pro) keep 10 s with a tail.
    tail_forces_five_seconds: ClassVar[bool] = False


class V26ImageToVideoInput(KlingInput):
    """v2.6 pro image-to-video: renamed frame fields, native audio, no cfg_scale or aspect ratio.

    :param prompt: what should happen, at most 2500 characters.
    :param start_image_url: the first frame.
    :param end_image_url: the last frame (optional).
    :param duration: ``"5"`` or ``"10"`` seconds.
    :param negative_prompt: what to avoid, at most 2500 characters.
    :param generate_audio: generate a sound track (default True; billed higher).
    :param voice_ids: at most 2 voice ids from fal's ``create-voice``, referenced in the prompt
        as ``<<<voice_1>>>``.
    """

    file_fields: ClassVar[dict[str, FileKind]] = {"start_image_url": "image", "end_image_url": "image"}

    prompt: Prompt
    start_image_url: FileUrl
    end_image_url: FileUrl | None = None
    duration: Duration = DEFAULT_DURATION
    negative_prompt: NegativePrompt = DEFAULT_NEGATIVE_PROMPT
    generate_audio: bool = True
    voice_ids: list[str] | None = Field(default=None, max_length=2)
