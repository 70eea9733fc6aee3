"""The triggerer's HTTP/1.1 connection (hooks/_connection.py) against tiny servers over loopback:
keep-alive, body framings, streamed events, httpx's exceptions, and no reference cycle left behind."""

from __future__ import annotations

import asyncio
import datetime
import gc
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from airflow_provider_kling.hooks._connection import HTTPConnection
from airflow_provider_kling.protocol.retry import should_retry_exception

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Server:
    """An asyncio server answering with ``handler``; counts the TCP connections it accepted."""

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.accepted = 0
        self.port = 0
        self.server: asyncio.AbstractServer | None = None

    async def __aenter__(self) -> Server:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.accepted += 1
            try:
                await self.handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=self.tls)
        self.port = int(self.server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    def url(self, path: str = "/status", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"


async def _open(server: Server, *, scheme: str = "http", read_timeout: float = 5.0, ssl_context=None):
    return await HTTPConnection.open(
        (scheme, "127.0.0.1", server.port),
        ssl_context=ssl_context,
        connect_timeout=5,
        read_timeout=read_timeout,
    )


async def _keep_alive_json(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        body = b'{"path":"' + head.split(b" ")[1] + b'"}'
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)
        )
        writer.write(body)
        await writer.drain()


async def test_requests_reuse_one_kept_alive_connection():
    async with Server(_keep_alive_json) as server:
        connection = await _open(server)
        first = await connection.send(httpx.Request("GET", server.url("/a?logs=1")))
        assert connection.reusable()
        second = await connection.send(httpx.Request("GET", server.url("/b")))
        connection.close()
    assert (first.status_code, first.json(), second.json()) == (200, {"path": "/a?logs=1"}, {"path": "/b"})
    assert first.request.url.path == "/a" and first.http_version == "HTTP/1.1"
    assert server.accepted == 1


async def test_chunked_and_close_delimited_bodies_are_read_whole():
    async def chunked(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 503 Service Unavailable\r\ntransfer-encoding: chunked\r\n\r\n")
        writer.write(b"5\r\n<html\r\n1\r\n>\r\n0\r\n\r\n")
        await reader.read()

    async def until_close(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b'HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n{"status":')
        await writer.drain()
        writer.write(b'"IN_QUEUE"}')

    async with Server(chunked) as server:
        connection = await _open(server)
        response = await connection.send(httpx.Request("GET", server.url()))
        assert (response.status_code, response.text) == (503, "<html>")
        connection.close()
    async with Server(until_close) as server:
        connection = await _open(server)
        response = await connection.send(httpx.Request("GET", server.url()))
        assert response.json() == {"status": "IN_QUEUE"}
        assert not connection.reusable()  # the server said it closes


async def test_events_arrive_one_by_one_however_the_bytes_are_split():
    release = asyncio.Event()

    async def stream(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        for piece in (b'data: {"status":', b'"IN_QUEUE"}\r\n', b"\r\n: ping\n\n"):
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(0.01)
        await release.wait()
        last = b'data: {"status":"COMPLETED"}\n\n'
        writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(last), last))

    async with Server(stream) as server:
        connection = await _open(server)
        response = await connection.send_head(httpx.Request("GET", server.url("/status/stream")))
        assert response.headers["content-type"] == "text/event-stream"
        events = connection.events()
        assert await events.__anext__() == '{"status":"IN_QUEUE"}'
        release.set()
        assert [data async for data in events] == ['{"status":"COMPLETED"}']
        assert connection.reusable()  # the chunked body ended cleanly


async def test_failures_are_httpx_exceptions_the_retry_rules_know():
    async def silent(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(0.5)

    async def cut(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"sta')
        await writer.drain()

    async def garbage(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SMTP ready\r\n\r\n")
        await writer.drain()

    async with Server(silent) as server:
        connection = await _open(server, read_timeout=0.1)
        with pytest.raises(httpx.ReadTimeout) as timeout:
            await connection.send(httpx.Request("GET", server.url()))
        connection.close()
    async with Server(cut) as server:
        connection = await _open(server)
        with pytest.raises(httpx.RemoteProtocolError) as truncated:
            await connection.send(httpx.Request("GET", server.url()))
    async with Server(garbage) as server:
        connection = await _open(server)
        with pytest.raises(httpx.RemoteProtocolError):
            await connection.send(httpx.Request("GET", server.url()))
    port = server.port  # closed now: nothing listens there
    with pytest.raises(httpx.ConnectError) as refused:
        await HTTPConnection.open(
            ("http", "127.0.0.1", port), ssl_context=None, connect_timeout=5, read_timeout=5
        )
    assert isinstance(refused.value.__cause__, OSError)
    for exc in (timeout.value, truncated.value, refused.value):
        assert should_retry_exception(exc, kind="read")
    assert should_retry_exception(refused.value, kind="submit")  # never sent: safe even for a submit
    assert not should_retry_exception(truncated.value, kind="submit")


def _self_signed(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]),
            False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_path, key_path)
    return server, ssl.create_default_context(cafile=str(cert_path))


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_a_closed_connection_leaves_no_reference_cycle(tmp_path, scheme):
    # What hooks/_gc_freeze.py relies on: a connection frozen while open is freed by reference
    # counting once closed (Python 3.10/3.11 transports keep a cycle unless it is cleared).
    server_tls, client_tls = _self_signed(tmp_path) if scheme == "https" else (None, None)
    async with Server(_keep_alive_json, tls=server_tls) as server:
        gc.collect()
        gc.disable()
        try:
            for _ in range(5):
                connection = await _open(server, scheme=scheme, ssl_context=client_tls)
                response = await connection.send(httpx.Request("GET", server.url(scheme=scheme)))
                assert response.json() == {"path": "/status"}
                connection.close()
                del connection, response
                await asyncio.sleep(0.05)  # the transport finishes closing on the next iterations
            gc.set_debug(gc.DEBUG_SAVEALL)
            gc.collect()
            kinds = [type(o).__name__ for o in gc.garbage]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
    ours = {"HTTPConnection", "Connection", "_SSLProtocolTransport", "SSLProtocol"}
    assert [kind for kind in kinds if kind in ours] == []
    # The server's own transports (asyncio streams) may be left to the collector; the client's are not.
    assert kinds.count("_SelectorSocketTransport") <= server.accepted == 5
