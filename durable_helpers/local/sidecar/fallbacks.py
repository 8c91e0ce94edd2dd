"""Work items the sidecar answers itself, as a worker would, when no worker can.

Two cases: terminating an instance that no connected worker handles (ending an instance runs
no user code: the SDK answers a terminate with a TERMINATED completion whose output is the
reason), and failing an instance whose work item broke every worker stream it was sent on
(``WorkItemUndeliverable``, with what to do). Both answer through the normal completion path,
so the result is checkpointed like any worker's.

May call: the engine's orchestrator work items (``item_for``, ``complete``), work items
(abandon) and the inbox (load). Both functions run on the engine's loader pool and take the
lock themselves.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

import durabletask.internal.orchestrator_service_pb2 as pb

from durable_helpers.local.limits import SDK_DEFAULT_RECEIVE_BYTES
from durable_helpers.local.sidecar.work_items import Stream

if TYPE_CHECKING:
    from durable_helpers.local.sidecar.engine import Engine

log = logging.getLogger("durable_helpers.local.sidecar")

#: The stream of work items the sidecar answers itself; never a worker's.
SIDECAR_STREAM = -1


def sidecar_stream() -> Stream:
    """A stream that takes any orchestrator work item and nothing else.

    Example:
        >>> sidecar_stream().has_room("o"), sidecar_stream().has_room("a")
        (True, False)
    """
    return Stream(SIDECAR_STREAM, limits={"o": 2**31, "a": 0})


def terminate_unhandled(engine: Engine, instance_id: str) -> None:
    """Terminate an instance that no connected worker handles, answering as a worker would.

    Without this, an instance of an orchestrator that no worker registers (a typo in the
    name) could never be terminated, nor purged.
    """
    with engine.lock:
        inst = engine.inbox.active.get(instance_id)
        if (
            inst is None
            or inst.in_flight is not None
            or inst.rewinding
            or engine.orchestrations.handles(inst)
        ):
            return
        if not inst.loaded:
            engine.inbox.start_loading(inst)  # marks it ready: back here
            return
        item = engine.orchestrations.item_for(inst, engine.sidecar_stream)
    if item is None:
        return
    request = item.orchestratorRequest
    ends = [e for e in request.newEvents if e.HasField("executionTerminated")]
    if not ends:  # not expected (rewinds are excluded above); let a worker have it
        engine.abandon(item.completionToken)
        return
    reason = ends[-1].executionTerminated
    terminated = pb.CompleteOrchestrationAction(
        orchestrationStatus=pb.ORCHESTRATION_STATUS_TERMINATED,
        result=reason.input if reason.HasField("input") else None,
    )
    log.info("terminating %r in the sidecar: no connected worker handles it", instance_id)
    _answer(engine, instance_id, item.completionToken, terminated)


def fail_undeliverable(engine: Engine, instance_id: str, token: str) -> None:
    """Fail an instance whose work item broke every worker stream it was sent on.

    A worker drops its stream when a message exceeds what it receives (4 MiB by default in
    the SDK), so redelivering would loop for ever while the status said Running.
    """
    with engine.lock:
        inst = engine.inbox.active.get(instance_id)
        d = inst.in_flight if inst else None
        if d is None or token not in d.tokens:
            return
        size = d.request.ByteSize()
        lost = d.lost
    message = (
        f"The sidecar stopped delivering this orchestration's work item ({size / 2**20:.1f} "
        f"MiB): the worker's connection broke {lost} times in a row while receiving it. "
    )
    if size > SDK_DEFAULT_RECEIVE_BYTES:
        message += (
            "SDK workers receive at most 4 MiB per message by default: pass "
            "channel_options=GrpcChannelOptions(max_receive_message_length=...) to "
            "TaskHubGrpcWorker, or keep inputs and results small (store large data "
            "elsewhere and pass its address)."
        )
    else:
        message += "The worker's log says why it disconnected."
    log.error("failing %r: %s", instance_id, message)
    failed = pb.CompleteOrchestrationAction(
        orchestrationStatus=pb.ORCHESTRATION_STATUS_FAILED,
        failureDetails=pb.TaskFailureDetails(
            errorType="WorkItemUndeliverable", errorMessage=message
        ),
    )
    _answer(engine, instance_id, token, failed)


def _answer(
    engine: Engine, instance_id: str, token: str, action: pb.CompleteOrchestrationAction
) -> None:
    """Complete the work item ``token`` with one completeOrchestration action."""
    response = pb.OrchestratorResponse(
        instanceId=instance_id,
        completionToken=token,
        actions=[pb.OrchestratorAction(id=-1, completeOrchestration=action)],
    )
    with contextlib.suppress(Exception):  # a failed checkpoint is redelivered as usual
        engine.orchestrations.complete(response)
