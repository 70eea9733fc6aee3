"""Read a streamed HTTP response body into lent, reused buffers (what makes large downloads fast).

httpx hands a body over in ~64 KiB ``bytes`` pieces, each copied several times on its way through
httpcore and h11: at ~200 MiB/s over loopback, a 1 GiB video is CPU-bound in the client. For a plain
``Content-Length`` body (no transfer or content coding) on a connection this process reads itself
(plain TCP, or TLS on that very socket), the bytes after the ones h11 already buffered are read
straight from the socket into buffers the caller lends (a small pool, see
:mod:`~airflow_provider_kling.hooks._sink`) instead; anything else (chunked bodies, TLS inside a
proxy tunnel, HTTP/2, a stream without a socket) takes httpx's own iterator. The connection is never
reused afterwards: closing the response closes it, since h11 did not see the rest of the body.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterator
from typing import Any

import httpx


def _direct_socket(response: httpx.Response) -> socket.socket | None:
    stream: Any = response.extensions.get("network_stream")
    if stream is None or response.http_version != "HTTP/1.1":
        return None
    try:
        sock = stream.get_extra_info("socket")
        tls = stream.get_extra_info("ssl_object")
    except Exception:  # pragma: no cover - a transport without these extras
        return None
    if not isinstance(sock, socket.socket):
        return None
    if tls is None:
        return None if isinstance(sock, ssl.SSLSocket) else sock
    # TLS straight on this socket, not TLS tunnelled through a proxy's TLS (reading the outer
    # socket there would hand over ciphertext).
    return sock if isinstance(sock, ssl.SSLSocket) and getattr(sock, "_sslobj", None) is tls else None


def _plain_length(response: httpx.Response) -> int | None:
    headers = response.headers
    if "transfer-encoding" in headers or headers.get("content-encoding", "identity").lower() != "identity":
        return None
    length = headers.get("content-length", "")
    return int(length) if length.isdigit() else None


def iter_body(response: httpx.Response, next_buffer: Callable[[], bytearray]) -> Iterator[memoryview | bytes]:
    """The body of ``response`` (opened with ``stream``) in pieces.

    Read from the socket, a piece is a view into a buffer ``next_buffer()`` lent, filled whole
    (fewer, larger pieces for whoever writes and hashes them) except for the body's last bytes; the
    buffer is not touched again, so the piece stays valid until its owner reuses the buffer. From
    httpx's own iterator, a piece is ``bytes``.

    :raises httpx.ReadTimeout: the server sent nothing for the request's read timeout.
    :raises httpx.ReadError: the connection broke.
    :raises httpx.RemoteProtocolError: the server closed the connection before the whole body came.
    """
    sock = _direct_socket(response)
    remaining = _plain_length(response)
    raw = response.iter_raw()
    if sock is None or remaining is None:
        yield from raw
        return
    expected = remaining
    # What h11 read along with the headers comes out as one first piece; the rest is on the socket.
    for first in raw:
        remaining -= len(first)
        yield first
        break
    timeout = (response.request.extensions.get("timeout") or {}).get("read")
    sock.settimeout(timeout)
    while remaining > 0:
        view = memoryview(next_buffer())
        want = min(len(view), remaining)
        filled = 0
        while filled < want:
            try:
                size = sock.recv_into(view[filled:], want - filled)
            except TimeoutError as exc:  # socket.timeout
                raise httpx.ReadTimeout(f"no data for {timeout} s", request=response.request) from exc
            except OSError as exc:
                raise httpx.ReadError(str(exc) or type(exc).__name__, request=response.request) from exc
            if size == 0:
                # The same error (and so the same retry) as when httpx reads the body itself.
                raise httpx.RemoteProtocolError(
                    "peer closed connection without sending complete message body "
                    f"(received {expected - remaining + filled} bytes, expected {expected})",
                    request=response.request,
                )
            filled += size
        remaining -= filled
        yield view[:filled]
