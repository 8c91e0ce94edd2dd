"""DirectSession: plain reads reach the server exactly as requests would send them, everything
else goes through Session.request, and the errors are requests' own."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from azure.core.exceptions import ServiceRequestError

from durable_helpers import TaskHub, scan
from durable_helpers.direct_session import DirectSession
from durable_helpers.local.ports import free_ports
from durable_helpers.storage import StorageConfigurationError


class Recorder:
    """A real HTTP/1.1 server on 127.0.0.1 that records each request and answers with a small
    body and a cookie (so a session that keeps cookies shows it)."""

    def __init__(self) -> None:
        self.seen: list[dict] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                recorder.seen.append(
                    {"method": self.command, "path": self.path, "body": body,
                     "headers": {k.lower(): v for k, v in self.headers.items()}}
                )  # fmt: skip
                if self.path.startswith("/slow"):
                    threading.Event().wait(2)
                payload = b'{"value": [1, 2, 3]}' if self.command != "HEAD" else b""
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self._send(payload)  # (the client may have given up: a timeout test)

            def _send(self, payload: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Set-Cookie", "affinity=abc; Path=/")
                self.send_header("Content-Length", str(len(payload) or 20))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_HEAD = do_PUT = do_DELETE = _answer

        (self.port,) = free_ports(1)
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture()
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.server.shutdown()
    server.server.server_close()


def _session(cls: type) -> requests.Session:
    session = cls()
    session.trust_env = False
    return session


def test_a_plain_get_is_the_request_requests_sends(recorder):
    headers = {"Accept": "application/json", "x-ms-version": "2019-02-02", "User-Agent": None}
    path = "/devstoreaccount1/Hub()?$filter=PartitionKey%20eq%20%27a%7B%27&$top=5"
    answers = []
    for cls in (requests.Session, DirectSession):
        answers.append(
            _session(cls).request(
                "GET", recorder.url(path), headers=headers, timeout=(5, 5), allow_redirects=False
            )
        )
    plain, direct = recorder.seen
    assert direct == plain  # same method, path (quoting kept), headers (None drops one), body
    assert direct["path"] == path
    assert "python-requests" not in direct["headers"]["user-agent"]  # None removed the default
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[1].json() == answers[0].json() == {"value": [1, 2, 3]}


def test_direct_reads_skip_cookies_and_other_calls_use_session_request(recorder):
    session = _session(DirectSession)
    session.request("GET", recorder.url("/a"), allow_redirects=False)
    assert not session.cookies  # the direct path: nothing stored, as azure-core never reads it
    session.request("PUT", recorder.url("/b"), data=b"x" * 10, allow_redirects=False)
    assert recorder.seen[-1]["body"] == b"x" * 10
    assert session.cookies.get("affinity") == "abc"  # Session.request kept it
    session.request("GET", recorder.url("/c"), allow_redirects=False)
    assert recorder.seen[-1]["headers"].get("cookie") == "affinity=abc"  # so it is sent on

    with pytest.raises(TypeError):  # an argument Session.request does not take stays an error
        session.request("GET", recorder.url("/d"), allow_redirects=False, nonsense=1)


def test_streaming_head_and_errors_are_requests_own(recorder):
    session = _session(DirectSession)
    streamed = session.request("GET", recorder.url("/s"), stream=True, allow_redirects=False)
    assert b"".join(streamed.iter_content(4)) == b'{"value": [1, 2, 3]}'
    head = session.request("HEAD", recorder.url("/h"), allow_redirects=False)
    assert head.status_code == 200 and head.content == b""
    with pytest.raises(requests.exceptions.ReadTimeout):
        session.request("GET", recorder.url("/slow"), timeout=(5, 0.3), allow_redirects=False)
    (closed,) = free_ports(1)
    with pytest.raises(requests.exceptions.ConnectionError):
        session.request("GET", f"http://127.0.0.1:{closed}/", timeout=2, allow_redirects=False)


def test_the_readers_transport_uses_it_and_a_server_down_is_a_clear_error(big_hub):
    transport = scan.pooled_transport(read_timeout=5)
    assert isinstance(transport.session, DirectSession)
    hub = big_hub.taskhub()
    assert len(hub.instances(limit=3)) == 3  # reads through it, against Azurite
    (closed,) = free_ports(1)
    down = TaskHub(
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={'A' * 88};"
        f"TableEndpoint=http://127.0.0.1:{closed}/devstoreaccount1;",
        hub="Nowhere",
        retry_total=0,
    )
    with pytest.raises(StorageConfigurationError, match="Cannot reach") as failure:
        down.instances(limit=1)  # requests' ConnectionError -> azure-core's -> the kit's
    assert isinstance(failure.value.__context__, ServiceRequestError)
    assert "A" * 20 not in str(failure.value)  # no key in the message
