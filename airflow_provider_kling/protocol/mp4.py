"""Tell a whole MP4 from a cut one while it streams, when no size was announced.

A server that sends no ``Content-Length`` and closes the connection half-way looks, to HTTP, like a
complete body. An MP4 (ISO base media file) carries its own lengths: it is a sequence of top-level
boxes (``ftyp``, ``moov``, ``mdat``, ...), each starting with its size. The file is whole when those
boxes tile the bytes received exactly. Sans-I/O: the download feeds chunks as they arrive, so nothing
is read twice from the destination store.
"""

from __future__ import annotations

import struct

_HEADER = 8  # 32-bit size + 4-character type
_LARGE_HEADER = 16  # size == 1: a 64-bit size follows the type
_REQUIRED = ("moov", "mdat")


class Mp4Boxes:
    """Walk the top-level boxes of a byte stream fed in chunks.

    ``feed`` every chunk, then ask :meth:`problem` once the body ended: None means the boxes account
    for every byte received and the file has ``ftyp``, ``moov`` and ``mdat``.
    """

    def __init__(self) -> None:
        self.received = 0
        self.types: list[str] = []
        self._head = bytearray()  # header bytes of the next box collected so far
        self._skip = 0  # body bytes of the current box still to come
        self._error: str | None = None
        self._to_end = False  # a box of size 0 runs to the end of the file

    @property
    def is_mp4(self) -> bool:
        """The stream starts like an MP4 (its first box is ``ftyp``)."""
        return bool(self.types) and self.types[0] == "ftyp"

    def feed(self, data: bytes | memoryview) -> None:
        self.received += len(data)
        if self._error is not None or self._to_end:
            return
        view = memoryview(data)
        pos = 0
        while pos < len(view):
            if self._skip:
                step = min(self._skip, len(view) - pos)
                self._skip -= step
                pos += step
                continue
            need = _LARGE_HEADER if len(self._head) >= _HEADER and self._size32() == 1 else _HEADER
            step = min(need - len(self._head), len(view) - pos)
            self._head += view[pos : pos + step]
            pos += step
            if len(self._head) < need:
                continue
            if need == _HEADER and self._size32() == 1:
                continue  # a 64-bit size follows: collect it first
            self._start_box()
            if self._error is not None or self._to_end:
                return

    def _size32(self) -> int:
        return int(struct.unpack_from(">I", self._head)[0])

    def _start_box(self) -> None:
        size = self._size32()
        kind = bytes(self._head[4:8])
        header = len(self._head)
        if header == _LARGE_HEADER:
            size = int(struct.unpack_from(">Q", self._head, 8)[0])
        self._head = bytearray()
        if not all(32 <= b < 127 for b in kind):
            self._error = f"bytes at offset {self.received} are not an MP4 box header"
            return
        self.types.append(kind.decode("ascii"))
        if size == 0:
            self._to_end = True
            return
        if size < header:
            self._error = f"box {kind.decode('ascii')!r} declares {size} bytes, less than its header"
            return
        self._skip = size - header

    def expected_size(self) -> int | None:
        """Bytes the boxes seen so far add up to (None once a box runs to the end of the file)."""
        if self._to_end:
            return None
        return self.received + self._skip + (_HEADER - len(self._head) if self._head else 0)

    def problem(self) -> str | None:
        """Why the bytes received are not a whole MP4, or None when they are."""
        if self._error is not None:
            return self._error
        if not self.is_mp4:
            return "it does not start with an 'ftyp' box"
        if self._skip or self._head:
            return (
                f"its boxes need at least {self.expected_size()} bytes but only {self.received} arrived "
                f"(last box {self.types[-1]!r} is cut)"
            )
        missing = [kind for kind in _REQUIRED if kind not in self.types]
        if missing:
            return f"it has no {' or '.join(repr(m) for m in missing)} box (top-level boxes: {self.types})"
        return None
