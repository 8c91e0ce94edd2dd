"""What the sidecar must remember across a kill -9 (its state comes back from the journal and
the rows): the place of events carried over by continue-as-new, and a child's parent. The
in-memory cases, with both SDKs, are in tests/js/test_sdk_semantics.py."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from durabletask import task
from durabletask.client import OrchestrationStatus, TaskHubGrpcClient
from durabletask.worker import TaskHubGrpcWorker
from test_durability import _start_server

from durable_helpers.local.ports import free_ports

#: Where the orchestrator leaves a mark when it pauses (set by the test).
MARKS: list[Path] = []


def _pause_once(name: str, seconds: float) -> None:
    mark = MARKS[0] / name
    if not mark.exists():
        mark.write_text("paused")
        time.sleep(seconds)


def PausingEventsInOrder(ctx: task.OrchestrationContext, seen: Any):
    """One "next" event per execution, continue-as-new with save_events; pauses (first time
    only) in its first and second executions, so the test can act while they run."""
    so_far = seen if isinstance(seen, list) else []
    if not ctx.is_replaying and len(so_far) < 2:
        _pause_once(f"execution-{len(so_far) + 1}", 2.0 if so_far else 1.5)
    value = yield ctx.wait_for_external_event("next")
    values = [*so_far, value]
    if len(values) >= 5:
        return values
    ctx.continue_as_new(values, save_events=True)
    return None


def _wait_for(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


@pytest.mark.slow
def test_carried_events_keep_their_order_after_a_kill_9(connection_string, hub_name, tmp_path):
    MARKS[:] = [tmp_path]
    port = free_ports(1)[0]
    address = f"127.0.0.1:{port}"
    log = tmp_path / "sidecar.log"
    server = _start_server(hub_name, port, connection_string, log)
    client = TaskHubGrpcClient(host_address=address)
    worker = TaskHubGrpcWorker(host_address=address)
    worker.add_orchestrator(PausingEventsInOrder)
    try:
        iid = client.schedule_new_orchestration(PausingEventsInOrder)
        for value in (1, 2):  # both in the first episode: 1 is taken, 2 carried over
            client.raise_orchestration_event(iid, "next", data=value)
        worker.start()
        _wait_for(tmp_path / "execution-1")
        for value in (3, 4, 5):  # raised while the first episode runs
            client.raise_orchestration_event(iid, "next", data=value)
        _wait_for(tmp_path / "execution-2")  # the next execution has its events in flight
        os.kill(server.pid, signal.SIGKILL)
        server.wait(10)
        server = _start_server(hub_name, port, connection_string, log)  # replays the journal
        state = client.wait_for_orchestration_completion(iid, timeout=90)
        assert state.runtime_status == OrchestrationStatus.COMPLETED, log.read_text()[-3000:]
        assert state.serialized_output == "[1, 2, 3, 4, 5]"
    finally:
        client.close()
        worker.stop()
        server.terminate()
        server.wait(10)


def WaitingChild(ctx: task.OrchestrationContext, _: Any):
    return (yield ctx.wait_for_external_event("go"))


def ParentOfWaitingChild(ctx: task.OrchestrationContext, _: Any):
    child = yield ctx.call_sub_orchestrator(WaitingChild, instance_id=f"{ctx.instance_id}:child")
    return {"child said": child}


@pytest.mark.slow
def test_a_child_loaded_after_a_kill_9_still_reports_to_its_parent(
    connection_string, hub_name, tmp_path
):
    port = free_ports(1)[0]
    address = f"127.0.0.1:{port}"
    log = tmp_path / "sidecar.log"
    server = _start_server(hub_name, port, connection_string, log)
    client = TaskHubGrpcClient(host_address=address)
    worker = TaskHubGrpcWorker(host_address=address)
    worker.add_orchestrator(ParentOfWaitingChild)
    worker.add_orchestrator(WaitingChild)
    try:
        worker.start()
        iid = client.schedule_new_orchestration(ParentOfWaitingChild)
        child_id = f"{iid}:child"
        deadline = time.monotonic() + 30
        while (state := client.get_orchestration_state(child_id)) is None or (
            state.runtime_status != OrchestrationStatus.RUNNING
        ):
            assert time.monotonic() < deadline, state
            time.sleep(0.05)
        os.kill(server.pid, signal.SIGKILL)
        server.wait(10)
        server = _start_server(hub_name, port, connection_string, log)  # child: from its rows
        client.raise_orchestration_event(child_id, "go", data="hi")
        state = client.wait_for_orchestration_completion(iid, timeout=90)
        assert state.runtime_status == OrchestrationStatus.COMPLETED, log.read_text()[-3000:]
        assert state.serialized_output == '{"child said": "hi"}'
    finally:
        client.close()
        worker.stop()
        server.terminate()
        server.wait(10)
