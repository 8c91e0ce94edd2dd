"""Committing an entity step: the worker's results into answers, signals, starts and rows.

One step is one journal record: the messages it sends (answers to calling orchestrations,
forwarded lock requests or lock grants, signals to other entities, the ExecutionStarted of
orchestrations it starts), the acknowledgement of the inbox messages it consumed, and its table
writes (the entity's rows, the Pending rows of started orchestrations). Then the tables are
written, then memory is changed, so each operation is applied exactly once across a crash.

May call: the engine's clock and ids, its inbox (delivering messages), its client part (the
parts of an orchestration start), the store and the journal; it takes the lock only for the
in-memory steps, never across I/O.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import durabletask.internal.orchestrator_service_pb2 as pb

from durable_helpers.local.sidecar.checkpoint import instance_op
from durable_helpers.local.sidecar.entities.model import EntityRecord, Request, Step, forwarded_lock
from durable_helpers.local.sidecar.entities.orchestration import (
    EntityMessage,
    event_raised,
    response_event,
    signal_message,
)
from durable_helpers.local.sidecar.entities.rows import normalized_entity_id, request_json, step_ops
from durable_helpers.local.sidecar.state import TERMINAL, OMsg, ts
from durable_helpers.protocol_rows import failure_to_json
from durable_helpers.schema import entity_messages as em

if TYPE_CHECKING:
    from durable_helpers.local.sidecar.engine import Engine
    from durable_helpers.local.sidecar.entities.hub import Batch, EntityHub, Live

log = logging.getLogger("durable_helpers.local.sidecar")
UTC = timezone.utc  # noqa: UP017


def message(engine: Engine, instance_id: str, event: pb.HistoryEvent, visible_at: float = 0.0):
    """A new durable message to ``instance_id`` (stamped with the engine's clock)."""
    if not event.HasField("timestamp"):
        event.timestamp.CopyFrom(ts(engine.now()))
    return OMsg(engine.new_id(), instance_id, event, visible_at=visible_at)


def commit_quietly(hub: EntityHub, live: Live, batch: Batch) -> None:
    """Commit a step without operations (locks, releases, waiting requests); retried on error."""
    batch.committing = True
    try:
        commit(hub, live, batch, None)
    except Exception:
        log.exception("entity %r: step failed; retrying in 1 s", live.record.instance_id)


def commit(hub: EntityHub, live: Live, batch: Batch, result: pb.EntityBatchResult | None) -> None:
    """Journal, write and apply one step (``result``: the worker's, None for a quiet step)."""
    engine = hub.engine
    now = engine.now()
    old, step = live.record, batch.step
    new = replace(
        old,
        queue=list(step.queue),
        locked_by=step.locked_by,
        execution_id=engine.new_id(),
        modified=now,
        updated=now,
        stored=True,
    )
    out: list[OMsg] = []
    ops: list[dict[str, Any]] = []
    blobs: list[tuple[str, bytes]] = []
    if result is not None:
        _plan_results(engine, old, step, result, new, out, ops, blobs, now)
    if step.lock is not None:
        out.extend(_lock_messages(engine, step.lock, now))
    entity_ops, entity_blobs = step_ops(new, engine.hub, engine.store.largemessages_url, now)
    ops += entity_ops
    blobs += entity_blobs
    journal = engine.store.journal
    journal.begin()
    try:
        try:
            engine.store.upload_blobs(blobs)
            journal.append(
                {"m": [m.record() for m in out], "a": [m.id for m in batch.msgs], "ops": ops}
            )
        except Exception:
            with engine.lock:
                batch.committing = False
                if batch.request is None:
                    live.batch = None
                else:
                    batch.redeliver = True
            threading.Timer(1.0, hub.kick_locked, args=(live,)).start()
            raise
        engine.store.write(ops)
        with engine.lock:
            taken = {m.id for m in batch.msgs}
            live.record = new
            live.inbox = [(m, i) for m, i in live.inbox if m.id not in taken]
            live.batch = None
            engine.work.forget_tokens(batch.tokens)
            for msg in out:
                engine.inbox.deliver(msg)
            hub.kick(live)
            hub.forget_idle()
            engine.cv.notify_all()
    finally:
        journal.done()


def _lock_messages(engine: Engine, lock: Request, now: datetime) -> list[OMsg]:
    """A granted lock request: forwarded to the next entity of its set, or the grant.

    When the whole set is locked but the orchestration that asked has finished meanwhile (it
    was terminated or failed while waiting, so no SDK will ever unlock), the set is released
    instead of granted: a deliberate repair that DTFx leaves to CleanEntityStorage.
    """
    nxt = forwarded_lock(lock)
    if nxt is not None:
        target, request = nxt
        body = request_json(request, timestamp=now)
        forward = EntityMessage(target, em.OPERATION_EVENT, body)
        return [message(engine, target, event_raised(forward))]
    assert lock.parent is not None and lock.lockset is not None
    owner = engine.instance_state(lock.parent)
    if owner is None or owner.status in TERMINAL:
        log.info("releasing the locks of %r at once: it is no longer running", lock.parent)
        body = em.release_message_json(parent=lock.parent, id=lock.id)
        return [
            message(engine, e, event_raised(EntityMessage(e, em.RELEASE_EVENT, body)))
            for e in lock.lockset
        ]
    body = em.response_message_json(result=em.LOCK_GRANTED_RESULT)
    return [message(engine, lock.parent, response_event(lock.id, body))]


def _plan_results(engine, old, step, result, new, out, ops, blobs, now) -> None:
    """Answers to callers, then the batch's signals and orchestration starts."""
    if result.HasField("failureDetails"):  # the whole batch failed: the state is unchanged
        failure = failure_to_json(result.failureDetails)
        bodies = [em.response_message_json(result=None, failure_details=failure)] * len(step.ops)
    else:
        new.state = result.entityState.value if result.HasField("entityState") else None
        bodies = [_response_body(r) for r in result.results]
    for req, body in zip(step.ops, bodies, strict=True):
        if req.is_call:
            out.append(message(engine, req.parent, response_event(req.id, body)))
    if result.HasField("failureDetails"):
        return
    for action in result.actions:
        kind = action.WhichOneof("operationActionType")
        if kind == "sendSignal":
            msg = _signal(engine, old.instance_id, action.sendSignal, now)
            if msg is not None:
                out.append(msg)
        elif kind == "startNewOrchestration":
            parts = _start(engine, old.instance_id, action.startNewOrchestration)
            if parts is not None:
                out.append(parts[0])
                ops.extend(parts[1])
                blobs.extend(parts[2])


def _signal(engine: Engine, sender: str, a: pb.SendSignalAction, now: datetime) -> OMsg | None:
    target = normalized_entity_id(a.instanceId)
    if target is None:
        log.warning("entity %r signalled %r: not an entity id; dropped", sender, a.instanceId)
        return None
    due = a.scheduledTime.ToDatetime(tzinfo=UTC) if a.HasField("scheduledTime") else None
    m = signal_message(
        target,
        a.name,
        a.input.value if a.HasField("input") else None,
        str(uuid.uuid4()),
        parent=sender,
        due=due,
        now=now,
    )
    return message(engine, target, event_raised(m), m.due.timestamp() if m.due else 0.0)


def _start(engine: Engine, sender: str, a: pb.StartNewOrchestrationAction):
    """(ExecutionStarted message, ops, blobs) of an orchestration an entity starts, or None."""
    instance_id = a.instanceId or uuid.uuid4().hex
    if instance_id.startswith("@"):
        log.warning("entity %r: cannot start an orchestration with id %r", sender, instance_id)
        return None
    existing = engine.instance_state(instance_id)
    if existing is not None and existing.status not in TERMINAL:
        log.warning(
            "entity %r: orchestration %r not started: an instance with that id is %s",
            sender,
            instance_id,
            "running",
        )
        return None
    req = pb.CreateInstanceRequest(
        instanceId=instance_id,
        name=a.name,
        version=a.version if a.HasField("version") else None,
        input=a.input if a.HasField("input") else None,
        scheduledStartTimestamp=a.scheduledTime if a.HasField("scheduledTime") else None,
    )
    generation = existing.generation + 1 if existing is not None else 0
    msg, _st, row, blobs = engine.clients.start_parts(req, instance_id, generation)
    return msg, [instance_op(row)], blobs


def _response_body(result: pb.OperationResult) -> str:
    if result.HasField("failure"):
        fd = result.failure.failureDetails
        return em.response_message_json(result=None, failure_details=failure_to_json(fd))
    value = result.success.result.value if result.success.HasField("result") else ""
    return em.response_message_json(result=value or None)


def entity_request(record: EntityRecord, step: Step) -> pb.EntityRequest:
    """The V2 work item of a step: the state plus one history event per operation."""
    events = []
    for req in step.ops:
        ev = pb.HistoryEvent(eventId=-1)
        if req.is_call:
            call = ev.entityOperationCalled
            call.requestId, call.operation = req.id, req.op or ""
            call.parentInstanceId.value = req.parent or ""
            if req.parent_execution:
                call.parentExecutionId.value = req.parent_execution
            call.targetInstanceId.value = record.instance_id
            if req.input is not None:
                call.input.value = req.input
        else:
            signal = ev.entityOperationSignaled
            signal.requestId, signal.operation = req.id, req.op or ""
            signal.targetInstanceId.value = record.instance_id
            if req.input is not None:
                signal.input.value = req.input
        events.append(ev)
    request = pb.EntityRequest(
        instanceId=record.instance_id, executionId=record.execution_id, operationRequests=events
    )
    if record.state is not None:
        request.entityState.value = record.state
    return request
