"""Storage routes: CDN token, single and multipart uploads, initiate + presigned PUT, serving files."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from datetime import datetime, timezone

import httpx
import pytest


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as c:
        yield c


def cdn_token(client: httpx.Client, emu) -> dict:
    response = client.post(
        f"{emu.rest_url}/storage/auth/token",
        params={"storage_type": "fal-cdn-v3"},
        json={},
        headers={"Authorization": "Key a:b"},
    )
    assert response.status_code == 200
    return response.json()


def test_token_shape(emulator, client):
    token = cdn_token(client, emulator)
    assert token["token_type"] == "Bearer" and token["token"]
    assert token["base_url"] == emulator.cdn_url
    assert token["expires_at"].endswith("+00:00")
    assert datetime.fromisoformat(token["expires_at"]) > datetime.now(timezone.utc)


def test_single_upload_round_trip(emulator, client):
    token = cdn_token(client, emulator)
    data = os.urandom(50_000)
    response = client.post(
        f"{emulator.cdn_url}/files/upload",
        content=data,
        headers={
            "Authorization": f"Bearer {token['token']}",
            "Content-Type": "image/png",
            "X-Fal-File-Name": "my cat.png",
        },
    )
    assert response.status_code == 200
    url = response.json()["access_url"]
    assert url.startswith(f"{emulator.cdn_url}/files/") and url.endswith(".png")

    served = client.get(url)
    assert served.status_code == 200 and served.content == data
    assert served.headers["content-type"] == "image/png"
    assert int(served.headers["content-length"]) == len(data)
    partial = client.get(url, headers={"Range": "bytes=10-19"})
    assert partial.status_code == 206 and partial.content == data[10:20]
    assert emulator.requests == {"cdn_token": 1, "cdn_upload": 1, "file_get": 2}


def test_cdn_upload_needs_the_token_not_the_key(emulator, client):
    for auth in ("Key a:b", "Bearer not-a-token", None):
        headers = {"Authorization": auth} if auth else {}
        response = client.post(f"{emulator.cdn_url}/files/upload", content=b"x", headers=headers)
        assert response.status_code == 401


def test_multipart_round_trip_parts_listed_out_of_order(emulator, client):
    token = cdn_token(client, emulator)
    auth = {"Authorization": f"Bearer {token['token']}"}
    started = client.post(
        f"{emulator.cdn_url}/files/upload/multipart",
        headers={**auth, "Content-Type": "video/mp4", "X-Fal-File-Name": "big.mp4"},
    )
    assert started.status_code == 200
    access_url, upload_id = started.json()["access_url"], started.json()["uploadId"]

    chunks = [os.urandom(30_000), os.urandom(30_000), os.urandom(1_234)]
    etags = {}
    for number, chunk in enumerate(chunks, start=1):
        part = client.put(f"{access_url}/multipart/{upload_id}/{number}", content=chunk, headers=auth)
        assert part.status_code == 200
        etags[number] = part.headers["ETag"]
        assert etags[number].strip('"') == hashlib.md5(chunk).hexdigest()

    parts = [{"partNumber": n, "etag": etags[n]} for n in (2, 3, 1)]
    done = client.post(f"{access_url}/multipart/{upload_id}/complete", json={"parts": parts}, headers=auth)
    assert done.status_code == 200 and done.json()["access_url"] == access_url
    served = client.get(access_url)
    assert served.content == b"".join(chunks)
    assert served.headers["content-type"] == "video/mp4"
    assert emulator.requests["multipart_part"] == 3 and emulator.requests["multipart_complete"] == 1


def test_multipart_rejects_bad_etag_and_missing_parts(emulator, client):
    token = cdn_token(client, emulator)
    auth = {"Authorization": f"Bearer {token['token']}"}
    started = client.post(f"{emulator.cdn_url}/files/upload/multipart", headers=auth).json()
    base = f"{started['access_url']}/multipart/{started['uploadId']}"
    client.put(f"{base}/1", content=b"abc", headers=auth)

    wrong = client.post(f"{base}/complete", json={"parts": [{"partNumber": 1, "etag": "nope"}]}, headers=auth)
    assert wrong.status_code == 400 and "etag" in wrong.json()["detail"]
    gap = client.post(f"{base}/complete", json={"parts": [{"partNumber": 2, "etag": "x"}]}, headers=auth)
    assert gap.status_code == 400
    assert client.post(f"{base}/complete", json={"nope": 1}, headers=auth).status_code == 400
    assert client.put(f"{base}/0", content=b"x", headers=auth).status_code == 400


def test_initiate_and_presigned_put_without_authorization(emulator, client):
    initiated = client.post(
        f"{emulator.rest_url}/storage/upload/initiate",
        params={"storage_type": "gcs"},
        json={"file_name": "clip.mp4", "content_type": "video/mp4"},
        headers={"Authorization": "Key a:b"},
    )
    assert initiated.status_code == 200
    upload_url, file_url = initiated.json()["upload_url"], initiated.json()["file_url"]
    assert upload_url.startswith(f"{emulator.cdn_url}/presigned/")

    data = os.urandom(10_000)
    put = client.put(upload_url, content=data, headers={"Content-Type": "video/mp4"})
    assert put.status_code == 200
    assert "authorization" not in emulator.last_headers("presigned_put")
    served = client.get(file_url)
    assert served.content == data and served.headers["content-type"] == "video/mp4"
    assert client.put(f"{emulator.cdn_url}/presigned/forged", content=b"x").status_code == 403


def test_storage_routes_honour_require_key(emulator, client):
    emulator.require_key = "good:key"
    for path in ("storage/auth/token", "storage/upload/initiate"):
        bad = {"Authorization": "Key bad:key"}
        response = client.post(f"{emulator.rest_url}/{path}", json={}, headers=bad)
        assert response.status_code == 401


def test_missing_file_is_404(emulator, client):
    assert client.get(f"{emulator.cdn_url}/files/abc/nothing.png").status_code == 404
