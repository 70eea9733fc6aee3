"""Stream one HTTP(S) file into an Airflow ``ObjectStoragePath`` without holding it in memory.

The bytes go to a hidden temporary sibling first and are moved to the final name only after the
size has been checked, so readers never see a half-written video: on a local file system the move
is an atomic ``rename``; on object stores (S3, GCS, ...) it is a server-side copy, and the final
key appears all at once. A failed attempt removes its temporary object.

No credentials are sent: fal's CDN serves generated media to anyone holding the URL, so the fal
key (which lives in the ``fal`` connection) never reaches this code, let alone the media host.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from airflow_provider_kling import __version__
from airflow_provider_kling.exceptions import KlingError

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

log = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 1024 * 1024
# Local file systems need their parent folders; object stores have no folders (and creating
# one there may mean creating a bucket), so only these protocols get a mkdir.
_LOCAL_PROTOCOLS = frozenset({"", "file", "local"})
_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class KlingDownloadError(KlingError):
    """A video could not be copied to object storage (HTTP error, broken body, size mismatch).

    :param retryable: whether another attempt may succeed (transport errors, 5xx, truncation).
    """


@dataclass(frozen=True)
class DownloadResult:
    """What :func:`stream_to_storage` wrote.

    :param path: the final destination.
    :param size: bytes written.
    :param sha256: hex digest of those bytes.
    :param content_type: ``Content-Type`` the server sent, if any.
    :param seconds: wall time of the successful attempt.
    """

    path: ObjectStoragePath
    size: int
    sha256: str
    content_type: str | None
    seconds: float


def _is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, KlingDownloadError):
        return bool(exc.retryable)
    # Connection refused/reset, read timeouts and bodies cut short (RemoteProtocolError).
    return isinstance(exc, httpx.TransportError)


def temporary_sibling(path: ObjectStoragePath) -> ObjectStoragePath:
    """A hidden, unique name next to ``path``: same store and folder, so the final move is cheap."""
    return path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.part"


def remove_quietly(path: ObjectStoragePath) -> None:
    """Best-effort delete of a temporary object; cleanup must never hide the original error."""
    try:
        if path.fs.exists(path.path):
            path.fs.rm(path.path)
    except Exception:  # pragma: no cover - depends on the store
        log.warning("Could not remove temporary file %s", path, exc_info=True)


def ensure_parent(path: ObjectStoragePath) -> None:
    if path.protocol in _LOCAL_PROTOCOLS:
        path.parent.mkdir(parents=True, exist_ok=True)


def commit(tmp: ObjectStoragePath, final: ObjectStoragePath) -> None:
    """Move the finished temporary object to its final name (atomic rename on local disks)."""
    tmp.fs.mv(tmp.path, final.path)


def _record_lineage(final: ObjectStoragePath) -> None:
    # Written through fs.open (not ObjectStoragePath.open) so lineage does not record the
    # temporary name once per chunk; the final path is reported once instead.
    try:
        from airflow_provider_kling.version_compat import get_hook_lineage_collector

        get_hook_lineage_collector().add_output_asset(context=final, uri=str(final))
    except Exception:  # pragma: no cover - lineage is optional
        log.debug("Lineage not recorded for %s", final, exc_info=True)


def _attempt(
    client: httpx.Client,
    url: str,
    final: ObjectStoragePath,
    *,
    expected_size: int | None,
    chunk_size: int,
) -> DownloadResult:
    started = time.monotonic()
    tmp = temporary_sibling(final)
    try:
        # identity: Content-Length must describe the very bytes we write, not a gzip of them.
        with client.stream("GET", url, headers={"Accept-Encoding": "identity"}) as response:
            if response.status_code >= 400:
                raise KlingDownloadError(
                    f"GET {url} answered HTTP {response.status_code}",
                    status_code=response.status_code,
                    retryable=response.status_code in _RETRYABLE_STATUS,
                )
            header_length = response.headers.get("content-length")
            content_length = int(header_length) if header_length and header_length.isdigit() else None
            if content_length is not None and expected_size is not None and content_length != expected_size:
                raise KlingDownloadError(
                    f"size mismatch for {url}: the source says file_size={expected_size} bytes "
                    f"but the server sends Content-Length={content_length}",
                    retryable=False,
                )
            digest = hashlib.sha256()
            size = 0
            with tmp.fs.open(tmp.path, "wb") as fh:
                for chunk in response.iter_bytes(chunk_size):
                    fh.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
            content_type = response.headers.get("content-type")
        for label, expected in (("Content-Length", content_length), ("file_size", expected_size)):
            if expected is not None and size != expected:
                # A body shorter than announced is a cut connection: worth another attempt.
                raise KlingDownloadError(
                    f"size mismatch for {url}: received {size} bytes, expected {expected} ({label})",
                    retryable=size < expected,
                )
        commit(tmp, final)
    except BaseException:
        remove_quietly(tmp)
        raise
    return DownloadResult(final, size, digest.hexdigest(), content_type, time.monotonic() - started)


def stream_to_storage(
    url: str,
    destination: ObjectStoragePath,
    *,
    expected_size: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    timeout: float = 120.0,
    attempts: int = 3,
    backoff: float = 1.0,
) -> DownloadResult:
    """Download ``url`` into ``destination`` atomically, retrying transient failures.

    :param url: an ``http://`` or ``https://`` URL; fetched without any credentials.
    :param destination: the final file path (its parent folder is created on local disks).
    :param expected_size: bytes the caller knows the file has (fal's ``file_size``); checked.
    :param chunk_size: bytes per read/write; memory use stays around this size.
    :param timeout: seconds allowed between two reads (and to connect).
    :param attempts: tries in all, for transport errors, truncated bodies, 408/429/5xx.
    :param backoff: first wait between tries in seconds, doubled each time (at most 30 s).
    """
    if not url.lower().startswith(("http://", "https://")):
        raise KlingDownloadError(f"source URL must be http:// or https://, got {url!r}", retryable=False)
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    ensure_parent(destination)
    headers = {"User-Agent": f"airflow-provider-kling/{__version__}"}
    with httpx.Client(headers=headers, timeout=httpx.Timeout(timeout), follow_redirects=True) as client:
        retrying = Retrying(
            retry=retry_if_exception(_is_retryable),
            stop=stop_after_attempt(attempts),
            wait=wait_exponential(multiplier=backoff, max=30),
            reraise=True,
            before_sleep=lambda state: log.warning(
                "Download attempt %d of %s failed (%s); retrying",
                state.attempt_number,
                url,
                state.outcome.exception() if state.outcome else "?",
            ),
        )
        try:
            result = retrying(
                _attempt, client, url, destination, expected_size=expected_size, chunk_size=chunk_size
            )
        except httpx.TransportError as exc:
            raise KlingDownloadError(
                f"download of {url} failed after {attempts} attempt(s): {type(exc).__name__}: {exc}",
                retryable=True,
            ) from exc
    _record_lineage(destination)
    return result
