"""The download's fast path: the body read straight from the socket into lent buffers, and the
worker thread that hashes and writes each piece while the next one is read.

Over real loopback sockets (a raw server that sends exactly the bytes each case needs) and real
files; the bodies are not periodic, so a piece written out of order or twice changes the digest.
"""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from airflow_provider_kling.hooks._body import iter_body
from airflow_provider_kling.hooks._sink import HashingWriter

CHUNK = 64 * 1024


def _body(size: int) -> bytes:
    # Every 32-byte block differs from every other: reordered pieces cannot go unnoticed.
    return b"".join(hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(size // 32 + 1))[:size]


@contextmanager
def _raw_server(head: bytes, body: bytes, *, close_after: int | None = None) -> Iterator[str]:
    """One connection: ``head``, then ``body`` (only ``close_after`` bytes of it, then a close)."""
    srv = socket.create_server(("127.0.0.1", 0))
    stall = threading.Event()

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(4096)
            conn.sendall(head)
            conn.sendall(body if close_after is None else body[:close_after])
            if close_after is None and not body:
                stall.wait(10)  # a server that sends headers and then nothing

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.getsockname()[1]}/v.mp4"
    finally:
        stall.set()
        thread.join(10)
        srv.close()


def _head(length: int, *extra: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n" % (length, b"".join(extra))


def _read_all(url: str, *, timeout: float = 10.0) -> tuple[list[memoryview | bytes], list[bytearray], bytes]:
    """Every piece of the body (copied as it comes), the buffers lent, and the whole body."""
    lent: list[bytearray] = []

    def lend() -> bytearray:
        lent.append(bytearray(CHUNK))
        return lent[-1]

    pieces: list[memoryview | bytes] = []
    data = bytearray()
    with httpx.Client(timeout=timeout) as client, client.stream("GET", url) as response:
        for piece in iter_body(response, lend):
            pieces.append(piece)
            data += piece
    return pieces, lent, bytes(data)


def test_plain_body_fills_lent_buffers_whole_and_in_order():
    body = _body(5 * CHUNK + 1234)
    with _raw_server(_head(len(body)), body) as url:
        pieces, lent, data = _read_all(url)
    assert data == body
    from_socket = [p for p in pieces if isinstance(p, memoryview)]
    assert from_socket, "the body after the headers must be read from the socket"
    assert all(any(p.obj is buf for buf in lent) for p in from_socket)
    # Whole buffers except the body's last piece: few, large pieces for the writer.
    assert all(len(p) == CHUNK for p in from_socket[:-1])
    assert len(lent) == len(from_socket)


def test_chunked_body_takes_httpx_iterator():
    body = _body(3 * CHUNK)
    framed = (
        b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:CHUNK], body[CHUNK:])) + b"0\r\n\r\n"
    )
    head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
    with _raw_server(head, framed) as url:
        pieces, lent, data = _read_all(url)
    assert data == body
    assert lent == []
    assert all(isinstance(p, bytes) for p in pieces)


def test_body_cut_short_raises_remote_protocol_error_with_counts():
    body = _body(4 * CHUNK)
    with (
        _raw_server(_head(len(body)), body, close_after=CHUNK + 10) as url,
        pytest.raises(httpx.RemoteProtocolError, match=rf"received {CHUNK + 10} bytes, expected {len(body)}"),
    ):
        _read_all(url)


def test_silent_server_raises_read_timeout():
    with _raw_server(_head(100), b"") as url, pytest.raises(httpx.ReadTimeout):
        _read_all(url, timeout=0.3)


def _pieces(sizes: list[int]) -> list[bytes]:
    data = _body(sum(sizes))
    out, at = [], 0
    for size in sizes:
        out.append(data[at : at + size])
        at += size
    return out


def test_writer_writes_and_hashes_in_order_with_a_bounded_pool(tmp_path):
    parts = _pieces([CHUNK] * 40 + [77])
    seen: list[int] = []
    lent: set[int] = set()
    path = tmp_path / "out.bin"
    with (
        open(path, "wb") as fh,
        HashingWriter(fh, chunk_size=CHUNK, depth=3, observe=lambda p: seen.append(len(p))) as sink,
    ):
        sink.put(b"head")  # bytes (httpx's first piece) go through as they are
        for part in parts:
            buf = sink.buffer()
            lent.add(id(buf))
            buf[: len(part)] = part
            sink.put(memoryview(buf)[: len(part)])
    whole = b"head" + b"".join(parts)
    assert path.read_bytes() == whole
    assert (sink.size, sink.sha256) == (len(whole), hashlib.sha256(whole).hexdigest())
    assert seen == [4] + [len(p) for p in parts]
    assert len(lent) <= 3  # memory stays at ``depth`` buffers whatever the size


class _FullDisk:
    """A file whose second write fails as a full disk does."""

    def __init__(self) -> None:
        self.writes = 0

    def write(self, data: object) -> None:
        self.writes += 1
        if self.writes == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_writer_error_reaches_the_reading_thread_and_stops_writing():
    fh = _FullDisk()
    with (
        pytest.raises(OSError, match="No space left") as info,
        HashingWriter(fh, chunk_size=CHUNK, depth=2) as sink,
    ):
        for _ in range(50):
            buf = sink.buffer()
            sink.put(memoryview(buf))
    assert info.value.errno == errno.ENOSPC
    assert fh.writes == 2  # nothing written after the failure


def test_reading_error_is_not_masked_and_the_worker_ends():
    with pytest.raises(httpx.ReadError, match="cut"), HashingWriter(_FullDisk(), chunk_size=CHUNK) as sink:
        sink.put(b"x")
        raise httpx.ReadError("cut")
    assert not any(t.name == "kling-download-writer" for t in threading.enumerate())
