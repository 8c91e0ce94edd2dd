"""The entity scheduler on its own (pure: no storage, no gRPC): queues, locks, batches."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import durabletask.internal.orchestrator_service_pb2 as pb

from durable_helpers.local.sidecar.entities.hub import incoming_of
from durable_helpers.local.sidecar.entities.model import (
    MAX_BATCH_OPERATIONS,
    EntityRecord,
    Incoming,
    Request,
    forwarded_lock,
    plan_step,
)
from durable_helpers.local.sidecar.entities.orchestration import outgoing_entity_message
from durable_helpers.local.sidecar.entities.rows import (
    record_from_row,
    request_from_json,
    request_json,
    scheduler_state_of,
    step_ops,
)

UTC = timezone.utc  # noqa: UP017
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def op(rid: str, parent: str | None = None, name: str = "add") -> Incoming:
    return Incoming("m-" + rid, request=Request(id=rid, op=name, parent=parent))


def lock(cs: str, parent: str, lockset: tuple[str, ...], pos: int = 0) -> Incoming:
    return Incoming("m-" + cs, request=Request(id=cs, parent=parent, lockset=lockset, pos=pos))


def test_a_batch_takes_every_waiting_operation_in_order():
    step = plan_step(EntityRecord("@c@1"), [op("a"), op("b"), op("c")])
    assert [r.id for r in step.ops] == ["a", "b", "c"]
    assert step.consumed == ["m-a", "m-b", "m-c"] and step.queue == []


def test_a_batch_is_bounded():
    step = plan_step(EntityRecord("@c@1"), [op(str(n)) for n in range(MAX_BATCH_OPERATIONS + 5)])
    assert len(step.ops) == MAX_BATCH_OPERATIONS and len(step.queue) == 5


def test_a_batch_ends_at_a_lock_request_which_is_granted_after_it():
    step = plan_step(EntityRecord("@c@1"), [op("a"), lock("cs", "o1", ("@c@1",)), op("b")])
    assert [r.id for r in step.ops] == ["a"]
    assert step.lock is not None and step.lock.id == "cs"
    assert step.locked_by == "o1"
    assert [r.id for r in step.queue] == ["b"]  # waits: not the holder's


def test_while_locked_only_the_holder_runs_and_goes_first():
    record = EntityRecord("@c@1", locked_by="o1", queue=[Request(id="x", op="add", parent="o2")])
    step = plan_step(record, [op("y", parent="o3"), op("h", parent="o1")])
    assert [r.id for r in step.ops] == ["h"]
    assert [r.id for r in step.queue] == ["x", "y"]
    assert step.locked_by == "o1"


def test_a_release_from_the_holder_unlocks_and_others_run_in_order():
    record = EntityRecord("@c@1", locked_by="o1", queue=[Request(id="x", op="add", parent="o2")])
    step = plan_step(record, [Incoming("m-r", release_parent="o1"), op("y")])
    assert step.locked_by is None and step.releases == 1
    assert [r.id for r in step.ops] == ["x", "y"]


def test_a_release_from_someone_else_changes_nothing():
    record = EntityRecord("@c@1", locked_by="o1")
    step = plan_step(record, [Incoming("m-r", release_parent="o2"), op("y", parent="o2")])
    assert step.locked_by == "o1" and step.ops == [] and step.releases == 0
    assert step.changes_anything  # the waiting request is folded into the queue


def test_a_second_lock_waits_for_the_first_release():
    record = EntityRecord("@c@1", locked_by="o1")
    step = plan_step(record, [lock("cs2", "o2", ("@c@1",))])
    assert step.lock is None and [r.id for r in step.queue] == ["cs2"]
    step = plan_step(EntityRecord("@c@1", locked_by="o1", queue=step.queue), [])
    assert not step.changes_anything
    released = plan_step(
        EntityRecord("@c@1", locked_by="o1", queue=step.queue),
        [Incoming("m-r", release_parent="o1")],
    )
    assert released.lock is not None and released.locked_by == "o2"


def test_a_lock_request_moves_along_its_sorted_lock_set():
    req = Request(id="cs", parent="o1", lockset=("@a@1", "@b@1", "@c@1"))
    target, forwarded = forwarded_lock(req)
    assert (target, forwarded.pos) == ("@b@1", 1)
    target, forwarded = forwarded_lock(forwarded)
    assert (target, forwarded.pos) == ("@c@1", 2)
    assert forwarded_lock(forwarded) is None  # the last one: the grant goes to o1


def test_request_json_round_trips_through_the_provider_layout():
    req = Request(id="cs", parent="o1", parent_execution="x1", lockset=("@a@1", "@b@k/2"), pos=1)
    text = request_json(req, timestamp=NOW)
    body = json.loads(text)
    assert body["op"] is None and body["lockset"] == [
        {"name": "a", "key": "1"},
        {"name": "b", "key": "k/2"},
    ]
    back = request_from_json(text)
    assert (back.id, back.parent, back.lockset, back.pos) == (
        "cs",
        "o1",
        ("@a@1", "@b@k/2"),
        1,
    )


def test_the_queue_survives_the_instances_row():
    record = EntityRecord(
        "@c@1",
        state="5",
        locked_by="o1",
        queue=[request_from_json(request_json(Request(id="r", op="add", input="2", parent="o2")))],
        execution_id="e1",
        modified=NOW,
    )
    ops, _ = step_ops(record, "H", "http://h/c", NOW)
    row = ops[1]["e"]
    back = record_from_row("@c@1", {**row, "CreatedTime": NOW})
    assert (back.state, back.locked_by, [r.id for r in back.queue]) == ("5", "o1", ["r"])
    assert back.queue[0].input == "2" and back.queue[0].parent == "o2"
    assert json.loads(scheduler_state_of(back))["lockedBy"] == "o1"


def test_orchestration_messages_become_the_dtfx_bodies():
    msg = pb.SendEntityMessageAction(
        entityLockRequested=pb.EntityLockRequestedEvent(
            criticalSectionId="cs", lockSet=["@a@1", "@b@1"], position=0
        )
    )
    out = outgoing_entity_message(msg, "o1", "x1", NOW)
    assert (out.target, out.name) == ("@a@1", "op")
    assert request_from_json(out.body).lockset == ("@a@1", "@b@1")
    unlock = pb.SendEntityMessageAction(
        entityUnlockSent=pb.EntityUnlockSentEvent(criticalSectionId="cs")
    )
    unlock.entityUnlockSent.targetInstanceId.value = "@b@1"
    out = outgoing_entity_message(unlock, "o1", "x1", NOW)
    assert (out.target, out.name, json.loads(out.body)) == (
        "@b@1",
        "release",
        {"parent": "o1", "id": "cs"},
    )
    ev = pb.HistoryEvent(eventRaised=pb.EventRaisedEvent(name=out.name))
    ev.eventRaised.input.value = out.body
    assert incoming_of("m", ev).release_parent == "o1"


def test_a_delayed_signal_is_named_op_at_its_time():
    signal = pb.EntityOperationSignaledEvent(requestId="r", operation="add")
    signal.targetInstanceId.value = "@a@1"
    signal.scheduledTime.FromDatetime(datetime(2026, 1, 1, 0, 5))
    out = outgoing_entity_message(
        pb.SendEntityMessageAction(entityOperationSignaled=signal), "o1", "x1", NOW
    )
    assert out.name == "op@2026-01-01T00:05:00.0000000Z"
    assert out.due == datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    assert request_from_json(out.body).due == out.due


def test_unreadable_messages_are_recognised():
    ev = pb.HistoryEvent(eventRaised=pb.EventRaisedEvent(name="op"))
    ev.eventRaised.input.value = "not json"
    assert incoming_of("m", ev) is None
    assert incoming_of("m", pb.HistoryEvent(timerFired=pb.TimerFiredEvent())) is None
