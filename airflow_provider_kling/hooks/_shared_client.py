"""One async fal client per (event loop, connection settings), shared by every Kling trigger.

A triggerer runs thousands of Kling triggers as coroutines on one event loop. Giving each its own
``httpx.AsyncClient`` costs a TLS context (~40 ms of CPU, ~0.8 MB) and a connection per trigger;
this module keeps, per running loop:

* the resolved ``fal`` connection per connection id, read once and re-read after
  :data:`CONNECTION_TTL` seconds (or at once after the key was refused), so a rotated key reaches new
  polls within that time;
* one :class:`SharedFalClient` per set of transport settings: a bounded keep-alive pool for status
  polls, and one dedicated connection per SSE stream (closing one stream never touches another).

The TLS context is built once per process (in a thread: reading the CA bundle must not stall the
loop). Clients are never shared across loops or processes, and are closed when their loop ends:
``asyncio.run`` (which the triggerer uses) cancels the closer task this module parks on the loop.

File descriptors: every SSE stream holds a socket. Streams stop opening when the process gets close
to its ``ulimit -n`` (or the kernel refuses a socket with ``EMFILE``); the trigger then polls
instead, and a warning says which limit to raise.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import ssl
import threading
import time
import urllib.request
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from airflow_provider_kling.hooks._connection import HTTPConnection, origin_of
from airflow_provider_kling.protocol.config import FalSettings
from airflow_provider_kling.protocol.sse import SSEDecoder

log = logging.getLogger(__name__)

#: Seconds a connection read stays valid in the triggerer: the bound on how long a changed
#: connection (a rotated key, a new queue URL) takes to reach new polls.
CONNECTION_TTL = 60.0
#: Descriptors kept free for everything else in the process (Airflow's own sockets, logs, the DB).
FD_RESERVE = 512
#: SSE streams being opened at the same time (connect + headers), so a restart with thousands of
#: triggers does not overflow the server's accept backlog with simultaneous SYNs.
MAX_CONCURRENT_OPENS = 128
#: After running out of descriptors, new streams are not tried for this long (seconds).
STREAM_PAUSE = 60.0

_EXHAUSTED_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE})

_tls_lock = threading.Lock()
_tls: tuple[int, ssl.SSLContext] | None = None


def _build_tls_context() -> ssl.SSLContext:
    global _tls
    with _tls_lock:
        if _tls is None or _tls[0] != os.getpid():
            _tls = (os.getpid(), httpx.create_ssl_context())
        return _tls[1]


async def tls_context() -> ssl.SSLContext:
    """The process's TLS context for fal (built on first use, in a worker thread)."""
    cached = _tls
    if cached is not None and cached[0] == os.getpid():
        return cached[1]
    return await asyncio.to_thread(_build_tls_context)


def is_descriptor_exhaustion(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what caused it) is the process or the system running out of descriptors."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in _EXHAUSTED_ERRNOS:
            return True
        text = str(exc)
        if "Too many open files" in text:
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def descriptor_limit() -> int | None:
    """The soft ``RLIMIT_NOFILE`` (``ulimit -n``) of this process, or None where unknown."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return None
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


class StreamsUnavailable(Exception):
    """No SSE stream may be opened now (descriptor budget spent or exhausted); poll instead."""


@dataclass(frozen=True)
class ClientOptions:
    """Transport settings that decide which shared client a connection uses (never the key).

    :param request_timeout: read/write timeout, seconds.
    :param connect_timeout: connect timeout, seconds.
    :param max_connections: size of the status-poll pool (and bound on polls in flight).
    :param keepalive_expiry: seconds an idle pooled connection is kept open.
    """

    request_timeout: float
    connect_timeout: float
    max_connections: int
    keepalive_expiry: float

    @classmethod
    def from_settings(cls, settings: FalSettings) -> ClientOptions:
        return cls(
            request_timeout=settings.request_timeout,
            connect_timeout=settings.connect_timeout,
            max_connections=settings.max_connections,
            keepalive_expiry=settings.keepalive_expiry,
        )


class SharedFalClient:
    """The HTTP side of every Kling trigger on one loop with the same :class:`ClientOptions`.

    Status polls share up to ``max_connections`` kept-alive connections: a poll takes an idle one
    (the most recently used, so the rest can expire), or opens one, and at most that many polls are
    in flight; the others wait their turn here. (One httpx pool of N connections scans all of them,
    several times, for every request: O(N²) per poll.) Each SSE stream gets a connection of its own,
    closed with the stream. Connections are :class:`~airflow_provider_kling.hooks._connection.HTTPConnection`
    (an asyncio protocol framed by h11), except behind a proxy from the environment, which only a full
    ``httpx.AsyncClient`` speaks.

    :param options: transport settings.
    :param ssl_context: the process's TLS context.
    """

    def __init__(self, options: ClientOptions, ssl_context: ssl.SSLContext) -> None:
        self.options = options
        self._ssl = ssl_context
        # Requests go straight to a connection (no cookies, auth flow or redirects to run: the queue
        # API needs none). Proxies from the environment (HTTPS_PROXY, ...) are only honoured by a
        # full client, so those deployments get one.
        self._proxied = bool(urllib.request.getproxies())
        self._client: httpx.AsyncClient | None = None
        if self._proxied:
            limits = httpx.Limits(
                max_connections=options.max_connections,
                max_keepalive_connections=options.max_connections,
                keepalive_expiry=options.keepalive_expiry,
            )
            timeout = httpx.Timeout(options.request_timeout, connect=options.connect_timeout)
            self._client = httpx.AsyncClient(verify=ssl_context, limits=limits, timeout=timeout)
        self._idle: list[HTTPConnection] = []  # last used last: reuse the warmest
        self._polls: set[HTTPConnection] = set()
        self._slots = asyncio.Semaphore(options.max_connections)
        self._opening = asyncio.Semaphore(MAX_CONCURRENT_OPENS)
        self.streams_open = 0
        limit = descriptor_limit()
        #: SSE streams allowed at once: what the descriptor limit leaves after the reserve and the pool.
        self.stream_budget = None if limit is None else max(0, limit - FD_RESERVE - options.max_connections)
        self._paused_until = 0.0
        self._warned_at = -STREAM_PAUSE
        self.closed = False

    async def connect(self, origin: tuple[str, str, int]) -> HTTPConnection:
        """A new connection to ``origin`` with this client's timeouts and TLS context."""
        return await HTTPConnection.open(
            origin,
            ssl_context=self._ssl,
            connect_timeout=self.options.connect_timeout,
            read_timeout=self.options.request_timeout,
        )

    def _take_idle(self, origin: tuple[str, str, int]) -> HTTPConnection | None:
        expired_before = time.monotonic() - self.options.keepalive_expiry
        for index in range(len(self._idle) - 1, -1, -1):
            connection = self._idle[index]
            if not connection.reusable() or connection.idle_since < expired_before:
                del self._idle[index]
                self._drop(connection)
            elif connection.origin == origin:
                del self._idle[index]
                return connection
        return None

    def _drop(self, connection: HTTPConnection) -> None:
        connection.close()
        self._polls.discard(connection)

    async def send(self, request: httpx.Request) -> httpx.Response:
        """Send one request through the poll pool and read its whole (small) body."""
        if self.closed:
            raise RuntimeError("the shared fal client is closed")
        async with self._slots:
            if self._client is not None:
                return await self._client.send(request)
            origin = origin_of(request.url)
            connection = self._take_idle(origin)
            if connection is None:
                connection = await self.connect(origin)
                self._polls.add(connection)
            try:
                response = await connection.send(request)
            except BaseException:
                self._drop(connection)
                raise
            if connection.reusable() and not self.closed:
                self._idle.append(connection)
            else:
                self._drop(connection)
        return response

    @property
    def poll_connections(self) -> int:
        """Poll connections open now (kept alive or in use)."""
        return sum(1 for connection in self._polls if not connection.is_closed)

    def event_stream(self, request: httpx.Request) -> EventStream:
        """``async with client.event_stream(request) as stream``: the response head is in
        ``stream.response``; iterating ``stream`` gives each server-sent event's data. The stream
        has a connection of its own, closed when the block exits.

        :raises StreamsUnavailable: (on entry) when no descriptor can be spared for another stream.
        """
        return EventStream(self, request)

    def _check_budget(self) -> None:
        if self.closed:
            raise RuntimeError("the shared fal client is closed")
        now = time.monotonic()
        if now < self._paused_until:
            raise StreamsUnavailable("the process ran out of file descriptors recently")
        if self.stream_budget is not None and self.streams_open >= self.stream_budget:
            self._warn(
                f"{self.streams_open} fal status streams are open, the most this process's descriptor "
                f"limit allows (ulimit -n {descriptor_limit()}, minus {FD_RESERVE} reserved and "
                f"{self.options.max_connections} for the poll pool)"
            )
            raise StreamsUnavailable("the descriptor budget for status streams is spent")

    def pause_streams(self, reason: str) -> None:
        """Stop opening streams for :data:`STREAM_PAUSE` seconds after running out of descriptors."""
        self._paused_until = time.monotonic() + STREAM_PAUSE
        self._warn(
            f"This triggerer ran out of file descriptors (ulimit -n {descriptor_limit()}, "
            f"{self.streams_open} fal status streams open) opening a status stream ({reason})"
        )

    def _warn(self, what: str) -> None:
        now = time.monotonic()
        if now - self._warned_at < STREAM_PAUSE:
            return
        self._warned_at = now
        log.warning(
            "%s. Kling triggers follow new jobs by polling instead of SSE until descriptors are free; "
            "jobs are not affected, but give the triggerer a higher limit (ulimit -n of at least the "
            "number of deferred Kling jobs + %d) to keep one stream per job.",
            what,
            FD_RESERVE + self.options.max_connections,
        )

    async def aclose(self) -> None:
        """Close the pool (streams in progress close with their own block)."""
        self.closed = True
        if self._client is not None:
            await self._client.aclose()
        connections, self._polls, self._idle = list(self._polls), set(), []
        for connection in connections:
            connection.close()


class EventStream:
    """One SSE response of a :class:`SharedFalClient` (see :meth:`SharedFalClient.event_stream`).

    :param client: the shared client.
    :param request: the ``GET .../status/stream`` request.
    """

    __slots__ = ("_client", "_connection", "_counted", "_http", "_request", "response")

    def __init__(self, client: SharedFalClient, request: httpx.Request) -> None:
        self._client = client
        self._request = request
        self._connection: HTTPConnection | None = None
        self._http: httpx.Response | None = None
        self._counted = False
        #: The response head (status and headers; its body is this stream's events).
        self.response: httpx.Response | None = None

    async def __aenter__(self) -> EventStream:
        client = self._client
        client._check_budget()
        client.streams_open += 1
        self._counted = True
        try:
            async with client._opening:
                await self._open()
        except BaseException:
            await self._close()
            raise
        return self

    async def _open(self) -> None:
        client = self._client
        try:
            if client._client is not None:
                self._http = self.response = await client._client.send(self._request, stream=True)
                return
            self._connection = await client.connect(origin_of(self._request.url))
            self.response = await self._connection.send_head(self._request)
        except httpx.TransportError as exc:
            if is_descriptor_exhaustion(exc):
                client.pause_streams(f"{type(exc).__name__}: {exc}")
                raise StreamsUnavailable(f"the process ran out of file descriptors ({exc})") from exc
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        await self._close()

    async def _close(self) -> None:
        if self._counted:
            self._counted = False
            self._client.streams_open -= 1
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        if self._http is not None:
            http, self._http = self._http, None
            await http.aclose()

    def __aiter__(self) -> AsyncIterator[str]:
        """The data of each event (a waiting stream keeps no iterator chain alive)."""
        if self._connection is not None:
            return self._connection.events()
        if self._http is not None:
            return event_data(self._http)
        raise RuntimeError("the event stream is not open")


async def event_data(response: httpx.Response) -> AsyncIterator[str]:
    """The data of each server-sent event of an httpx response, through the same decoder as the lean
    connections (one SSE parser for every path); a broken stream is an ``httpx.RemoteProtocolError``."""
    decoder = SSEDecoder()
    async for chunk in response.aiter_bytes():
        try:
            datas = decoder.feed(chunk)
        except ValueError as exc:
            raise httpx.RemoteProtocolError(str(exc)) from exc
        for data in datas:
            yield data


class _LoopClients:
    """Everything shared on one event loop: clients per options, connection reads per conn id."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.pid = os.getpid()
        self.clients: dict[ClientOptions, SharedFalClient] = {}
        self.settings: dict[str, tuple[float, FalSettings]] = {}
        self.pending: dict[Any, asyncio.Future[Any]] = {}
        self.closer = loop.create_task(self._close_on_loop_end(), name="kling-shared-fal-client-closer")

    async def _close_on_loop_end(self) -> None:
        try:
            await asyncio.get_running_loop().create_future()  # never set: ends only by cancellation
        finally:
            loop = asyncio.get_running_loop()
            if _registry.get(loop) is self:
                del _registry[loop]
            clients, self.clients = list(self.clients.values()), {}
            for client in clients:
                try:
                    await client.aclose()
                except Exception:  # pragma: no cover - closing must not hide the shutdown
                    log.debug("Closing a shared fal client failed", exc_info=True)

    async def _single_flight(self, key: Any, make: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``make`` once for concurrent callers with the same ``key``; all get its outcome.

        A caller cancelled while making does not fail the others: they try again themselves.
        """
        while True:
            pending = self.pending.get(key)
            if pending is None:
                break
            value = await asyncio.shield(pending)
            if value is not _RETRY:
                return value
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[key] = future
        try:
            value = await make()
        except asyncio.CancelledError:
            future.set_result(_RETRY)
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters, if any, re-raise it themselves
            raise
        else:
            future.set_result(value)
            return value
        finally:
            del self.pending[key]

    async def get_settings(
        self, conn_id: str, load: Callable[[], Awaitable[FalSettings]], *, ttl: float
    ) -> FalSettings:
        cached = self.settings.get(conn_id)
        if cached is not None and time.monotonic() - cached[0] < ttl:
            return cached[1]

        async def fresh() -> FalSettings:
            settings = await load()
            self.settings[conn_id] = (time.monotonic(), settings)
            return settings

        return await self._single_flight(("settings", conn_id), fresh)  # type: ignore[no-any-return]

    async def get_client(self, options: ClientOptions) -> SharedFalClient:
        client = self.clients.get(options)
        if client is not None and not client.closed:
            return client

        async def make() -> SharedFalClient:
            made = SharedFalClient(options, await tls_context())
            self.clients[options] = made
            return made

        return await self._single_flight(("client", options), make)  # type: ignore[no-any-return]


_RETRY = object()

_registry: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClients] = weakref.WeakKeyDictionary()


def _loop_clients() -> _LoopClients:
    loop = asyncio.get_running_loop()
    state = _registry.get(loop)
    if state is None or state.pid != os.getpid() or state.closer.done():
        state = _registry[loop] = _LoopClients(loop)
    return state


async def shared_settings(
    conn_id: str, load: Callable[[], Awaitable[FalSettings]], *, ttl: float | None = None
) -> FalSettings:
    """The settings of ``conn_id`` on this loop: ``load()`` runs at most once per ``ttl`` seconds
    (default :data:`CONNECTION_TTL`)."""
    return await _loop_clients().get_settings(conn_id, load, ttl=CONNECTION_TTL if ttl is None else ttl)


def forget_settings(conn_id: str, *, older_than: float = 0.0) -> None:
    """Drop the cached settings of ``conn_id`` on this loop if read more than ``older_than`` seconds
    ago (the next call reads the connection again)."""
    state = _loop_clients()
    cached = state.settings.get(conn_id)
    if cached is not None and time.monotonic() - cached[0] >= older_than:
        del state.settings[conn_id]


async def shared_client(settings: FalSettings) -> SharedFalClient:
    """The shared client for ``settings`` on the running loop (created on first use)."""
    return await _loop_clients().get_client(ClientOptions.from_settings(settings))


def loop_clients_snapshot() -> dict[ClientOptions, SharedFalClient]:
    """The clients alive on the running loop (for tests and benchmarks)."""
    state = _registry.get(asyncio.get_running_loop())
    return {} if state is None else dict(state.clients)
