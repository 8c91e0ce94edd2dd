"""Fixtures for the local task hub tests: one sidecar + one SDK worker per module, real Azurite."""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from durabletask.client import TaskHubGrpcClient
from durabletask.worker import TaskHubGrpcWorker

sys.path.insert(0, str(Path(__file__).resolve().parent))

from local_entities import register_entities
from local_orchestrations import register

from durable_helpers.local.sidecar import LocalTaskHub
from durable_helpers.local.sidecar.rest import RestStorage

#: Small so that the long-timer test exercises the SDK's timer chunking.
MAX_TIMER_INTERVAL = timedelta(seconds=1)

logging.getLogger("durabletask-worker").setLevel(logging.WARNING)
logging.getLogger("durabletask-client").setLevel(logging.WARNING)


@pytest.fixture(scope="module")
def module_hub_name() -> str:
    return "L" + uuid.uuid4().hex[:12]


@pytest.fixture(scope="module")
def sidecar(connection_string: str, module_hub_name: str) -> Iterator[LocalTaskHub]:
    """A LocalTaskHub on a free port for this test module."""
    with LocalTaskHub(connection=connection_string, hub=module_hub_name, port=0) as hub:
        yield hub


@pytest.fixture(scope="module")
def worker(sidecar: LocalTaskHub) -> Iterator[TaskHubGrpcWorker]:
    """The real SDK worker with every test orchestration and entity registered."""
    w = register_entities(
        register(
            TaskHubGrpcWorker(
                host_address=sidecar.address, maximum_timer_interval=MAX_TIMER_INTERVAL
            )
        )
    )
    w.start()
    try:
        yield w
    finally:
        w.stop()


@pytest.fixture(scope="module")
def client(sidecar: LocalTaskHub, worker: TaskHubGrpcWorker) -> Iterator[TaskHubGrpcClient]:
    """The real SDK client, connected once the worker runs."""
    c = TaskHubGrpcClient(host_address=sidecar.address)
    yield c
    c.close()


@pytest.fixture(scope="module")
def rest(connection_string: str) -> RestStorage:
    return RestStorage.from_connection_string(connection_string)


@pytest.fixture
def iid() -> str:
    """A fresh instance id prefix."""
    return "t" + uuid.uuid4().hex[:10]
