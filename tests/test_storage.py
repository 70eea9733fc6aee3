"""KlingVideoToObjectStorageOperator: streaming, atomic writes, size checks, sidecar, assets.

HTTP behaviour is exercised against a small purpose-built server (tests/storage_server.py) for the
failure modes a CDN can show, and against the fal emulator for the real fal output shape.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from storage_server import MediaServer, payload

from airflow_provider_kling.operators.storage import (
    KlingDownloadError,
    KlingVideoToObjectStorageOperator,
    parse_source,
)


@pytest.fixture
def media():
    with MediaServer() as srv:
        yield srv


def _files(folder: Path) -> list[str]:
    """Every file below ``folder``, hidden temporaries included."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _op(**kwargs) -> KlingVideoToObjectStorageOperator:
    kwargs.setdefault("task_id", "persist")
    kwargs.setdefault("download_backoff", 0.01)
    return KlingVideoToObjectStorageOperator(**kwargs)


def _kling_result(url: str, size: int | None, request_id: str = "req-123") -> dict:
    """The return value of a Kling operator, as the operators engineer documents it."""
    return {
        "request_id": request_id,
        "endpoint_id": "fal-ai/kling-video/v1.6/standard/image-to-video",
        "video_url": url,
        "content_type": "video/mp4",
        "file_name": "output.mp4",
        "file_size": size,
        "duration": 5.0,
        "cost_estimate": "0.225",
    }


def test_plain_url_into_folder_streams_exact_bytes(media, tmp_path):
    size = 3 * 1024 * 1024 + 17
    op = _op(source=f"{media.url}/video/clip.mp4?size={size}", destination=f"file://{tmp_path}/out/")
    result = op.execute({})

    # No request id to name it after: the file is named after its content, never the URL's name.
    sha256 = hashlib.sha256(payload(size)).hexdigest()
    target = tmp_path / "out" / f"{sha256[:16]}.mp4"
    assert target.read_bytes() == payload(size)
    assert result == {
        "path": f"file://{target}",
        "size": size,
        "sha256": sha256,
        "content_type": "video/mp4",
        "request_id": None,
        "source_url": f"{media.url}/video/clip.mp4?size={size}",
        "sidecar_path": None,
    }
    assert _files(tmp_path) == [f"out/{sha256[:16]}.mp4"]


def test_kling_result_dict_names_file_after_request_id_and_sends_no_credentials(media, tmp_path):
    url = f"{media.url}/video/output.mp4?size=5000"
    result = _op(source=_kling_result(url, 5000, "abc-1"), destination=str(tmp_path)).execute({})

    assert result["path"] == f"{tmp_path}/abc-1.mp4" or result["path"].endswith(f"{tmp_path}/abc-1.mp4")
    assert result["request_id"] == "abc-1"
    assert (tmp_path / "abc-1.mp4").stat().st_size == 5000
    assert all("authorization" not in h for h in media.headers)
    assert media.headers[-1]["accept-encoding"] == "identity"


def test_explicit_file_destination_and_no_scheme_path(media, tmp_path):
    dest = tmp_path / "a" / "b" / "my video.mp4"
    result = _op(source=f"{media.url}/video/x.mp4?size=10", destination=str(dest)).execute({})
    assert dest.read_bytes() == payload(10)
    assert result["size"] == 10


def test_jinja_rendered_repr_of_result_dict_is_accepted(media, tmp_path):
    # "{{ ti.xcom_pull('generate') }}" renders a dict as its Python repr (None, single quotes).
    rendered = repr(_kling_result(f"{media.url}/video/o.mp4?size=100", 100, "r-jinja"))
    result = _op(source=rendered, destination=f"file://{tmp_path}/").execute({})
    assert result["request_id"] == "r-jinja"
    assert (tmp_path / "r-jinja.mp4").read_bytes() == payload(100)


def test_fal_raw_output_shape_is_accepted():
    src = parse_source({"video": {"url": "https://v3.fal.media/files/x/output.mp4", "file_size": 42}})
    assert src.url == "https://v3.fal.media/files/x/output.mp4"
    assert src.file_size == 42
    # No request id: no name to give yet (fal calls every output "output.mp4"; the content names it).
    assert src.file_name() is None and src.suffix == ".mp4"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"request_id": "r1", "video_url": None}, "wait_for_completion=False"),
        ({"foo": 1}, "no video URL"),
        ("{not a dict", "could not parse"),
        (42, "expected a video URL"),
    ],
)
def test_bad_sources_are_named(source, message, tmp_path):
    with pytest.raises((ValueError, TypeError), match=message) as err:
        _op(source=source, destination=str(tmp_path)).execute({})
    assert "source" in str(err.value)


def test_non_http_url_is_refused(tmp_path):
    with pytest.raises(KlingDownloadError, match="http:// or https://"):
        _op(source="ftp://example.com/a.mp4", destination=str(tmp_path)).execute({})


def test_download_error_is_one_class_importable_from_the_operator_and_the_exceptions():
    from airflow_provider_kling.exceptions import KlingDownloadError as FromExceptions
    from airflow_provider_kling.exceptions import KlingError
    from airflow_provider_kling.hooks.download import KlingDownloadError as FromHook

    assert KlingDownloadError is FromExceptions is FromHook
    assert issubclass(KlingDownloadError, KlingError)


def test_connection_cut_mid_body_leaves_no_partial_file(media, tmp_path):
    size = 2 * 1024 * 1024
    op = _op(
        source=f"{media.url}/cut/v.mp4?size={size}&send={size // 3}",
        destination=f"file://{tmp_path}/v.mp4",
        download_attempts=2,
    )
    with pytest.raises(KlingDownloadError, match="after 2 attempt"):
        op.execute({})
    assert media.hits["cut"] == 2  # retried once, then gave up
    assert _files(tmp_path) == []


def test_cut_once_then_whole_succeeds_on_retry(media, tmp_path):
    size = 1024 * 1024 + 3
    result = _op(
        source=f"{media.url}/flaky/v.mp4?size={size}", destination=f"file://{tmp_path}/v.mp4"
    ).execute({})
    assert media.hits["flaky"] == 2
    assert result["size"] == size
    assert (tmp_path / "v.mp4").read_bytes() == payload(size)
    assert _files(tmp_path) == ["v.mp4"]


def test_size_mismatch_with_file_size_fails_without_retry(media, tmp_path):
    source = _kling_result(f"{media.url}/video/o.mp4?size=1000", 999)
    with pytest.raises(KlingDownloadError, match=r"file_size=999.*Content-Length=1000"):
        _op(source=source, destination=str(tmp_path)).execute({})
    assert media.hits["video"] == 1
    assert _files(tmp_path) == []


def test_short_body_without_content_length_is_caught_by_file_size(media, tmp_path):
    # No Content-Length and a close-delimited body: only fal's file_size can reveal the cut.
    source = _kling_result(f"{media.url}/nolength/o.mp4?size=700", 1000)
    with pytest.raises(KlingDownloadError, match=r"received 700 bytes, expected 1000 \(file_size\)"):
        _op(source=source, destination=str(tmp_path), download_attempts=2).execute({})
    assert media.hits["nolength"] == 2
    assert _files(tmp_path) == []


def test_http_404_is_not_retried(media, tmp_path):
    with pytest.raises(KlingDownloadError, match="HTTP 404") as err:
        _op(source=f"{media.url}/status/404", destination=f"{tmp_path}/x.mp4").execute({})
    assert err.value.status_code == 404
    assert media.hits["status"] == 1
    assert _files(tmp_path) == []


def test_http_503_is_retried(media, tmp_path):
    with pytest.raises(KlingDownloadError, match="HTTP 503"):
        _op(source=f"{media.url}/status/503", destination=f"{tmp_path}/x.mp4").execute({})
    assert media.hits["status"] == 3


def test_overwrite_false_fails_before_any_request(media, tmp_path):
    (tmp_path / "x.mp4").write_bytes(b"old")
    with pytest.raises(FileExistsError, match="overwrite=False"):
        _op(
            source=f"{media.url}/video/x.mp4?size=10", destination=f"{tmp_path}/x.mp4", overwrite=False
        ).execute({})
    assert sum(media.hits.values()) == 0
    assert (tmp_path / "x.mp4").read_bytes() == b"old"


def test_overwrite_replaces_existing_file(media, tmp_path):
    (tmp_path / "x.mp4").write_bytes(b"old")
    _op(source=f"{media.url}/video/x.mp4?size=10", destination=f"{tmp_path}/x.mp4").execute({})
    assert (tmp_path / "x.mp4").read_bytes() == payload(10)


def test_object_store_destination_memory_filesystem(media):
    """A non-local store (fsspec's in-memory one, attached the way users attach S3/GCS): no
    mkdir, the move is the store's own, and only the final object remains."""
    from airflow.sdk import ObjectStoragePath
    from airflow.sdk.io import attach
    from fsspec.implementations.memory import MemoryFileSystem

    attach(protocol="memory", fs=MemoryFileSystem())

    folder = ObjectStoragePath("memory://kling-bucket/videos/")
    result = _op(
        source=_kling_result(f"{media.url}/video/o.mp4?size=2048", 2048, "mem-1"), destination=folder
    )
    out = result.execute({})
    stored = ObjectStoragePath("memory://kling-bucket/videos/mem-1.mp4")
    assert out["path"] == str(stored)
    assert stored.read_bytes() == payload(2048)
    # Only the final object is left in the "bucket".
    assert [p.name for p in ObjectStoragePath("memory://kling-bucket/videos").iterdir()] == ["mem-1.mp4"]


def test_sidecar_json_next_to_video(media, tmp_path):
    source = _kling_result(f"{media.url}/video/o.mp4?size=64", 64, "side-1")
    out = _op(
        source=source,
        destination=f"file://{tmp_path}/",
        sidecar={"prompt": "Snowflakes fall as a car moves forward along the road."},
    ).execute({})
    sidecar = tmp_path / "side-1.json"
    assert out["sidecar_path"] == f"file://{sidecar}"
    doc = json.loads(sidecar.read_text())
    assert doc["prompt"].startswith("Snowflakes")
    assert doc["request_id"] == "side-1"
    assert doc["endpoint_id"] == "fal-ai/kling-video/v1.6/standard/image-to-video"
    assert doc["cost_estimate"] == "0.225"
    assert doc["sha256"] == out["sha256"]
    assert doc["size"] == 64
    assert _files(tmp_path) == ["side-1.json", "side-1.mp4"]


def test_outlets_get_asset_events_with_path(media, tmp_path):
    from airflow.sdk import Asset, AssetAlias
    from airflow.sdk.execution_time.context import OutletEventAccessors

    asset = Asset("kling_videos")
    alias = AssetAlias("kling_video_files")
    op = _op(
        source=_kling_result(f"{media.url}/video/o.mp4?size=32", 32, "as-1"),
        destination=f"file://{tmp_path}/",
        outlets=[asset, alias],
    )
    events = OutletEventAccessors()
    out = op.execute({"outlet_events": events})
    assert events[asset].extra["path"] == out["path"]
    assert events[asset].extra["request_id"] == "as-1"
    assert events[asset].extra["sha256"] == out["sha256"]
    [alias_event] = events[alias].asset_alias_events
    assert alias_event.dest_asset_key.uri == out["path"]


def test_template_fields_and_no_secrets():
    op = _op(source="x", destination="y")
    assert set(op.template_fields) == {"source", "destination", "destination_conn_id", "sidecar"}


def test_video_from_emulator_cdn_without_key(emulator, tmp_path):
    """Upload a file to the emulator's CDN the way fal's clients do, then persist it from there."""
    import httpx

    body = payload(300_000)
    with httpx.Client() as client:
        token = client.post(
            f"{emulator.rest_url}/storage/auth/token", params={"storage_type": "fal-cdn-v3"}, json={}
        ).json()
        url = client.post(
            f"{emulator.cdn_url}/files/upload",
            content=body,
            headers={
                "Authorization": f"Bearer {token['token']}",
                "Content-Type": "video/mp4",
                "X-Fal-File-Name": "output.mp4",
            },
        ).json()["access_url"]
    out = _op(source=_kling_result(url, len(body), "emu-1"), destination=f"file://{tmp_path}/").execute({})
    assert (tmp_path / "emu-1.mp4").read_bytes() == body
    assert out["content_type"] == "video/mp4"
    assert "authorization" not in emulator.last_headers("file_get")


MEMORY_SCRIPT = textwrap.dedent(
    """
    import resource, sys
    from airflow.sdk import ObjectStoragePath
    from airflow_provider_kling.hooks.download import stream_to_storage

    url, folder, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    # Warm up: load every module and allocate the client's buffers once.
    stream_to_storage(url + "?size=1048576", ObjectStoragePath(folder + "/warm.mp4"))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = stream_to_storage(url + f"?size={size}", ObjectStoragePath(folder + "/big.mp4"))
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(result.size, before, after, round(result.seconds, 2))
    """
)


def test_large_download_keeps_memory_flat(media, tmp_path):
    """A 384 MiB file through a subprocess: peak RSS must grow by far less than the file."""
    size = 384 * 1024 * 1024
    proc = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, f"{media.url}/video/big.mp4", f"file://{tmp_path}", str(size)],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    written, before_kib, after_kib, _seconds = proc.stdout.split()
    assert int(written) == size
    assert (tmp_path / "big.mp4").stat().st_size == size
    growth_mib = (int(after_kib) - int(before_kib)) / 1024
    assert growth_mib < 32, f"peak RSS grew by {growth_mib:.1f} MiB for a {size >> 20} MiB file"
