"""Fixtures of the replay tests: a local task hub (sidecar on real Azurite) per module, a client,
and the History reader over the same tables."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest
from durabletask.client import TaskHubGrpcClient

from durable_helpers import TaskHub
from durable_helpers.local.sidecar import LocalTaskHub

logging.getLogger("durabletask-worker").setLevel(logging.WARNING)
logging.getLogger("durabletask-client").setLevel(logging.WARNING)


@pytest.fixture(scope="module")
def module_hub_name() -> str:
    return "R" + uuid.uuid4().hex[:12]


@pytest.fixture(scope="module")
def sidecar(connection_string: str, module_hub_name: str) -> Iterator[LocalTaskHub]:
    """A LocalTaskHub on a free port for this test module."""
    with LocalTaskHub(connection=connection_string, hub=module_hub_name, port=0) as hub:
        yield hub


@pytest.fixture(scope="module")
def client(sidecar: LocalTaskHub) -> Iterator[TaskHubGrpcClient]:
    c = TaskHubGrpcClient(host_address=sidecar.address)
    yield c
    c.close()


@pytest.fixture(scope="module")
def reader(connection_string: str, module_hub_name: str) -> TaskHub:
    """The History/Instances reader of the module's hub (what a user points check_many at)."""
    return TaskHub(connection_string, hub=module_hub_name)
