"""What each typed Kling endpoint accepts, as plain data for the typed operators' parse-time checks.

DAG files are parsed again and again; the endpoint registry (:mod:`airflow_provider_kling.models.registry`)
builds two dozen pydantic models on import (~70 ms), so the keyword mapping
(:mod:`airflow_provider_kling.models.keywords`, run in the typed operators' ``__init__``) reads this
table instead and full validation happens in ``execute``. ``tests/test_endpoint_capabilities.py``
checks the table against the registry and prints the rows to paste when the registry changes.
"""

from __future__ import annotations

from typing import NamedTuple

PREFIX = "fal-ai/kling-video/"


class Caps(NamedTuple):
    """A registry :class:`~airflow_provider_kling.models.registry.Capabilities`, the fields operators read."""

    version: str | None
    tier: str | None
    task: str
    image_key: str | None
    tail_key: str | None
    has_aspect_ratio: bool
    has_cfg_scale: bool
    has_negative_prompt: bool
    has_camera_control: bool


class Spec(NamedTuple):
    """An endpoint id with its capabilities (the shape of a registry ``EndpointSpec`` operators use)."""

    endpoint_id: str
    capabilities: Caps


_ROWS: dict[str, Caps] = {
    "v1/standard/text-to-video": Caps("1", "standard", "text-to-video", None, None, True, True, True, True),
    "v1/standard/image-to-video": Caps(
        "1", "standard", "image-to-video", "image_url", "tail_image_url", False, True, True, False
    ),
    "v1/pro/text-to-video": Caps("1", "pro", "text-to-video", None, None, True, True, True, False),
    "v1/pro/image-to-video": Caps(
        "1", "pro", "image-to-video", "image_url", "tail_image_url", False, True, True, False
    ),
    "v1.5/pro/text-to-video": Caps("1.5", "pro", "text-to-video", None, None, True, True, True, False),
    "v1.5/pro/image-to-video": Caps(
        "1.5", "pro", "image-to-video", "image_url", "tail_image_url", True, True, True, False
    ),
    "v1.6/standard/text-to-video": Caps(
        "1.6", "standard", "text-to-video", None, None, True, True, True, False
    ),
    "v1.6/standard/image-to-video": Caps(
        "1.6", "standard", "image-to-video", "image_url", None, False, True, True, False
    ),
    "v1.6/standard/elements": Caps("1.6", "standard", "elements", None, None, True, False, True, False),
    "v1.6/pro/text-to-video": Caps("1.6", "pro", "text-to-video", None, None, True, True, True, False),
    "v1.6/pro/image-to-video": Caps(
        "1.6", "pro", "image-to-video", "image_url", "tail_image_url", True, True, True, False
    ),
    "v1.6/pro/elements": Caps("1.6", "pro", "elements", None, None, True, False, True, False),
    "v1/standard/effects": Caps("1", "standard", "effects", None, None, False, False, False, False),
    "v1.5/pro/effects": Caps("1.5", "pro", "effects", None, None, False, False, False, False),
    "v1.6/standard/effects": Caps("1.6", "standard", "effects", None, None, False, False, False, False),
    "v1.6/pro/effects": Caps("1.6", "pro", "effects", None, None, False, False, False, False),
    "v2/master/text-to-video": Caps("2", "master", "text-to-video", None, None, True, True, True, False),
    "v2/master/image-to-video": Caps(
        "2", "master", "image-to-video", "image_url", None, False, True, True, False
    ),
    "v2.1/master/text-to-video": Caps("2.1", "master", "text-to-video", None, None, True, True, True, False),
    "v2.1/master/image-to-video": Caps(
        "2.1", "master", "image-to-video", "image_url", None, False, True, True, False
    ),
    "v2.1/pro/image-to-video": Caps(
        "2.1", "pro", "image-to-video", "image_url", "tail_image_url", False, True, True, False
    ),
    "v2.1/standard/image-to-video": Caps(
        "2.1", "standard", "image-to-video", "image_url", None, False, True, True, False
    ),
    "v2.5-turbo/pro/text-to-video": Caps(
        "2.5-turbo", "pro", "text-to-video", None, None, True, True, True, False
    ),
    "v2.5-turbo/pro/image-to-video": Caps(
        "2.5-turbo", "pro", "image-to-video", "image_url", "tail_image_url", False, True, True, False
    ),
    "v2.5-turbo/standard/image-to-video": Caps(
        "2.5-turbo", "standard", "image-to-video", "image_url", None, False, True, True, False
    ),
    "v2.6/pro/text-to-video": Caps("2.6", "pro", "text-to-video", None, None, True, True, True, False),
    "v2.6/pro/image-to-video": Caps(
        "2.6", "pro", "image-to-video", "start_image_url", "end_image_url", False, False, True, False
    ),
    "v2.6/pro/motion-control": Caps(
        "2.6", "pro", "motion-control", "image_url", None, False, False, False, False
    ),
    "v2.6/standard/motion-control": Caps(
        "2.6", "standard", "motion-control", "image_url", None, False, False, False, False
    ),
    "lipsync/audio-to-video": Caps(None, None, "lipsync-audio", None, None, False, False, False, False),
    "lipsync/text-to-video": Caps(None, None, "lipsync-text", None, None, False, False, False, False),
}

CAPABILITIES: dict[str, Caps] = {PREFIX + path: caps for path, caps in _ROWS.items()}
SPECS: tuple[Spec, ...] = tuple(Spec(endpoint_id, caps) for endpoint_id, caps in CAPABILITIES.items())
