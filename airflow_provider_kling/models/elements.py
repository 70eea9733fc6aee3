"""Multi-image-to-video ("elements", v1.6 standard/pro) and motion control (v2.6)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from airflow_provider_kling.models.common import (
    DEFAULT_ASPECT_RATIO,
    DEFAULT_DURATION,
    DEFAULT_NEGATIVE_PROMPT,
    AspectRatio,
    Duration,
    FileKind,
    FileUrl,
    KlingInput,
    NegativePrompt,
    Prompt,
)

# fal: "Supports up to 4 images" (S1/S2). The minimum of 1 is a guess: fal states none.
MAX_ELEMENT_IMAGES = 4


class ElementsInput(KlingInput):
    """v1.6 elements: combine up to 4 reference images into one clip (no cfg_scale).

    :param prompt: what should happen, at most 2500 characters.
    :param input_image_urls: 1-4 images (URLs, data URIs, paths, bytes or ObjectStoragePath).
    :param duration: ``"5"`` or ``"10"`` seconds.
    :param aspect_ratio: ``"16:9"`` (default), ``"9:16"`` or ``"1:1"``.
    :param negative_prompt: what to avoid, at most 2500 characters.
    """

    file_fields: ClassVar[dict[str, FileKind]] = {"input_image_urls[]": "image"}

    prompt: Prompt
    input_image_urls: list[FileUrl] = Field(min_length=1, max_length=MAX_ELEMENT_IMAGES)
    duration: Duration = DEFAULT_DURATION
    aspect_ratio: AspectRatio = DEFAULT_ASPECT_RATIO
    negative_prompt: NegativePrompt = DEFAULT_NEGATIVE_PROMPT


class MotionControlInput(KlingInput):
    """v2.6 motion control: move the person of an image the way a reference video moves.

    :param image_url: the person (upper body works best).
    :param video_url: the reference motion (≤ 10 s for orientation "image", ≤ 30 s for "video").
    :param character_orientation: follow the image's (``"image"``) or the video's (``"video"``) framing.
    :param prompt: optional guidance, at most 2500 characters.
    :param keep_original_sound: keep the reference video's sound (default True).
    """

    file_fields: ClassVar[dict[str, FileKind]] = {"image_url": "image", "video_url": "video"}

    image_url: FileUrl
    video_url: FileUrl
    character_orientation: Literal["image", "video"]
    prompt: Prompt | None = None
    keep_original_sound: bool = True
