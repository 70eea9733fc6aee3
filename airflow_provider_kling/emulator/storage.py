"""The emulator's file store: what fal's CDN and GCS upload paths keep, on local disk.

Files live in a temporary directory (multipart uploads can be big, so nothing is kept in
memory); bodies are streamed to disk chunk by chunk and served back as streamed file responses.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
TOKEN_TTL = timedelta(hours=1)


@dataclass(frozen=True)
class StoredFile:
    """One file the emulator serves under ``{cdn}/files/{key}``.

    :param key: ``<id>/<file name>``, the URL path below ``/files/``.
    :param path: where the bytes are on disk.
    :param content_type: served as Content-Type.
    :param size: bytes.
    """

    key: str
    path: Path
    content_type: str
    size: int


@dataclass
class Multipart:
    key: str
    content_type: str
    parts: dict[int, tuple[Path, str]] = field(default_factory=dict)  # part number -> (path, etag)


def safe_name(name: str | None, default: str = "upload.bin") -> str:
    """A file name safe to use in a path and a URL (keeps the extension readable)."""
    cleaned = _SAFE_NAME.sub("_", (name or "").rsplit("/", 1)[-1]).strip("._")
    return cleaned[:120] or default


class Storage:
    """Uploaded and generated files, CDN tokens, pending multipart and presigned uploads."""

    def __init__(self, root: Path | None = None) -> None:
        self._owns_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="fal-emulator-")) if root is None else Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._files: dict[str, StoredFile] = {}
        self._tokens: dict[str, float] = {}  # token -> expiry (epoch seconds)
        self._multipart: dict[str, Multipart] = {}
        self._presigned: dict[str, tuple[str, str]] = {}  # token -> (key, content_type)

    # --- keys and files ---------------------------------------------------------------------------
    def new_key(self, file_name: str | None) -> tuple[str, Path]:
        """Reserve ``<random id>/<name>`` and its directory."""
        file_id = secrets.token_urlsafe(9).replace("-", "x").replace("_", "y")
        key = f"{file_id}/{safe_name(file_name)}"
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        return key, path

    def register(self, key: str, content_type: str) -> StoredFile:
        path = self.root / key
        stored = StoredFile(key, path, content_type or "application/octet-stream", path.stat().st_size)
        with self._lock:
            self._files[key] = stored
        return stored

    def get(self, key: str) -> StoredFile | None:
        with self._lock:
            return self._files.get(key)

    # --- CDN tokens -------------------------------------------------------------------------------
    def issue_token(self) -> tuple[str, datetime]:
        token = secrets.token_urlsafe(24)
        expires = datetime.now(timezone.utc).replace(microsecond=0) + TOKEN_TTL
        with self._lock:
            self._tokens[token] = expires.timestamp()
        return token, expires

    def token_valid(self, token: str) -> bool:
        with self._lock:
            expiry = self._tokens.get(token)
        return expiry is not None and expiry > time.time()

    # --- multipart (fal_v3) -----------------------------------------------------------------------
    def start_multipart(self, file_name: str | None, content_type: str) -> tuple[str, str]:
        key, _ = self.new_key(file_name)
        upload_id = secrets.token_hex(12)
        with self._lock:
            self._multipart[upload_id] = Multipart(key, content_type)
        return key, upload_id

    def multipart(self, upload_id: str, key: str) -> Multipart | None:
        with self._lock:
            upload = self._multipart.get(upload_id)
        return upload if upload is not None and upload.key == key else None

    def part_path(self, upload_id: str, number: int) -> Path:
        directory = self.root / "_parts" / upload_id
        directory.mkdir(parents=True, exist_ok=True)
        return directory / f"{number:05d}"

    def finish_multipart(self, upload_id: str, parts: list[tuple[int, str]]) -> StoredFile:
        """Join the listed parts in part-number order (clients list them in completion order)."""
        with self._lock:
            upload = self._multipart.get(upload_id)
        if upload is None:
            raise KeyError(upload_id)
        numbers = sorted(number for number, _ in parts)
        if not numbers or numbers != list(range(1, len(numbers) + 1)):
            raise ValueError(f"parts must be numbered 1..N without gaps, got {numbers}")
        for number, etag in parts:
            stored = upload.parts.get(number)
            if stored is None:
                raise ValueError(f"part {number} was never uploaded")
            if etag.strip('"') != stored[1]:
                raise ValueError(f"etag mismatch for part {number}")
        target = self.root / upload.key
        with target.open("wb") as out:
            for number in numbers:
                with upload.parts[number][0].open("rb") as part:
                    shutil.copyfileobj(part, out, 1024 * 1024)
        shutil.rmtree(self.root / "_parts" / upload_id, ignore_errors=True)
        with self._lock:
            self._multipart.pop(upload_id, None)
        return self.register(upload.key, upload.content_type)

    # --- presigned (GCS fallback) -----------------------------------------------------------------
    def presign(self, file_name: str | None, content_type: str) -> tuple[str, str]:
        key, _ = self.new_key(file_name)
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._presigned[token] = (key, content_type)
        return token, key

    def take_presigned(self, token: str) -> tuple[str, str] | None:
        with self._lock:
            return self._presigned.get(token)

    # --- lifecycle --------------------------------------------------------------------------------
    def close(self) -> None:
        if self._owns_root:
            shutil.rmtree(self.root, ignore_errors=True)


async def receive_body(chunks: AsyncIterator[bytes], path: Path) -> tuple[int, str]:
    """Stream a request body to ``path``; returns (size, md5 hex) — the md5 doubles as the ETag."""
    digest = hashlib.md5(usedforsecurity=False)
    size = 0
    with path.open("wb") as out:
        async for chunk in chunks:
            if chunk:
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
    return size, digest.hexdigest()
