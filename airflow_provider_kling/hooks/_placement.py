"""Put a finished temporary file in its final place: atomically, exclusively when asked, and with
errors that say which path is wrong and why.

``overwrite=False`` must hold against a writer racing us to the same name, not only against a file
that was there before we started:

* local disks: a hard link to the final name fails if the name exists (``link(2)`` never
  replaces), so exactly one writer wins; the temporary name is removed afterwards;
* stores without such a primitive (object stores through fsspec, file systems without hard
  links): the name is checked right before the move and the file is re-read after it (size and
  sha256). A writer whose bytes are not what ended up there lost the race and fails, so the
  XCom of a task that succeeded always describes the file on disk.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import uuid
from typing import TYPE_CHECKING

from airflow_provider_kling.exceptions import KlingDownloadError

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

log = logging.getLogger(__name__)

# Local file systems need their parent folders; object stores have no folders (and creating
# one there may mean creating a bucket), so only these protocols get a mkdir.
LOCAL_PROTOCOLS = frozenset({"", "file", "local"})
# link(2) is not offered by every local file system (FAT, some FUSE and SMB mounts).
_NO_LINK = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS})
# One read size for downloads and for re-reading a placed file (the download hot path lends whole
# buffers of this size; the operator's default chunk_size names it without importing the downloader).
DEFAULT_CHUNK_SIZE = 1024 * 1024


def is_local(path: ObjectStoragePath) -> bool:
    return path.protocol in LOCAL_PROTOCOLS


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


def destination_error(path: ObjectStoragePath | str, exc: OSError) -> KlingDownloadError:
    """One sentence naming the destination and what is wrong with it (instead of a raw OSError)."""
    where = str(path)
    if isinstance(exc, (FileExistsError, NotADirectoryError)) or exc.errno in (errno.EEXIST, errno.ENOTDIR):
        blocker = _file_in_the_way(path)
        cause = (
            f"{blocker} is a file, not a folder"
            if blocker
            else "a part of its folder path is a file, not a folder"
        )
    elif isinstance(exc, IsADirectoryError):
        cause = "that name is an existing folder"
    elif isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM):
        cause = f"permission denied ({exc.strerror or exc})"
    elif exc.errno == errno.EROFS:
        cause = "the file system is read-only"
    elif exc.errno == errno.ENOSPC:
        cause = "no space left on the device"
    else:
        cause = exc.strerror or str(exc) or type(exc).__name__
    return KlingDownloadError(f"Cannot save the video to {where}: {cause}.", retryable=False)


def _file_in_the_way(path: ObjectStoragePath | str) -> str | None:
    """The nearest existing ancestor of a local ``path`` when it is a file (what blocks mkdir)."""
    raw = getattr(path, "path", str(path))
    current = os.path.dirname(raw)
    while current and current != os.path.dirname(current):
        if os.path.lexists(current):
            return current if not os.path.isdir(current) else None
        current = os.path.dirname(current)
    return None


def ensure_parent(path: ObjectStoragePath) -> None:
    if not is_local(path):
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise destination_error(path, exc) from None


def file_digest(path: ObjectStoragePath) -> tuple[int, str]:
    """Size and sha256 of what is stored at ``path`` now."""
    digest = hashlib.sha256()
    size = 0
    with path.fs.open(path.path, "rb") as fh:
        while chunk := fh.read(DEFAULT_CHUNK_SIZE):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def commit(
    tmp: ObjectStoragePath,
    final: ObjectStoragePath,
    *,
    overwrite: bool = True,
    size: int | None = None,
    sha256: str | None = None,
) -> None:
    """Move the finished temporary object to its final name.

    :param overwrite: replace an existing ``final`` (logged), or fail if one exists or appears.
    :param size: bytes of ``tmp``; with ``sha256``, lets an exclusive move on a store without an
        exclusive primitive check afterwards that its bytes are the ones in place.
    :param sha256: hex digest of ``tmp``.
    :raises FileExistsError: ``overwrite=False`` and ``final`` exists (another writer won).
    :raises KlingDownloadError: the destination cannot be written, or a racing writer replaced it.
    """
    try:
        if overwrite:
            if final.fs.exists(final.path):
                log.warning("Replacing the existing file %s (overwrite=True)", final)
            tmp.fs.mv(tmp.path, final.path)
            return
        if is_local(final) and _link_exclusive(tmp, final):
            return
        if final.fs.exists(final.path):
            raise FileExistsError(f"destination: {final} exists and overwrite=False")
        tmp.fs.mv(tmp.path, final.path)
    except FileExistsError:
        raise
    except OSError as exc:
        raise destination_error(final, exc) from None
    if size is not None and sha256 is not None:
        stored = file_digest(final)
        if stored != (size, sha256):
            raise KlingDownloadError(
                f"Another writer replaced {final} while this task saved it (overwrite=False): the file "
                f"there now has {stored[0]} bytes, sha256 {stored[1]}, not this task's {size} bytes, "
                f"sha256 {sha256}.",
                retryable=False,
            )


def _link_exclusive(tmp: ObjectStoragePath, final: ObjectStoragePath) -> bool:
    """Hard-link ``tmp`` to ``final`` unless ``final`` exists; False when links are unsupported."""
    try:
        os.link(tmp.path, final.path)
    except FileExistsError:
        raise FileExistsError(
            f"destination: {final} exists and overwrite=False (another task saved it first)"
        ) from None
    except OSError as exc:
        if exc.errno in _NO_LINK:
            return False
        raise
    os.unlink(tmp.path)
    return True
