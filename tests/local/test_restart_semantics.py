"""What the sidecar must remember across a kill -9 (its state comes back from the journal and
the rows): the place of events carried over by continue-as-new, and a child's parent. The
in-memory cases, with both SDKs, are in tests/js/test_sdk_semantics.py."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from durabletask import task
from durabletask.client import OrchestrationStatus, TaskHubGrpcClient
from durabletask.worker import TaskHubGrpcWorker
from sidecar_process import start_sidecar

from durable_helpers.local.ports import free_ports

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "js"))
from py_orchestrations import EventsInOrderPy  # the twin that tests/js runs with both SDKs

#: Where the orchestrator leaves a mark when it pauses (set by the test).
MARKS: list[Path] = []


def _pause_once(name: str, seconds: float) -> None:
    mark = MARKS[0] / name
    if not mark.exists():
        mark.write_text("paused")
        time.sleep(seconds)


def PausingEventsInOrder(ctx: task.OrchestrationContext, seen: Any):
    """EventsInOrderPy (one "next" event per execution, continue-as-new with save_events) that
    pauses, the first time only, in its first and second executions, so the test can act."""
    done = len(seen) if isinstance(seen, list) else 0
    if not ctx.is_replaying and done < 2:
        _pause_once(f"execution-{done + 1}", 2.0 if done else 1.5)
    return (yield from EventsInOrderPy(ctx, seen))


def _wait_for(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


@pytest.mark.slow
def test_carried_events_keep_their_order_after_a_kill_9(connection_string, hub_name, tmp_path):
    MARKS[:] = [tmp_path]
    with _killable_sidecar(connection_string, hub_name, tmp_path, PausingEventsInOrder) as hub:
        iid = hub.client.schedule_new_orchestration(PausingEventsInOrder)
        for value in (1, 2):  # both in the first episode: 1 is taken, 2 carried over
            hub.client.raise_orchestration_event(iid, "next", data=value)
        hub.worker.start()
        _wait_for(tmp_path / "execution-1")
        for value in (3, 4, 5):  # raised while the first episode runs
            hub.client.raise_orchestration_event(iid, "next", data=value)
        _wait_for(tmp_path / "execution-2")  # the next execution has its events in flight
        hub.kill_and_restart()  # replays the journal
        state = hub.client.wait_for_orchestration_completion(iid, timeout=90)
        assert state.runtime_status == OrchestrationStatus.COMPLETED, hub.log_tail()
        assert state.serialized_output == "[1, 2, 3, 4, 5]"


class _Sidecar:
    """A ``serve`` subprocess on a fixed port, a worker and a client connected to it."""

    def __init__(self, connection: str, hub: str, folder: Path, *orchestrators: Any) -> None:
        self.connection, self.hub, self.port = connection, hub, free_ports(1)[0]
        self.log = folder / "sidecar.log"
        self.server = start_sidecar(hub, self.port, connection, self.log)
        address = f"127.0.0.1:{self.port}"
        self.client = TaskHubGrpcClient(host_address=address)
        self.worker = TaskHubGrpcWorker(host_address=address)
        for orchestrator in orchestrators:
            self.worker.add_orchestrator(orchestrator)

    def kill_and_restart(self) -> None:
        os.kill(self.server.pid, signal.SIGKILL)
        self.server.wait(10)
        self.server = start_sidecar(self.hub, self.port, self.connection, self.log)

    def log_tail(self) -> str:
        return self.log.read_text()[-3000:]


@contextlib.contextmanager
def _killable_sidecar(
    connection: str, hub: str, folder: Path, *orchestrators: Any
) -> Iterator[_Sidecar]:
    sidecar = _Sidecar(connection, hub, folder, *orchestrators)
    try:
        yield sidecar
    finally:
        sidecar.client.close()
        sidecar.worker.stop()
        sidecar.server.terminate()
        sidecar.server.wait(10)


def WaitingChild(ctx: task.OrchestrationContext, _: Any):
    return (yield ctx.wait_for_external_event("go"))


def ParentOfWaitingChild(ctx: task.OrchestrationContext, _: Any):
    child = yield ctx.call_sub_orchestrator(WaitingChild, instance_id=f"{ctx.instance_id}:child")
    return {"child said": child}


@pytest.mark.slow
def test_a_child_loaded_after_a_kill_9_still_reports_to_its_parent(
    connection_string, hub_name, tmp_path
):
    orchestrators = (ParentOfWaitingChild, WaitingChild)
    with _killable_sidecar(connection_string, hub_name, tmp_path, *orchestrators) as hub:
        hub.worker.start()
        iid = hub.client.schedule_new_orchestration(ParentOfWaitingChild)
        child_id = f"{iid}:child"
        deadline = time.monotonic() + 30
        while (state := hub.client.get_orchestration_state(child_id)) is None or (
            state.runtime_status != OrchestrationStatus.RUNNING
        ):
            assert time.monotonic() < deadline, state
            time.sleep(0.05)
        hub.kill_and_restart()  # the child comes back from its rows
        hub.client.raise_orchestration_event(child_id, "go", data="hi")
        state = hub.client.wait_for_orchestration_completion(iid, timeout=90)
        assert state.runtime_status == OrchestrationStatus.COMPLETED, hub.log_tail()
        assert state.serialized_output == '{"child said": "hi"}'
