"""Planning an orchestration's end: completed, failed, terminated, or continued as new.

A ``completeOrchestration`` action becomes the ExecutionCompleted row and the final state
(status, output, failure, completed time), and a note to the parent of a sub-orchestration; or,
for continue-as-new, a ContinueAsNew row and the next execution's ExecutionStarted message
(with the carried-over events), the instance staying Running.

May call: :mod:`~.sub_orchestrations` (the parent's note) and the engine's clock and ids.
"""

from __future__ import annotations

import durabletask.internal.orchestrator_service_pb2 as pb

from durable_helpers.local.sidecar.checkpoint import Episode
from durable_helpers.local.sidecar.state import OMsg, sv
from durable_helpers.local.sidecar.sub_orchestrations import plan_parent_note


def plan_completion(ep: Episode, action: pb.OrchestratorAction) -> pb.HistoryEvent:
    """Plan a ``completeOrchestration`` action; returns the history event it adds."""
    st = ep.st
    a = action.completeOrchestration
    status = a.orchestrationStatus
    result = a.result.value if a.HasField("result") else None
    if status == pb.ORCHESTRATION_STATUS_CONTINUED_AS_NEW:
        return _plan_continue_as_new(ep, action, result)
    failure = a.failureDetails if a.HasField("failureDetails") else None
    ev = ep.add_row(
        action.id,
        executionCompleted=pb.ExecutionCompletedEvent(
            orchestrationStatus=status, result=sv(result), failureDetails=failure
        ),
    )
    st.status = status
    st.output = result
    st.failure = failure
    st.completed = ep.now
    plan_parent_note(ep, status, result)
    return ev


def _plan_continue_as_new(
    ep: Episode, action: pb.OrchestratorAction, result: str | None
) -> pb.HistoryEvent:
    """The ContinueAsNew row and the next execution's ExecutionStarted (plus carried events)."""
    st, instance_id = ep.st, ep.inst.instance_id
    a = action.completeOrchestration
    ev = ep.add_row(action.id, continueAsNew=pb.ContinueAsNewEvent(input=sv(result)))
    new_exec = ep.engine.new_id()
    version = a.newVersion.value if a.HasField("newVersion") else st.version
    ep.send(
        instance_id,
        executionStarted=pb.ExecutionStartedEvent(
            name=st.name,
            version=sv(version),
            input=sv(result),
            orchestrationInstance=pb.OrchestrationInstance(
                instanceId=instance_id, executionId=sv(new_exec)
            ),
            parentInstance=st.parent,
            tags=st.tags,
        ),
    )
    for carried in a.carryoverEvents:
        ep.plan.omsgs.append(OMsg(ep.engine.new_id(), instance_id, carried))
    st.continued = True
    return ev
