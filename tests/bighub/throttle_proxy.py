"""A real HTTP proxy in front of Azurite's table endpoint that throttles some requests the way
Azure Storage does (503 ServerBusy, 429 with Retry-After), to test the reader's backoff."""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from durable_helpers.local.ports import free_ports

BUSY = (
    b'{"odata.error":{"code":"ServerBusy","message":{"lang":"en-US",'
    b'"value":"The server is busy."}}}'
)


class ThrottlingProxy:
    """Forwards 127.0.0.1:port to ``target_port``; request n (1-based) is throttled when
    ``n % every == 0`` (every=1: always). Counts what it served."""

    def __init__(self, target_port: int, every: int) -> None:
        self.target_port, self.every = target_port, every
        self.requests = self.throttled = 0
        self._lock = threading.Lock()
        (self.port,) = free_ports(1)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with proxy._lock:
                    proxy.requests += 1
                    n = proxy.requests
                    throttle = n % proxy.every == 0
                    proxy.throttled += throttle
                if throttle:
                    status = 429 if (n // proxy.every) % 2 else 503
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("x-ms-error-code", "ServerBusy")
                    if status == 429:
                        self.send_header("Retry-After", "0")
                    self.send_header("Content-Length", str(len(BUSY)))
                    self.end_headers()
                    self.wfile.write(BUSY)
                    return
                upstream = http.client.HTTPConnection("127.0.0.1", proxy.target_port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("transfer-encoding", "content-length", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                upstream.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_MERGE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ThrottlingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)
