"""Rewind: a client's request to rewind a failed instance, and planning the rewound history.

``request_rewind`` (the RewindInstance RPC) checks the instance failed, reloads its full history
(finished instances live in the tables only), holds its dispatch, and journals an
ExecutionRewound message with the Instances row back to Running. The worker answers that
episode with a ``rewindOrchestration`` action carrying the new history; ``plan_rewind`` writes
it as a new set of History rows (from row 0), kicks the instance so it runs again, and sends
ExecutionRewound on to every sub-orchestration that had not completed (so a failed child is
rewound too, recursively, and reports to its parent again), or starts it again when it was
purged since.

May call: the inbox (load, deliver), :mod:`~.checkpoint`, :mod:`~.sub_orchestrations` (does a
child exist, start it again), the store and the journal, the engine's clock and ids.
``request_rewind`` takes the lock itself, never across I/O.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import durabletask.internal.orchestrator_service_pb2 as pb

from durable_helpers.local.sidecar import sub_orchestrations
from durable_helpers.local.sidecar.checkpoint import (
    Episode,
    instance_op,
    instance_row,
    plan_history_rows,
)
from durable_helpers.local.sidecar.state import EngineError, Inst, NewState, OMsg, sv
from durable_helpers.protocol_rows import STATUS_NAMES

if TYPE_CHECKING:
    from durable_helpers.local.sidecar.engine import Engine


def request_rewind(engine: Engine, instance_id: str, reason: str | None) -> None:
    """Queue a rewind of a failed instance (raises EngineError when it cannot be rewound)."""
    snap = engine.instance_state(instance_id)
    if snap is None:
        raise EngineError("NOT_FOUND", f"No orchestration instance with id {instance_id!r}.")
    if snap.status != pb.ORCHESTRATION_STATUS_FAILED:
        raise EngineError(
            "FAILED_PRECONDITION",
            f"Only a failed orchestration can be rewound; {instance_id!r} is "
            f"{STATUS_NAMES.get(snap.status)}.",
        )
    inbox = engine.inbox
    with engine.lock:
        inst = inbox.active.get(instance_id)
        if inst is None:
            inst = inbox.active[instance_id] = Inst(instance_id, loaded=False)
        if inst.in_flight is not None or inst.rewinding:
            raise EngineError("FAILED_PRECONDITION", f"{instance_id!r} is already being rewound.")
        inst.loaded = False  # reload the full history (the tables keep finished ones)
        inst.loading = True
        inst.rewinding = True  # keeps it in memory, and holds dispatch until the event is in
        inbox.forget_finished(instance_id)
    try:
        inbox.load(instance_id)
    except Exception:
        with engine.lock:
            inst.rewinding = False
        raise
    ev = engine.new_event(
        executionRewound=pb.ExecutionRewoundEvent(reason=sv(reason)),
    )
    msg = OMsg(engine.new_id(), instance_id, ev)
    with engine.lock:
        st = NewState.from_inst(inst)
    st.status = pb.ORCHESTRATION_STATUS_RUNNING
    st.output = st.failure = st.completed = None
    st.last_updated = engine.now()
    row, blobs = instance_row(engine.store, instance_id, st, st.row_blobs)
    engine.store.upload_blobs(blobs)
    ops = [instance_op(row)]
    journal = engine.store.journal
    journal.begin()
    try:
        journal.append({"m": [msg.record()], "ops": ops})
        engine.store.write(ops, now=True)
        with engine.lock:
            st.store_into(inst)
            inbox.deliver(msg)
    finally:
        journal.done()


def plan_rewind(ep: Episode, action: pb.RewindOrchestrationAction) -> None:
    """Plan a worker's ``rewindOrchestration`` answer: the new history, from row 0."""
    inst, st, plan = ep.inst, ep.st, ep.plan
    new_history = list(action.newHistory)
    exec_id = inst.execution_id
    for e in new_history:
        if e.HasField("executionStarted"):
            es = e.executionStarted
            if es.orchestrationInstance.HasField("executionId"):
                exec_id = es.orchestrationInstance.executionId.value
            if es.HasField("parentInstance"):  # a rewound child reports to its parent again
                st.parent = es.parentInstance
    st.execution_id = exec_id
    st.status = pb.ORCHESTRATION_STATUS_RUNNING
    st.output = None
    st.failure = None
    st.completed = None
    st.last_updated = ep.now
    st.new_execution = True
    st.kick = True
    reason = None
    for e in reversed(new_history):
        if e.HasField("executionRewound"):
            reason = (
                e.executionRewound.reason.value if e.executionRewound.HasField("reason") else None
            )
            break
    completed_ids = {
        e.subOrchestrationInstanceCompleted.taskScheduledId
        for e in new_history
        if e.HasField("subOrchestrationInstanceCompleted")
    }
    for e in new_history:
        if e.HasField("subOrchestrationInstanceCreated") and e.eventId not in completed_ids:
            created = e.subOrchestrationInstanceCreated
            exists, _, generation = sub_orchestrations.child_status(ep, created.instanceId)
            if exists:  # rewound in turn (recursively, by its own rewind episode)
                ep.send(
                    created.instanceId,
                    executionRewound=pb.ExecutionRewoundEvent(reason=sv(reason)),
                )
            else:  # purged since: run it again from the start
                sub_orchestrations.start_child(ep, e.eventId, created, generation)
    plan.history_events = new_history
    plan_history_rows(
        ep.engine.store, inst.instance_id, st, [(e, True) for e in new_history], 0, plan
    )
    plan.state = st
