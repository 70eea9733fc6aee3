"""KlingHook.upload_file against the emulator's storage routes: CDN, multipart, presigned fallback."""

from __future__ import annotations

import io
import os

import httpx
import pytest

from airflow_provider_kling.exceptions import KlingError, KlingServerError, KlingValidationError
from airflow_provider_kling.hooks.kling import KlingHook
from airflow_provider_kling.protocol import RetryPolicy

KEY = "test-key-id:test-key-secret"
FAST = RetryPolicy(max_attempts=3, initial_delay=0.01, max_delay=0.05, max_total=10.0, max_retry_after=0.05)
PAYLOAD = bytes(range(256)) * 10  # 2560 bytes, every byte value


@pytest.fixture
def hook(fal_conn):
    with KlingHook(fal_conn, retry_policy=FAST) as h:
        yield h


def download(url: str) -> httpx.Response:
    response = httpx.get(url)
    response.raise_for_status()
    return response


def test_upload_bytes_through_the_cdn(hook, emulator):
    url = hook.upload_file(PAYLOAD, file_name="frame.png")
    served = download(url)
    assert served.content == PAYLOAD and served.headers["content-type"].startswith("image/png")
    assert emulator.requests["cdn_token"] == 1 and emulator.requests["cdn_upload"] == 1
    headers = emulator.last_headers("cdn_upload")
    assert headers["authorization"].startswith("Bearer ") and KEY not in headers["authorization"]
    assert headers["x-fal-file-name"] == "frame.png"
    assert emulator.last_headers("cdn_token")["authorization"] == f"Key {KEY}"


def test_upload_a_path_guesses_the_content_type_and_caches_the_token(hook, emulator, tmp_path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(PAYLOAD)
    url = hook.upload_file(clip)
    assert download(url).content == PAYLOAD
    assert emulator.last_headers("cdn_upload")["content-type"] == "video/mp4"
    assert emulator.last_headers("cdn_upload")["x-fal-file-name"] == "clip.mp4"
    hook.upload_file(str(clip), content_type="application/x-custom", file_name="renamed.bin")
    assert emulator.last_headers("cdn_upload")["content-type"] == "application/x-custom"
    assert emulator.last_headers("cdn_upload")["x-fal-file-name"] == "renamed.bin"
    assert emulator.requests["cdn_token"] == 1  # cached until it expires


def test_upload_file_objects_from_their_current_position(hook):
    buffer = io.BytesIO(b"HEADER" + PAYLOAD)
    buffer.seek(6)
    assert download(hook.upload_file(buffer)).content == PAYLOAD
    read_fd, write_fd = os.pipe()
    os.write(write_fd, PAYLOAD)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:  # not seekable: read whole
        assert download(hook.upload_file(pipe, file_name="p.bin")).content == PAYLOAD


def test_streamed_upload_is_resent_whole_after_a_retry(hook, emulator, tmp_path):
    path = tmp_path / "video.mp4"
    path.write_bytes(PAYLOAD)
    emulator.inject("reset", route="cdn_upload")
    assert download(hook.upload_file(path)).content == PAYLOAD
    assert emulator.requests["cdn_upload"] == 2


def test_multipart_above_the_threshold(hook, emulator, tmp_path):
    hook.multipart_threshold = 1000
    hook.multipart_part_size = 400
    path = tmp_path / "big.mp4"
    path.write_bytes(PAYLOAD)
    url = hook.upload_file(path)
    assert download(url).content == PAYLOAD
    assert emulator.requests["multipart_initiate"] == 1
    assert emulator.requests["multipart_part"] == 7  # ceil(2560 / 400)
    assert emulator.requests["multipart_complete"] == 1 and emulator.requests["cdn_upload"] == 0


@pytest.mark.parametrize("route", ["cdn_upload", "cdn_token", "multipart_part"])
def test_presigned_fallback_never_sends_the_key(hook, emulator, route):
    hook.multipart_threshold = 1000 if route == "multipart_part" else hook.multipart_threshold
    hook.multipart_part_size = 1000
    emulator.inject("server_500", route=route)
    url = hook.upload_file(PAYLOAD, file_name="still.jpg")
    assert download(url).content == PAYLOAD
    assert emulator.requests["storage_initiate"] == 1 and emulator.requests["presigned_put"] == 1
    assert emulator.last_headers("storage_initiate")["authorization"] == f"Key {KEY}"
    presigned = emulator.last_headers("presigned_put")
    assert "authorization" not in presigned and KEY not in str(presigned)
    assert presigned["content-type"] == "image/jpeg"
    # A failed CDN attempt drops the cached token; the next upload asks for a fresh one.
    tokens = emulator.requests["cdn_token"]
    hook.upload_file(b"next")
    assert emulator.requests["cdn_token"] == tokens + 1


def test_both_paths_failing_raises_the_fallback_error_chained_to_the_cdn_one(hook, emulator):
    emulator.inject("server_500", route="cdn_upload")
    emulator.inject("server_500", route="storage_initiate")
    with pytest.raises(KlingServerError, match="initiate") as exc:
        hook.upload_file(PAYLOAD)
    assert isinstance(exc.value.__cause__, KlingError) and "single" in str(exc.value.__cause__)


@pytest.mark.parametrize(
    ("make_source", "message"),
    [
        (lambda tmp: tmp / "missing.png", "does not exist"),
        (lambda tmp: tmp, "not a regular file"),
        (lambda tmp: b"", "empty"),
        (lambda tmp: io.StringIO("text"), "binary mode"),
        (lambda tmp: 42, "file path, bytes or a binary file object"),
    ],
)
def test_bad_sources_fail_before_any_request(hook, emulator, tmp_path, make_source, message):
    with pytest.raises(KlingValidationError, match=message) as exc:
        hook.upload_file(make_source(tmp_path))
    assert exc.value.errors[0]["loc"] == ("source",)
    assert sum(emulator.requests.values()) == 0
