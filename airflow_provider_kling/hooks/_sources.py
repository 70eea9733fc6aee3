"""What ``KlingHook.upload_file`` accepts (a path, bytes, or a binary file object), as ranges of bytes.

Files are read in chunks on demand, so a multi-GiB video is never held in memory whole: single uploads
stream the file, multipart uploads read one part at a time. Only a non-seekable stream (a pipe, a socket)
has to be read fully, because its size must be known up front.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from airflow_provider_kling.exceptions import KlingValidationError

CHUNK_SIZE = 1024 * 1024


def _bad_source(message: str) -> KlingValidationError:
    return KlingValidationError(message, errors=[{"loc": ("source",), "msg": message, "type": "value_error"}])


class UploadSource:
    """Random access to the bytes of an upload.

    :param name: file name to report to fal (may be None).
    :param size: total size in bytes.
    """

    def __init__(
        self,
        *,
        name: str | None,
        size: int,
        data: bytes | None = None,
        fileobj: IO[bytes] | None = None,
        start: int = 0,
        owned: bool = False,
    ) -> None:
        self.name = name
        self.size = size
        self._data = memoryview(data) if data is not None else None
        self._file = fileobj
        self._start = start
        self._owned = owned

    def read_range(self, offset: int, length: int) -> bytes:
        """``length`` bytes from ``offset`` (one multipart part)."""
        if self._data is not None:
            return bytes(self._data[offset : offset + length])
        assert self._file is not None
        self._file.seek(self._start + offset)
        return self._file.read(length)

    def iter_range(self, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """Chunks of the range; a fresh iterator per call, so a retried request re-reads from the start."""
        end = self.size if length is None else min(self.size, offset + length)
        position = offset
        while position < end:
            chunk = self.read_range(position, min(CHUNK_SIZE, end - position))
            if not chunk:
                raise _bad_source(f"the upload source shrank while being read (at byte {position} of {end})")
            position += len(chunk)
            yield chunk

    def content(self) -> bytes | Iterator[bytes]:
        """The whole body: the bytes themselves when in memory, else a streaming iterator."""
        if self._data is not None:
            return bytes(self._data)
        return self.iter_range()

    def close(self) -> None:
        if self._owned and self._file is not None:
            self._file.close()

    def __enter__(self) -> UploadSource:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_source(source: Any, *, file_name: str | None = None) -> UploadSource:
    """Wrap ``source`` (path, ``bytes``/``bytearray``/``memoryview`` or binary file object).

    :raises KlingValidationError: naming ``source`` for a missing path, a directory, an empty input or a
        text-mode file.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise _bad_source("source is empty (0 bytes): nothing to upload")
        return UploadSource(name=file_name, size=len(data), data=data)
    if isinstance(source, (str, os.PathLike)):
        path = Path(os.fspath(source)).expanduser()
        if not path.exists():
            raise _bad_source(f"source file {str(path)!r} does not exist")
        if not path.is_file():
            raise _bad_source(f"source {str(path)!r} is not a regular file")
        size = path.stat().st_size
        if size == 0:
            raise _bad_source(f"source file {str(path)!r} is empty (0 bytes)")
        return UploadSource(name=file_name or path.name, size=size, fileobj=path.open("rb"), owned=True)
    if hasattr(source, "read"):
        if isinstance(source, io.TextIOBase):
            raise _bad_source("source is a text-mode file: open it in binary mode ('rb')")
        name = file_name or _file_object_name(source)
        seekable = getattr(source, "seekable", lambda: False)()
        if seekable:
            start = source.tell()
            size = source.seek(0, os.SEEK_END) - start
            source.seek(start)
            if size <= 0:
                raise _bad_source("source file object has no bytes left to read")
            return UploadSource(name=name, size=size, fileobj=source, start=start)
        data = source.read()
        if not isinstance(data, bytes):
            raise _bad_source("source file object must return bytes: open it in binary mode ('rb')")
        if not data:
            raise _bad_source("source file object is empty (0 bytes)")
        return UploadSource(name=name, size=len(data), data=data)
    raise _bad_source(
        f"source must be a file path, bytes or a binary file object, got {type(source).__name__}"
    )


def _file_object_name(fileobj: Any) -> str | None:
    name = getattr(fileobj, "name", None)
    return os.path.basename(name) if isinstance(name, str) and name else None
