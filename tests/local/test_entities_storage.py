"""Entities in the tables as the Azure Storage provider keeps them, and bad input to entities."""

from __future__ import annotations

import json
import logging
import time
import uuid

import durabletask.internal.orchestrator_service_pb2 as pb
import durabletask.internal.orchestrator_service_pb2_grpc as stubs
import grpc
import pytest
from durabletask.client import OrchestrationStatus, TaskHubGrpcClient
from durabletask.entities import EntityInstanceId
from durabletask.worker import TaskHubGrpcWorker
from local_entities import KINDS, register_entities, wait_until
from local_orchestrations import register

from durable_helpers import schema
from durable_helpers.local.sidecar import LocalTaskHub
from durable_helpers.schema import entities as es


def _key() -> str:
    return "k" + uuid.uuid4().hex[:10]


def _state(client, eid):
    meta = client.get_entity(eid, include_state=True)
    try:
        return None if meta is None else meta.get_state(int)
    except (TypeError, ValueError):  # a state that is not an int (the non-JSON state test)
        return None


def _partition(rest, hub: str, instance_id: str) -> list[dict]:
    pk = schema.escape_partition_key(instance_id)
    rows = rest.query_all(
        schema.hub_names(hub).history_table, f"PartitionKey eq {schema.odata_string(pk)}"
    )
    return sorted(rows, key=lambda r: r["RowKey"])


def _instance_row(rest, hub: str, instance_id: str) -> dict | None:
    pk = schema.escape_partition_key(instance_id)
    return rest.get_entity(schema.hub_names(hub).instances_table, pk, "")


def _stub(sidecar):
    channel = grpc.insecure_channel(sidecar.address)
    return channel, stubs.TaskHubSidecarServiceStub(channel)


@pytest.mark.parametrize("kind", KINDS)
def test_entity_rows_are_in_the_provider_layout(client, sidecar, rest, kind):
    key = _key()
    eid = EntityInstanceId(kind, key)
    client.signal_entity(eid, "add", 5)
    wait_until(lambda: _state(client, eid) == 5, 30, "the first batch")
    row = _instance_row(rest, sidecar.hub, str(eid))
    assert row["Name"] == f"@{kind}@{key}" and row["Version"] == ""
    assert row["RuntimeStatus"] == "Running"
    scheduler = es.parse_scheduler_state(row["Input"])
    assert scheduler.state == "5" and scheduler.queue == [] and scheduler.locked_by is None
    assert row["CustomStatus"] == '{"entityExists":true}'
    assert es.parse_entity_status(row["CustomStatus"]).exists
    first_exec = row["ExecutionId"]
    assert len(first_exec) == 32
    client.signal_entity(eid, "add", 2)
    wait_until(lambda: _state(client, eid) == 7, 30, "the second batch")
    row = _instance_row(rest, sidecar.hub, str(eid))
    assert row["ExecutionId"] != first_exec  # a new execution per batch
    assert es.parse_scheduler_state(row["Input"]).state == "7"
    rows = _partition(rest, sidecar.hub, str(eid))
    assert [r["RowKey"] for r in rows] == [schema.row_key(i) for i in range(3)] + ["sentinel"]
    assert [r.get("EventType") for r in rows[:3]] == [
        "OrchestratorStarted",
        "ExecutionStarted",
        "OrchestratorCompleted",
    ]
    assert {r["ExecutionId"] for r in rows} == {row["ExecutionId"]}
    started = rows[1]
    assert started["Name"] == str(eid)
    assert es.parse_scheduler_state(started["Input"]).state == "7"
    assert json.loads(started["OrchestrationInstance"]) == {
        "InstanceId": str(eid),
        "ExecutionId": row["ExecutionId"],
    }
    # Entities are no orchestrations: QueryInstances leaves them out, as DF's gRPC API does.
    listed = client.get_all_orchestration_states()
    assert all(not s.instance_id.startswith("@") for s in listed)


def test_a_large_state_goes_to_a_blob_and_comes_back(client, sidecar, rest):
    eid = EntityInstanceId("fn_counter", _key())
    big = "x" * 100_000
    client.signal_entity(eid, "store", big)
    meta = wait_until(lambda: client.get_entity(eid), 30, "the large state")
    assert meta.get_typed_state() == big
    row = _instance_row(rest, sidecar.hub, str(eid))
    assert row["Input"].startswith("http")  # the provider's blob URL
    rows = _partition(rest, sidecar.hub, str(eid))
    assert rows[1]["EventType"] == "ExecutionStarted" and rows[1].get("InputBlobName")
    from durabletask.client import EntityQuery

    found = client.get_all_entities(EntityQuery(instance_id_starts_with=str(eid)))
    assert [m.get_typed_state() for m in found] == [big]
    client.signal_entity(eid, "store", 1)  # small again: inline
    wait_until(lambda: _state(client, eid) == 1, 30, "the small state")


def test_callers_history_records_entity_traffic_as_dtfx_does(client, sidecar, rest):
    a, b = _key(), _key()
    iid = client.schedule_new_orchestration(
        "locked_transfer", input={"name": "fn_counter", "from": a, "to": b, "amount": 3}
    )
    state = client.wait_for_orchestration_completion(iid, timeout=60)
    assert state.runtime_status == OrchestrationStatus.COMPLETED, state.failure_details
    rows = [r for r in _partition(rest, sidecar.hub, iid) if r["RowKey"] != "sentinel"]
    sent = [r for r in rows if r["EventType"] == "EventSent"]
    raised = [r for r in rows if r["EventType"] == "EventRaised"]
    lockset = sorted([f"@fn_counter@{a}", f"@fn_counter@{b}"])
    # The lock request goes to the first entity of the sorted lock set.
    lock = sent[0]
    assert lock["InstanceId"] == lockset[0] and lock["Name"] == "op"
    body = json.loads(lock["Input"])
    assert body["op"] is None and body["parent"] == iid
    assert [f"@{e['name']}@{e['key']}" for e in body["lockset"]] == lockset
    assert list(body)[:2] == ["op", "id"]  # `id` ahead of the other keys (DTFx's lookup)
    grant = next(r for r in raised if r["Name"] == body["id"])
    assert json.loads(grant["Input"]) == {"result": "Lock Acquisition Completed"}
    calls = [r for r in sent if json.loads(r["Input"]).get("op") == "add"]
    assert len(calls) == 2
    for call in calls:
        request = json.loads(call["Input"])
        assert call["Name"] == "op" and request["parent"] == iid
        answer = next(r for r in raised if r["Name"] == request["id"])
        assert "result" in json.loads(answer["Input"])
    releases = [r for r in sent if r["Name"] == "release"]
    assert sorted(r["InstanceId"] for r in releases) == lockset
    assert all(json.loads(r["Input"]) == {"parent": iid, "id": body["id"]} for r in releases)
    assert [r["EventId"] for r in sent] == sorted(r["EventId"] for r in sent)


def test_waiting_requests_and_the_lock_show_in_the_entity_row(client, sidecar, rest):
    key = _key()
    eid = EntityInstanceId("fn_counter", key)
    holder = client.schedule_new_orchestration(
        "lock_and_wait", input={"name": "fn_counter", "key": key}
    )
    wait_until(lambda: _state(client, eid) == 1, 30, "the holder's call")
    client.signal_entity(eid, "add", 5)

    def queued():
        row = _instance_row(rest, sidecar.hub, str(eid))
        return row if es.parse_scheduler_state(row["Input"]).queue else None

    row = wait_until(queued, 30, "the waiting signal in the scheduler state")
    scheduler = es.parse_scheduler_state(row["Input"])
    assert scheduler.locked_by == holder
    assert [q["op"] for q in scheduler.queue] == ["add"]
    status = es.parse_entity_status(row["CustomStatus"])
    assert (status.exists, status.queue_size, status.locked_by) == (True, 1, holder)
    client.terminate_orchestration(holder)
    wait_until(lambda: _state(client, eid) == 6, 30, "the signal after the unlock")


def test_malformed_entity_ids_are_refused_clearly(sidecar):
    channel, stub = _stub(sidecar)
    with channel:
        for bad in ("counter", "@counter", "@@key", "@counter@", "@counter@a@b"):
            with pytest.raises(grpc.RpcError) as caught:
                stub.SignalEntity(
                    pb.SignalEntityRequest(instanceId=bad, name="add", requestId="r"), timeout=10
                )
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
            assert "@<name>@<key>" in caught.value.details()
            with pytest.raises(grpc.RpcError) as caught:
                stub.GetEntity(pb.GetEntityRequest(instanceId=bad), timeout=10)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad


def test_orchestration_ids_starting_with_at_are_still_refused(client):
    with pytest.raises(grpc.RpcError) as caught:
        client.schedule_new_orchestration("HelloSequence", instance_id="@counter@x")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_instance_operations_on_an_entity_id_are_refused(client, sidecar):
    eid = EntityInstanceId("fn_counter", _key())
    client.signal_entity(eid, "add", 1)
    wait_until(lambda: _state(client, eid) == 1, 30, "the entity")
    for call in (
        lambda: client.terminate_orchestration(str(eid)),
        lambda: client.raise_orchestration_event(str(eid), "op", data={}),
        lambda: client.suspend_orchestration(str(eid)),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            call()
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "signal_entity" in caught.value.details()
    assert _state(client, eid) == 1


def test_keys_with_special_and_control_characters_round_trip(client, sidecar, rest):
    from durabletask.client import EntityQuery

    key = "a/b\\c#d?e\x01f\x7f " + uuid.uuid4().hex[:6]
    eid = EntityInstanceId("fn_counter", key)
    client.signal_entity(eid, "add", 3)
    wait_until(lambda: _state(client, eid) == 3, 30, "the special key")
    row = _instance_row(rest, sidecar.hub, str(eid))
    assert row["PartitionKey"] == schema.escape_partition_key(str(eid))
    assert not set("/\\#?\x01\x7f") & set(row["PartitionKey"])
    assert row["Name"] == str(eid)
    found = client.get_all_entities(EntityQuery(instance_id_starts_with="@fn_counter@a/b\\c#"))
    assert [m.id.key for m in found] == [key]


def test_an_operation_that_raises_on_a_signal_leaves_the_entity_working(client):
    eid = EntityInstanceId("classcounter", _key())
    client.signal_entity(eid, "add", 2)
    client.signal_entity(eid, "fail", "boom")  # nobody waits: the failure is logged, not lost
    client.signal_entity(eid, "no_such_operation")
    client.signal_entity(eid, "add", 3)
    wait_until(lambda: _state(client, eid) == 5, 30, "the operations after the failures")


def test_non_json_input_fails_the_operation_not_the_entity(client, sidecar):
    key = _key()
    eid = EntityInstanceId("fn_counter", key)
    channel, stub = _stub(sidecar)
    with channel:
        raw = pb.SignalEntityRequest(instanceId=str(eid), name="add", requestId=str(uuid.uuid4()))
        raw.input.value = "not json"
        stub.SignalEntity(raw, timeout=10)
    client.signal_entity(eid, "add", 4)
    wait_until(lambda: _state(client, eid) == 4, 30, "the operation after the bad input")


def test_non_json_state_is_passed_through_and_can_be_replaced(client, sidecar, rest):
    eid = EntityInstanceId("fn_counter", _key())
    row = schema.instance_entity(
        str(eid),
        Name=str(eid),
        Version="",
        RuntimeStatus="Running",
        Input=es.scheduler_state_json(state="not json"),
        CustomStatus=es.entity_status_json(exists=True, queue_size=0, locked_by=None),
        ExecutionId=uuid.uuid4().hex,
    )
    from durable_helpers.local.sidecar.store import wire

    rest.upsert_entity(schema.hub_names(sidecar.hub).instances_table, wire(row))
    channel, stub = _stub(sidecar)
    with channel:
        got = stub.GetEntity(
            pb.GetEntityRequest(instanceId=str(eid), includeState=True), timeout=10
        )
    assert got.exists and got.entity.serializedState.value == "not json"
    client.signal_entity(eid, "add", 1)  # cannot decode the state: this operation fails
    client.signal_entity(eid, "reset")  # replaces it without reading it
    client.signal_entity(eid, "add", 2)
    wait_until(lambda: _state(client, eid) == 2, 30, "the state to be replaced")


def test_unknown_entity_with_filtered_workers_waits_and_says_why(connection_string, caplog):
    hub = "E" + uuid.uuid4().hex[:10]
    with LocalTaskHub(connection=connection_string, hub=hub, port=0) as sidecar:
        w = register_entities(register(TaskHubGrpcWorker(host_address=sidecar.address)))
        w.use_work_item_filters()
        w.start()
        c = TaskHubGrpcClient(host_address=sidecar.address)
        try:
            eid = EntityInstanceId("nosuchentity", "k1")
            with caplog.at_level(logging.WARNING, logger="durable_helpers.local.sidecar"):
                c.signal_entity(eid, "add", 1)
                c.signal_entity(EntityInstanceId("fn_counter", "k1"), "add", 1)
                wait_until(lambda: _state(c, EntityInstanceId("fn_counter", "k1")) == 1, 30, "")
                deadline = time.monotonic() + 10
                while "nosuchentity" not in caplog.text and time.monotonic() < deadline:
                    time.sleep(0.1)
            assert "No connected worker handles entity 'nosuchentity'" in caplog.text
            meta = c.get_entity(eid)
            assert meta is None  # nothing ran: the signal waits for a worker that has it
            # A worker that registers it picks the waiting signal up.
            late = TaskHubGrpcWorker(host_address=sidecar.address)

            def nosuchentity(ctx, value):
                ctx.set_state((ctx.get_state(int, 0)) + value)

            late.add_entity(nosuchentity)
            late.use_work_item_filters()
            late.start()
            try:
                wait_until(lambda: _state(c, eid) == 1, 30, "the late worker to run it")
            finally:
                late.stop()
        finally:
            c.close()
            w.stop()


def test_unknown_entity_without_filters_fails_the_call_with_the_reason(client):
    iid = client.schedule_new_orchestration(
        "call_counter", input={"name": "nosuchentity", "key": "k", "op": "get"}
    )
    state = client.wait_for_orchestration_completion(iid, timeout=30)
    assert state.runtime_status == OrchestrationStatus.FAILED
    assert "nosuchentity" in state.failure_details.message
    assert "not registered" in state.failure_details.message


def test_idle_entities_are_forgotten_and_reloaded_from_their_rows(client, sidecar, monkeypatch):
    from durable_helpers.local.sidecar.entities import hub as entity_hub

    monkeypatch.setattr(entity_hub, "MAX_LIVE_ENTITIES", 4)
    ids = [EntityInstanceId("fn_counter", _key()) for _ in range(8)]
    for eid in ids:
        client.signal_entity(eid, "add", 1)
    for eid in ids:
        wait_until(lambda eid=eid: _state(client, eid) == 1, 30, f"{eid}")
    in_memory = [eid for eid in ids if str(eid) in sidecar.engine.entities.live]
    assert len(in_memory) < len(ids)
    for eid in ids:  # forgotten ones are loaded again from the Instances row
        client.signal_entity(eid, "add", 2)
    for eid in ids:
        wait_until(lambda eid=eid: _state(client, eid) == 3, 30, f"{eid} after reload")
