"""Four behaviours both SDKs rely on, each run with the Python and the JavaScript SDK.

The orchestrations are twins (py_orchestrations.py, js_orchestrations.js): ``<Name>Py`` runs on
the Python worker, ``<Name>JS`` on the JavaScript one.
"""

from __future__ import annotations

import json

import durabletask.internal.orchestrator_service_pb2 as pb
import durabletask.internal.orchestrator_service_pb2_grpc as grpc_stubs
import grpc
import pytest
from durabletask.client import OrchestrationStatus, TaskHubGrpcClient
from google.protobuf import wrappers_pb2

from durable_helpers import schema

S = OrchestrationStatus
SDKS = ["Py", "JS"]


def done(client: TaskHubGrpcClient, instance_id: str, timeout: float = 30):
    state = client.wait_for_orchestration_completion(instance_id, timeout=timeout)
    assert state is not None, f"{instance_id} is unknown"
    return state


@pytest.mark.parametrize("sdk", SDKS)
def test_continue_as_new_keeps_the_order_of_events_raised_meanwhile(client, sdk, iid):
    """Each execution takes one event and continues as new with save_events: the events carried
    over and those arriving later reach the next executions in the order they were raised."""
    client.schedule_new_orchestration(f"EventsInOrder{sdk}", instance_id=iid)
    for value in range(1, 6):
        client.raise_orchestration_event(iid, "next", data=value)
    state = done(client, iid)
    assert state.runtime_status == S.COMPLETED, state.failure_details
    assert json.loads(state.serialized_output) == [1, 2, 3, 4, 5]


def _failed_parent(client: TaskHubGrpcClient, sdk: str, iid: str, depth: int = 1) -> list[str]:
    """A parent whose chain of ``depth`` sub-orchestrations failed; the ids below it."""
    client.schedule_new_orchestration(f"RewindParent{sdk}", input=depth, instance_id=iid)
    parent = done(client, iid)
    assert parent.runtime_status == S.FAILED
    below = [iid + ":child" * level for level in range(1, depth + 1)]
    for child_id in below:
        child = client.get_orchestration_state(child_id)
        assert child is not None and child.runtime_status == S.FAILED
        assert "first attempt" in child.failure_details.message
    return below


@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize("sdk", SDKS)
def test_rewinding_a_parent_rewinds_its_failed_sub_orchestration(client, sdk, depth, iid):
    """The rewind reaches the failed child, and its failed child in turn (recursively)."""
    below = _failed_parent(client, sdk, iid, depth)
    client.rewind_orchestration(iid, reason="retry the child")
    parent = done(client, iid)
    assert parent.runtime_status == S.COMPLETED, parent.failure_details
    result = f"ok {below[-1]} (attempt 2)"
    assert json.loads(parent.serialized_output) == result
    for child_id in below:
        child = client.get_orchestration_state(child_id)
        assert child.runtime_status == S.COMPLETED
        assert json.loads(child.serialized_output) == result


@pytest.mark.parametrize("sdk", SDKS)
def test_rewinding_a_parent_whose_failed_child_was_purged_runs_the_child_again(client, sdk, iid):
    (child_id,) = _failed_parent(client, sdk, iid)
    assert client.purge_orchestration(child_id).deleted_instance_count == 1
    assert client.get_orchestration_state(child_id) is None
    client.rewind_orchestration(iid, reason="run the child again")
    parent = done(client, iid)
    assert parent.runtime_status == S.COMPLETED, parent.failure_details
    assert json.loads(parent.serialized_output) == f"ok {child_id} (attempt 2)"
    assert client.get_orchestration_state(child_id).runtime_status == S.COMPLETED


@pytest.mark.parametrize("sdk", SDKS)
def test_json_null_stays_null(client, rest, harness, sdk, iid):
    """The JSON value null (input, activity result, output) is kept as "null"; an absent value
    stays absent. The Python SDK sends no payload for None; the JavaScript SDK sends "null"."""
    with grpc.insecure_channel(harness.sidecar) as channel:
        sidecar = grpc_stubs.TaskHubSidecarServiceStub(channel)
        sidecar.StartInstance(
            pb.CreateInstanceRequest(
                instanceId=iid, name=f"Nulls{sdk}", input=wrappers_pb2.StringValue(value="null")
            ),
            timeout=15,
        )
        state = done(client, iid)
        # A finished instance's history is read back from its rows.
        chunks = sidecar.StreamInstanceHistory(
            pb.StreamInstanceHistoryRequest(instanceId=iid), timeout=15
        )
        events = [event for chunk in chunks for event in chunk.events]
    started = next(e.executionStarted for e in events if e.HasField("executionStarted"))
    assert started.HasField("input") and started.input.value == "null"
    completed = next(e.taskCompleted for e in events if e.HasField("taskCompleted"))
    assert completed.HasField("result") == (sdk == "JS")
    assert completed.result.value == ("null" if sdk == "JS" else "")
    assert state.runtime_status == S.COMPLETED, state.failure_details
    assert state.serialized_input == "null"
    assert json.loads(state.serialized_custom_status) == {"input": "null", "result": "null"}
    pk = schema.escape_partition_key(iid)
    table = rest.query_all(f"{harness.hub}History", f"PartitionKey eq {schema.odata_string(pk)}")
    by_type = {r.get("EventType"): r for r in table}
    assert by_type["ExecutionStarted"]["Input"] == "null"
    inst = rest.get_entity(f"{harness.hub}Instances", iid, "")
    assert inst["Input"] == "null"
    if sdk == "JS":  # activity result and orchestration output: the JSON value null
        assert by_type["TaskCompleted"]["Result"] == "null"
        assert state.serialized_output == "null"
        assert inst["Output"] == "null"
    else:  # Python's None is no payload at all, and stays so
        assert "Result" not in by_type["TaskCompleted"]
        assert state.serialized_output is None
        assert "Output" not in inst
