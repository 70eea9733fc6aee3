"""Stream one HTTP(S) file into an Airflow ``ObjectStoragePath`` without holding it in memory.

The bytes go to a hidden temporary sibling first and are moved to the final name only after the
size has been checked (``Content-Length``, fal's ``file_size`` or, when neither is known, the MP4's
own box sizes), so readers never see a half-written video: on a local file system the move
is an atomic ``rename``; on object stores (S3, GCS, ...) it is a server-side copy, and the final
key appears all at once. A failed attempt removes its temporary object.

No credentials are sent: fal's CDN serves generated media to anyone holding the URL, so the fal
key (which lives in the ``fal`` connection) never reaches this code, let alone the media host. Which
failures are worth another attempt, and how long to wait, is the protocol core's retry policy
(:mod:`~airflow_provider_kling.protocol.retry`, kind ``download``), as for every fal call.
"""

from __future__ import annotations

import logging
import math
import posixpath
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from airflow_provider_kling import __version__
from airflow_provider_kling.exceptions import KlingDownloadError
from airflow_provider_kling.hooks._body import iter_body
from airflow_provider_kling.hooks._placement import (
    DEFAULT_CHUNK_SIZE,
    commit,
    destination_error,
    ensure_parent,
    file_digest,
    is_local,
    remove_quietly,
    temporary_sibling,
)
from airflow_provider_kling.hooks._sink import HashingWriter
from airflow_provider_kling.protocol.mp4 import Mp4Boxes
from airflow_provider_kling.protocol.retry import RetryPolicy, should_retry_response

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

log = logging.getLogger(__name__)

_MP4_TYPES = frozenset({"video/mp4", "video/quicktime", "application/mp4", "video/x-m4v"})

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DownloadResult",
    "KlingDownloadError",
    "commit",
    "destination_error",
    "download_retry_policy",
    "ensure_parent",
    "remove_quietly",
    "stream_to_storage",
    "temporary_sibling",
]


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


def download_retry_policy(attempts: int, backoff: float) -> RetryPolicy:
    """The protocol core's retry policy as a download uses it (``kind="download"``).

    :param attempts: tries in all.
    :param backoff: first wait in seconds, doubled each time (at most 30 s), without jitter; a
        ``Retry-After`` the server sends wins (at most 60 s). No total budget: a large file may take
        minutes per attempt, and ``attempts`` already bounds the tries.
    """
    return RetryPolicy(
        max_attempts=attempts, initial_delay=backoff, max_delay=30.0, max_total=math.inf, jitter=0.0
    )


def _record_lineage(final: ObjectStoragePath) -> None:
    # Written through fs.open (not ObjectStoragePath.open) so lineage does not record the
    # temporary name once per chunk; the final path is reported once instead.
    try:
        from airflow_provider_kling.version_compat import get_hook_lineage_collector

        get_hook_lineage_collector().add_output_asset(context=final, uri=str(final))
    except Exception:  # pragma: no cover - lineage is optional
        log.debug("Lineage not recorded for %s", final, exc_info=True)


def _open_for_writing(tmp: ObjectStoragePath, final: ObjectStoragePath) -> Any:
    try:
        return tmp.fs.open(tmp.path, "wb")
    except OSError as exc:
        raise destination_error(final, exc) from None


def _expects_mp4(url: str, content_type: str | None, final: ObjectStoragePath) -> bool:
    names = (urlsplit(url).path.lower(), final.name.lower())
    return (content_type or "").split(";")[0].strip() in _MP4_TYPES or any(
        name.endswith((".mp4", ".m4v", ".mov")) for name in names
    )


def _check_unsized(url: str, boxes: Mp4Boxes, content_type: str | None, final: ObjectStoragePath) -> None:
    """No size was announced: the MP4's own box sizes must account for every byte received."""
    if boxes.is_mp4 or _expects_mp4(url, content_type, final):
        problem = boxes.problem()
        if problem is not None:
            # A close-delimited body that stops early is a cut connection: worth another attempt.
            raise KlingDownloadError(
                f"incomplete download of {url}: the server announced no size and the MP4 is not whole "
                f"({problem}; {boxes.received} bytes received)",
                retryable=True,
            )
        return
    log.warning(
        "%s came without a size and is not an MP4 (%s): its completeness cannot be checked",
        url,
        content_type or "no content type",
    )


def _attempt(
    client: httpx.Client,
    url: str,
    final: ObjectStoragePath,
    *,
    expected_size: int | None,
    chunk_size: int,
    overwrite: bool = True,
    content_named: bool = False,
) -> DownloadResult | httpx.Response:
    """One GET into a temporary sibling, checked and committed; an error status comes back as the
    (closed) response, for the retry policy to judge."""
    started = time.monotonic()
    tmp = temporary_sibling(final)
    try:
        # identity: Content-Length must describe the very bytes we write, not a gzip of them.
        with client.stream("GET", url, headers={"Accept-Encoding": "identity"}) as response:
            if response.status_code >= 400:
                return response
            header_length = response.headers.get("content-length")
            content_length = int(header_length) if header_length and header_length.isdigit() else None
            if content_length is not None and expected_size is not None and content_length != expected_size:
                raise KlingDownloadError(
                    f"size mismatch for {url}: the source says file_size={expected_size} bytes "
                    f"but the server sends Content-Length={content_length}",
                    retryable=False,
                )
            boxes = Mp4Boxes() if content_length is None and expected_size is None else None
            # The reading thread only reads; a worker hashes and writes each piece meanwhile.
            # Memory stays at a few buffers whatever the file's size. Object stores may keep what
            # they are given: only local files get views of the buffers.
            with (
                _open_for_writing(tmp, final) as fh,
                HashingWriter(
                    fh,
                    chunk_size=chunk_size,
                    copy=not is_local(tmp),
                    observe=boxes.feed if boxes is not None else None,
                ) as sink,
            ):
                for piece in iter_body(response, sink.buffer):
                    sink.put(piece)
            size, sha256 = sink.size, sink.sha256
            content_type = response.headers.get("content-type")
        for label, expected in (("Content-Length", content_length), ("file_size", expected_size)):
            if expected is not None and size != expected:
                # A body shorter than announced is a cut connection: worth another attempt.
                raise KlingDownloadError(
                    f"size mismatch for {url}: received {size} bytes, expected {expected} ({label})",
                    retryable=size < expected,
                )
        if boxes is not None:
            _check_unsized(url, boxes, content_type, final)
        if content_named:
            final = final.parent / f"{sha256[:16]}{posixpath.splitext(final.name)[1]}"
            if final.fs.exists(final.path) and file_digest(final) == (size, sha256):
                log.info("%s already holds these exact bytes; keeping it", final)
                remove_quietly(tmp)
                return DownloadResult(final, size, sha256, content_type, time.monotonic() - started)
        commit(tmp, final, overwrite=overwrite, size=size, sha256=sha256)
    except BaseException:
        remove_quietly(tmp)
        raise
    return DownloadResult(final, size, sha256, content_type, time.monotonic() - started)


def stream_to_storage(
    url: str,
    destination: ObjectStoragePath,
    *,
    expected_size: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    timeout: float = 120.0,
    attempts: int = 3,
    backoff: float = 1.0,
    overwrite: bool = True,
    content_named: bool = False,
) -> DownloadResult:
    """Download ``url`` into ``destination`` atomically, retrying transient failures.

    :param url: an ``http://`` or ``https://`` URL; fetched without any credentials.
    :param destination: the final file path (its parent folder is created on local disks).
    :param expected_size: bytes the caller knows the file has (fal's ``file_size``); checked.
    :param chunk_size: bytes per read/write; memory use stays around this size.
    :param timeout: seconds allowed between two reads (and to connect).
    :param attempts: tries in all, for transport errors, truncated bodies, 408/409/425/429/5xx (the
        protocol core's ``download`` retry kind, see :func:`download_retry_policy`).
    :param backoff: first wait between tries in seconds, doubled each time (at most 30 s); a
        ``Retry-After`` the server sends wins.
    :param overwrite: replace an existing file, or fail if the name exists or another writer takes
        it first (exclusive where the store allows it, see
        :mod:`~airflow_provider_kling.hooks._placement`).
    :param content_named: name the file after its content: ``destination``'s folder and suffix with
        the first 16 hex digits of its sha256 as the stem (for sources without a request id).
    """
    if not url.lower().startswith(("http://", "https://")):
        raise KlingDownloadError(f"source URL must be http:// or https://, got {url!r}", retryable=False)
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    ensure_parent(destination)
    policy = download_retry_policy(attempts, backoff)
    retrying = policy.retrying("download", f"download of {url}")
    headers = {"User-Agent": f"airflow-provider-kling/{__version__}"}
    with httpx.Client(headers=headers, timeout=httpx.Timeout(timeout), follow_redirects=True) as client:
        try:
            outcome = retrying(
                _attempt,
                client,
                url,
                destination,
                expected_size=expected_size,
                chunk_size=chunk_size,
                overwrite=overwrite,
                content_named=content_named,
            )
        except httpx.TransportError as exc:
            tries = retrying.statistics.get("attempt_number", attempts)
            raise KlingDownloadError(
                f"download of {url} failed after {tries} attempt(s): {type(exc).__name__}: {exc}",
                retryable=True,
            ) from exc
    if isinstance(outcome, httpx.Response):
        code = outcome.status_code
        raise KlingDownloadError(
            f"GET {url} answered HTTP {code}",
            status_code=code,
            retryable=should_retry_response(outcome, kind="download"),
        )
    _record_lineage(outcome.path)
    return outcome
