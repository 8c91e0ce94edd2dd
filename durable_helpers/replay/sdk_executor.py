"""Recorded protocol events through the ``durabletask`` SDK's own orchestration executor.

This is the one module that relies on private ``durabletask`` names, so that the replay check
runs exactly the code the SDK worker runs (``TaskHubGrpcWorker`` builds the same executor for
every work item) and cannot disagree with it: ``durabletask.worker._OrchestrationExecutor``,
``durabletask.worker._Registry`` and, on the executor's orchestration context, the
``_pending_actions``, ``_pending_events`` and ``_is_complete`` attributes, read (never written)
by a probe wrapped around ``_OrchestrationExecutor.process_event``. ``pyproject.toml`` pins
``durabletask==1.12.0`` exactly for this reason; ``tests/replay`` exercises every name used
here, so an SDK upgrade that renames one fails there first.

What the probe records, for ``durable_helpers.replay.check`` to explain: the event being
processed when the orchestration failed and the code's pending action for that event's id just
before (what the code did instead), the first episode that ended with actions the history does
not hold, the first scheduled event whose stored input (or timer fire time) differs from the
code's, and what the code waits for at the end. No I/O; may import only the SDK and protobuf.

Example:
    >>> import durabletask.internal.orchestrator_service_pb2 as pb
    >>> def orch(ctx, _):
    ...     return "done"
    >>> events = [pb.HistoryEvent(eventId=-1, orchestratorStarted=pb.OrchestratorStartedEvent()),
    ...           pb.HistoryEvent(eventId=-1, executionStarted=pb.ExecutionStartedEvent(
    ...               name="orch"))]
    >>> run = run_executor("i", "orch", orch, events)
    >>> run.actions[0].completeOrchestration.result.value
    '"done"'
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import durabletask.internal.orchestrator_service_pb2 as pb
from durabletask import worker as sdk_worker

#: Quiet: the executor logs every replay at INFO (and builds DEBUG summaries below NOTSET).
_LOG = logging.getLogger("durable_helpers.replay.sdk")
_LOG.setLevel(logging.ERROR)

#: Events that confirm an action the code scheduled, by the action's id (``eventId``).
SCHEDULING_EVENTS = frozenset(
    {"taskScheduled", "timerCreated", "subOrchestrationInstanceCreated", "eventSent"}
)
DEFAULT_MAXIMUM_TIMER_INTERVAL = sdk_worker.DEFAULT_MAXIMUM_TIMER_INTERVAL
_MS = 1_000_000  # fire times within a millisecond are the same (storage rounds them)


@dataclass
class ExecutorRun:
    """What one run of the SDK's executor over recorded events gave, and what the probe saw."""

    actions: list[pb.OrchestratorAction]
    custom_status: str | None
    #: index (into the events) of the event being processed when the orchestration failed
    failed_at: int | None = None
    #: the code's pending action with the failing event's id, just before it was processed
    action_at_failure: pb.OrchestratorAction | None = None
    #: the code's pending actions (all ids) just before the failing event was processed
    pending_at_failure: list[pb.OrchestratorAction] = field(default_factory=list)
    waiting_at_failure: list[str] = field(default_factory=list)
    complete_at_failure: bool = False
    #: (index of the OrchestratorCompleted, actions) of the first episode that ended with
    #: actions the recorded episode does not hold
    unrecorded: tuple[int, list[pb.OrchestratorAction]] | None = None
    #: (index of the scheduled event, the code's action, "different input" or "different
    #: timer") where the stored input or the timer's fire time differs
    input_mismatch: tuple[int, pb.OrchestratorAction, str] | None = None
    #: event names the code waits for after the last event
    waiting_for: list[str] = field(default_factory=list)


def _input_of(action: pb.OrchestratorAction) -> pb.OrchestratorAction | None:
    kind = action.WhichOneof("orchestratorActionType")
    if kind == "scheduleTask":
        return action.scheduleTask
    if kind == "createSubOrchestration":
        return action.createSubOrchestration
    return None


def _same_payload(recorded: str, produced: str) -> bool:
    if recorded == produced:
        return True
    try:
        return json.loads(recorded) == json.loads(produced)
    except ValueError:
        return False


class _Probe:
    """Wraps ``process_event``: records failure points, unrecorded actions, input changes."""

    def __init__(self, executor: Any, events: Sequence[pb.HistoryEvent], replayed: int) -> None:
        self.original = executor.process_event
        self.index_of = {id(e): i for i, e in enumerate(events)}
        self.replayed = replayed
        self.run = ExecutorRun(actions=[], custom_status=None)
        self.ctx: Any = None
        self.recorded_completion = any(e.HasField("executionCompleted") for e in events)

    def __call__(self, ctx: Any, event: pb.HistoryEvent) -> None:
        self.ctx = ctx
        event_id = event.eventId
        pending = ctx._pending_actions
        before = pending.get(event_id) if event_id >= 0 else None
        try:
            self.original(ctx, event)
        except BaseException:
            # A non-determinism error is raised before the executor changes anything but the
            # one pending action it popped (``before``), so the state seen here is the state
            # the failing event met.
            if self.run.failed_at is None:
                self.run.failed_at = self.index_of.get(id(event), -1)
                self.run.action_at_failure = before
                self.run.pending_at_failure = list(pending.values())
                self.run.waiting_at_failure = sorted(ctx._pending_events)
                self.run.complete_at_failure = bool(ctx._is_complete)
            raise
        # (index and kind looked up only when needed: this runs for every event)
        if before is not None and self.run.input_mismatch is None:
            index = self.index_of.get(id(event), -1)
            self._compare_input(index, event.WhichOneof("eventType"), event, before)
        if self.run.unrecorded is None and event.HasField("orchestratorCompleted"):
            index = self.index_of.get(id(event), -1)
            if 0 <= index < self.replayed:
                self._episode_end(index, ctx)

    def _compare_input(
        self, index: int, kind: str, event: pb.HistoryEvent, action: pb.OrchestratorAction
    ) -> None:
        recorded = getattr(event, kind)
        if kind == "timerCreated" and action.HasField("createTimer"):
            # fire times are computed from the replayed clock, so they replay exactly
            asked = action.createTimer.fireAt.ToNanoseconds()
            if recorded.HasField("fireAt") and abs(recorded.fireAt.ToNanoseconds() - asked) > _MS:
                self.run.input_mismatch = (index, action, "different timer")
            return
        produced = _input_of(action)
        if produced is None or not recorded.HasField("input"):
            return  # inputs not stored in this history: nothing to compare
        if not _same_payload(recorded.input.value, produced.input.value):
            self.run.input_mismatch = (index, action, "different input")

    def _episode_end(self, index: int, ctx: Any) -> None:
        if self.run.unrecorded is not None:
            return
        extra = [
            a
            for a in ctx._pending_actions.values()
            if not (self.recorded_completion and a.HasField("completeOrchestration"))
        ]
        if extra:
            self.run.unrecorded = (index, extra)


def run_executor(
    instance_id: str,
    name: str,
    orchestrator: Callable[..., Any],
    events: Sequence[pb.HistoryEvent],
    *,
    replayed: int | None = None,
    maximum_timer_interval: timedelta | None = DEFAULT_MAXIMUM_TIMER_INTERVAL,
    versioning: Any = None,
) -> ExecutorRun:
    """Run ``events`` through the SDK's executor with ``orchestrator`` registered as ``name``.

    The first ``replayed`` events (default: all but the last) are the past events of the work
    item, the rest its new events, as the worker receives them. ``versioning`` is the worker's
    ``VersioningOptions`` (or None), ``maximum_timer_interval`` its timer chunking.

    Example:
        >>> run_executor("i", "x", lambda ctx, _: None, [])
        Traceback (most recent call last):
        ...
        ValueError: no events to replay
    """
    if not events:
        raise ValueError("no events to replay")
    replayed = len(events) - 1 if replayed is None else replayed
    registry = sdk_worker._Registry()
    registry.add_named_orchestrator(name, orchestrator)
    registry.versioning = versioning
    executor = sdk_worker._OrchestrationExecutor(
        registry,
        _LOG,
        data_converter=sdk_worker.JsonDataConverter(),
        maximum_timer_interval=maximum_timer_interval,
    )
    probe = _Probe(executor, events, replayed)
    executor.process_event = probe
    result = executor.execute(instance_id, events[:replayed], events[replayed:])
    run = probe.run
    run.actions = list(result.actions)
    run.custom_status = result.encoded_custom_status
    if probe.ctx is not None:
        run.waiting_for = sorted(probe.ctx._pending_events)
    return run


def execute_request(
    request: pb.OrchestratorRequest,
    name: str,
    orchestrator: Callable[..., Any],
    *,
    maximum_timer_interval: timedelta | None = DEFAULT_MAXIMUM_TIMER_INTERVAL,
) -> list[pb.OrchestratorAction]:
    """What the SDK worker does with one work item, minus the network: the executor over the
    request's past and new events, no probe. The benchmark's peer.

    Example:
        >>> req = pb.OrchestratorRequest(instanceId="i", newEvents=[pb.HistoryEvent(
        ...     eventId=-1, executionStarted=pb.ExecutionStartedEvent(name="x"))])
        >>> execute_request(req, "x", lambda ctx, _: 1)[0].completeOrchestration.result.value
        '1'
    """
    registry = sdk_worker._Registry()
    registry.add_named_orchestrator(name, orchestrator)
    executor = sdk_worker._OrchestrationExecutor(
        registry,
        _LOG,
        data_converter=sdk_worker.JsonDataConverter(),
        maximum_timer_interval=maximum_timer_interval,
    )
    return list(executor.execute(request.instanceId, request.pastEvents, request.newEvents).actions)
