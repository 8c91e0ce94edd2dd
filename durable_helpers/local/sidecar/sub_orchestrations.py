"""Planning sub-orchestrations: creating a child, telling the parent, terminating children.

A parent's ``createSubOrchestration`` action becomes a SubOrchestrationInstanceCreated row, the
child's ExecutionStarted message and its Pending Instances row, in the parent's checkpoint (or a
SubOrchestrationInstanceFailed message to the parent when the id is taken by a running
instance). A child's completion sends the parent SubOrchestrationInstanceCompleted/Failed
(``plan_parent_note``); a recursive terminate reaches every child still open
(``plan_terminate_children``).

May call: :mod:`~.checkpoint`, the store's row reads, the engine's clock and ids, and the inbox
under the lock for a short read.
"""

from __future__ import annotations

import durabletask.internal.orchestrator_service_pb2 as pb

from durable_helpers.local.sidecar.checkpoint import Episode, instance_op, instance_row
from durable_helpers.local.sidecar.state import NewState, present, row_running, sv
from durable_helpers.protocol_rows import STATUS_NAMES


def plan_create(ep: Episode, action: pb.OrchestratorAction) -> None:
    """Plan a ``createSubOrchestration`` action of the episode's instance."""
    engine, inst, st = ep.engine, ep.inst, ep.st
    a = action.createSubOrchestration
    child_id = a.instanceId or f"{inst.instance_id}:{action.id:04x}"
    version, child_input, trace = present(a, "version", "input", "parentTraceContext")
    ep.add_row(
        action.id,
        subOrchestrationInstanceCreated=pb.SubOrchestrationInstanceCreatedEvent(
            instanceId=child_id,
            name=a.name,
            version=version,
            input=child_input,
            tags=a.tags,
            parentTraceContext=trace,
        ),
    )
    generation = 0
    running = False
    with engine.lock:
        child = engine.inbox.active.get(child_id)
        if child is not None and child.loaded:
            running = not child.terminal
            generation = child.generation + 1
    if child is None or not child.loaded:
        row = engine.store.get_instance_row(child_id)
        if row is not None:
            running = row_running(row)
            generation = int(row.get("Generation") or 0) + 1
    if running:
        ep.send(
            inst.instance_id,
            subOrchestrationInstanceFailed=pb.SubOrchestrationInstanceFailedEvent(
                taskScheduledId=action.id,
                failureDetails=pb.TaskFailureDetails(
                    errorType="OrchestrationAlreadyExistsException",
                    errorMessage=f"An orchestration with id {child_id!r} is already running.",
                ),
            ),
        )
        return
    child_exec = engine.new_id()
    parent = pb.ParentInstanceInfo(
        taskScheduledId=action.id,
        name=sv(st.name or inst.name),
        version=sv(st.version) if st.version else None,
        orchestrationInstance=pb.OrchestrationInstance(
            instanceId=inst.instance_id, executionId=sv(inst.execution_id)
        ),
    )
    ep.send(
        child_id,
        executionStarted=pb.ExecutionStartedEvent(
            name=a.name,
            version=version,
            input=child_input,
            orchestrationInstance=pb.OrchestrationInstance(
                instanceId=child_id, executionId=sv(child_exec)
            ),
            parentInstance=parent,
            tags=a.tags,
            parentTraceContext=trace,
        ),
    )
    child_state = NewState(
        name=a.name,
        version=version.value if version is not None else None,
        input=child_input.value if child_input is not None else None,
        status=pb.ORCHESTRATION_STATUS_PENDING,
        execution_id=child_exec,
        created=ep.now,
        last_updated=ep.now,
        generation=generation,
        tags=dict(a.tags),
    )
    ep.plan.children.append((child_id, child_state))
    row, blobs = instance_row(engine.store, child_id, child_state, {})
    ep.plan.blobs.extend(blobs)
    ep.plan.ops.append(instance_op(row))


def plan_parent_note(ep: Episode, status: int, result: str | None) -> None:
    """A finished child tells its parent (if it has one) how it ended."""
    st = ep.st
    if st.parent is None or not st.parent.orchestrationInstance.instanceId:
        return
    pid = st.parent.orchestrationInstance.instanceId
    if status == pb.ORCHESTRATION_STATUS_COMPLETED:
        ep.send(
            pid,
            subOrchestrationInstanceCompleted=pb.SubOrchestrationInstanceCompletedEvent(
                taskScheduledId=st.parent.taskScheduledId, result=sv(result)
            ),
        )
        return
    failure = st.failure or pb.TaskFailureDetails(
        errorType="OrchestrationTerminatedException"
        if status == pb.ORCHESTRATION_STATUS_TERMINATED
        else "OrchestrationFailedException",
        errorMessage=f"Sub-orchestration {ep.inst.instance_id!r} was "
        f"{STATUS_NAMES.get(status, '?').lower()}" + (f": {result}" if result else "."),
    )
    ep.send(
        pid,
        subOrchestrationInstanceFailed=pb.SubOrchestrationInstanceFailedEvent(
            taskScheduledId=st.parent.taskScheduledId, failureDetails=failure
        ),
    )


def plan_terminate_children(ep: Episode, completion: pb.HistoryEvent) -> None:
    """A recursive terminate: terminate every child still open, with the same reason."""
    done = completion.executionCompleted
    reason = done.result if done.HasField("result") else None
    for child in open_children(ep.inst.history + [e for e, _ in ep.history]):
        ep.send(child, executionTerminated=pb.ExecutionTerminatedEvent(input=reason, recurse=True))


def open_children(history: list[pb.HistoryEvent]) -> list[str]:
    """Ids of the sub-orchestrations a history created that have not completed or failed.

    Example:
        >>> created = pb.HistoryEvent(
        ...     eventId=3,
        ...     subOrchestrationInstanceCreated=pb.SubOrchestrationInstanceCreatedEvent(
        ...         instanceId="child"
        ...     ),
        ... )
        >>> open_children([created])
        ['child']
    """
    created = {
        e.eventId: e.subOrchestrationInstanceCreated.instanceId
        for e in history
        if e.HasField("subOrchestrationInstanceCreated")
    }
    for e in history:
        if e.HasField("subOrchestrationInstanceCompleted"):
            created.pop(e.subOrchestrationInstanceCompleted.taskScheduledId, None)
        elif e.HasField("subOrchestrationInstanceFailed"):
            created.pop(e.subOrchestrationInstanceFailed.taskScheduledId, None)
    return list(dict.fromkeys(created.values()))
