"""The HTTP API's entity routes, driving real function-based entities on a real SDK worker.

Each test runs against every sidecar that implements entities: the SDK's in-memory backend
always, and the local task hub as soon as it answers the entity RPCs (today it answers
UNIMPLEMENTED, so its run is skipped with that reason and turns on by itself once it does).
The HTTP API is the real aiohttp app (``create_app``) on a free port, in a thread of its own.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import quote

import grpc
import httpx
import pytest
from aiohttp import web
from durabletask.client import TaskHubGrpcClient
from durabletask.entities import EntityInstanceId
from durabletask.worker import TaskHubGrpcWorker

from durable_helpers.local.http_api import create_app
from durable_helpers.local.ports import free_ports

HUB = "EntityHttpHub"


# -- the entities (function-based, as a user writes them) -----------------------------------------


def counter(ctx, value):
    """A counter: add, reset, get; delete removes its state."""
    if ctx.operation == "add":
        ctx.set_state(ctx.get_state(int, 0) + value)
    elif ctx.operation == "reset":
        ctx.set_state(0)
    elif ctx.operation == "get":
        return ctx.get_state(int, 0)
    elif ctx.operation == "delete":
        ctx.set_state(None)
    else:
        raise ValueError(f"counter has no operation {ctx.operation!r}")


def notebook(ctx, text):
    """A list of notes: ``write`` appends the input (any JSON value) as it arrived."""
    if ctx.operation == "write":
        ctx.set_state([*ctx.get_state(list, []), text])
    elif ctx.operation == "delete":
        ctx.set_state(None)


# -- the stack: a sidecar, a worker with the entities, the HTTP API ------------------------------


@dataclass
class EntityApi:
    base: str
    http: httpx.Client

    def url(self, name: str, key: str = "") -> str:
        path = f"{self.base}/entities/{quote(name, safe='')}"
        return path + (f"/{quote(key, safe='')}" if key else "")


class _HttpApiThread:
    """``create_app(sidecar)`` served on 127.0.0.1:port by its own event loop."""

    def __init__(self, sidecar: str, port: int) -> None:
        self.sidecar, self.port = sidecar, port
        self.loop = asyncio.new_event_loop()
        self.runner: web.AppRunner | None = None
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.runner = web.AppRunner(create_app(self.sidecar, hub=HUB))
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", self.port)
        self.loop.run_until_complete(site.start())
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.runner.cleanup())
        self.loop.close()

    def __enter__(self) -> _HttpApiThread:
        self.thread.start()
        assert self.ready.wait(20), "the HTTP API did not start in 20 s"
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(20)


def _sidecar(kind: str, request: pytest.FixtureRequest, port: int):
    if kind != "memory" and os.environ.get("STACK_TEST_BACKEND", "").lower() == "memory":
        pytest.skip("STACK_TEST_BACKEND=memory: only the in-memory backend runs")
    if kind == "memory":
        from durable_helpers.local.memory_sidecar import MemorySidecar

        return MemorySidecar(port=port)
    from durable_helpers.local.sidecar import LocalTaskHub

    azurite = request.getfixturevalue("azurite")
    return LocalTaskHub(connection=azurite.connection_string, hub=HUB, port=port)


def _skip_unless_entities(address: str, kind: str) -> None:
    client = TaskHubGrpcClient(host_address=address)
    try:
        client.get_entity(EntityInstanceId("counter", "probe"))
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.UNIMPLEMENTED:
            pytest.skip(
                f"the {kind} sidecar answers UNIMPLEMENTED for entities; these tests run "
                "against it as soon as it implements them"
            )
        raise
    finally:
        client.close()


@pytest.fixture(scope="module", params=["memory", "local task hub"])
def api(request: pytest.FixtureRequest) -> Iterator[EntityApi]:
    sidecar_port, http_port = free_ports(2)
    with _sidecar(request.param, request, sidecar_port) as sidecar:
        _skip_unless_entities(sidecar.address, request.param)
        worker = TaskHubGrpcWorker(host_address=sidecar.address)
        worker.add_entity(counter)
        worker.add_entity(notebook)
        worker.start()
        try:
            with _HttpApiThread(sidecar.address, http_port), httpx.Client(timeout=15) as http:
                yield EntityApi(f"http://127.0.0.1:{http_port}/runtime/webhooks/durabletask", http)
        finally:
            worker.stop()


def _key() -> str:
    return "k" + uuid.uuid4().hex[:10]


def _until(
    api: EntityApi, url: str, check: Callable[[httpx.Response], bool], timeout: float = 30.0
) -> httpx.Response:
    """GET ``url`` until ``check(response)``; fail with the last answer after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not check(response := api.http.get(url)):
        assert time.monotonic() < deadline, (
            f"{url} never answered as expected in {timeout} s; last: "
            f"{response.status_code} {response.text[:300]}"
        )
        time.sleep(0.1)
    return response


def _state_is(value) -> Callable[[httpx.Response], bool]:
    return lambda r: r.status_code == 200 and r.json() == value


def _signal(api: EntityApi, name: str, key: str, op: str, **body) -> httpx.Response:
    return api.http.post(api.url(name, key), params={"op": op}, **body)


# -- read, signal, delete ------------------------------------------------------------------------


def test_signals_run_in_order_and_get_reads_the_state(api: EntityApi) -> None:
    key = _key()
    assert api.http.get(api.url("counter", key)).status_code == 404  # not yet
    for body in ("5", "-2", "10"):
        sent = _signal(api, "counter", key, "add", content=body, headers=_JSON)
        assert (sent.status_code, sent.content) == (202, b"")
    state = _until(api, api.url("counter", key), _state_is(13))
    assert state.headers["Content-Type"].startswith("application/json")


def test_the_name_is_not_case_sensitive_and_the_key_is(api: EntityApi) -> None:
    key = _key()
    assert _signal(api, "Counter", key, "add", json=2).status_code == 202
    _until(api, api.url("counter", key), _state_is(2))
    assert api.http.get(api.url("COUNTER", key)).json() == 2
    assert api.http.get(api.url("counter", key.upper())).status_code == 404


def test_a_body_that_is_not_json_typed_arrives_as_a_string(api: EntityApi) -> None:
    key = _key()
    plain = {"content": "buy milk", "headers": {"Content-Type": "text/plain"}}
    assert _signal(api, "notebook", key, "write", **plain).status_code == 202
    assert _signal(api, "notebook", key, "write", json={"n": [1, 2]}).status_code == 202
    assert _signal(api, "notebook", key, "write").status_code == 202  # no body: no input
    _until(api, api.url("notebook", key), _state_is(["buy milk", {"n": [1, 2]}, None]))


def test_delete_signals_the_delete_operation(api: EntityApi) -> None:
    key = _key()
    _signal(api, "counter", key, "add", json=7)
    _until(api, api.url("counter", key), _state_is(7))
    deleted = api.http.delete(api.url("counter", key))
    assert (deleted.status_code, deleted.content) == (202, b"")
    _until(api, api.url("counter", key), lambda r: r.status_code == 404)


def test_an_operation_that_raises_leaves_the_entity_working(api: EntityApi) -> None:
    key = _key()
    _signal(api, "counter", key, "add", json=1)
    assert _signal(api, "counter", key, "explode").status_code == 202  # accepted, then fails
    _signal(api, "counter", key, "add", json=1)
    _until(api, api.url("counter", key), _state_is(2))


# -- listing --------------------------------------------------------------------------------------


def _listing(api: EntityApi, name: str = "", **params) -> list[dict]:
    """Every page of GET /entities[/{name}], following the continuation header."""
    url = api.url(name) if name else f"{api.base}/entities"
    items: list[dict] = []
    headers: dict[str, str] = {}
    for _ in range(100):
        page = api.http.get(url, params=params, headers=headers)
        assert page.status_code == 200, page.text
        items += page.json()
        token = page.headers.get("x-ms-continuation-token")
        if not token:
            return items
        headers = {"x-ms-continuation-token": token}
    raise AssertionError(f"{url} kept answering continuation tokens after 100 pages")


def test_the_list_filters_by_name_pages_with_top_and_fetches_state(api: EntityApi) -> None:
    keys = sorted(_key() for _ in range(3))
    for value, key in enumerate(keys, start=1):
        _signal(api, "counter", key, "add", json=value)
    _signal(api, "notebook", keys[0], "write", json="hi")
    for value, key in enumerate(keys, start=1):
        _until(api, api.url("counter", key), _state_is(value))
    _until(api, api.url("notebook", keys[0]), _state_is(["hi"]))

    counters = [e for e in _listing(api, "Counter", top=1) if e["entityId"]["key"] in keys]
    assert [e["entityId"] for e in counters] == [{"key": k, "name": "counter"} for k in keys]
    assert all(set(e) == {"entityId", "lastOperationTime"} for e in counters)  # no state asked
    assert all(e["lastOperationTime"].endswith("Z") for e in counters)

    first_page = api.http.get(api.url("counter"), params={"top": 1})
    assert len(first_page.json()) == 1 and first_page.headers.get("x-ms-continuation-token")

    with_state = _listing(api, "counter", fetchState="true")
    states = {e["entityId"]["key"]: e["state"] for e in with_state if e["entityId"]["key"] in keys}
    assert states == {key: value for value, key in enumerate(keys, start=1)}

    everything = {(e["entityId"]["name"], e["entityId"]["key"]) for e in _listing(api)}
    assert {("counter", k) for k in keys} | {("notebook", keys[0])} <= everything
    assert ("notebook", keys[1]) not in everything


def test_the_list_filters_by_last_operation_time(api: EntityApi) -> None:
    key = _key()
    _signal(api, "counter", key, "add", json=1)
    _until(api, api.url("counter", key), _state_is(1))
    found = _listing(api, "counter", lastOperationTimeFrom="2000-01-01T00:00:00Z")
    assert key in {e["entityId"]["key"] for e in found}
    assert _listing(api, "counter", lastOperationTimeFrom="2999-01-01T00:00:00Z") == []
    assert _listing(api, "counter", lastOperationTimeTo="2000-01-01T00:00:00Z") == []


# -- bad input ------------------------------------------------------------------------------------

_JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize("key", ["a/b", "a\\b", "a#b", "a?b", "tab\there", "nul\x00"])
def test_keys_with_reserved_or_control_characters_are_refused(api: EntityApi, key: str) -> None:
    for response in (
        _signal(api, "counter", key, "add", json=1),
        api.http.get(api.url("counter", key)),
        api.http.delete(api.url("counter", key)),
    ):
        assert response.status_code == 400, (key, response.text)
        assert "must not contain" in response.json()["message"]


def test_a_name_with_at_sign_is_refused(api: EntityApi) -> None:
    response = api.http.get(api.url("count@er", "k"))
    assert response.status_code == 400
    assert "'@'" in response.json()["message"]


def test_an_entity_that_does_not_exist_is_404(api: EntityApi) -> None:
    for url in (api.url("counter", _key()), api.url("nosuchentity", _key())):
        response = api.http.get(url)
        assert response.status_code == 404
        assert set(response.json()) == {"error", "message"}


def test_a_json_typed_body_that_is_not_json_is_400(api: EntityApi) -> None:
    key = _key()
    for body in ("{not json", "NaN"):
        response = _signal(api, "counter", key, "add", content=body, headers=_JSON)
        assert response.status_code == 400
        assert "not valid JSON" in response.json()["message"]
    assert api.http.get(api.url("counter", key)).status_code == 404  # nothing was signalled


@pytest.mark.parametrize(
    ("params", "word"),
    [
        ({"top": "many"}, "top"),
        ({"fetchState": "maybe"}, "fetchState"),
        ({"lastOperationTimeFrom": "yesterday"}, "lastOperationTimeFrom"),
        ({"taskHub": "OtherHub"}, "taskHub"),
    ],
)
def test_bad_list_parameters_are_400(api: EntityApi, params: dict, word: str) -> None:
    response = api.http.get(f"{api.base}/entities", params=params)
    assert response.status_code == 400
    assert word in response.json()["message"]


def test_other_methods_on_entity_paths_are_404(api: EntityApi) -> None:
    for method, url in (
        ("PUT", api.url("counter", "k")),
        ("POST", f"{api.base}/entities"),
        ("DELETE", api.url("counter")),
    ):
        response = api.http.request(method, url)
        assert response.status_code == 404, (method, url)
        assert method in response.json()["message"]
