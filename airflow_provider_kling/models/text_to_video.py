"""Text-to-video request models (v1 … v2.6)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from airflow_provider_kling.models.common import (
    DEFAULT_ASPECT_RATIO,
    DEFAULT_CFG_SCALE,
    DEFAULT_DURATION,
    DEFAULT_NEGATIVE_PROMPT,
    AspectRatio,
    CfgScale,
    Duration,
    KlingInput,
    NegativePrompt,
    NotBool,
    Prompt,
    cross_error,
)

CameraPreset = Literal["down_back", "forward_up", "right_turn_forward", "left_turn_forward"]
MovementType = Literal["horizontal", "vertical", "pan", "tilt", "roll", "zoom"]


class TextToVideoInput(KlingInput):
    """Common text-to-video request (v1.5 pro, v1.6 standard/pro, v2.1 master, v2.5-turbo pro).

    :param prompt: what to generate, at most 2500 characters.
    :param duration: ``"5"`` or ``"10"`` seconds (ints 5/10 are accepted and normalised).
    :param aspect_ratio: ``"16:9"`` (default), ``"9:16"`` or ``"1:1"``.
    :param negative_prompt: what to avoid, at most 2500 characters.
    :param cfg_scale: prompt adherence, 0-1 (default 0.5).
    """

    prompt: Prompt
    duration: Duration = DEFAULT_DURATION
    aspect_ratio: AspectRatio = DEFAULT_ASPECT_RATIO
    negative_prompt: NegativePrompt = DEFAULT_NEGATIVE_PROMPT
    cfg_scale: CfgScale = DEFAULT_CFG_SCALE


class CameraControl(KlingInput):
    """A single camera movement (fal's simplification of Kling's six-axis ``config``).

    :param movement_type: horizontal, vertical, pan, tilt, roll or zoom.
    :param movement_value: integer strength, -10 … 10.
    """

    movement_type: MovementType
    movement_value: Annotated[int, NotBool] = Field(ge=-10, le=10)


class V1TextToVideoInput(TextToVideoInput):
    """v1 standard text-to-video: the common shape plus camera control.

    :param camera_control: a preset movement (``down_back``, ``forward_up``, ...).
    :param advanced_camera_control: a custom :class:`CameraControl` movement.
    """

    camera_control: CameraPreset | None = None
    advanced_camera_control: CameraControl | None = None

    def cross_field_errors(self) -> list[dict[str, Any]]:
        errors = []
        has_camera = self.camera_control is not None or self.advanced_camera_control is not None
        if self.camera_control is not None and self.advanced_camera_control is not None:
            # Guess: both set one camera path; Kling takes a single camera_control.
            errors.append(
                cross_error(
                    ("advanced_camera_control",),
                    "cannot be combined with camera_control (use one of them)",
                )
            )
        if has_camera and self.duration != "5":
            # Kling: camera control works only for 5 s clips (kling-endpoints.md §3, S7).
            field = "camera_control" if self.camera_control is not None else "advanced_camera_control"
            errors.append(
                cross_error((field,), f'camera control requires duration "5" (got "{self.duration}")')
            )
        return errors


class V2MasterTextToVideoInput(TextToVideoInput):
    """v2 / v2.1 master text-to-video (same shape as :class:`TextToVideoInput`)."""


class V26TextToVideoInput(TextToVideoInput):
    """v2.6 pro text-to-video: the common shape plus native audio.

    :param generate_audio: generate a sound track (default True; billed higher).
    """

    generate_audio: bool = True
