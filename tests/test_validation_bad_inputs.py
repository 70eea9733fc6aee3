"""Bad input is refused before any network call, naming the field and the limit.

Every case runs ``prepare_arguments`` with the real hook's ``upload_file`` pointed at the emulator
(or, for operator options such as a rendered ``priority``, the operator's ``execute`` with a local
file to upload) and asserts the emulator saw zero requests. The cases fal itself would reject are
then submitted raw (local validation bypassed) and the emulator's 422 must name the same field.
"""

from __future__ import annotations

import base64
import io
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from airflow_provider_kling.emulator import FalEmulator
from airflow_provider_kling.exceptions import KlingConfigurationError, KlingError, KlingValidationError
from airflow_provider_kling.models import fal_validation_errors, prepare_arguments, validate_arguments
from airflow_provider_kling.models.errors import format_loc

P = "fal-ai/kling-video/"
I2V16 = P + "v1.6/standard/image-to-video"
I2V16PRO = P + "v1.6/pro/image-to-video"
T2V16PRO = P + "v1.6/pro/text-to-video"
T2V1 = P + "v1/standard/text-to-video"
I2V1 = P + "v1/standard/image-to-video"
I2V26 = P + "v2.6/pro/image-to-video"
T2V26 = P + "v2.6/pro/text-to-video"
T2V25 = P + "v2.5-turbo/pro/text-to-video"
ELEMENTS = P + "v1.6/pro/elements"
EFFECTS = P + "v1.6/standard/effects"
LIPSYNC_TEXT = P + "lipsync/text-to-video"
LIPSYNC_AUDIO = P + "lipsync/audio-to-video"
MOTION = P + "v2.6/pro/motion-control"

IMG = "https://example.com/cat.png"
IMG2 = "https://example.com/dog.png"
VIDEO = "https://example.com/talk.mp4"
AUDIO = "https://example.com/speech.mp3"
MASK = {"mask_url": "https://example.com/mask.png", "trajectories": [{"x": 1, "y": 1}, {"x": 50, "y": 60}]}


def png(width: int, height: int, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(buf, fmt)
    return buf.getvalue()


def _noisy_png(width: int, height: int) -> bytes:
    # Random pixels so the compressed data is long enough to cut in the middle.
    buf = io.BytesIO()
    Image.frombytes("RGB", (width, height), random.Random(8).randbytes(width * height * 3)).save(buf, "PNG")
    return buf.getvalue()


@dataclass
class Media:
    """Files on disk for the cases that need local inputs."""

    root: Path
    paths: dict[str, Path] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Path:
        try:
            return self.paths[name]
        except KeyError:
            raise AttributeError(name) from None


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    root = tmp_path_factory.mktemp("media")
    files = {
        "ok": ("ok.png", png(640, 360)),
        "small": ("small.png", png(200, 200)),
        "wide": ("wide.png", png(1000, 300)),
        "gif": ("anim.gif", png(400, 400, "GIF")),
        "text": ("notes.png", b"this is not an image"),
        # A valid PNG header followed by padding: > 10 MB on disk.
        "huge": ("huge.png", png(640, 360) + b"\0" * (10 * 1024 * 1024)),
        "big_audio": ("speech.mp3", b"ID3" + b"\0" * (5 * 1024 * 1024 + 10)),
        # A download cut short: the PNG header (and size) is intact, the pixel data is not.
        "truncated": ("cut.png", _noisy_png(800, 600)[:6000]),
        "text_mp3": ("speech-notes.mp3", b"Hello, this is the script, not the recording.\n" * 20),
        "mp3": ("voice.mp3", b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x00" * 100),
    }
    out = Media(root)
    for key, (name, data) in files.items():
        path = root / name
        path.write_bytes(data)
        out.paths[key] = path
    return out


@dataclass
class Case:
    """One bad input: where it must fail, and whether fal's own schema would reject it too."""

    id: str
    endpoint: str
    args: dict[str, Any] | Callable[[Media], dict[str, Any]]
    loc: tuple[str | int, ...]
    server: bool = True  # False: client-only (unknown fields, file checks)
    says: str | None = None  # a fragment the message must contain (the limit)
    never_says: str | None = None  # a secret the message must not repeat
    # Operator options applied after construction, as template rendering does; the case then runs
    # KlingVideoOperator.execute (uploads and all) instead of prepare_arguments.
    operator: dict[str, Any] | None = None

    def arguments(self, media: Media) -> dict[str, Any]:
        return self.args(media) if callable(self.args) else self.args


def _i2v(**kw: Any) -> dict[str, Any]:
    return {"prompt": "a cat turns its head", "image_url": IMG, **kw}


def _t2v(**kw: Any) -> dict[str, Any]:
    return {"prompt": "a lighthouse at dusk", **kw}


def _lipsync(**kw: Any) -> dict[str, Any]:
    return {"video_url": VIDEO, "text": "Hello there", "voice_id": "uk_man2", **kw}


CASES: list[Case] = [
    # --- fields, types, enums, ranges, lengths (fal's schema rejects these as well) -----------
    Case("missing-prompt", I2V16, {"image_url": IMG}, ("prompt",), says="required"),
    Case("missing-image", I2V16, {"prompt": "x"}, ("image_url",), says="required"),
    Case(
        "prompt-too-long",
        I2V16,
        _i2v(prompt="x" * 2600),
        ("prompt",),
        says="at most 2500 characters (got 2600)",
    ),
    Case("negative-too-long", T2V16PRO, _t2v(negative_prompt="n" * 2501), ("negative_prompt",), says="2500"),
    Case("prompt-not-string", T2V16PRO, _t2v(prompt=42), ("prompt",)),
    Case("cfg-above-1", I2V16, _i2v(cfg_scale=1.5), ("cfg_scale",), says="between 0.0 and 1.0"),
    Case("cfg-below-0", I2V16, _i2v(cfg_scale=-0.1), ("cfg_scale",), says="between 0.0 and 1.0"),
    Case("duration-7", I2V16, _i2v(duration="7"), ("duration",), says="'5', '10'"),
    Case("duration-int-15", I2V16, _i2v(duration=15), ("duration",), says="'5', '10'"),
    Case("duration-5s", I2V16, _i2v(duration="5s"), ("duration",)),
    Case("aspect-4-3", T2V16PRO, _t2v(aspect_ratio="4:3"), ("aspect_ratio",), says="'16:9', '9:16', '1:1'"),
    Case("aspect-21-9-pro-i2v", I2V16PRO, _i2v(aspect_ratio="21:9"), ("aspect_ratio",)),
    Case("t2v-missing-prompt", T2V25, {"duration": "5"}, ("prompt",)),
    Case("camera-preset-unknown", T2V1, _t2v(camera_control="spin"), ("camera_control",), says="down_back"),
    Case(
        "movement-value-11",
        T2V1,
        _t2v(advanced_camera_control={"movement_type": "zoom", "movement_value": 11}),
        ("advanced_camera_control", "movement_value"),
        says="between -10 and 10",
    ),
    Case(
        "movement-value-float",
        T2V1,
        _t2v(advanced_camera_control={"movement_type": "pan", "movement_value": 2.5}),
        ("advanced_camera_control", "movement_value"),
    ),
    Case(
        "movement-type-unknown",
        T2V1,
        _t2v(advanced_camera_control={"movement_type": "dolly", "movement_value": 2}),
        ("advanced_camera_control", "movement_type"),
    ),
    Case("v26-image-url-renamed", I2V26, _i2v(), ("start_image_url",), says="required"),
    Case(
        "v26-three-voices",
        I2V26,
        {"prompt": "x", "start_image_url": IMG, "voice_ids": ["a", "b", "c"]},
        ("voice_ids",),
        says="at most 2 items",
    ),
    Case("v26-audio-not-bool", T2V26, _t2v(generate_audio="maybe"), ("generate_audio",)),
    Case(
        "elements-5-images",
        ELEMENTS,
        {"prompt": "x", "input_image_urls": [IMG] * 5},
        ("input_image_urls",),
        says="at most 4 items",
    ),
    Case(
        "elements-no-images",
        ELEMENTS,
        {"prompt": "x", "input_image_urls": []},
        ("input_image_urls",),
        says="at least 1",
    ),
    Case("effects-missing-scene", EFFECTS, {"input_image_urls": [IMG]}, ("effect_scene",)),
    Case(
        "effects-three-images",
        EFFECTS,
        {"effect_scene": "new_thing", "input_image_urls": [IMG] * 3},
        ("input_image_urls",),
        says="at most 2",
    ),
    Case(
        "lipsync-text-121",
        LIPSYNC_TEXT,
        _lipsync(text="t" * 121),
        ("text",),
        says="at most 120 characters (got 121)",
    ),
    Case(
        "lipsync-voice-unknown",
        LIPSYNC_TEXT,
        _lipsync(voice_id="darth_vader"),
        ("voice_id",),
        says="46 allowed values",
    ),
    Case(
        "lipsync-voice-typo",
        LIPSYNC_TEXT,
        _lipsync(voice_id="uk_man"),
        ("voice_id",),
        says="did you mean 'uk_man2'",
    ),
    Case(
        "lipsync-language-fr",
        LIPSYNC_TEXT,
        _lipsync(voice_language="fr"),
        ("voice_language",),
        says="'zh', 'en'",
    ),
    Case(
        "lipsync-speed-2.5",
        LIPSYNC_TEXT,
        _lipsync(voice_speed=2.5),
        ("voice_speed",),
        says="between 0.8 and 2.0",
    ),
    Case(
        "lipsync-speed-0.5",
        LIPSYNC_TEXT,
        _lipsync(voice_speed=0.5),
        ("voice_speed",),
        says="between 0.8 and 2.0",
    ),
    Case("lipsync-missing-audio", LIPSYNC_AUDIO, {"video_url": VIDEO}, ("audio_url",)),
    Case(
        "motion-orientation",
        MOTION,
        {"image_url": IMG, "video_url": VIDEO, "character_orientation": "left"},
        ("character_orientation",),
    ),
    Case(
        "motion-missing-video", MOTION, {"image_url": IMG, "character_orientation": "image"}, ("video_url",)
    ),
    Case(
        "mask-trajectory-1-point",
        I2V1,
        _i2v(dynamic_masks=[{**MASK, "trajectories": [{"x": 1, "y": 1}]}]),
        ("dynamic_masks", 0, "trajectories"),
        says="at least 2 items",
    ),
    Case(
        "mask-trajectory-78-points",
        I2V1,
        _i2v(dynamic_masks=[{**MASK, "trajectories": [{"x": i, "y": i} for i in range(78)]}]),
        ("dynamic_masks", 0, "trajectories"),
        says="at most 77 items",
    ),
    Case("mask-7-masks", I2V1, _i2v(dynamic_masks=[MASK] * 7), ("dynamic_masks",), says="at most 6 items"),
    Case(
        "mask-missing-url",
        I2V1,
        _i2v(dynamic_masks=[{"trajectories": MASK["trajectories"]}]),
        ("dynamic_masks", 0, "mask_url"),
    ),
    Case(
        "mask-negative-x",
        I2V1,
        _i2v(dynamic_masks=[{**MASK, "trajectories": [{"x": -1, "y": 1}, {"x": 2, "y": 2}]}]),
        ("dynamic_masks", 0, "trajectories", 0, "x"),
    ),
    Case("image-ftp", I2V16, _i2v(image_url="ftp://example.com/cat.png"), ("image_url",), says="scheme"),
    Case(
        "image-s3-string",
        I2V16,
        _i2v(image_url="s3://bucket/cat.png"),
        ("image_url",),
        says="ObjectStoragePath",
    ),
    Case(
        "image-file-uri-string", I2V16, _i2v(image_url="file:///tmp/cat.png"), ("image_url",), says="scheme"
    ),
    # --- Kling's cross-field rules (fal passes them through; Kling rejects after queueing) -----
    Case(
        "camera-both",
        T2V1,
        _t2v(
            camera_control="down_back", advanced_camera_control={"movement_type": "zoom", "movement_value": 3}
        ),
        ("advanced_camera_control",),
        says="cannot be combined",
    ),
    Case(
        "camera-10s",
        T2V1,
        _t2v(camera_control="forward_up", duration="10"),
        ("camera_control",),
        says='duration "5"',
    ),
    Case(
        "tail-and-static-mask",
        I2V1,
        _i2v(tail_image_url=IMG2, static_mask_url=IMG2),
        ("tail_image_url",),
        says="exclusive",
    ),
    Case(
        "tail-and-dynamic-masks",
        I2V1,
        _i2v(tail_image_url=IMG2, dynamic_masks=[MASK]),
        ("tail_image_url",),
        says="exclusive",
    ),
    Case(
        "tail-10s-v1",
        I2V1,
        _i2v(tail_image_url=IMG2, duration="10"),
        ("tail_image_url",),
        says='duration "5"',
    ),
    Case(
        "static-mask-10s",
        I2V1,
        _i2v(static_mask_url=IMG2, duration="10"),
        ("static_mask_url",),
        says='duration "5"',
    ),
    Case(
        "effects-hug-one-image",
        EFFECTS,
        {"effect_scene": "hug", "input_image_urls": [IMG]},
        ("input_image_urls",),
        says="exactly 2 images (got 1)",
    ),
    Case(
        "effects-squish-two-images",
        EFFECTS,
        {"effect_scene": "squish", "input_image_urls": [IMG, IMG2]},
        ("input_image_urls",),
        says="exactly 1 image (got 2)",
    ),
    Case(
        "effects-no-images",
        EFFECTS,
        {"effect_scene": "bloombloom"},
        ("input_image_urls",),
        says="exactly 1 image (got 0)",
    ),
    # --- client-only: unknown fields (fal ignores them silently: the typo costs money) ---------
    Case(
        "typo-promt",
        I2V16,
        {"promt": "x", "image_url": IMG},
        ("promt",),
        server=False,
        says="did you mean 'prompt'",
    ),
    Case(
        "aspect-on-std-i2v",
        I2V16,
        _i2v(aspect_ratio="9:16"),
        ("aspect_ratio",),
        server=False,
        says="unknown field",
    ),
    Case(
        "tail-on-std-i2v",
        I2V16,
        _i2v(tail_image_url=IMG2),
        ("tail_image_url",),
        server=False,
        says="unknown field",
    ),
    Case(
        "cfg-on-v26-i2v",
        I2V26,
        {"prompt": "x", "start_image_url": IMG, "cfg_scale": 0.5},
        ("cfg_scale",),
        server=False,
    ),
    Case(
        "cfg-on-elements",
        ELEMENTS,
        {"prompt": "x", "input_image_urls": [IMG], "cfg_scale": 0.5},
        ("cfg_scale",),
        server=False,
    ),
    Case(
        "unknown-nested",
        T2V1,
        _t2v(advanced_camera_control={"movement_type": "zoom", "movement_value": 1, "speed": 2}),
        ("advanced_camera_control", "speed"),
        server=False,
    ),
    # --- client-only: URLs, data URIs, local files, image headers ----------------------------
    Case(
        "url-without-host",
        I2V16,
        _i2v(image_url="https://"),
        ("image_url",),
        server=False,
        says="not a valid URL",
    ),
    Case(
        "data-uri-bad-base64",
        I2V16,
        _i2v(image_url="data:image/png;base64,@@not-base64@@"),
        ("image_url",),
        server=False,
        says="base64",
    ),
    Case(
        "data-uri-wrong-mime",
        I2V16,
        _i2v(image_url="data:text/plain;base64,aGVsbG8="),
        ("image_url",),
        server=False,
        says="text/plain",
    ),
    Case(
        "data-uri-not-base64",
        I2V16,
        _i2v(image_url="data:image/png,rawbytes"),
        ("image_url",),
        server=False,
        says="base64",
    ),
    Case(
        "data-uri-small-image",
        I2V16,
        lambda m: _i2v(image_url="data:image/png;base64," + base64.b64encode(m.small.read_bytes()).decode()),
        ("image_url",),
        server=False,
        says="at least 300 px",
    ),
    Case(
        "empty-image-string",
        I2V16,
        _i2v(image_url=""),
        ("image_url",),
        server=False,
        says="must not be empty",
    ),
    Case(
        "local-missing",
        I2V16,
        lambda m: _i2v(image_url=str(m.root / "nope.png")),
        ("image_url",),
        server=False,
        says="nope.png",
    ),
    Case(
        "local-path-missing",
        I2V16,
        lambda m: _i2v(image_url=m.root / "missing.jpg"),
        ("image_url",),
        server=False,
        says="missing.jpg",
    ),
    Case(
        "local-too-small",
        I2V16,
        lambda m: _i2v(image_url=m.small),
        ("image_url",),
        server=False,
        says="200x200",
    ),
    Case(
        "local-too-wide",
        I2V16,
        lambda m: _i2v(image_url=str(m.wide)),
        ("image_url",),
        server=False,
        says="2.5:1",
    ),
    Case("local-gif", I2V16, lambda m: _i2v(image_url=m.gif), ("image_url",), server=False, says="GIF"),
    Case(
        "local-not-image",
        I2V16,
        lambda m: _i2v(image_url=m.text),
        ("image_url",),
        server=False,
        says="not a readable image",
    ),
    Case(
        "local-over-10mb",
        I2V16,
        lambda m: _i2v(image_url=m.huge),
        ("image_url",),
        server=False,
        says="at most 10 MB",
    ),
    Case("bytes-not-image", I2V16, _i2v(image_url=b"GIF89a nope"), ("image_url",), server=False),
    Case(
        "bytes-too-small",
        I2V16PRO,
        lambda m: _i2v(tail_image_url=m.small.read_bytes()),
        ("tail_image_url",),
        server=False,
        says="300 px",
    ),
    Case(
        "mask-local-too-small",
        I2V1,
        lambda m: _i2v(dynamic_masks=[{**MASK, "mask_url": m.small}]),
        ("dynamic_masks", 0, "mask_url"),
        server=False,
    ),
    Case(
        "elements-second-bad",
        ELEMENTS,
        lambda m: {"prompt": "x", "input_image_urls": [IMG, m.wide]},
        ("input_image_urls", 1),
        server=False,
    ),
    Case(
        "lipsync-video-is-png",
        LIPSYNC_TEXT,
        lambda m: _lipsync(video_url=m.ok),
        ("video_url",),
        server=False,
        says="MP4 or MOV",
    ),
    Case(
        "lipsync-audio-over-5mb",
        LIPSYNC_AUDIO,
        lambda m: {"video_url": VIDEO, "audio_url": m.big_audio},
        ("audio_url",),
        server=False,
        says="at most 5 MB",
    ),
    Case(
        "object-storage-missing",
        I2V16,
        lambda m: _i2v(image_url=_osp(f"file://{m.root}/absent.png")),
        ("image_url",),
        server=False,
        says="absent.png",
    ),
    Case(
        "start-image-too-small",
        I2V26,
        lambda m: {"prompt": "x", "start_image_url": m.small},
        ("start_image_url",),
        server=False,
    ),
    Case(
        "unknown-endpoint-not-json",
        P + "v9/pro/image-to-video",
        {"prompt": "x", "seed": {1, 2}},
        ("seed",),
        server=False,
        says="JSON",
    ),
    # --- issue 8 C: inputs that used to be accepted, or refused only after money was spent ------
    Case(
        "local-png-truncated",
        I2V16,
        lambda m: _i2v(image_url=m.truncated),
        ("image_url",),
        server=False,
        says="truncated or corrupt",
    ),
    Case(
        "bytes-png-truncated-tail",
        I2V16PRO,
        lambda m: _i2v(tail_image_url=m.truncated.read_bytes()),
        ("tail_image_url",),
        server=False,
        says="truncated or corrupt",
    ),
    Case(
        "data-uri-png-truncated",
        I2V16,
        lambda m: _i2v(
            image_url="data:image/png;base64," + base64.b64encode(m.truncated.read_bytes()).decode()
        ),
        ("image_url",),
        server=False,
        says="truncated or corrupt",
    ),
    Case("prompt-empty", I2V16, _i2v(prompt=""), ("prompt",), server=False, says="must not be empty"),
    Case(
        "prompt-whitespace",
        T2V16PRO,
        _t2v(prompt=" \n\t "),
        ("prompt",),
        server=False,
        says="only whitespace",
    ),
    Case(
        "elements-prompt-whitespace",
        ELEMENTS,
        {"prompt": "   ", "input_image_urls": [IMG]},
        ("prompt",),
        server=False,
        says="only whitespace",
    ),
    Case(
        "lipsync-text-whitespace",
        LIPSYNC_TEXT,
        _lipsync(text="   "),
        ("text",),
        server=False,
        says="only whitespace",
    ),
    Case(
        "prompt-nul",
        I2V16,
        _i2v(prompt="a cat\x00 turns its head"),
        ("prompt",),
        server=False,
        says="control character U+0000 at position 5",
    ),
    Case(
        "prompt-escape-sequence",
        T2V1,
        _t2v(prompt="\x1b[31ma red lighthouse"),
        ("prompt",),
        server=False,
        says="U+001B",
    ),
    Case(
        "negative-prompt-bell",
        T2V16PRO,
        _t2v(negative_prompt="blur\x07"),
        ("negative_prompt",),
        server=False,
        says="U+0007",
    ),
    Case(
        "lipsync-text-c1-control",
        LIPSYNC_TEXT,
        _lipsync(text="Hello\x85there"),
        ("text",),
        server=False,
        says="U+0085",
    ),
    Case(
        "cfg-true", I2V16, _i2v(cfg_scale=True), ("cfg_scale",), server=False, says="a number, not a boolean"
    ),
    Case("cfg-false", T2V16PRO, _t2v(cfg_scale=False), ("cfg_scale",), server=False, says="not a boolean"),
    Case(
        "voice-speed-true",
        LIPSYNC_TEXT,
        _lipsync(voice_speed=True),
        ("voice_speed",),
        server=False,
        says="not a boolean",
    ),
    Case(
        "movement-value-true",
        T2V1,
        _t2v(advanced_camera_control={"movement_type": "zoom", "movement_value": True}),
        ("advanced_camera_control", "movement_value"),
        server=False,
        says="not a boolean",
    ),
    Case(
        "image-url-credentials",
        I2V16,
        _i2v(image_url="https://alice:s3cr3t-pw@example.com/cat.png"),
        ("image_url",),
        server=False,
        says="user:password@",
        never_says="s3cr3t-pw",
    ),
    Case(
        "element-url-credentials",
        ELEMENTS,
        {"prompt": "x", "input_image_urls": [IMG, "http://bob:hunter2@example.com/dog.png"]},
        ("input_image_urls", 1),
        server=False,
        says="credentials",
        never_says="hunter2",
    ),
    Case(
        "unknown-endpoint-url-credentials",
        P + "v9/pro/image-to-video",
        {"prompt": "x", "image_url": "https://carol:tok3n@example.com/a.png"},
        ("image_url",),
        server=False,
        says="credentials",
        never_says="tok3n",
    ),
    Case(
        "tail-10s-v1-pro",
        P + "v1/pro/image-to-video",
        _i2v(tail_image_url=IMG2, duration="10"),
        ("tail_image_url",),
        says='duration "5"',
    ),
    Case(
        "masks-10s-v15-pro",
        P + "v1.5/pro/image-to-video",
        _i2v(dynamic_masks=[MASK], duration="10"),
        ("dynamic_masks",),
        says='duration "5"',
    ),
    Case(
        "audio-text-named-mp3",
        LIPSYNC_AUDIO,
        lambda m: {"video_url": VIDEO, "audio_url": m.text_mp3},
        ("audio_url",),
        server=False,
        says="not a recognised audio file",
    ),
    Case(
        "audio-bytes-text",
        LIPSYNC_AUDIO,
        {"video_url": VIDEO, "audio_url": b"just some words"},
        ("audio_url",),
        server=False,
        says="not a recognised audio file",
    ),
    Case(
        "audio-data-uri-text",
        LIPSYNC_AUDIO,
        {
            "video_url": VIDEO,
            "audio_url": "data:audio/mpeg;base64," + base64.b64encode(b"not audio").decode(),
        },
        ("audio_url",),
        server=False,
        says="not a recognised audio file",
    ),
    Case(
        "effects-near-miss",
        EFFECTS,
        {"effect_scene": "sqiush", "input_image_urls": [IMG]},
        ("effect_scene",),
        server=False,
        says="did you mean 'squish'",
    ),
    Case(
        "effects-unknown-no-opt-in",
        EFFECTS,
        {"effect_scene": "zzz_not_a_scene", "input_image_urls": [IMG]},
        ("effect_scene",),
        server=False,
        says="allow_unknown_effect_scene=True",
    ),
    Case(
        "endpoint-wrong-case",
        P + "V1.6/standard/image-to-video",
        _i2v(),
        ("endpoint_id",),
        server=False,
        says=f"did you mean '{I2V16}'",
    ),
    Case(
        "endpoint-unknown-kling-upper-case",
        P + "v3/Pro/image-to-video",
        _i2v(),
        ("endpoint_id",),
        server=False,
        says="case-sensitive",
    ),
    Case("key-not-string", I2V16, {1: "x", **_i2v()}, (), server=False, says="key 1 (int) is not a string"),
    Case(
        "key-not-string-nested",
        T2V1,
        _t2v(advanced_camera_control={"movement_type": "zoom", "movement_value": 1, 2: 3}),
        ("advanced_camera_control",),
        server=False,
        says="is not a string",
    ),
    Case(
        "key-not-string-unknown-endpoint",
        P + "v9/pro/image-to-video",
        {None: "x", "prompt": "p"},
        (),
        server=False,
        says="key None (NoneType) is not a string",
    ),
    Case(
        "webhook-ftp-before-upload",
        I2V16,
        lambda m: _i2v(image_url=m.ok),
        ("webhook_url",),
        server=False,
        says="absolute http(s) URL, got scheme 'ftp'",
        never_says="hook-secret",
        operator={"webhook_url": "ftp://example.com/hook-secret"},
    ),
    Case(
        "webhook-no-host-before-upload",
        I2V16,
        lambda m: _i2v(image_url=m.ok),
        ("webhook_url",),
        server=False,
        says="without a host",
        operator={"webhook_url": "https:///x"},
    ),
    Case(
        "priority-rendered-bad-before-upload",
        I2V16,
        lambda m: _i2v(image_url=m.ok),
        ("priority",),
        server=False,
        says="'normal' or 'low', got 'urgent'",
        operator={"priority": "urgent"},
    ),
]

#: The rows issue 8 (part C) added; counted in the closing note.
ISSUE_8_ROWS = CASES[CASES.index(next(c for c in CASES if c.id == "local-png-truncated")) :]


def _osp(url: str) -> Any:
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(url)


@pytest.fixture(scope="module")
def _shared_emulator() -> Iterator[FalEmulator]:
    # One emulator for the module (reset per test): starting one per case would cost ~0.2 s each.
    with FalEmulator(processing_time=0.05, queue_delay=0.0, concurrency=8) as emu:
        yield emu


@pytest.fixture
def emulator(_shared_emulator: FalEmulator) -> FalEmulator:
    """Overrides the shared fixture: the same fresh-counters contract, one server per module."""
    _shared_emulator.reset()
    return _shared_emulator


def test_at_least_40_cases() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)
    assert len(ISSUE_8_ROWS) >= 30


def _run_operator(case: Case, media: Media, fal_conn: str) -> KlingError:
    from airflow_provider_kling.operators.kling import KlingVideoOperator

    op = KlingVideoOperator(
        task_id=f"bad_{case.id}".replace("-", "_"),
        endpoint_id=case.endpoint,
        arguments=case.arguments(media),
        fal_conn_id=fal_conn,
        priority="{{ params.priority }}",  # lazy at parse time, as a templated value is
    )
    op.priority = None
    for name, value in (case.operator or {}).items():
        setattr(op, name, value)  # what render_template_fields does
    with pytest.raises(KlingConfigurationError) as info:
        op.execute({})  # type: ignore[arg-type]
    return info.value


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_is_refused_before_any_request(
    case: Case, media: Media, emulator: FalEmulator, fal_conn: str
) -> None:
    from airflow_provider_kling.hooks.kling import KlingHook

    if case.operator is not None:
        err: KlingError = _run_operator(case, media, fal_conn)
    else:
        hook = KlingHook(fal_conn)
        try:
            with pytest.raises(KlingValidationError) as info:
                prepare_arguments(case.endpoint, case.arguments(media), upload=hook.upload_file)
        finally:
            hook.close()
        err = info.value
        locs = [tuple(e["loc"]) for e in info.value.errors]
        assert case.loc in locs, f"{case.loc} not in {locs}"
    assert format_loc(case.loc) in str(err)
    if case.says:
        assert case.says in str(err)
    if case.never_says:
        assert case.never_says not in str(err) and case.never_says not in repr(getattr(err, "errors", ""))
    assert sum(emulator.requests.values()) == 0, dict(emulator.requests)


def test_valid_counterparts_are_accepted(media: Media, caplog: pytest.LogCaptureFixture) -> None:
    """The new refusals stop at the mistake: their near neighbours still pass."""
    assert validate_arguments(I2V16PRO, _i2v(tail_image_url=IMG2, duration=10))["duration"] == "10"
    assert (
        validate_arguments(T2V16PRO, _t2v(prompt="line one\n\tline two\r\n", cfg_scale=1))["cfg_scale"] == 1
    )
    assert validate_arguments(T2V16PRO, _t2v(negative_prompt=""))["negative_prompt"] == ""
    assert validate_arguments(I2V16, _i2v(image_url="https://example.com/a@b.png?sig=x@y"))
    assert validate_arguments(LIPSYNC_AUDIO, {"video_url": VIDEO, "audio_url": media.mp3})
    with caplog.at_level("WARNING"):
        assert validate_arguments(
            EFFECTS, {"effect_scene": "sqiush", "input_image_urls": [IMG]}, allow_unknown_effect_scene=True
        )
    assert "did you mean 'squish'" in caplog.text
    whole = media.root / "whole.png"
    whole.write_bytes(_noisy_png(800, 600))
    assert validate_arguments(I2V16, _i2v(image_url=whole))["image_url"] == whole


SERVER_CASES = [c for c in CASES if c.server]


@pytest.mark.parametrize("case", SERVER_CASES, ids=lambda c: c.id)
def test_fal_view_names_the_same_field(case: Case, media: Media) -> None:
    detail = fal_validation_errors(case.endpoint, case.arguments(media))
    assert detail, "fal would accept this"
    assert ["body", *case.loc] in [d["loc"] for d in detail]
    for item in detail:
        assert set(item) >= {"loc", "msg", "type"}


def test_client_only_cases_are_not_schema_errors_at_fal() -> None:
    # Unknown fields are ignored by fal's models: the reason the client refuses them.
    typo = next(c for c in CASES if c.id == "typo-promt")
    assert fal_validation_errors(typo.endpoint, {"prompt": "x", "image_url": IMG, "promt": "y"}) == []


def test_emulator_agrees_when_local_validation_is_bypassed(
    media: Media, emulator: FalEmulator, fal_conn: str
) -> None:
    """Submit every server-side case raw; each job completes and its result is a 422 naming the field."""
    from airflow_provider_kling.hooks.kling import KlingHook

    hook = KlingHook(fal_conn)
    try:
        handles = [(case, hook.submit(case.endpoint, case.arguments(media))) for case in SERVER_CASES]
        deadline = time.monotonic() + 30
        with httpx.Client(timeout=10) as client:
            for case, handle in handles:
                while not hook.get_status(handle, logs=False).done:
                    assert time.monotonic() < deadline, f"{case.id} never completed"
                    time.sleep(0.02)
                response = client.get(handle.response_url)
                assert response.status_code == 422, (case.id, response.status_code, response.text[:200])
                locs = [d["loc"] for d in response.json()["detail"]]
                assert ["body", *case.loc] in locs, (case.id, locs)
    finally:
        hook.close()
    assert sum(emulator.submissions.values()) == len(SERVER_CASES)
