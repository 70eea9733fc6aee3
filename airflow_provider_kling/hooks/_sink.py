"""Write a download to its file and hash it on a second thread while the next piece is read.

Reading from the socket, writing to the file and SHA-256 cost about the same per byte; one after the
other in the reading thread, a 1 GiB download took twice as long as curl. Here the reading thread
only reads: each filled piece goes to one worker that hashes and writes it (both release the GIL on
large buffers, so the two threads really run at once) and hands the buffer back to a small pool.
Memory stays at ``depth`` buffers whatever the file's size, and the bytes are hashed exactly as they
are written, in order, without reading the file back.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable
from typing import Any

_STOP = None


class HashingWriter:
    """Hash and write pieces on a worker thread, in the order they are put.

    Use as a context manager around the reading loop: ``buffer()`` lends a free buffer (blocking while
    all ``depth`` of them are in flight), ``put`` hands over a piece (a view into a lent buffer, or any
    bytes), and leaving the block waits for the worker and re-raises its error, if any.

    :param fh: a binary file open for writing; only the worker writes to it until the block ends.
    :param chunk_size: bytes per lent buffer.
    :param depth: buffers in the pool (at most this many pieces are in flight).
    :param copy: write ``bytes`` copies instead of views (for stores that may keep what they are given).
    :param observe: called on the worker with every piece before it is written (e.g. an MP4 box walker).
    """

    def __init__(
        self,
        fh: Any,
        *,
        chunk_size: int,
        depth: int = 4,
        copy: bool = False,
        observe: Callable[[memoryview | bytes], None] | None = None,
    ) -> None:
        self._fh = fh
        self._copy = copy
        self._observe = observe
        self._chunk_size = chunk_size
        self._free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        self._lent = 0
        self._depth = depth
        self._work: queue.SimpleQueue[memoryview | bytes | None] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._digest = hashlib.sha256()
        self.size = 0
        self._thread = threading.Thread(target=self._run, name="kling-download-writer", daemon=True)

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def __enter__(self) -> HashingWriter:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._work.put(_STOP)
        self._thread.join()
        if self._error is not None and exc_info[0] is None:
            raise self._error

    def buffer(self) -> bytearray:
        """A free buffer to read the next piece into (a new one until ``depth`` are lent)."""
        self._raise_failure()
        if self._lent < self._depth:
            self._lent += 1
            return bytearray(self._chunk_size)
        buf = self._free.get()
        self._raise_failure()
        return buf

    def put(self, piece: memoryview | bytes) -> None:
        """Hand over the next piece; a view into a lent buffer returns the buffer to the pool once written."""
        self._raise_failure()
        self._work.put(piece)

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while (piece := self._work.get()) is not _STOP:
            try:
                if self._error is None:
                    if self._observe is not None:
                        self._observe(piece)
                    self._digest.update(piece)
                    self._fh.write(bytes(piece) if self._copy and isinstance(piece, memoryview) else piece)
                    self.size += len(piece)
            except BaseException as exc:  # handed to the reading thread
                self._error = exc
            finally:
                if isinstance(piece, memoryview) and isinstance(piece.obj, bytearray):
                    self._free.put(piece.obj)
