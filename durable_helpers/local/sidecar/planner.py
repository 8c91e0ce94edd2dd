"""Planning an orchestrator response: the worker's actions into rows, messages and timers.

``plan_response`` reads a completed orchestrator work item (the events it delivered and the
actions the worker answered) and returns a :class:`~.checkpoint.Plan`, changing nothing yet:
new state from the delivered events (started, suspended, resumed, rewound), then one step per
action: a scheduled activity (a TaskScheduled row and an ``AMsg``), a durable timer (a
TimerCreated row and a TimerFired message visible at its time), an event sent to another
instance, a termination of another instance. Sub-orchestrations
(:mod:`~.sub_orchestrations`), completion and continue-as-new (:mod:`~.completion`) and rewind
(:mod:`~.rewind`) are planned in their own modules, each step taking the
:class:`~.checkpoint.Episode` and its action. A new kind of action (entity operations) is one
more branch in ``plan_response`` that adds rows and messages to the episode.

May call: the planning modules above, :mod:`~.checkpoint`, the store's row reads, and the
engine's clock and ids; it takes the lock only for short reads of the inbox, never across I/O.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

import durabletask.internal.orchestrator_service_pb2 as pb

from durable_helpers.local.sidecar import completion, rewind, sub_orchestrations
from durable_helpers.local.sidecar.checkpoint import Episode, Plan, plan_history_rows
from durable_helpers.local.sidecar.state import (
    UTC,
    AMsg,
    Dispatch,
    Inst,
    NewState,
    OMsg,
    present,
    row_running,
    sv,
)

if TYPE_CHECKING:
    from durable_helpers.local.sidecar.engine import Engine

log = logging.getLogger("durable_helpers.local.sidecar")


def plan_response(engine: Engine, inst: Inst, d: Dispatch, resp: pb.OrchestratorResponse) -> Plan:
    """The checkpoint of ``resp`` for work item ``d`` of ``inst`` (nothing applied yet)."""
    plan = Plan(consumed=[m.id for m in d.msgs])
    ep = Episode(engine, inst, NewState.from_inst(inst), engine.now(), plan)
    st = ep.st
    inbound = list(d.request.newEvents)
    ep.history.append((inbound[0], False))
    ep.history += [(e, True) for e in inbound[1:]]
    if resp.HasField("customStatus"):
        st.custom_status = resp.customStatus.value
    terminate_recurse = _apply_delivered(st, inbound[1:], ep.now)
    finished: pb.HistoryEvent | None = None
    for action in resp.actions:
        kind = action.WhichOneof("orchestratorActionType")
        if kind == "scheduleTask":
            _plan_task(ep, action)
        elif kind == "createTimer":
            _plan_timer(ep, action)
        elif kind == "createSubOrchestration":
            sub_orchestrations.plan_create(ep, action)
        elif kind == "sendEvent":
            _plan_send_event(ep, action)
        elif kind == "terminateOrchestration":
            a = action.terminateOrchestration
            ep.send(
                a.instanceId,
                executionTerminated=pb.ExecutionTerminatedEvent(
                    input=a.reason if a.HasField("reason") else None, recurse=a.recurse
                ),
            )
        elif kind == "completeOrchestration":
            finished = completion.plan_completion(ep, action)
        elif kind == "rewindOrchestration":
            rewind.plan_rewind(ep, action.rewindOrchestration)
            return plan
        else:
            log.warning(
                "orchestration %r: action %r is not supported by the local task hub "
                "(entities are not implemented); ignored",
                inst.instance_id,
                kind,
            )
    if (
        finished is not None
        and terminate_recurse
        and st.status == pb.ORCHESTRATION_STATUS_TERMINATED
    ):
        sub_orchestrations.plan_terminate_children(ep, finished)
    ep.history.append(
        (
            engine.new_event(
                orchestratorCompleted=pb.OrchestratorCompletedEvent(),
            ),
            False,
        )
    )
    st.last_updated = ep.now
    plan.history_events = [e for e, _ in ep.history]
    first_row = 0 if st.new_execution else len(inst.history)
    plan_history_rows(engine.store, inst.instance_id, st, ep.history, first_row, plan)
    plan.state = st
    return plan


def _apply_delivered(st: NewState, delivered: list[pb.HistoryEvent], now: datetime) -> bool:
    """The new state from the events the work item delivered; True for a recursive terminate."""
    terminate_recurse = False
    for e in delivered:
        kind = e.WhichOneof("eventType")
        if kind == "executionStarted":
            es = e.executionStarted
            st.name = es.name
            st.version = es.version.value if es.HasField("version") else None
            st.input = es.input.value if es.HasField("input") else None
            st.parent = es.parentInstance if es.HasField("parentInstance") else None
            st.tags = dict(es.tags)
            st.status = pb.ORCHESTRATION_STATUS_RUNNING
            st.created = e.timestamp.ToDatetime(tzinfo=UTC) if e.HasField("timestamp") else now
            st.new_execution = True
        elif kind == "executionSuspended":
            st.status = pb.ORCHESTRATION_STATUS_SUSPENDED
        elif kind == "executionResumed":
            st.status = pb.ORCHESTRATION_STATUS_RUNNING
        elif kind == "executionTerminated" and e.executionTerminated.recurse:
            terminate_recurse = True
        elif kind == "executionRewound":
            st.status = pb.ORCHESTRATION_STATUS_RUNNING
    if st.status == pb.ORCHESTRATION_STATUS_PENDING:
        st.status = pb.ORCHESTRATION_STATUS_RUNNING
    return terminate_recurse


def _plan_task(ep: Episode, action: pb.OrchestratorAction) -> None:
    """A scheduled activity: its TaskScheduled row and its activity work item."""
    a = action.scheduleTask
    version, task_input, trace = present(a, "version", "input", "parentTraceContext")
    ep.add_row(
        action.id,
        taskScheduled=pb.TaskScheduledEvent(
            name=a.name, version=version, input=task_input, tags=a.tags, parentTraceContext=trace
        ),
    )
    req = pb.ActivityRequest(
        name=a.name,
        version=version,
        input=task_input,
        orchestrationInstance=pb.OrchestrationInstance(
            instanceId=ep.inst.instance_id, executionId=sv(ep.inst.execution_id)
        ),
        taskId=action.id,
        tags=a.tags,
        parentTraceContext=trace,
    )
    ep.plan.amsgs.append(AMsg(ep.engine.new_id(), req))


def _plan_timer(ep: Episode, action: pb.OrchestratorAction) -> None:
    """A durable timer: its TimerCreated row and a TimerFired message visible at its time."""
    fire_at = action.createTimer.fireAt
    ep.add_row(action.id, timerCreated=pb.TimerCreatedEvent(fireAt=fire_at))
    fired = pb.HistoryEvent(
        eventId=-1,
        timestamp=fire_at,
        timerFired=pb.TimerFiredEvent(fireAt=fire_at, timerId=action.id),
    )
    visible_at = fire_at.ToNanoseconds() / 1e9
    ep.plan.omsgs.append(
        OMsg(ep.engine.new_id(), ep.inst.instance_id, fired, visible_at=visible_at)
    )


def _plan_send_event(ep: Episode, action: pb.OrchestratorAction) -> None:
    """An event sent to another instance: its EventSent row and, if it runs, the message."""
    a = action.sendEvent
    target = a.instance.instanceId
    data = a.data if a.HasField("data") else None
    ep.add_row(action.id, eventSent=pb.EventSentEvent(instanceId=target, name=a.name, input=data))
    if target and _deliverable(ep.engine, target):
        ep.send(target, eventRaised=pb.EventRaisedEvent(name=a.name, input=data))
    else:
        log.info(
            "event %r from %r to %r dropped: no such running instance",
            a.name,
            ep.inst.instance_id,
            target,
        )


def _deliverable(engine: Engine, target: str) -> bool:
    """True when ``target`` exists and has not finished (memory first, else its row)."""
    with engine.lock:
        inst = engine.inbox.active.get(target)
        if inst is not None and inst.loaded:
            return not inst.terminal
    return row_running(engine.store.get_instance_row(target))
