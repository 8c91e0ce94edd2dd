"""The engine's parts on their own seams: journal replay, and work items handed out by kind.

The work-item tests drive a real ``Engine`` over a real store in Azurite, without gRPC: they
open worker streams with filters and limits, take work items and complete them, as the
servicer would, so what they check is the dispatch rule itself (which stream gets which work,
in which order, and what happens when a stream goes away).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import durabletask.internal.orchestrator_service_pb2 as pb
import pytest
from google.protobuf import wrappers_pb2

from durable_helpers import schema
from durable_helpers.local.sidecar.engine import Engine
from durable_helpers.local.sidecar.recovery import replay
from durable_helpers.local.sidecar.rest import RestStorage
from durable_helpers.local.sidecar.state import AMsg, OMsg
from durable_helpers.local.sidecar.store import Store, wire


def _omsg(msg_id: str, instance_id: str = "i1") -> OMsg:
    return OMsg(msg_id, instance_id, pb.HistoryEvent(eventId=-1))


def test_replay_keeps_what_no_later_record_acknowledged_in_written_order() -> None:
    a, b, c = _omsg("a"), _omsg("b"), _omsg("c", "i2")
    task = AMsg("t", pb.ActivityRequest(name="Hello"))
    records = [
        {"m": [b.record(), a.record()]},
        {"m": [task.record(), c.record()]},
        {"a": ["missing"]},  # an acknowledgement of a message never seen is harmless
    ]
    out = replay(records)
    assert [m.id for m in out.omsgs] == ["b", "a", "c"]
    assert [(m.id, m.request.name) for m in out.amsgs] == [("t", "Hello")]
    assert [m.id for m in replay([*records, {"a": ["b"]}]).omsgs] == ["a", "c"]
    done = replay([*records, {"a": ["t", "a", "b", "c"]}])
    assert (done.omsgs, done.amsgs) == ([], [])


def _h(pk: str, *row_keys: str, n: int, execution: str = "e1") -> dict:
    sentinel = {"PartitionKey": pk, "RowKey": "sentinel", "ExecutionId": execution}
    rows = [{"PartitionKey": pk, "RowKey": rk} for rk in row_keys]
    return {"t": "h", "pk": pk, "batches": [[*rows, sentinel]], "n": n}


def test_replay_redoes_partitions_with_unwritten_ops_and_a_purge_resets_a_partition() -> None:
    records = [
        {"ops": [_h("p1", "00", "01", n=1), {"t": "i", "pk": "p1", "e": {"V": 1}, "n": 2}]},
        {"ops": [_h("p1", "02", n=3), {"t": "i", "pk": "p2", "e": {"V": 1}, "n": 4}]},
        {"w": [1, 2, 3]},  # the table writer wrote p1's ops so far
        {"ops": [_h("p3", "00", n=5)]},
        {"w": [5]},
        {"ops": [{"t": "purge", "pk": "p2", "n": 6}]},
    ]
    assert {op["pk"] for op in replay(records).ops} == {"p2"}  # p1, p3: written
    ops = replay([*records, {"ops": [_h("p1", "03", n=7)]}]).ops
    p1 = [op for op in ops if op["pk"] == "p1"]
    # everything of p1 again, coalesced: one History write with all rows, then the Instances row
    assert [op["t"] for op in p1] == ["h", "i"]
    assert [e["RowKey"] for e in p1[0]["batches"][0]] == ["00", "01", "02", "03", "sentinel"]
    # p2's Instances write is not redone after its purge, the purge is (not yet written)
    assert [(op["t"], op.get("e")) for op in ops if op["pk"] == "p2"] == [("purge", None)]
    # a journal from before write-behind (no ids, no "w"): every partition's ops, coalesced
    old = [
        {"ops": [{k: v for k, v in op.items() if k != "n"} for op in r.get("ops", ())]}
        for r in records
    ]
    assert {op["pk"] for op in replay(old).ops} == {"p1", "p2", "p3"}


@pytest.fixture
def engine(connection_string: str, hub_name: str) -> Iterator[Engine]:
    engine = Engine(Store(RestStorage.from_connection_string(connection_string), hub_name))
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()


def _stream(engine: Engine, orchestrations=(), activities=(), **limits):
    filters = pb.WorkItemFilters(
        orchestrations=[pb.OrchestrationFilter(name=n) for n in orchestrations],
        activities=[pb.ActivityFilter(name=n) for n in activities],
    )
    return engine.open_stream(pb.GetWorkItemsRequest(workItemFilters=filters, **limits))


def _next(engine: Engine, stream, timeout: float = 10.0) -> pb.WorkItem:
    """The stream's next work item, waiting on the engine as GetWorkItems does (bounded)."""
    deadline = time.monotonic() + timeout
    with engine.cv:
        while (item := engine.next_work(stream)) is None:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no work item for stream {stream.id} in {timeout} s"
            engine.cv.wait(min(remaining, 0.2))
    return item


def _nothing_for(engine: Engine, stream) -> bool:
    with engine.cv:
        return engine.next_work(stream) is None


def _start(engine: Engine, name: str, instance_id: str) -> None:
    engine.start_instance(pb.CreateInstanceRequest(name=name, instanceId=instance_id))


def _schedule(item: pb.WorkItem, activity: str) -> pb.OrchestratorResponse:
    task = pb.ScheduleTaskAction(name=activity, input=wrappers_pb2.StringValue(value='"x"'))
    return pb.OrchestratorResponse(
        instanceId=item.orchestratorRequest.instanceId,
        completionToken=item.completionToken,
        actions=[pb.OrchestratorAction(id=0, scheduleTask=task)],
    )


def test_each_kind_of_work_goes_only_to_streams_whose_filters_accept_it(engine: Engine) -> None:
    other = _stream(engine, orchestrations=["Other"], activities=["Other"])
    orchestrator = _stream(engine, orchestrations=["Greet"])
    activity = _stream(engine, activities=["Hello"])
    _start(engine, "Greet", "i1")
    assert _nothing_for(engine, other) and _nothing_for(engine, activity)
    item = _next(engine, orchestrator)
    assert item.orchestratorRequest.instanceId == "i1"
    assert item.orchestratorRequest.newEvents[1].executionStarted.name == "Greet"
    engine.complete_orchestration(_schedule(item, "Hello"))
    assert _nothing_for(engine, other) and _nothing_for(engine, orchestrator)
    task = _next(engine, activity)
    assert (task.activityRequest.name, task.activityRequest.input.value) == ("Hello", '"x"')
    assert task.activityRequest.orchestrationInstance.instanceId == "i1"


def test_a_stream_gets_orchestrations_before_activities_within_its_limits(engine: Engine) -> None:
    first = _stream(engine, orchestrations=["Greet"])
    _start(engine, "Greet", "a1")
    engine.complete_orchestration(_schedule(_next(engine, first), "Hello"))
    both = _stream(
        engine,
        orchestrations=["Greet"],
        activities=["Hello"],
        maxConcurrentOrchestrationWorkItems=1,
        maxConcurrentActivityWorkItems=1,
    )
    _start(engine, "Greet", "a2")
    _start(engine, "Greet", "a3")
    kinds = [_next(engine, both).WhichOneof("request") for _ in range(2)]
    assert kinds == ["orchestratorRequest", "activityRequest"]
    assert _nothing_for(engine, both)  # one of each in flight: both limits reached


def test_work_of_a_closed_stream_goes_to_another_and_its_token_stays_good(engine: Engine) -> None:
    orchestrator = _stream(engine, orchestrations=["Greet"])
    _start(engine, "Greet", "r1")
    engine.complete_orchestration(_schedule(_next(engine, orchestrator), "Hello"))
    lost = _stream(engine, activities=["Hello"])
    task = _next(engine, lost)
    engine.close_stream(lost)
    again = _next(engine, _stream(engine, activities=["Hello"]))
    assert again.activityRequest == task.activityRequest
    result = wrappers_pb2.StringValue(value='"done"')
    # The late answer from the worker whose stream broke is accepted once; the second is stale.
    for token in (task.completionToken, again.completionToken):
        engine.complete_activity(
            pb.ActivityResponse(instanceId="r1", taskId=0, result=result, completionToken=token)
        )
    resumed = _next(engine, orchestrator).orchestratorRequest
    completed = [e for e in resumed.newEvents if e.HasField("taskCompleted")]
    assert [e.taskCompleted.result.value for e in completed] == ['"done"']


def test_recovery_removes_pending_rows_of_starts_that_were_never_acknowledged(
    connection_string: str, hub_name: str
) -> None:
    def new_engine() -> Engine:
        return Engine(Store(RestStorage.from_connection_string(connection_string), hub_name))

    engine = new_engine()
    engine.start()
    try:
        engine.start_instance(pb.CreateInstanceRequest(name="NoWorker", instanceId="started"))
        # What a crash between the row's insert and the journal append leaves behind:
        orphan = schema.instance_entity(
            "orphan", Name="NoWorker", RuntimeStatus="Pending", CreatedTime=datetime.now(UTC)
        )
        assert engine.store.insert_instance_row(wire(orphan))
    finally:
        engine.stop()
    engine = new_engine()
    engine.start()
    try:
        assert engine.store.get_instance_row("orphan") is None
        started = engine.store.get_instance_row("started")
        assert started is not None and started["RuntimeStatus"] == "Pending"
    finally:
        engine.stop()
