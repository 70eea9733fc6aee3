"""A tiny purpose-built media server for the storage tests: it serves deterministic bytes and can
misbehave on purpose (cut the body, lie about the size, fail once) in ways a real CDN sometimes does.

Routes (query ``size`` = bytes announced):
- ``/video/<name>?size=N``        N bytes with Content-Length.
- ``/cut/<name>?size=N&send=M``   Content-Length N, then M bytes and the connection is closed.
- ``/flaky/<name>?size=N``        the first request is cut after half the body, later ones are whole.
- ``/nolength/<name>?size=N``     N bytes, no Content-Length (HTTP/1.0 close-delimited body).
- ``/mp4/<name>?send=M``          the server's ``mp4`` bytes without Content-Length (close-delimited),
  only the first M of them when ``send`` is given (a connection closed half-way).
- ``/gate/<name>?size=N``         like ``/video``, but the body waits until ``gate`` (a
  ``threading.Barrier``) has as many requests waiting as it has parties: racing clients.
- ``/status/<code>``              an empty answer with that status.
"""

from __future__ import annotations

import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PATTERN = bytes(range(256)) * 4096  # 1 MiB of a repeating, position-dependent pattern


def payload(size: int) -> bytes:
    """The exact bytes the server sends for ``size`` (for small sizes; tests compare files)."""
    whole, rest = divmod(size, len(PATTERN))
    return PATTERN * whole + PATTERN[:rest]


class MediaServer:
    """Start with ``with MediaServer() as srv:``; ``srv.url`` is the base URL."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.mp4 = b""
        self.gate: threading.Barrier | None = None
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                kind = parts.path.strip("/").split("/")[0]
                with server._lock:
                    server.hits[kind] += 1
                    attempt = server.hits[kind]
                    server.headers.append({k.lower(): v for k, v in self.headers.items()})
                size = int(query.get("size", ["0"])[0])
                if kind == "status":
                    code = int(parts.path.strip("/").split("/")[1])
                    self.send_response(code)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if kind == "mp4":
                    body = server.mp4[: int(query["send"][0])] if "send" in query else server.mp4
                    self.protocol_version = "HTTP/1.0"
                    self.send_response(200)
                    self.send_header("Content-Type", "video/mp4")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(body)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if kind == "gate" and server.gate is not None:
                    server.gate.wait(timeout=10)
                if kind == "nolength":
                    self.protocol_version = "HTTP/1.0"
                    self.send_response(200)
                    self.send_header("Content-Type", "video/mp4")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self._send_bytes(size)
                    self.close_connection = True
                    return
                send = size
                if kind == "cut":
                    send = int(query.get("send", [str(size // 2)])[0])
                elif kind == "flaky" and attempt == 1:
                    send = size // 2
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Content-Length", str(size))
                self.end_headers()
                self._send_bytes(send)
                if send < size:
                    self.close_connection = True

            def _send_bytes(self, count: int) -> None:
                view = memoryview(PATTERN)
                while count > 0:
                    n = min(count, len(PATTERN))
                    self.wfile.write(view[:n])
                    count -= n
                self.wfile.flush()

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> MediaServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
