"""Kling triggers on one event loop share one fal client: shared, closed with the loop, cancel-safe,
following connection changes, and falling back to polling when descriptors run out."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import time

import pytest

from airflow_provider_kling.hooks import _shared_client as shared
from airflow_provider_kling.hooks import kling as hook_module
from airflow_provider_kling.hooks.kling import KlingHook
from airflow_provider_kling.protocol.retry import RetryPolicy
from airflow_provider_kling.triggers.kling import KlingRequestTrigger

ENDPOINT = "fal-ai/kling-video/v1.6/standard/text-to-video"
KEY = "test-key-id:test-key-secret"
FAST_RETRIES = RetryPolicy(max_attempts=2, initial_delay=0.01, max_delay=0.02, max_total=1.0, jitter=0.0)


class CountingTrigger(KlingRequestTrigger):
    """The real trigger; its hooks count connection reads and keep the client they used."""

    reads: list[str] = []
    hooks: list[KlingHook] = []

    def _hook(self) -> KlingHook:
        trigger_cls = type(self)

        class Hook(KlingHook):
            async def _aload_settings(self):
                trigger_cls.reads.append(self.fal_conn_id)
                return await super()._aload_settings()

        hook = Hook(fal_conn_id=self.fal_conn_id, shared_client=True, retry_policy=FAST_RETRIES)
        trigger_cls.hooks.append(hook)
        return hook


@pytest.fixture(autouse=True)
def _fresh_counters():
    CountingTrigger.reads = []
    CountingTrigger.hooks = []


def _submit(emulator, n: int = 1):
    with KlingHook("fal_default") as hook:
        return [hook.submit(ENDPOINT, {"prompt": f"fox {i}"}) for i in range(n)]


def _trigger(request, cls=CountingTrigger, **overrides):
    kwargs = {
        "fal_conn_id": "fal_default",
        **request.to_dict(),
        "poll_interval": 0.05,
        "end_time": time.time() + 30,
        "use_sse": True,
        "submitted_at": time.time(),
    }
    kwargs.update(overrides)
    return cls(**kwargs)


async def _events(trigger) -> list[dict]:
    return [event.payload async for event in trigger.run()]


@pytest.mark.parametrize("use_sse", [True, False])
async def test_two_triggers_on_one_loop_share_one_client_and_one_connection_read(emulator, fal_conn, use_sse):
    first, second = _submit(emulator, 2)
    results = await asyncio.gather(
        _events(_trigger(first, use_sse=use_sse)), _events(_trigger(second, use_sse=use_sse))
    )
    assert [[e["status"] for e in events] for events in results] == [["success"], ["success"]]
    assert {events[0]["request_id"] for events in results} == {first.request_id, second.request_id}
    clients = shared.loop_clients_snapshot()
    assert len(clients) == 1
    (client,) = clients.values()
    assert all([await shared.shared_client(hook._settings) is client for hook in CountingTrigger.hooks])
    assert CountingTrigger.reads == ["fal_default"]  # one read of the connection for both triggers
    assert not client.closed  # a finished trigger leaves the client to the others


def test_shared_client_is_closed_when_the_loop_ends(emulator, fal_conn):
    (request,) = _submit(emulator)

    async def main():
        events = await _events(_trigger(request, use_sse=False))
        (client,) = shared.loop_clients_snapshot().values()
        assert not client.closed
        assert client.poll_connections == 1  # the poll's connection is kept alive for the next one
        return events, client, list(client._polls)

    events, client, connections = asyncio.run(main())
    assert [e["status"] for e in events] == ["success"]
    assert client.closed
    assert connections and all(c.is_closed for c in connections)  # its sockets are closed too

    async def again():
        # A new loop never sees the old loop's client.
        assert shared.loop_clients_snapshot() == {}
        return await _events(_trigger(request, use_sse=False))

    assert [e["status"] for e in asyncio.run(again())] == ["success"]


class StreamServer:
    """A tiny SSE status server: holds each stream open until the test completes its job."""

    def __init__(self) -> None:
        self.open: dict[str, asyncio.StreamWriter] = {}
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        rid = head.split(b" ")[1].decode().split("/")[4]
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n")
        writer.write(b"data: " + json.dumps({"status": "IN_PROGRESS", "request_id": rid}).encode() + b"\n\n")
        await writer.drain()
        self.open[rid] = writer
        try:
            await reader.read()  # returns when the client closes its end
        finally:
            self.open.pop(rid, None)
            writer.close()

    def complete(self, rid: str) -> None:
        writer = self.open[rid]
        writer.write(b"data: " + json.dumps({"status": "COMPLETED", "request_id": rid}).encode() + b"\n\n")
        writer.close()

    async def wait(self, predicate, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"timed out; open streams: {sorted(self.open)}"
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        for writer in list(self.open.values()):
            writer.close()
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


async def test_cancelling_one_trigger_closes_its_stream_and_leaves_the_others_open(monkeypatch):
    server = StreamServer()
    url = await server.start()
    monkeypatch.setenv(
        "AIRFLOW_CONN_FAL_DEFAULT", json.dumps({"conn_type": "fal", "host": url, "password": KEY})
    )
    from airflow_provider_kling.protocol.types import FalRequest

    rids = ["r1", "r2", "r3"]
    requests = [
        FalRequest(
            rid,
            ENDPOINT,
            f"{url}/fal-ai/kling-video/requests/{rid}/status",
            f"{url}/fal-ai/kling-video/requests/{rid}",
            f"{url}/fal-ai/kling-video/requests/{rid}/cancel",
        )
        for rid in rids
    ]
    try:
        tasks = {req.request_id: asyncio.ensure_future(_events(_trigger(req))) for req in requests}
        await server.wait(lambda: set(server.open) == set(rids))
        # Every trigger has taken its first event: r2 is cancelled while it waits on its stream.
        await asyncio.sleep(0.3)
        tasks["r2"].cancel()
        await server.wait(lambda: "r2" not in server.open)  # its socket was closed...
        with pytest.raises(asyncio.CancelledError):
            await tasks["r2"]
        await asyncio.sleep(0.2)
        assert set(server.open) == {"r1", "r3"}  # ...and only its socket
        assert not tasks["r1"].done() and not tasks["r3"].done()
        (client,) = shared.loop_clients_snapshot().values()
        assert client.streams_open == 2 and not client.closed
        server.complete("r1")
        server.complete("r3")
        results = {rid: await tasks[rid] for rid in ("r1", "r3")}
    finally:
        await server.stop()
    assert {rid: [e["status"] for e in events] for rid, events in results.items()} == {
        "r1": ["success"],
        "r3": ["success"],
    }
    assert client.streams_open == 0


async def test_a_changed_connection_reaches_new_polls(emulator, fal_conn, monkeypatch):
    monkeypatch.setattr(shared, "CONNECTION_TTL", 0.2)
    emulator.processing_time = 6.0
    (request,) = _submit(emulator)
    task = asyncio.ensure_future(_events(_trigger(request, use_sse=False)))
    while emulator.requests["status"] == 0 and not task.done():
        await asyncio.sleep(0.02)
    assert emulator.last_headers("status")["authorization"] == f"Key {KEY}"
    monkeypatch.setenv("AIRFLOW_CONN_FAL_DEFAULT", emulator.connection_json(key="new-id:new-secret"))
    # Bounded, not instant: the cached read expires after CONNECTION_TTL, then the next poll uses
    # it. The wait is generous so a loaded machine does not fail the test; the job outlasts it.
    deadline = time.monotonic() + 4.0
    while (
        emulator.last_headers("status")["authorization"] != "Key new-id:new-secret"
        and time.monotonic() < deadline
    ):
        await asyncio.sleep(0.05)
    assert emulator.last_headers("status")["authorization"] == "Key new-id:new-secret"
    assert [e["status"] for e in await task] == ["success"]
    assert CountingTrigger.reads.count("fal_default") >= 2


async def test_a_revoked_key_rereads_the_connection_at_once(emulator, fal_conn, monkeypatch):
    # The key was rotated and the old one revoked before the cached read expired: the refused poll
    # re-reads the connection and carries on with the new key instead of failing the job.
    monkeypatch.setattr(hook_module, "_REREAD_AFTER_AUTH_ERROR", 0.0)
    emulator.processing_time = 1.0
    (request,) = _submit(emulator)
    task = asyncio.ensure_future(_events(_trigger(request, use_sse=False)))
    await asyncio.sleep(0.3)
    monkeypatch.setenv("AIRFLOW_CONN_FAL_DEFAULT", emulator.connection_json(key="new-id:new-secret"))
    emulator.require_key = "new-id:new-secret"
    assert [e["status"] for e in await task] == ["success"]
    assert emulator.last_headers("status")["authorization"] == "Key new-id:new-secret"


async def test_no_descriptor_budget_for_streams_means_polling_with_a_warning(emulator, fal_conn, caplog):
    emulator.processing_time = 0.5
    (request,) = _submit(emulator)
    (client_settings,) = [await KlingHook("fal_default", shared_client=True)._asettings()]
    client = await shared.shared_client(client_settings)
    client.stream_budget = 0  # as if ulimit -n were spent by other streams
    with caplog.at_level(logging.WARNING, logger=shared.__name__):
        events = await _events(_trigger(request))
    assert [e["status"] for e in events] == ["success"]
    assert emulator.requests["status_stream"] == 0 and emulator.requests["status"] >= 1
    assert any("descriptor limit" in r.getMessage() and "polling" in r.getMessage() for r in caplog.records)


async def test_descriptor_exhaustion_falls_back_to_polling_and_fails_no_job(
    emulator, fal_conn, caplog, capsys
):
    emulator.processing_time = 0.05
    (request,) = _submit(emulator)
    # The emulator shares this process: let it finish the job (it writes a video) before the
    # descriptors run out, so only the trigger's side is starved.
    deadline = time.monotonic() + 10
    while emulator.job_state(request.request_id) != "COMPLETED":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    await shared.tls_context()  # reading the CA bundle needs a descriptor too; not what is tested
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    spent: list[int] = []

    def take_free_descriptors() -> None:
        while True:  # the next socket() fails with EMFILE
            try:
                spent.append(os.open(os.devnull, os.O_RDONLY))
            except OSError:
                return

    async def keep_exhausted() -> None:
        while True:  # a descriptor closed anywhere in this process is taken again at once
            take_free_descriptors()
            await asyncio.sleep(0.005)

    hog = None
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 4096), hard))
        take_free_descriptors()
        hog = asyncio.ensure_future(keep_exhausted())
        with caplog.at_level(logging.WARNING):
            task = asyncio.ensure_future(_events(_trigger(request, max_consecutive_failures=2)))
            await asyncio.sleep(1.0)
            assert not task.done()  # out of descriptors: waiting, not failing
            hog.cancel()
            for fd in spent:
                os.close(fd)
            spent = []
            events = await asyncio.wait_for(task, 20)
    finally:
        if hog is not None:
            hog.cancel()
        for fd in spent:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert [e["status"] for e in events] == ["success"]
    messages = [r.getMessage() for r in caplog.records]
    assert any(
        "ran out of file descriptors (ulimit -n" in m and "polling instead of SSE" in m for m in messages
    )
    # The trigger's own line (Airflow's structlog writes trigger logs to stdout).
    assert "this triggerer is out of file descriptors (raise its ulimit -n)" in capsys.readouterr().out
    assert emulator.requests["status_stream"] == 0  # the stream never opened; polling finished the job


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"max_connections": 0}, "'max_connections' must be an integer >= 1"),
        ({"max_connections": "many"}, "'max_connections' must be an integer >= 1"),
        ({"keepalive_expiry": -1}, "'keepalive_expiry' must be > 0 seconds"),
    ],
)
def test_pool_extras_are_checked(extra, message):
    from airflow_provider_kling.exceptions import KlingConfigurationError
    from airflow_provider_kling.protocol.config import settings_from_connection

    with pytest.raises(KlingConfigurationError, match=message):
        settings_from_connection(host=None, port=None, password=KEY, extra=extra, environ={})
    settings = settings_from_connection(
        host=None, port=None, password=KEY, extra={"max_connections": "8", "keepalive_expiry": 90}, environ={}
    )
    assert (settings.max_connections, settings.keepalive_expiry) == (8, 90.0)
