"""One HTTP/1.1 client connection on a plain asyncio protocol, framed by h11: the triggerer's transport.

The triggerer's shared fal client keeps thousands of connections on one event loop (one per SSE
status stream, plus the kept-alive poll connections). Through ``httpx.AsyncHTTPTransport`` each one is
an httpcore pool, an anyio stream with a cancel scope per read and write, and a chain of async
iterators per streamed body: ~230 objects a job that every full garbage collection walks, and ~2 ms of
CPU to open a stream. This connection is one asyncio protocol and one ``h11.Connection`` (the HTTP/1.1
state machine httpcore itself uses), so a stream costs a few dozen objects and a fraction of that CPU.

It speaks ``httpx`` at its edges: it sends an ``httpx.Request``, returns an ``httpx.Response``, and
raises httpx's exceptions (``ConnectError``, ``ReadTimeout``, ``RemoteProtocolError``, ...) so the
retry rules and error mapping in :mod:`airflow_provider_kling.protocol` apply unchanged. Proxies
are not spoken here: the shared client uses a full ``httpx.AsyncClient`` when one is configured.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
import time
from typing import Any

import h11
import httpx

from airflow_provider_kling.protocol.sse import SSEDecoder

#: Unread bytes kept before the socket stops being read (the reader resumes it as it catches up).
READ_BUFFER_LIMIT = 256 * 1024


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    scheme = url.scheme
    if scheme not in ("http", "https"):
        raise httpx.UnsupportedProtocol(f"Request URL has an unsupported protocol '{scheme}://'.")
    port = url.port or (443 if scheme == "https" else 80)
    return scheme, url.host, port


def origin_of(url: httpx.URL) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of ``url``: connections are only reused for the same origin."""
    return _origin(url)


#: Python 3.10 and 3.11 leave every closed socket transport in a reference cycle with its own bound
#: read callback, so only a full collection frees it; 3.12 clears the callback when the connection
#: is lost (selector_events.py, ``_call_connection_lost``). A transport frozen by
#: :mod:`~airflow_provider_kling.hooks._gc_freeze` while open would never be freed: clear it the same way.
_CLOSED_TRANSPORTS_CYCLE = sys.version_info < (3, 12)


def _clear_read_callback(transport: Any) -> None:
    if transport is not None and hasattr(transport, "_read_ready_cb"):
        transport._read_ready_cb = None


class HTTPConnection(asyncio.Protocol):
    """One client connection; requests go one after the other (no pipelining).

    Use :meth:`open` to connect, then :meth:`send` (whole body) or :meth:`send_head` followed by
    :meth:`read_data` / :meth:`events` (a streamed body).

    :param origin: ``(scheme, host, port)``.
    :param read_timeout: seconds without any byte from the server before ``ReadTimeout``.
    """

    __slots__ = (
        "_buffered",
        "_deadline",
        "_error",
        "_h11",
        "_lost",
        "_paused",
        "_socket_transport",
        "_timer",
        "_transport",
        "_waiter",
        "idle_since",
        "origin",
        "read_timeout",
    )

    def __init__(self, origin: tuple[str, str, int], read_timeout: float | None) -> None:
        self.origin = origin
        self.read_timeout = read_timeout
        self.idle_since = 0.0
        self._h11 = h11.Connection(h11.CLIENT)
        self._transport: asyncio.Transport | None = None
        self._socket_transport: Any = None
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self._lost = False
        self._error: Exception | None = None
        self._buffered = 0
        self._paused = False

    # -- connecting -----------------------------------------------------------------------------
    @classmethod
    async def open(
        cls,
        origin: tuple[str, str, int],
        *,
        ssl_context: ssl.SSLContext | None,
        connect_timeout: float | None,
        read_timeout: float | None,
    ) -> HTTPConnection:
        """Connect (and for https, complete the TLS handshake) within ``connect_timeout`` seconds.

        :raises httpx.ConnectError: the connection was refused or failed (``__cause__`` is the
            ``OSError``, e.g. ``EMFILE`` when the process ran out of descriptors).
        :raises httpx.ConnectTimeout: it did not open in time.
        """
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        tls = ssl_context if scheme == "https" else None
        connection = cls(origin, read_timeout)
        connecting = loop.create_connection(
            lambda: connection, host, port, ssl=tls, server_hostname=host if tls is not None else None
        )
        try:
            if connect_timeout is None:
                await connecting
            else:
                await _within(connecting, connect_timeout)
        except asyncio.TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out") from None
        except OSError as exc:
            raise httpx.ConnectError(f"{exc.strerror or exc}") from exc
        return connection

    # -- asyncio.Protocol -----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        # Under TLS this is asyncio's TLS transport; the socket's own transport is below it.
        ssl_protocol = getattr(transport, "_ssl_protocol", None)
        self._socket_transport = getattr(ssl_protocol, "_transport", None) or transport

    def data_received(self, data: bytes) -> None:
        try:
            self._h11.receive_data(data)
        except RuntimeError:  # data after the server's close: nothing can use it
            return
        self._buffered += len(data)
        if self._buffered > READ_BUFFER_LIMIT and not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._h11.receive_data(b"")
        self._wake()
        return False  # close our end too

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._error = exc
        self._h11.receive_data(b"")
        self._wake()
        if _CLOSED_TRANSPORTS_CYCLE:
            _clear_read_callback(self._socket_transport)
        self._socket_transport = None
        if self._waiter is None:
            self._stop_timer()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- state ----------------------------------------------------------------------------------
    @property
    def is_closed(self) -> bool:
        return self._lost or self._transport is None or self._transport.is_closing()

    def reusable(self) -> bool:
        """Whether another request may be sent now (the last exchange ended cleanly, kept alive)."""
        return not self.is_closed and self._h11.our_state is h11.IDLE and self._h11.their_state is h11.IDLE

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        self._lost = True
        self._stop_timer()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- exchanges ------------------------------------------------------------------------------
    def _write_request(self, request: httpx.Request) -> None:
        if self.is_closed:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        headers = request.headers.raw
        if not any(name.lower() == b"host" for name, _ in headers):
            headers = [(b"Host", request.url.netloc), *headers]
        content = request.content
        if content and not any(name.lower() == b"content-length" for name, _ in headers):
            headers = [*headers, (b"Content-Length", str(len(content)).encode())]
        try:
            data = self._h11.send(
                h11.Request(method=request.method, target=request.url.raw_path, headers=headers)
            )
            if content:
                data = (data or b"") + (self._h11.send(h11.Data(data=content)) or b"")
            data = (data or b"") + (self._h11.send(h11.EndOfMessage()) or b"")
        except h11.LocalProtocolError as exc:
            raise httpx.LocalProtocolError(str(exc)) from exc
        assert self._transport is not None
        self._transport.write(data)

    def next_event_now(self) -> Any:
        """The next h11 event already received, or ``h11.NEED_DATA`` (then :meth:`wait_for_data`)."""
        try:
            event = self._h11.next_event()
        except h11.RemoteProtocolError as exc:
            raise self._broken(str(exc)) from exc
        if event is h11.NEED_DATA:
            if self._lost:  # pragma: no cover - h11 reports the close itself once told of it
                raise self._broken("Server disconnected without sending a response.")
            self._buffered = 0
            if self._paused and self._transport is not None:
                self._paused = False
                self._transport.resume_reading()
        elif type(event) is h11.ConnectionClosed:
            raise self._broken("Server disconnected without sending a response.")
        return event

    async def _next_event(self) -> Any:
        """The next h11 event, waiting for bytes (at most ``read_timeout`` between two)."""
        while (event := self.next_event_now()) is h11.NEED_DATA:
            await self.wait_for_data()
        return event

    def _broken(self, message: str) -> httpx.TransportError:
        # A reset reads as httpx's ReadError (as through httpcore); a clean close mid-message as
        # a protocol error.
        if self._error is not None:
            error = httpx.ReadError(f"{type(self._error).__name__}: {self._error}")
            error.__cause__ = self._error
            return error
        return httpx.RemoteProtocolError(message)

    async def wait_for_data(self) -> None:
        """Until more bytes (or the close) arrived; ``ReadTimeout`` after ``read_timeout`` seconds."""
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        if self.read_timeout is not None:
            # One timer per connection, moved forward lazily: a wait that ends in time (nearly all)
            # neither makes nor cancels a timer, which on a busy loop would pile up in its heap.
            self._deadline = loop.time() + self.read_timeout
            if self._timer is None:
                self._timer = loop.call_at(self._deadline, self._on_timer)
        try:
            await waiter
        finally:
            self._waiter = None

    def _on_timer(self) -> None:
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return  # nobody waits: the next wait arms a timer again
        loop = waiter.get_loop()
        if loop.time() < self._deadline:
            self._timer = loop.call_at(self._deadline, self._on_timer)
        else:
            waiter.set_exception(httpx.ReadTimeout("timed out waiting for the server"))

    async def _head(self, request: httpx.Request) -> Any:
        self._write_request(request)
        event = await self._next_event()
        while type(event) is h11.InformationalResponse:
            event = await self._next_event()
        if type(event) is not h11.Response:  # pragma: no cover - h11 yields a Response next
            raise httpx.RemoteProtocolError(f"unexpected {type(event).__name__} before the response")
        return event

    @staticmethod
    def _extensions(head: Any) -> dict[str, Any]:
        return {"http_version": b"HTTP/" + head.http_version, "reason_phrase": head.reason}

    async def send_head(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and read the response head; the body is read with :meth:`read_data`
        or :meth:`events` (the returned response has no body of its own)."""
        head = await self._head(request)
        return httpx.Response(
            head.status_code,
            headers=head.headers.raw_items(),
            request=request,
            extensions=self._extensions(head),
        )

    async def read_data(self) -> bytes | None:
        """The next piece of the body, or None at its end (then the connection may be reused)."""
        while True:
            event = await self._next_event()
            if type(event) is h11.Data:
                if event.data:
                    return bytes(event.data)
                continue
            if type(event) is h11.EndOfMessage:
                self.finish_exchange()
                return None

    def finish_exchange(self) -> None:
        """After the response's end: ready the connection for the next request, or close it."""
        if self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE:
            self._h11.start_next_cycle()
        if not self.reusable():
            self.close()
        self.idle_since = time.monotonic()

    async def send(self, request: httpx.Request) -> httpx.Response:
        """One whole exchange: the response with its body read (decoded as httpx would)."""
        head = await self._head(request)
        chunks = []
        while (chunk := await self.read_data()) is not None:
            chunks.append(chunk)
        return httpx.Response(
            head.status_code,
            headers=head.headers.raw_items(),
            content=b"".join(chunks),
            request=request,
            extensions=self._extensions(head),
        )

    def events(self) -> EventReader:
        """The ``data`` of each server-sent event of the response body, after :meth:`send_head`."""
        return EventReader(self)


class EventReader:
    """Async iterator over the ``data`` of a response's server-sent events; ends with the body.

    It reads the connection's h11 events itself (no chain of per-stream iterators to keep alive
    between two events: a waiting stream is this object and one coroutine).

    :param connection: the connection whose response head was read.
    """

    __slots__ = ("_connection", "_decoder", "_ready")

    def __init__(self, connection: HTTPConnection) -> None:
        self._connection = connection
        self._decoder = SSEDecoder()
        self._ready: list[str] = []

    def __aiter__(self) -> EventReader:
        return self

    async def __anext__(self) -> str:
        connection = self._connection
        while not self._ready:
            event = connection.next_event_now()
            if event is h11.NEED_DATA:
                await connection.wait_for_data()
            elif type(event) is h11.Data:
                try:
                    self._ready = self._decoder.feed(bytes(event.data))
                except ValueError as exc:
                    raise httpx.RemoteProtocolError(str(exc)) from exc
                self._ready.reverse()
            elif type(event) is h11.EndOfMessage:
                connection.finish_exchange()
                raise StopAsyncIteration
        return self._ready.pop()


async def _within(awaitable: Any, timeout: float) -> Any:
    # Connecting is a coroutine of the loop: a timeout cancels only it (asyncio.wait_for's known
    # cancel-swallowing race concerns the caller's cancel arriving as the inner call completes;
    # wait_within in deadline.py handles that).
    from airflow_provider_kling.deadline import wait_within

    return await wait_within(awaitable, timeout)
