"""Fixtures of the explorer and diagram tests: a local task hub over the session's Azurite, the
kit's sample worker (the real durabletask SDK), and the sample runs the tests look at."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from durabletask.client import OrchestrationStatus, TaskHubGrpcClient
from durabletask.worker import TaskHubGrpcWorker

from durable_helpers import GrpcTaskHub, TaskHub
from durable_helpers.local import samples
from durable_helpers.local.sidecar import LocalTaskHub

logging.getLogger("durabletask-worker").setLevel(logging.WARNING)
logging.getLogger("durabletask-client").setLevel(logging.WARNING)
TIMEOUT = 45

#: short name -> (orchestration, input); every one runs to its end (the approval gets its event).
RUNS = {
    "hello": ("HelloSequence", None),
    "fan": ("FanOutFanIn", [1, 2, 3, 4]),
    "retry": ("RetryFlaky", {"failures": 2, "retry_seconds": 0.3}),
    "fail": ("FailingOrchestration", {"failures": 1}),
    "parent": ("ParentOrchestration", ["Tokyo", "Seattle"]),
    "timer": ("TimerDemo", {"seconds": 0.5}),
    "approval": ("ApprovalWorkflow", {"timeout_seconds": 60}),
}


@dataclass
class Ran:
    """The sample runs: ids by short name, the hub name, the sidecar and its client."""

    ids: dict[str, str]
    hub_name: str
    connection: str
    sidecar: LocalTaskHub
    client: TaskHubGrpcClient

    def table_hub(self) -> TaskHub:
        return TaskHub(self.connection, hub=self.hub_name)

    def grpc_hub(self) -> GrpcTaskHub:
        return GrpcTaskHub(self.sidecar.address, timeout=20)


@pytest.fixture(scope="module")
def sidecar(connection_string: str) -> Iterator[LocalTaskHub]:
    hub = "X" + uuid.uuid4().hex[:12]
    with LocalTaskHub(connection=connection_string, hub=hub, port=0) as running:
        yield running


@pytest.fixture(scope="module")
def worker(
    sidecar: LocalTaskHub, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TaskHubGrpcWorker]:
    w = samples.build_worker(sidecar.address, state_dir=tmp_path_factory.mktemp("samples"))
    w.start()
    try:
        yield w
    finally:
        w.stop()


@pytest.fixture(scope="module")
def ran(sidecar: LocalTaskHub, worker: TaskHubGrpcWorker, connection_string: str) -> Iterator[Ran]:
    """Every run of RUNS started, driven to its end and checked (statuses as the samples say)."""
    client = TaskHubGrpcClient(host_address=sidecar.address)
    prefix = "e" + uuid.uuid4().hex[:6] + "-"
    ids = {short: prefix + short for short in RUNS}
    for short, (name, data) in RUNS.items():
        client.schedule_new_orchestration(name, input=data, instance_id=ids[short])
    client.wait_for_orchestration_start(ids["approval"], timeout=TIMEOUT)
    client.raise_orchestration_event(ids["approval"], "Approval", data={"approved": True})
    expected = {"fail": OrchestrationStatus.FAILED}
    for short, iid in ids.items():
        state = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
        assert state is not None, f"{iid} vanished"
        assert state.runtime_status == expected.get(short, OrchestrationStatus.COMPLETED), (
            f"{iid} ended {state.runtime_status}"
        )
    try:
        yield Ran(ids, sidecar.hub, connection_string, sidecar, client)
    finally:
        client.close()
