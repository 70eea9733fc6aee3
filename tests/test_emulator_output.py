"""Generated clips are real H.264 MP4s of the requested duration and shape; invalid input fails at
result time (never at submit), the way fal does it."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import pytest
from PIL import Image

from airflow_provider_kling.emulator.video import ClipSpec, write_mp4

T2V = "fal-ai/kling-video/v1.6/standard/text-to-video"
I2V = "fal-ai/kling-video/v1.6/standard/image-to-video"
LIPSYNC = "fal-ai/kling-video/lipsync/audio-to-video"
FPS = 8


@pytest.fixture
def client(emulator) -> Iterator[httpx.Client]:
    emulator.processing_time = 0.05
    with httpx.Client(timeout=20, headers={"Authorization": "Key a:b"}) as c:
        yield c


def run(client: httpx.Client, emu, endpoint: str, arguments: dict) -> httpx.Response:
    submitted = client.post(f"{emu.url}/{endpoint}", json=arguments)
    assert submitted.status_code == 200  # fal accepts everything at submit time
    deadline = time.monotonic() + 15
    while client.get(submitted.json()["status_url"]).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return client.get(submitted.json()["response_url"])


def upload(client: httpx.Client, emu, data: bytes, content_type: str, name: str) -> str:
    token = client.post(f"{emu.rest_url}/storage/auth/token", params={"storage_type": "fal-cdn-v3"}, json={})
    response = client.post(
        f"{emu.cdn_url}/files/upload",
        content=data,
        headers={
            "Authorization": f"Bearer {token.json()['token']}",
            "Content-Type": content_type,
            "X-Fal-File-Name": name,
        },
    )
    return response.json()["access_url"]


def decode(client: httpx.Client, url: str, tmp_path: Path) -> tuple[float, list, av.VideoStream]:
    path = tmp_path / "clip.mp4"
    path.write_bytes(client.get(url).content)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        return container.duration / 1_000_000, frames, stream


def framed_image(width: int, height: int) -> Image.Image:
    """Blue with a red centre: easy to recognise in decoded frames."""
    image = Image.new("RGB", (width, height), (0, 0, 255))
    image.paste((255, 0, 0), (width // 4, height // 4, 3 * width // 4, 3 * height // 4))
    return image


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("aspect_ratio", "duration", "size"),
    [("16:9", "5", (256, 144)), ("9:16", "10", (144, 256)), ("1:1", "5", (192, 192))],
)
def test_text_to_video_clip_matches_duration_and_aspect(
    emulator, client, tmp_path, aspect_ratio, duration, size
):
    result = run(
        client, emulator, T2V, {"prompt": "a lighthouse", "duration": duration, "aspect_ratio": aspect_ratio}
    )
    assert result.status_code == 200
    video = result.json()["video"]
    seconds, frames, stream = decode(client, video["url"], tmp_path)

    assert stream.codec_context.name == "h264"
    assert stream.codec_context.pix_fmt == "yuv420p"
    assert (stream.codec_context.width, stream.codec_context.height) == size
    assert abs(seconds - float(duration)) <= 1 / FPS
    assert abs(len(frames) - float(duration) * FPS) <= 1
    assert frames[0].shape == (size[1], size[0], 3)
    assert (frames[0] != frames[-1]).any()  # it moves
    assert video["file_size"] == (tmp_path / "clip.mp4").stat().st_size


def test_image_to_video_frames_come_from_the_uploaded_image(emulator, client, tmp_path):
    image_url = upload(client, emulator, png_bytes(framed_image(400, 300)), "image/png", "frame.png")
    result = run(client, emulator, I2V, {"prompt": "zoom in", "image_url": image_url, "duration": "5"})
    assert result.status_code == 200
    seconds, frames, stream = decode(client, result.json()["video"]["url"], tmp_path)

    assert (stream.codec_context.width, stream.codec_context.height) == (256, 192)  # the image's 4:3
    assert abs(seconds - 5) <= 1 / FPS
    first = frames[0].astype(int)
    centre, corner = first[96, 128], first[4, 4]
    assert centre[0] > 180 and centre[2] < 80  # red centre
    assert corner[2] > 180 and corner[0] < 80  # blue border


def test_data_uri_image_is_used_for_frames(emulator, client, tmp_path):
    data_uri = "data:image/png;base64," + base64.b64encode(png_bytes(framed_image(300, 600))).decode()
    result = run(client, emulator, I2V, {"prompt": "p", "image_url": data_uri})
    assert result.status_code == 200
    _, frames, stream = decode(client, result.json()["video"]["url"], tmp_path)
    assert (stream.codec_context.width, stream.codec_context.height) == (128, 256)
    assert frames[0][128, 64][0] > 180


def test_foreign_image_url_is_not_fetched(emulator, client, tmp_path):
    result = run(client, emulator, I2V, {"prompt": "p", "image_url": "https://example.invalid/cat.png"})
    assert result.status_code == 200  # no network: a generated frame stands in
    _, _, stream = decode(client, result.json()["video"]["url"], tmp_path)
    assert (stream.codec_context.width, stream.codec_context.height) == (256, 144)


def test_lipsync_follows_the_input_video_duration(emulator, client, tmp_path):
    source = tmp_path / "face.mp4"
    write_mp4(ClipSpec(duration=3, size=(256, 144), text="face"), source)
    video_url = upload(client, emulator, source.read_bytes(), "video/mp4", "face.mp4")
    audio_url = upload(client, emulator, b"ID3fake-audio", "audio/mpeg", "voice.mp3")
    result = run(client, emulator, LIPSYNC, {"video_url": video_url, "audio_url": audio_url})
    assert result.status_code == 200, result.text
    seconds, _, _ = decode(client, result.json()["video"]["url"], tmp_path)
    assert abs(seconds - 3) <= 1 / FPS


def assert_422(result: httpx.Response, field: str, error_type: str | None = None) -> dict:
    assert result.status_code == 422
    assert result.headers["x-fal-billable-units"] == "0"
    detail = result.json()["detail"]
    (entry,) = [d for d in detail if d["loc"][:2] == ["body", field]]
    if error_type is not None:
        assert entry["type"] == error_type
    return entry


def test_missing_prompt_fails_at_result_time(emulator, client):
    assert_422(run(client, emulator, T2V, {"duration": "5"}), "prompt")


def test_bad_duration_and_cfg_scale_fail_at_result_time(emulator, client):
    result = run(client, emulator, T2V, {"prompt": "p", "duration": "7", "cfg_scale": 3})
    assert_422(result, "duration")
    assert_422(result, "cfg_scale")


def test_too_long_prompt_fails_at_result_time(emulator, client):
    assert_422(run(client, emulator, T2V, {"prompt": "x" * 2501}), "prompt")


def test_missing_emulator_file_is_a_download_error(emulator, client):
    missing = f"{emulator.cdn_url}/files/nothing/here.png"
    entry = assert_422(run(client, emulator, I2V, {"prompt": "p", "image_url": missing}), "image_url")
    assert entry["type"] == "file_download_error" and entry["input"] == missing


def test_unreadable_image_is_an_image_load_error(emulator, client):
    not_an_image = upload(client, emulator, b"definitely not a png", "image/png", "broken.png")
    result = run(client, emulator, I2V, {"prompt": "p", "image_url": not_an_image})
    assert_422(result, "image_url", "image_load_error")


def test_non_json_body_fails_at_result_time(emulator, client):
    submitted = client.post(
        f"{emulator.url}/{T2V}", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert submitted.status_code == 200
    deadline = time.monotonic() + 5
    while client.get(submitted.json()["status_url"]).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    result = client.get(submitted.json()["response_url"])
    assert result.status_code == 422 and result.json()["detail"][0]["loc"] == ["body"]


def test_status_of_an_invalid_job_carries_the_error(emulator, client):
    submitted = client.post(f"{emulator.url}/{T2V}", json={}).json()
    deadline = time.monotonic() + 5
    while (status := client.get(submitted["status_url"])).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert status.json()["error"] == "Invalid status code: 422"
    assert status.json()["error_type"] == "missing"
