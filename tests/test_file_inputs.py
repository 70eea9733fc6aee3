"""File inputs: paths, bytes and ObjectStoragePath are uploaded (through the real hook, to the
emulator) only after everything validated, and end up as URLs serving the same bytes."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from airflow_provider_kling.exceptions import KlingValidationError
from airflow_provider_kling.models import prepare_arguments, validate_arguments

P = "fal-ai/kling-video/"
I2V16 = P + "v1.6/standard/image-to-video"
I2V16PRO = P + "v1.6/pro/image-to-video"
I2V1 = P + "v1/standard/image-to-video"
ELEMENTS = P + "v1.6/standard/elements"
LIPSYNC_AUDIO = P + "lipsync/audio-to-video"
TRAJ = [{"x": 10, "y": 10}, {"x": 200, "y": 100}]


def image_bytes(
    width: int, height: int, fmt: str = "PNG", color: tuple[int, int, int] = (30, 90, 160)
) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, fmt)
    return buf.getvalue()


# A minimal ISO-BMFF header: what the client sniffs to accept an MP4 input.
MP4_BYTES = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 64
MP3_BYTES = b"ID3\x03\x00\x00\x00\x00\x00\x0f" + b"\x00" * 128


@pytest.fixture
def hook(fal_conn: str) -> Iterator[Any]:
    from airflow_provider_kling.hooks.kling import KlingHook

    h = KlingHook(fal_conn)
    yield h
    h.close()


def fetch(url: str) -> httpx.Response:
    response = httpx.get(url, timeout=10)
    response.raise_for_status()
    return response


def test_local_path_string_is_uploaded_and_served(tmp_path: Path, emulator: Any, hook: Any) -> None:
    data = image_bytes(640, 360)
    (tmp_path / "cat.png").write_bytes(data)
    payload = prepare_arguments(
        I2V16, {"prompt": "p", "image_url": str(tmp_path / "cat.png")}, upload=hook.upload_file
    )
    url = payload["image_url"]
    assert url.startswith(emulator.cdn_url)
    served = fetch(url)
    assert served.content == data
    assert served.headers["content-type"].startswith("image/png")
    assert payload == {
        "prompt": "p",
        "image_url": url,
        "duration": "5",
        "negative_prompt": "blur, distort, and low quality",
        "cfg_scale": 0.5,
    }


def test_pathlib_bytes_and_object_storage_path(tmp_path: Path, emulator: Any, hook: Any) -> None:
    from airflow.sdk import ObjectStoragePath

    first = image_bytes(500, 500, "JPEG", (200, 10, 10))
    tail = image_bytes(400, 600, "PNG", (10, 200, 10))
    (tmp_path / "first.jpg").write_bytes(first)
    (tmp_path / "tail.png").write_bytes(tail)
    payload = prepare_arguments(
        I2V16PRO,
        {
            "prompt": "p",
            "image_url": tmp_path / "first.jpg",
            "tail_image_url": ObjectStoragePath(f"file://{tmp_path}/tail.png"),
            "aspect_ratio": "9:16",
        },
        upload=hook.upload_file,
    )
    assert fetch(payload["image_url"]).content == first
    assert fetch(payload["tail_image_url"]).content == tail
    assert payload["aspect_ratio"] == "9:16"

    webp = image_bytes(320, 320, "WEBP")
    from_bytes = prepare_arguments(I2V16, {"prompt": "p", "image_url": webp}, upload=hook.upload_file)
    served = fetch(from_bytes["image_url"])
    assert served.content == webp
    assert served.headers["content-type"].startswith("image/webp")
    assert emulator.requests["cdn_upload"] + emulator.requests.get("presigned_put", 0) >= 3


def test_same_file_twice_is_uploaded_once(tmp_path: Path, emulator: Any, hook: Any) -> None:
    data = image_bytes(400, 400)
    (tmp_path / "a.png").write_bytes(data)
    payload = prepare_arguments(
        ELEMENTS,
        {
            "prompt": "p",
            "input_image_urls": [tmp_path / "a.png", str(tmp_path / "a.png"), "https://example.com/b.png"],
        },
        upload=hook.upload_file,
    )
    urls = payload["input_image_urls"]
    assert urls[0] == urls[1] and urls[0].startswith(emulator.cdn_url)
    assert urls[2] == "https://example.com/b.png"
    assert emulator.requests["cdn_upload"] == 1


def test_nested_mask_and_media_uploads(tmp_path: Path, emulator: Any, hook: Any) -> None:
    mask = image_bytes(640, 360, color=(255, 255, 255))
    payload = prepare_arguments(
        I2V1,
        {
            "prompt": "p",
            "image_url": image_bytes(640, 360),
            "dynamic_masks": [{"mask_url": mask, "trajectories": TRAJ}],
        },
        upload=hook.upload_file,
    )
    assert fetch(payload["dynamic_masks"][0]["mask_url"]).content == mask
    assert payload["dynamic_masks"][0]["trajectories"] == TRAJ

    (tmp_path / "talk.mp4").write_bytes(MP4_BYTES)
    lipsync = prepare_arguments(
        LIPSYNC_AUDIO, {"video_url": tmp_path / "talk.mp4", "audio_url": MP3_BYTES}, upload=hook.upload_file
    )
    video = fetch(lipsync["video_url"])
    assert video.content == MP4_BYTES and video.headers["content-type"].startswith("video/mp4")
    audio = fetch(lipsync["audio_url"])
    assert audio.content == MP3_BYTES and audio.headers["content-type"].startswith("audio/mpeg")


def test_nothing_uploads_when_a_later_field_is_bad(tmp_path: Path, emulator: Any, hook: Any) -> None:
    (tmp_path / "ok.png").write_bytes(image_bytes(640, 360))
    with pytest.raises(KlingValidationError, match="cfg_scale"):
        prepare_arguments(
            I2V16, {"prompt": "p", "image_url": tmp_path / "ok.png", "cfg_scale": 3}, upload=hook.upload_file
        )
    assert sum(emulator.requests.values()) == 0


def test_all_errors_are_reported_at_once(tmp_path: Path) -> None:
    (tmp_path / "small.png").write_bytes(image_bytes(100, 100))
    with pytest.raises(KlingValidationError) as info:
        validate_arguments(
            I2V16PRO,
            {
                "prompt": "x" * 3000,
                "image_url": tmp_path / "small.png",
                "tail_image_url": "gs://b/k",
                "duration": 9,
            },
        )
    assert {e["loc"] for e in info.value.errors} == {
        ("prompt",),
        ("image_url",),
        ("tail_image_url",),
        ("duration",),
    }


def test_urls_and_data_uris_pass_through_without_upload(emulator: Any) -> None:
    calls: list[Any] = []
    data_uri = "data:image/png;base64," + base64.b64encode(image_bytes(300, 300)).decode()
    payload = prepare_arguments(
        I2V16PRO,
        {"prompt": "p", "image_url": "https://example.com/x.png", "tail_image_url": data_uri},
        upload=lambda *a, **k: calls.append(a) or "unused",
    )
    assert payload["image_url"] == "https://example.com/x.png"
    assert payload["tail_image_url"] == data_uri
    assert calls == []


def test_validate_arguments_keeps_local_sources_for_prepare(tmp_path: Path) -> None:
    path = tmp_path / "ok.png"
    path.write_bytes(image_bytes(640, 360))
    payload = validate_arguments(I2V16, {"prompt": "p", "image_url": path, "duration": 10})
    assert payload["image_url"] == path  # replaced by a URL in prepare_arguments
    assert payload["duration"] == "10"


def test_upload_gets_sniffed_content_type_and_name(tmp_path: Path) -> None:
    seen: list[tuple[Any, dict[str, Any]]] = []

    def upload(source: Any, **kwargs: Any) -> str:
        seen.append((source, kwargs))
        return f"https://cdn.example/{len(seen)}"

    # The extension lies: the header decides the type.
    (tmp_path / "photo.png").write_bytes(image_bytes(400, 400, "JPEG"))
    prepare_arguments(
        I2V16PRO,
        {"prompt": "p", "image_url": tmp_path / "photo.png", "tail_image_url": image_bytes(400, 400, "WEBP")},
        upload=upload,
    )
    assert seen[0][1] == {"content_type": "image/jpeg", "file_name": "photo.png"}
    assert isinstance(seen[0][0], Path)
    assert seen[1][1] == {"content_type": "image/webp", "file_name": "tail_image.webp"}
    assert isinstance(seen[1][0], bytes)


def test_unknown_endpoint_uploads_url_like_keys(
    tmp_path: Path, emulator: Any, hook: Any, caplog: Any
) -> None:
    data = image_bytes(350, 350)
    (tmp_path / "start.png").write_bytes(data)
    payload = prepare_arguments(
        P + "v3/pro/image-to-video",
        {"prompt": "p", "start_image_url": tmp_path / "start.png", "duration": "12"},
        upload=hook.upload_file,
    )
    assert fetch(payload["start_image_url"]).content == data
    assert payload["duration"] == "12"
    assert "not in this provider's registry" in caplog.text
