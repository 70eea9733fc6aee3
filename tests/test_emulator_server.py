"""FalEmulator lifecycle and knobs, connection strings, the HTTP control API, webhooks and the CLI."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from airflow_provider_kling.emulator import FalEmulator

T2V = "fal-ai/kling-video/v1.6/standard/text-to-video"


def test_start_stop_without_with_and_no_thread_leak():
    before = set(threading.enumerate())
    emu = FalEmulator(processing_time=0.05)
    with pytest.raises(RuntimeError, match="not started"):
        _ = emu.url
    emu.start()
    assert emu.url.startswith("http://127.0.0.1:") and emu.port > 0
    assert (emu.rest_url, emu.cdn_url) == (f"{emu.url}/rest", f"{emu.url}/cdn")
    with httpx.Client() as client:
        body = client.post(f"{emu.url}/{T2V}", json={"prompt": "x"}).json()
        while client.get(body["status_url"]).status_code != 200:
            time.sleep(0.02)
    emu.stop()
    emu.stop()  # idempotent
    assert set(threading.enumerate()) <= before
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{emu.url}/_emulator/stats")


def test_stop_ends_open_status_streams():
    emu = FalEmulator(processing_time=30).start()
    body = httpx.post(f"{emu.url}/{T2V}", json={"prompt": "x"}).json()
    received: list[str] = []
    streaming = threading.Event()

    def follow() -> None:
        try:
            with httpx.stream("GET", body["status_url"] + "/stream", timeout=10) as response:
                for line in response.iter_lines():
                    received.append(line)
                    streaming.set()
        except httpx.HTTPError:
            received.append("<transport error>")
        streaming.set()

    reader = threading.Thread(target=follow)
    reader.start()
    # Stop only once the stream is open: a fixed sleep let a loaded machine send the GET after
    # stop had begun, and a stream opened on a closing emulator is rightly empty.
    assert streaming.wait(10)
    started = time.monotonic()
    emu.stop()
    # A hang guard, not a benchmark: stop must not wait for the 30 s job or the open stream.
    assert time.monotonic() - started < 2.5
    reader.join(5)
    assert not reader.is_alive()
    assert received and received[0].startswith("data: ")


def test_knobs_are_attributes_and_validated(emulator):
    emulator.processing_time = 0.1
    emulator.concurrency = 3
    assert emulator.app.knobs.processing_time == 0.1 and emulator.concurrency == 3
    with pytest.raises(ValueError):
        emulator.concurrency = 0
    with pytest.raises(AttributeError):
        _ = emulator.no_such_knob


def test_connection_json_and_uri_parse_in_airflow(emulator):
    from airflow.models.connection import Connection

    key = "kid:secret/with+chars"
    from_json = Connection.from_json(emulator.connection_json(key=key), conn_id="fal_default")
    from_uri = Connection(conn_id="fal_default", uri=emulator.connection_uri(key=key))
    for conn in (from_json, from_uri):
        assert conn.conn_type == "fal"
        assert conn.password == key
        assert conn.extra_dejson == {
            "queue_url": emulator.url,
            "rest_url": emulator.rest_url,
            "cdn_url": emulator.cdn_url,
        }
    assert from_json.host == emulator.url
    assert (from_uri.host, from_uri.port) == ("127.0.0.1", emulator.port)


def test_control_api(emulator):
    control = f"{emulator.url}/_emulator"
    with httpx.Client(timeout=5) as client:
        config = client.post(f"{control}/config", json={"processing_time": 0.05, "concurrency": 1})
        assert config.status_code == 200 and config.json()["concurrency"] == 1
        assert "require_key" not in config.json()
        assert client.post(f"{control}/config", json={"bogus": 1}).status_code == 400
        assert emulator.processing_time == 0.05

        inject = client.post(
            f"{control}/inject", json={"kind": "rate_limit", "route": "submit", "retry_after": 2}
        )
        assert inject.json()["faults"] == [
            {"kind": "rate_limit", "route": "submit", "times": 1, "retry_after": 2}
        ]
        assert client.post(f"{emulator.url}/{T2V}", json={"prompt": "x"}).status_code == 429
        assert client.post(f"{control}/inject", json={"kind": "nope"}).status_code == 400

        client.post(f"{control}/fail_next", json={"error": "boom", "error_type": "runner_server_error"})
        body = client.post(f"{emulator.url}/{T2V}", json={"prompt": "x"}).json()
        while (status := client.get(body["status_url"])).status_code != 200:
            time.sleep(0.02)
        assert status.json()["error_type"] == "runner_server_error"

        stats = client.get(f"{control}/stats").json()
        assert stats["submissions"] == {T2V: 1}
        assert stats["requests"] == {"submit": 2, "status": stats["requests"]["status"]}
        assert stats["jobs"] == {"COMPLETED": 1}
        assert client.post(f"{control}/reset").json() == {"ok": True}
        assert client.get(f"{control}/stats").json()["submissions"] == {}
    assert emulator.requests == {}  # control calls are never counted


class _Receiver(BaseHTTPRequestHandler):
    """Records webhook POSTs; answers with the status the test server was given."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.calls.append((dict(self.headers), body))  # type: ignore[attr-defined]
        self.send_response(self.server.answer)  # type: ignore[attr-defined]
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.calls, server.answer = [], 200  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def _verify(jwks: dict, headers: dict[str, str], body: bytes) -> bool:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    message = "\n".join(
        [
            headers["X-Fal-Webhook-Request-Id"],
            headers["X-Fal-Webhook-User-Id"],
            headers["X-Fal-Webhook-Timestamp"],
            hashlib.sha256(body).hexdigest(),
        ]
    ).encode()
    for key in jwks["keys"]:
        raw = base64.urlsafe_b64decode(key["x"] + "=" * (-len(key["x"]) % 4))
        try:
            Ed25519PublicKey.from_public_bytes(raw).verify(
                bytes.fromhex(headers["X-Fal-Webhook-Signature"]), message
            )
            return True
        except Exception:
            continue
    return False


def _wait_for(predicate, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_signed_webhooks_for_success_and_validation_error(emulator, receiver):
    emulator.processing_time = 0.05
    hook = f"http://127.0.0.1:{receiver.server_port}/hook"
    with httpx.Client(timeout=5) as client:
        ok = client.post(f"{emulator.url}/{T2V}", params={"fal_webhook": hook}, json={"prompt": "x"}).json()
        _wait_for(lambda: len(receiver.calls) == 1)
        bad = client.post(f"{emulator.url}/{T2V}", params={"fal_webhook": hook}, json={}).json()
        _wait_for(lambda: len(receiver.calls) == 2)
        jwks = client.get(f"{emulator.rest_url}/.well-known/jwks.json").json()

    (ok_headers, ok_body), (bad_headers, bad_body) = receiver.calls
    assert _verify(jwks, ok_headers, ok_body) and _verify(jwks, bad_headers, bad_body)
    assert not _verify(jwks, ok_headers, ok_body + b" ")
    assert abs(int(ok_headers["X-Fal-Webhook-Timestamp"]) - time.time()) < 60
    delivered = json.loads(ok_body)
    assert delivered["status"] == "OK" and delivered["error"] is None
    assert delivered["request_id"] == delivered["gateway_request_id"] == ok["request_id"]
    assert delivered["payload"]["video"]["content_type"] == "video/mp4"
    failed = json.loads(bad_body)
    assert (failed["status"], failed["error"]) == ("ERROR", "Invalid status code: 422")
    assert failed["request_id"] == bad["request_id"]
    assert failed["payload"]["detail"][0]["loc"] == ["body", "prompt"]


def test_webhook_is_retried_until_accepted_attempts(emulator, receiver):
    emulator.processing_time = 0.02
    emulator.webhook_retry_delay = 0.02
    emulator.webhook_attempts = 3
    receiver.answer = 500
    hook = f"http://127.0.0.1:{receiver.server_port}/hook"
    httpx.post(f"{emulator.url}/{T2V}", params={"fal_webhook": hook}, json={"prompt": "x"})
    _wait_for(lambda: len(emulator.webhook_deliveries) == 3)
    time.sleep(0.1)
    assert [d["status_code"] for d in emulator.webhook_deliveries] == [500, 500, 500]
    assert len(receiver.calls) == 3


def test_cli_prints_url_and_connection_then_stops_on_sigterm():
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_kling.emulator", "--port", "0", "--processing-time", "0.05"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        first, second = process.stdout.readline().strip(), process.stdout.readline().strip()
        url = first.rsplit(" ", 1)[-1]
        assert url.startswith("http://127.0.0.1:")
        assert second.startswith("export AIRFLOW_CONN_FAL_DEFAULT='fal://:")
        uri = shlex.split(second.split("=", 1)[1])[0]
        assert parse_qs(urlsplit(uri).query)["queue_url"] == [url]
        response = httpx.post(f"{url}/{T2V}", json={"prompt": "x"}, timeout=5)
        assert response.status_code == 200 and response.json()["status_url"].startswith(url)
        assert httpx.get(f"{url}/_emulator/stats").json()["submissions"] == {T2V: 1}
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0


def test_emulator_never_imports_airflow():
    script = (
        "import sys, httpx, time\n"
        "from airflow_provider_kling.emulator import FalEmulator\n"
        "with FalEmulator(processing_time=0.02) as emu:\n"
        f"    body = httpx.post(emu.url + '/{T2V}', json={{'prompt': 'x'}}).json()\n"
        "    while httpx.get(body['status_url']).status_code != 200:\n"
        "        time.sleep(0.02)\n"
        "    assert httpx.get(body['response_url']).status_code == 200\n"
        "print(sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')))\n"
    )
    # AIRFLOW_HOME stays set (conftest's): should a regression import airflow, it must not make ~/airflow.
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
