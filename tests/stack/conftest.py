"""Fixtures for the demo stack: a sidecar, the sample worker and the gateway, in this process.

The sidecar is the local task hub on the session's Azurite when
``durable_helpers.local.sidecar.LocalTaskHub`` exists, else the SDK's in-memory backend
(``STACK_TEST_BACKEND=memory`` forces the latter).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest

from durable_helpers import stubs
from durable_helpers.local.gateway import serve_gateway
from durable_helpers.local.ports import free_ports
from durable_helpers.local.samples import build_worker, wait_for_sidecar

HUB = "StackTestHub"


def _use_local_task_hub() -> bool:
    if os.environ.get("STACK_TEST_BACKEND", "").lower() == "memory":
        return False
    try:
        from durable_helpers.local.sidecar import LocalTaskHub  # noqa: F401
    except ImportError:
        return False
    return True


def pytest_report_header(config: pytest.Config) -> str:
    backend = "LocalTaskHub on Azurite" if _use_local_task_hub() else "SDK in-memory backend"
    return f"tests/stack sidecar: {backend} (STACK_TEST_BACKEND=memory forces the latter)"


@dataclass
class Stack:
    sidecar: str
    startnew: str
    http: str
    hub: str
    backend: str

    @property
    def base(self) -> str:
        return f"{self.http}/runtime/webhooks/durabletask"


class _GatewayThread:
    def __init__(self, sidecar: str, startnew_port: int, http_port: int, hub: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.stop_event: asyncio.Event | None = None
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.args = (sidecar, startnew_port, http_port, hub)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        sidecar, startnew_port, http_port, hub = self.args

        async def main() -> None:
            self.stop_event = asyncio.Event()
            self.ready.set()
            await serve_gateway(
                sidecar,
                startnew_port=startnew_port,
                http_port=http_port,
                hub=hub,
                stop=self.stop_event,
            )

        try:
            self.loop.run_until_complete(main())
        except BaseException as error:  # surfaced by the fixture
            self.error = error
            self.ready.set()

    def start(self) -> None:
        self.thread.start()
        assert self.ready.wait(10)

    def stop(self) -> None:
        if self.stop_event is not None:
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(10)


@pytest.fixture(scope="session")
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """Sidecar + sample worker + gateway (StartNew and HTTP API) on free ports."""
    sidecar_port, startnew_port, http_port = free_ports(3)
    if _use_local_task_hub():
        from durable_helpers.local.sidecar import LocalTaskHub

        azurite = request.getfixturevalue("azurite")
        hub_cm = LocalTaskHub(connection=azurite.connection_string, hub=HUB, port=sidecar_port)
        backend = "LocalTaskHub"
    else:
        from durable_helpers.local.memory_sidecar import MemorySidecar

        hub_cm = MemorySidecar(port=sidecar_port)
        backend = "memory"
    with hub_cm as hub:
        address = hub.address
        wait_for_sidecar(address, timeout=30)
        worker = build_worker(address, tmp_path_factory.mktemp("samples-state"))
        worker.start()
        gateway = _GatewayThread(address, startnew_port, http_port, HUB)
        gateway.start()
        try:
            http = f"http://127.0.0.1:{http_port}"
            _wait_http(f"{http}/runtime/webhooks/durabletask/instances?top=1", gateway)
            yield Stack(address, f"127.0.0.1:{startnew_port}", http, HUB, backend)
        finally:
            gateway.stop()
            worker.stop()


def _wait_http(url: str, gateway: _GatewayThread, timeout: float = 20) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gateway.error is not None:
            raise gateway.error
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer 200 within {timeout} s")


@pytest.fixture(scope="session")
def df():
    """The prototype's generated stubs (NewDurableTaskRequest, DurableTaskServiceStub...)."""
    return stubs.load("durable_functions")


@pytest.fixture
def seed_stub(stack: Stack, df):
    """A prototype-style client: insecure channel to the StartNew port, DurableTaskServiceStub."""
    with grpc.insecure_channel(stack.startnew) as channel:
        yield df.DurableTaskServiceStub(channel)


@pytest.fixture
def http(stack: Stack) -> Iterator[httpx.Client]:
    """An httpx client with a timeout."""
    with httpx.Client(timeout=15) as client:
        yield client


PROJECT_ROOT = Path(__file__).resolve().parents[2]
