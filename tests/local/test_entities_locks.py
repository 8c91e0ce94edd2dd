"""Critical sections (``lock_entities``) through the local task hub, with the real SDK.

Locks are taken in sorted order, one entity after the other (DTFx's protocol); while an
orchestration holds a lock nobody else's operations run on that entity; the SDK's unlocks at
the end of the section (also when the orchestration fails or is terminated) free it.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime

import pytest
from durabletask.client import OrchestrationStatus
from durabletask.entities import EntityInstanceId
from local_entities import KINDS, wait_until

pytestmark = pytest.mark.parametrize("kind", KINDS)


def _key() -> str:
    return "k" + uuid.uuid4().hex[:10]


def _state(client, eid):
    meta = client.get_entity(eid, include_state=True)
    return None if meta is None else meta.get_state(int)


def _locked_by(sidecar, eid) -> str | None:
    """The raw ``lockedBy`` (an orchestration id; the SDK's get_locked_by() parses entity ids)."""
    import durabletask.internal.orchestrator_service_pb2 as pb
    import durabletask.internal.orchestrator_service_pb2_grpc as stubs
    import grpc

    with grpc.insecure_channel(sidecar.address) as channel:
        response = stubs.TaskHubSidecarServiceStub(channel).GetEntity(
            pb.GetEntityRequest(instanceId=str(eid), includeState=False), timeout=10
        )
    if not response.exists or not response.entity.HasField("lockedBy"):
        return None
    return response.entity.lockedBy.value


def test_critical_section_calls_locked_entities_then_unlocks(client, sidecar, kind):
    a, b = _key(), _key()
    client.signal_entity(EntityInstanceId(kind, a), "add", 10)
    wait_until(lambda: _state(client, EntityInstanceId(kind, a)) == 10, 30, "the deposit")
    iid = client.schedule_new_orchestration(
        "locked_transfer", input={"name": kind, "from": a, "to": b, "amount": 4}
    )
    state = client.wait_for_orchestration_completion(iid, timeout=60)
    assert state.runtime_status == OrchestrationStatus.COMPLETED, state.failure_details
    out = json.loads(state.serialized_output)
    assert (out["from"], out["to"]) == (6, 4)
    assert _locked_by(sidecar, EntityInstanceId(kind, a)) is None
    assert _locked_by(sidecar, EntityInstanceId(kind, b)) is None


def test_two_orchestrations_contending_for_two_locks_finish_one_after_the_other(client, kind):
    a, b = _key(), _key()
    first = client.schedule_new_orchestration(
        "locked_transfer", input={"name": kind, "from": a, "to": b, "amount": 1, "hold": 1}
    )
    second = client.schedule_new_orchestration(  # the other way round: same sorted lock set
        "locked_transfer", input={"name": kind, "from": b, "to": a, "amount": 5, "hold": 1}
    )
    outs = []
    for iid in (first, second):
        state = client.wait_for_orchestration_completion(iid, timeout=90)
        assert state.runtime_status == OrchestrationStatus.COMPLETED, state.failure_details
        outs.append(json.loads(state.serialized_output))
    spans = sorted(
        (datetime.fromisoformat(o["start"]), datetime.fromisoformat(o["end"])) for o in outs
    )
    assert spans[0][1] <= spans[1][0], f"the critical sections overlapped: {spans}"
    assert _state(client, EntityInstanceId(kind, a)) == -1 + 5
    assert _state(client, EntityInstanceId(kind, b)) == 1 - 5


def test_other_callers_wait_while_locked_and_termination_unlocks(client, sidecar, kind):
    key = _key()
    eid = EntityInstanceId(kind, key)
    holder = client.schedule_new_orchestration("lock_and_wait", input={"name": kind, "key": key})
    wait_until(lambda: _state(client, eid) == 1, 30, "the holder's call")
    assert _locked_by(sidecar, eid) == holder
    client.signal_entity(eid, "add", 100)  # must wait for the lock
    meta = wait_until(
        lambda: (m := client.get_entity(eid)) is not None and m.backlog_queue_size == 1 and m,
        30,
        "the waiting signal to be queued",
    )
    assert meta.backlog_queue_size == 1
    time.sleep(1.0)
    assert _state(client, eid) == 1, "a non-holder's operation ran while the entity was locked"
    client.terminate_orchestration(holder, output="stop")
    state = client.wait_for_orchestration_completion(holder, timeout=30)
    assert state.runtime_status == OrchestrationStatus.TERMINATED
    wait_until(lambda: _state(client, eid) == 101, 30, "the waiting signal after the unlock")
    assert _locked_by(sidecar, eid) is None


def test_failing_inside_a_critical_section_unlocks(client, sidecar, kind):
    key = _key()
    eid = EntityInstanceId(kind, key)
    iid = client.schedule_new_orchestration("lock_and_fail", input={"name": kind, "key": key})
    state = client.wait_for_orchestration_completion(iid, timeout=60)
    assert state.runtime_status == OrchestrationStatus.FAILED
    assert "failing inside a critical section" in state.failure_details.message
    wait_until(lambda: _locked_by(sidecar, eid) is None, 30, "the unlock")
    client.signal_entity(eid, "add", 1)
    wait_until(lambda: _state(client, eid) == 2, 30, "an operation after the unlock")


def test_clean_entity_storage_releases_a_lock_orphaned_by_termination(connection_string, kind):
    # Terminated while no worker runs: the sidecar ends the orchestration itself, so no SDK
    # sends the unlock (DTFx leaves such locks too); CleanEntityStorage repairs them.
    from durabletask.client import TaskHubGrpcClient
    from durabletask.worker import TaskHubGrpcWorker
    from local_entities import register_entities
    from local_orchestrations import register

    from durable_helpers.local.sidecar import LocalTaskHub

    key = _key()
    eid = EntityInstanceId(kind, key)
    hub = "O" + uuid.uuid4().hex[:10]
    with LocalTaskHub(connection=connection_string, hub=hub, port=0) as sidecar:
        c = TaskHubGrpcClient(host_address=sidecar.address)
        w = register_entities(register(TaskHubGrpcWorker(host_address=sidecar.address)))
        w.start()
        try:
            holder = c.schedule_new_orchestration("lock_and_wait", input={"name": kind, "key": key})
            wait_until(lambda: _state(c, eid) == 1, 30, "the holder's call")
            w.stop()
            c.terminate_orchestration(holder)
            state = c.wait_for_orchestration_completion(holder, timeout=30)
            assert state.runtime_status == OrchestrationStatus.TERMINATED
            assert _locked_by(sidecar, eid) == holder  # orphaned
            w = register_entities(register(TaskHubGrpcWorker(host_address=sidecar.address)))
            w.start()
            c.signal_entity(eid, "add", 1)
            time.sleep(1.0)
            assert _state(c, eid) == 1  # still locked: the signal waits
            result = c.clean_entity_storage(remove_empty_entities=False)
            assert result.orphaned_locks_released == 1
            wait_until(lambda: _state(c, eid) == 2, 30, "the waiting signal after the repair")
            assert _locked_by(sidecar, eid) is None
            again = c.clean_entity_storage()
            assert (again.orphaned_locks_released, again.empty_entities_removed) == (0, 0)
        finally:
            c.close()
            w.stop()


def test_a_lock_granted_to_an_orchestration_terminated_while_waiting_is_released(
    client, sidecar, kind
):
    key = _key()
    eid = EntityInstanceId(kind, key)
    first = client.schedule_new_orchestration("lock_and_wait", input={"name": kind, "key": key})
    wait_until(lambda: _locked_by(sidecar, eid) == first, 30, "the first lock")
    second = client.schedule_new_orchestration("lock_and_wait", input={"name": kind, "key": key})
    wait_until(
        lambda: (m := client.get_entity(eid)) is not None and m.backlog_queue_size == 1,
        30,
        "the second lock request to wait",
    )
    client.terminate_orchestration(second)  # while waiting: the SDK sends no unlock
    client.wait_for_orchestration_completion(second, timeout=30)
    client.terminate_orchestration(first)  # unlocks; the lock passes to the terminated one
    client.wait_for_orchestration_completion(first, timeout=30)
    wait_until(lambda: _locked_by(sidecar, eid) is None, 30, "the lock to be released")
    client.signal_entity(eid, "add", 10)
    wait_until(lambda: _state(client, eid) == 11, 30, "an operation after the release")
