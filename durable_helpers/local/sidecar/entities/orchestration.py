"""Entity traffic of orchestrations, in the shape DTFx writes it (EventSent / EventRaised).

An orchestration's ``sendEntityMessage`` action (a call, a signal, a lock request or an unlock)
becomes, in the orchestration's own history, an ``EventSent`` row (EventId = the action id,
InstanceId = the entity, Name = ``op`` / ``op@<due>`` / ``release``, Input = the RequestMessage
or ReleaseMessage JSON), and, to the entity, the same body as an ``EventRaised`` message. Answers
go back as ``EventRaised`` named after the request id (a result) or the critical section (a lock
grant). The Python SDK accepts exactly this shape in the histories it replays.

May call: the engine's clock and ids (through the planner's episode); nothing else.

Example:
    >>> import durabletask.internal.orchestrator_service_pb2 as pb
    >>> from datetime import datetime, timezone
    >>> call = pb.EntityOperationCalledEvent(requestId="r1", operation="get")
    >>> call.targetInstanceId.value = "@counter@c1"
    >>> m = outgoing_entity_message(pb.SendEntityMessageAction(entityOperationCalled=call),
    ...                             "orch1", "x1", datetime(2026, 1, 1, tzinfo=timezone.utc))
    >>> m.target, m.name
    ('@counter@c1', 'op')
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import durabletask.internal.orchestrator_service_pb2 as pb

from durable_helpers.local.sidecar.entities.model import Request
from durable_helpers.local.sidecar.entities.rows import request_json
from durable_helpers.local.sidecar.state import OMsg, ts
from durable_helpers.schema import entity_messages as em

if TYPE_CHECKING:
    from durable_helpers.local.sidecar.checkpoint import Episode

UTC = timezone.utc  # noqa: UP017
log = logging.getLogger("durable_helpers.local.sidecar")


@dataclass(frozen=True)
class EntityMessage:
    """One message to an entity: its target, event name, JSON body, and when it is due."""

    target: str
    name: str
    body: str
    due: datetime | None = None


def _when(value: pb.EntityOperationSignaledEvent) -> datetime | None:
    if not value.HasField("scheduledTime"):
        return None
    return value.scheduledTime.ToDatetime(tzinfo=UTC)


def signal_message(
    target: str,
    operation: str,
    input: str | None,
    request_id: str,
    *,
    parent: str | None,
    due: datetime | None,
    now: datetime,
) -> EntityMessage:
    """A signal (one-way operation) to ``target``; ``due`` in the future makes it ``op@<due>``.

    Example:
        >>> from datetime import datetime, timezone
        >>> now = datetime(2026, 1, 1, tzinfo=timezone.utc)
        >>> signal_message("@a@1", "add", "1", "r", parent=None, due=None, now=now).name
        'op'
    """
    if due is not None and due <= now:
        due = None
    req = Request(id=request_id, op=operation, input=input, signal=True, parent=parent, due=due)
    name = em.OPERATION_EVENT if due is None else em.delayed_operation_event(due, now=now)
    return EntityMessage(target, name, request_json(req, timestamp=now), due)


def outgoing_entity_message(
    message: pb.SendEntityMessageAction, parent: str, parent_execution: str, now: datetime
) -> EntityMessage:
    """The entity message an orchestration's ``sendEntityMessage`` action sends.

    Raises ValueError for an action that names no entity.
    """
    kind = message.WhichOneof("EntityMessageType")
    if kind == "entityOperationSignaled":
        e = message.entityOperationSignaled
        return signal_message(
            e.targetInstanceId.value,
            e.operation,
            e.input.value if e.HasField("input") else None,
            e.requestId,
            parent=parent,
            due=_when(e),
            now=now,
        )
    if kind == "entityOperationCalled":
        c = message.entityOperationCalled
        req = Request(
            id=c.requestId,
            op=c.operation,
            input=c.input.value if c.HasField("input") else None,
            parent=parent,
            parent_execution=parent_execution or None,
        )
        return EntityMessage(
            c.targetInstanceId.value, em.OPERATION_EVENT, request_json(req, timestamp=now)
        )
    if kind == "entityLockRequested":
        lk = message.entityLockRequested
        lockset = tuple(lk.lockSet)
        if not 0 <= lk.position < len(lockset):
            raise ValueError(f"lock request {lk.criticalSectionId!r} has no entity to lock")
        req = Request(
            id=lk.criticalSectionId,
            parent=parent,
            parent_execution=parent_execution or None,
            lockset=lockset,
            pos=lk.position,
        )
        return EntityMessage(
            lockset[lk.position], em.OPERATION_EVENT, request_json(req, timestamp=now)
        )
    if kind == "entityUnlockSent":
        u = message.entityUnlockSent
        return EntityMessage(
            u.targetInstanceId.value,
            em.RELEASE_EVENT,
            em.release_message_json(parent=parent, id=u.criticalSectionId),
        )
    raise ValueError(f"unknown entity message {kind!r}")


def plan_entity_message(ep: Episode, action: pb.OrchestratorAction) -> None:
    """Plan an orchestration's ``sendEntityMessage``: its EventSent row and the message."""
    parent = ep.inst.instance_id
    try:
        m = outgoing_entity_message(action.sendEntityMessage, parent, ep.st.execution_id, ep.now)
    except ValueError as error:
        log.warning("orchestration %r: %s; not sent", parent, error)
        return
    ep.add_row(action.id, eventSent=event_sent(action.id, m).eventSent)
    raised = event_raised(m)
    raised.timestamp.CopyFrom(ts(ep.engine.now()))
    visible = m.due.timestamp() if m.due is not None else 0.0
    ep.plan.omsgs.append(OMsg(ep.engine.new_id(), m.target, raised, visible_at=visible))


def event_sent(action_id: int, message: EntityMessage) -> pb.HistoryEvent:
    """The ``EventSent`` history event an orchestration records for an entity message.

    Example:
        >>> event_sent(3, EntityMessage("@a@1", "op", "{}")).eventSent.instanceId
        '@a@1'
    """
    ev = pb.HistoryEvent(
        eventId=action_id,
        eventSent=pb.EventSentEvent(instanceId=message.target, name=message.name),
    )
    ev.eventSent.input.value = message.body
    return ev


def event_raised(message: EntityMessage) -> pb.HistoryEvent:
    """The ``EventRaised`` message the entity receives (timestamp set by the sender).

    Example:
        >>> event_raised(EntityMessage("@a@1", "release", "{}")).eventRaised.name
        'release'
    """
    ev = pb.HistoryEvent(eventId=-1, eventRaised=pb.EventRaisedEvent(name=message.name))
    ev.eventRaised.input.value = message.body
    return ev


def response_event(request_id: str, body: str) -> pb.HistoryEvent:
    """An entity's answer to an orchestration: ``EventRaised`` named after the request id.

    Example:
        >>> response_event("r1", '{"result":"5"}').eventRaised.name
        'r1'
    """
    ev = pb.HistoryEvent(eventId=-1, eventRaised=pb.EventRaisedEvent(name=request_id))
    ev.eventRaised.input.value = body
    return ev
