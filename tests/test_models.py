"""Good input becomes exactly fal's JSON; the registry covers the families; cost estimates."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from decimal import Decimal
from typing import Any

import pytest

from airflow_provider_kling.exceptions import KlingConfigurationError, KlingValidationError
from airflow_provider_kling.models import (
    KNOWN_EFFECT_SCENES,
    REGISTRY,
    VOICE_IDS,
    File,
    ImageToVideoInput,
    KlingInput,
    V1ImageToVideoInput,
    VideoOutput,
    estimate_cost,
    fal_validation_errors,
    get_endpoint,
    validate_arguments,
)
from airflow_provider_kling.protocol import FalSettings, QueueProtocol

P = "fal-ai/kling-video/"
IMG = "https://example.com/cat.png"
NEG = "blur, distort, and low quality"

GOOD: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "v1.6/standard/image-to-video",
        {"prompt": "cat", "image_url": IMG},
        {"prompt": "cat", "image_url": IMG, "duration": "5", "negative_prompt": NEG, "cfg_scale": 0.5},
    ),
    (
        "v1.6/pro/image-to-video",
        {"prompt": "cat", "image_url": IMG, "tail_image_url": IMG, "duration": 10},
        {
            "prompt": "cat",
            "image_url": IMG,
            "tail_image_url": IMG,
            "duration": "10",
            "aspect_ratio": "16:9",
            "negative_prompt": NEG,
            "cfg_scale": 0.5,
        },
    ),
    (
        "v1.6/standard/text-to-video",
        {"prompt": "sea", "aspect_ratio": "9:16", "cfg_scale": 0.7, "negative_prompt": ""},
        {"prompt": "sea", "duration": "5", "aspect_ratio": "9:16", "negative_prompt": "", "cfg_scale": 0.7},
    ),
    (
        "v1/standard/text-to-video",
        {"prompt": "sea", "advanced_camera_control": {"movement_type": "zoom", "movement_value": -10}},
        {
            "prompt": "sea",
            "duration": "5",
            "aspect_ratio": "16:9",
            "negative_prompt": NEG,
            "cfg_scale": 0.5,
            "advanced_camera_control": {"movement_type": "zoom", "movement_value": -10},
        },
    ),
    (
        "v1/standard/image-to-video",
        {
            "prompt": "wave",
            "image_url": IMG,
            "static_mask_url": IMG,
            "dynamic_masks": [{"mask_url": IMG, "trajectories": [{"x": 0, "y": 0}, {"x": 5, "y": 9}]}],
            "tail_image_url": None,
        },
        {
            "prompt": "wave",
            "image_url": IMG,
            "static_mask_url": IMG,
            "dynamic_masks": [{"mask_url": IMG, "trajectories": [{"x": 0, "y": 0}, {"x": 5, "y": 9}]}],
            "duration": "5",
            "negative_prompt": NEG,
            "cfg_scale": 0.5,
        },
    ),
    (
        "v2.6/pro/image-to-video",
        {"prompt": "hi <<<voice_1>>>", "start_image_url": IMG, "end_image_url": IMG, "voice_ids": ["v1"]},
        {
            "prompt": "hi <<<voice_1>>>",
            "start_image_url": IMG,
            "end_image_url": IMG,
            "duration": "5",
            "negative_prompt": NEG,
            "generate_audio": True,
            "voice_ids": ["v1"],
        },
    ),
    (
        "v2.6/pro/text-to-video",
        {"prompt": "rain", "generate_audio": False},
        {
            "prompt": "rain",
            "duration": "5",
            "aspect_ratio": "16:9",
            "negative_prompt": NEG,
            "cfg_scale": 0.5,
            "generate_audio": False,
        },
    ),
    (
        "v1.6/pro/elements",
        {"prompt": "together", "input_image_urls": [IMG, IMG]},
        {
            "prompt": "together",
            "input_image_urls": [IMG, IMG],
            "duration": "5",
            "aspect_ratio": "16:9",
            "negative_prompt": NEG,
        },
    ),
    (
        "v1.6/standard/effects",
        {"effect_scene": "hug", "input_image_urls": (IMG, IMG)},
        {"effect_scene": "hug", "input_image_urls": [IMG, IMG], "duration": "5"},
    ),
    (
        "lipsync/text-to-video",
        {"video_url": IMG, "text": "Hello", "voice_id": "AOT"},
        {"video_url": IMG, "text": "Hello", "voice_id": "AOT", "voice_language": "en", "voice_speed": 1.0},
    ),
    (
        "lipsync/audio-to-video",
        {"video_url": IMG, "audio_url": IMG},
        {"video_url": IMG, "audio_url": IMG},
    ),
    (
        "v2.6/standard/motion-control",
        {"image_url": IMG, "video_url": IMG, "character_orientation": "video"},
        {"image_url": IMG, "video_url": IMG, "character_orientation": "video", "keep_original_sound": True},
    ),
    (
        "v2.1/pro/image-to-video",
        {"prompt": "x", "image_url": IMG, "tail_image_url": IMG, "duration": "10"},
        {
            "prompt": "x",
            "image_url": IMG,
            "tail_image_url": IMG,
            "duration": "10",
            "negative_prompt": NEG,
            "cfg_scale": 0.5,
        },
    ),
]


@pytest.mark.parametrize(("path", "given", "expected"), GOOD, ids=[g[0] for g in GOOD])
def test_good_input_is_exactly_fals_json(path: str, given: dict[str, Any], expected: dict[str, Any]) -> None:
    payload = validate_arguments(P + path, given)
    assert payload == expected
    assert json.loads(json.dumps(payload)) == expected
    # What we send is what fal accepts.
    assert fal_validation_errors(P + path, payload) == []


def test_registry_covers_the_typed_families() -> None:
    families = {
        "v1/standard/text-to-video",
        "v1/standard/image-to-video",
        "v1/pro/image-to-video",
        "v1.5/pro/text-to-video",
        "v1.5/pro/image-to-video",
        "v1.6/standard/text-to-video",
        "v1.6/standard/image-to-video",
        "v1.6/pro/text-to-video",
        "v1.6/pro/image-to-video",
        "v1.6/standard/elements",
        "v1.6/pro/elements",
        "v1/standard/effects",
        "v1.5/pro/effects",
        "v1.6/standard/effects",
        "v1.6/pro/effects",
        "v2/master/text-to-video",
        "v2/master/image-to-video",
        "v2.1/master/text-to-video",
        "v2.1/master/image-to-video",
        "v2.1/pro/image-to-video",
        "v2.1/standard/image-to-video",
        "v2.5-turbo/pro/text-to-video",
        "v2.5-turbo/pro/image-to-video",
        "v2.5-turbo/standard/image-to-video",
        "v2.6/pro/text-to-video",
        "v2.6/pro/image-to-video",
        "v2.6/pro/motion-control",
        "v2.6/standard/motion-control",
        "lipsync/audio-to-video",
        "lipsync/text-to-video",
    }
    assert {P + f for f in families} <= set(REGISTRY)
    for spec in REGISTRY.values():
        assert issubclass(spec.request_model, KlingInput)
        assert spec.output_model is VideoOutput


def test_capabilities_follow_the_schema() -> None:
    v26 = get_endpoint(P + "v2.6/pro/image-to-video")
    assert v26 is not None
    caps = v26.capabilities
    assert (caps.image_key, caps.tail_key, caps.has_cfg_scale, caps.has_aspect_ratio) == (
        "start_image_url",
        "end_image_url",
        False,
        False,
    )
    assert caps.has_audio and caps.durations == ("5", "10") and caps.version == "2.6" and caps.tier == "pro"
    std = get_endpoint(P + "v1.6/standard/image-to-video")
    assert std is not None and std.request_model is ImageToVideoInput
    assert std.capabilities.tail_key is None and not std.capabilities.has_aspect_ratio
    v1 = get_endpoint("/" + P + "v1/standard/image-to-video/")
    assert v1 is not None and v1.request_model is V1ImageToVideoInput and v1.capabilities.has_masks
    lipsync = get_endpoint(P + "lipsync/text-to-video")
    assert lipsync is not None and lipsync.capabilities.task == "lipsync-text"
    assert get_endpoint("fal-ai/kling-video/v3/pro/image-to-video") is None


def test_known_values() -> None:
    assert len(VOICE_IDS) == 46 and len(set(VOICE_IDS)) == 46
    assert {"hug", "kiss", "heart_gesture", "squish", "korean_baseball", "let's_ride"} <= KNOWN_EFFECT_SCENES


def test_unknown_effect_scene_is_refused_unless_opted_in(caplog: pytest.LogCaptureFixture) -> None:
    args = {"effect_scene": "brand_new_scene", "input_image_urls": [IMG]}
    with pytest.raises(KlingValidationError, match="allow_unknown_effect_scene=True"):
        validate_arguments(P + "v1.6/pro/effects", args)
    with caplog.at_level(logging.WARNING):
        payload = validate_arguments(P + "v1.6/pro/effects", args, allow_unknown_effect_scene=True)
    assert payload["effect_scene"] == "brand_new_scene"
    assert "brand_new_scene" in caplog.text
    # The opt-in is the client's: fal's own view of the same request has no opinion on scenes.
    assert fal_validation_errors(P + "v1.6/pro/effects", args) == []


def test_unknown_endpoint_passes_through_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    args = {"prompt": "p", "multi_prompt": [{"prompt": "a", "duration": "3"}], "duration": "12"}
    with caplog.at_level(logging.WARNING):
        assert validate_arguments("fal-ai/kling-video/v3/pro/text-to-video", args) == args
    assert "NOT validated locally" in caplog.text
    assert fal_validation_errors("fal-ai/kling-video/v3/pro/text-to-video", args) is None


@pytest.mark.parametrize("bad", [float("nan"), object(), {1: "a"}])
def test_unknown_endpoint_needs_json(bad: Any) -> None:
    with pytest.raises(KlingValidationError, match=r"x\.y"):
        validate_arguments("someone/model", {"x": {"y": bad}})


@pytest.mark.parametrize(
    "endpoint_id", ["", "kling", "fal-ai/ kling", None, "a//b", "workflows/me", "fal-ai/kling?x=1"]
)
def test_malformed_endpoint_id(endpoint_id: Any) -> None:
    with pytest.raises(KlingConfigurationError, match="endpoint_id"):
        validate_arguments(endpoint_id, {"prompt": "p"})


@pytest.mark.parametrize("endpoint_id", ["123-myapp", "workflows/me/flow/run", "comfy/me/graph"])
def test_validation_accepts_every_id_the_hook_can_submit(endpoint_id: str) -> None:
    # One parser for endpoint ids: local validation must not refuse an id the queue protocol submits
    # (legacy numeric ids, namespaced apps), nor accept one the hook would then refuse.
    args = {"prompt": "p"}
    assert validate_arguments(endpoint_id, args) == args
    assert QueueProtocol(FalSettings(key="k:s")).submit_request(endpoint_id, args).method == "POST"


def test_arguments_must_be_a_dict() -> None:
    with pytest.raises(KlingValidationError, match="must be a dict"):
        validate_arguments(P + "v1.6/standard/text-to-video", [("prompt", "p")])  # type: ignore[arg-type]
    assert fal_validation_errors(P + "v1.6/standard/text-to-video", "p") == [
        {"loc": ["body"], "msg": "Input should be a valid dictionary", "type": "dict_type"}
    ]


def test_server_view_is_strict_where_fal_is() -> None:
    # fal's schema wants the string "5": a JSON number fails there; the client normalises it.
    ep = P + "v1.6/standard/text-to-video"
    assert fal_validation_errors(ep, {"prompt": "p", "duration": 5})[0]["loc"] == ["body", "duration"]  # type: ignore[index]
    assert validate_arguments(ep, {"prompt": "p", "duration": 5})["duration"] == "5"
    with pytest.raises(KlingValidationError, match="duration"):
        validate_arguments(ep, {"prompt": "p", "duration": True})


def test_models_enforce_cross_field_rules_directly() -> None:
    with pytest.raises(ValueError, match="tail_image_url"):
        V1ImageToVideoInput.model_validate(
            {"prompt": "p", "image_url": IMG, "tail_image_url": IMG, "static_mask_url": IMG}
        )


def test_output_models() -> None:
    out = VideoOutput.model_validate(
        {"video": {"url": "https://cdn/x.mp4", "content_type": "video/mp4", "file_size": 12, "seed": 1}}
    )
    assert out.video.url == "https://cdn/x.mp4" and out.video.file_size == 12
    assert File(url="u").file_name is None


@pytest.mark.parametrize(
    ("path", "args", "expected"),
    [
        ("v1.6/standard/image-to-video", {"duration": "5"}, Decimal("0.225")),
        ("v1.6/standard/image-to-video", {"duration": 10}, Decimal("0.450")),
        ("v1.6/pro/text-to-video", {}, Decimal("0.490")),
        ("v2/master/image-to-video", {}, Decimal("1.40")),
        ("v2.1/master/text-to-video", {"duration": "10"}, Decimal("2.80")),
        ("v2.1/pro/image-to-video", {"duration": "10"}, Decimal("0.980")),
        ("v2.5-turbo/standard/image-to-video", {"duration": "10"}, Decimal("0.420")),
        ("v2.6/pro/image-to-video", {}, Decimal("0.70")),  # generate_audio defaults on
        ("v2.6/pro/image-to-video", {"generate_audio": False}, Decimal("0.35")),
        ("v2.6/pro/image-to-video", {"voice_ids": ["a"], "duration": "10"}, Decimal("1.680")),
        ("lipsync/audio-to-video", {}, None),  # billed on the input video's length
        ("v1.6/pro/effects", {}, None),  # no sourced price
    ],
)
def test_estimate_cost(path: str, args: dict[str, Any], expected: Decimal | None) -> None:
    assert estimate_cost(P + path, args) == expected


def test_estimate_cost_overrides() -> None:
    ep = P + "v1.6/standard/image-to-video"
    assert estimate_cost(ep, {"duration": "10"}, prices={ep: {"per_second": "0.05"}}) == Decimal("0.50")
    prices = {
        "fal-ai/kling-video/*": {"per_second": 0.01},
        "fal-ai/kling-video/v3/*": {"per_clip_5s": "0.60", "per_extra_second": "0.12"},
    }
    assert estimate_cost(P + "v3/pro/image-to-video", {"duration": "8"}, prices=prices) == Decimal("0.96")
    assert estimate_cost(P + "v1.6/pro/effects", {}, prices=json.dumps(prices)) == Decimal("0.05")
    assert estimate_cost("someone/else", {}, prices=prices) is None
    assert estimate_cost(
        P + "v1.6/pro/effects", {}, prices={P + "v1.6/pro/effects": {"per_clip": "0.28"}}
    ) == Decimal("0.28")
    # A duration fal would refuse yields no estimate rather than an exception.
    assert estimate_cost(ep, {"duration": "five"}) is None


@pytest.mark.parametrize(
    "prices",
    [
        "{not json",
        ["per_second"],
        {P + "v1.6/standard/image-to-video": "0.05"},
        {P + "v1.6/standard/image-to-video": {"per_secnd": "0.05"}},
        {P + "v1.6/standard/image-to-video": {"per_second": "-1"}},
        {P + "v1.6/standard/image-to-video": {"per_extra_second": "0.1"}},
    ],
)
def test_bad_price_overrides_name_the_key(prices: Any) -> None:
    with pytest.raises(KlingConfigurationError, match="prices"):
        estimate_cost(P + "v1.6/standard/image-to-video", {}, prices=prices)


def test_importing_models_is_cheap() -> None:
    code = (
        "import sys, airflow_provider_kling.models as m; "
        "print(sorted(x for x in ('airflow', 'PIL', 'httpx') if x in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
