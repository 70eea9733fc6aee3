"""Server-sent events (the WHATWG ``text/event-stream`` format) from raw bytes, sans-I/O.

fal's status stream sends each status as one event's ``data``. The triggerer's shared client reads
thousands of such streams at once, so it decodes the bytes it receives directly with this small
decoder instead of a chain of per-stream async iterators (bytes -> text -> lines -> events): one
object per stream and no generator frames to keep alive between events.

Only ``data`` matters to the queue protocol; ``event``, ``id`` and ``retry`` fields and comment lines
are accepted and ignored, as the format allows.
"""

from __future__ import annotations

__all__ = ["SSEDecoder"]


class SSEDecoder:
    """Feed bytes as they arrive; get back the ``data`` of every event they complete.

    Lines end with CRLF, LF or CR (a CR at the end of one chunk may be the first half of a CRLF in
    the next). A field line is ``name: value`` (one space after the colon is dropped); several
    ``data`` lines in one event are joined with newlines; a blank line dispatches the event, and an
    event without data is not dispatched.

    :param max_line: longest line kept (bytes); a longer one raises :class:`ValueError` (the stream
        is broken or hostile: a status event is a few kilobytes).
    """

    __slots__ = ("_after_cr", "_buffer", "_data", "_max_line")

    def __init__(self, max_line: int = 1 << 20) -> None:
        self._buffer = b""
        self._data: list[str] | None = None
        self._max_line = max_line
        self._after_cr = False

    def feed(self, chunk: bytes) -> list[str]:
        """The data of each event completed by ``chunk`` (usually none or one)."""
        if self._after_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]  # the LF of a CRLF split across chunks
        self._after_cr = chunk.endswith(b"\r")
        buffer = self._buffer + chunk if self._buffer else chunk
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        *lines, rest = buffer.split(b"\n")
        if len(rest) > self._max_line:
            raise ValueError(f"a server-sent event line is longer than {self._max_line} bytes")
        self._buffer = rest
        events: list[str] = []
        for raw in lines:
            if not raw:
                if self._data is not None:
                    events.append("\n".join(self._data))
                    self._data = None
                continue
            name, colon, value = raw.partition(b":")
            if name != b"data":
                continue  # a comment (empty name), or event/id/retry/unknown: not used here
            if colon and value.startswith(b" "):
                value = value[1:]
            text = value.decode("utf-8", errors="replace")
            if self._data is None:
                self._data = [text]
            else:
                self._data.append(text)
        return events
