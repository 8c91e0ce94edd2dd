"""Fixtures of the JavaScript harness: the sidecar, both SDK workers, the gateway, one client.

One LocalTaskHub on the session's Azurite serves the folder. Next to it run the Python sample
worker (plus the Python twins in py_orchestrations.py) and the JavaScript sample worker as a
``node workers/js/worker.js`` subprocess (plus js_orchestrations.js), both with work item filters,
and the gateway (StartNew + HTTP API) as ``python -m durable_helpers.local gateway``. The Node
binary is ``$JS_TEST_NODE`` when set (e.g. a Node 22 from ``npx -p node@22``), else ``node``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import py_orchestrations
import pytest
from durabletask.client import TaskHubGrpcClient
from durabletask.worker import TaskHubGrpcWorker

from durable_helpers.local.ports import free_ports
from durable_helpers.local.samples import build_worker
from durable_helpers.local.sidecar import LocalTaskHub
from durable_helpers.local.sidecar.rest import RestStorage
from durable_helpers.local.stack import grpc_port_answers, http_answers

PROJECT_ROOT = Path(__file__).resolve().parents[2]
JS_WORKER = PROJECT_ROOT / "workers" / "js" / "worker.js"
JS_TEST_ORCHESTRATIONS = Path(__file__).resolve().parent / "js_orchestrations.js"
START_TIMEOUT = 60


def node_program() -> str:
    """The node binary the harness runs (fails the test run clearly when there is none)."""
    node = os.environ.get("JS_TEST_NODE") or shutil.which("node")
    if not node:
        pytest.fail("Node.js is missing: install Node 20 or newer (make setup needs it too).")
    return node


def pytest_report_header(config: pytest.Config) -> str:
    node = os.environ.get("JS_TEST_NODE") or shutil.which("node") or "none"
    try:
        version = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=30
        ).stdout.strip()
    except OSError:
        version = "not runnable"
    return f"tests/js node: {node} ({version}; JS_TEST_NODE overrides)"


class JsWorker:
    """``node workers/js/worker.js`` as a subprocess, output in a log file."""

    def __init__(self, sidecar: str, folder: Path) -> None:
        self.ready = folder / "jsworker.ready"
        self.log = folder / "jsworker.log"
        self.command = [
            node_program(),
            str(JS_WORKER),
            "--sidecar", sidecar,
            "--ready-file", str(self.ready),
            "--state-dir", str(folder / "state"),
            "--register", str(JS_TEST_ORCHESTRATIONS),
            "--connect-timeout", str(START_TIMEOUT),
        ]  # fmt: skip
        self.process: subprocess.Popen | None = None

    def start(self) -> JsWorker:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=PROJECT_ROOT,
            )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while not self.ready.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"The JavaScript worker did not start:\n{self.tail()}", pytrace=False)
            time.sleep(0.1)
        return self

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


@dataclass
class Harness:
    sidecar: str
    hub: str
    startnew: str
    http: str
    js: JsWorker

    @property
    def base(self) -> str:
        return f"{self.http}/runtime/webhooks/durabletask"


@pytest.fixture(scope="session")
def js_hub_name() -> str:
    return "JS" + uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def harness(
    connection_string: str, js_hub_name: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Harness]:
    folder = tmp_path_factory.mktemp("js-harness")
    py_orchestrations.STATE_DIR[:] = [folder / "py-state"]
    startnew, http = free_ports(2)
    with LocalTaskHub(connection=connection_string, hub=js_hub_name, port=0) as hub:
        python = _python_worker(hub.address, folder)
        python.start()
        js = JsWorker(hub.address, folder)
        gateway = None
        try:
            js.start()
            gateway = _start_gateway(hub.address, js_hub_name, startnew, http, folder)
            startnew_address, http_origin = f"127.0.0.1:{startnew}", f"http://127.0.0.1:{http}"
            yield Harness(hub.address, js_hub_name, startnew_address, http_origin, js)
        finally:
            if gateway is not None:
                gateway.terminate()
                gateway.wait(15)
            js.stop()
            python.stop()


def _python_worker(sidecar: str, folder: Path) -> TaskHubGrpcWorker:
    worker = build_worker(sidecar, folder / "py-samples-state")
    for orchestrator in py_orchestrations.ORCHESTRATORS:
        worker.add_orchestrator(orchestrator)
    for activity in py_orchestrations.ACTIVITIES:
        worker.add_activity(activity)
    return worker  # its filters are generated at start(): samples and twins


def _start_gateway(
    sidecar: str, hub: str, startnew: int, http: int, folder: Path
) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "durable_helpers.local", "gateway", "--sidecar", sidecar,
        "--hub", hub, "--startnew-port", str(startnew), "--http-port", str(http),
    ]  # fmt: skip
    log = folder / "gateway.log"
    with open(log, "ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT)
    url = f"http://127.0.0.1:{http}/runtime/webhooks/durabletask/instances?top=1"
    deadline = time.monotonic() + START_TIMEOUT
    while not (http_answers(url, 1.0) and grpc_port_answers(f"127.0.0.1:{startnew}", 1.0)):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"The gateway did not start:\n{log.read_text()[-3000:]}", pytrace=False)
        time.sleep(0.2)
    return process


@pytest.fixture(scope="session")
def client(harness: Harness) -> Iterator[TaskHubGrpcClient]:
    c = TaskHubGrpcClient(host_address=harness.sidecar)
    yield c
    c.close()


@pytest.fixture(scope="session")
def rest(connection_string: str) -> RestStorage:
    return RestStorage.from_connection_string(connection_string)


@pytest.fixture
def iid() -> str:
    return "js" + uuid.uuid4().hex[:10]
