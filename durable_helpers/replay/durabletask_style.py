"""The replay check for orchestrators written with the ``durabletask`` SDK: one recorded
execution through the SDK's own executor (``sdk_executor``), read back as a ``ReplayResult``.

The history goes in as the worker's *past* events and one new ``OrchestratorStarted`` as the new
event, exactly the work item the worker gets when the instance's next event arrives (minus that
event, which nobody knows yet). Histories written with the host's 0-based action ids (Durable
Functions apps, the seed's 2019 rows) are renumbered to the SDK's 1-based ids first.

Example:
    >>> from durable_helpers.replay.history_input import RecordedExecution
    >>> import durabletask.internal.orchestrator_service_pb2 as pb
    >>> events = [pb.HistoryEvent(eventId=-1, orchestratorStarted=pb.OrchestratorStartedEvent()),
    ...           pb.HistoryEvent(eventId=-1, executionStarted=pb.ExecutionStartedEvent(
    ...               name="Hi"))]
    >>> rec = RecordedExecution("i", "e", "Hi", [{}, {}], events)
    >>> check_recorded(rec, lambda ctx, _: "hi").next_actions
    ("complete(result='hi')",)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import durabletask.internal.orchestrator_service_pb2 as pb
from google.protobuf import timestamp_pb2

from durable_helpers.replay.history_input import RecordedExecution, renumber
from durable_helpers.replay.result import (
    Divergence,
    ReplayResult,
    describe_action,
    describe_event,
    payload_text,
)
from durable_helpers.replay.sdk_executor import (
    DEFAULT_MAXIMUM_TIMER_INTERVAL,
    ExecutorRun,
    run_executor,
)

_NON_DETERMINISM = "NonDeterminismError"
_NOT_REGISTERED = "OrchestratorNotRegisteredError"


def _now() -> pb.HistoryEvent:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(datetime.now(UTC).replace(tzinfo=None))
    return pb.HistoryEvent(
        eventId=-1, timestamp=ts, orchestratorStarted=pb.OrchestratorStartedEvent()
    )


def _row_point(rec: RecordedExecution, index: int | None) -> tuple[int | None, str | None, str]:
    if index is None or not 0 <= index < len(rec.rows):
        return None, None, "next event"
    row = rec.rows[index]
    sequence = row.get("Sequence")
    return (
        int(sequence) if sequence is not None else index,
        row.get("RowKey"),
        str(row.get("EventType") or rec.events[index].WhichOneof("eventType")),
    )


def _code_instead(run: ExecutorRun) -> str:
    if run.action_at_failure is not None:
        return "calls " + describe_action(run.action_at_failure)
    if run.complete_at_failure:
        return "has already finished"
    others = [describe_action(a) for a in run.pending_at_failure]
    if others:
        return "schedules " + "; ".join(others) + " instead"
    if run.waiting_at_failure:
        return "waits for event(s) " + ", ".join(repr(n) for n in run.waiting_at_failure)
    return "schedules nothing there (it waits for tasks it scheduled earlier)"


def _failure(run: ExecutorRun) -> pb.TaskFailureDetails | None:
    for action in run.actions:
        c = action.completeOrchestration
        if action.HasField("completeOrchestration") and (
            c.orchestrationStatus == pb.ORCHESTRATION_STATUS_FAILED
        ):
            return c.failureDetails
    return None


def _same_json(a: str, b: str) -> bool:
    try:
        return json.loads(a or "null") == json.loads(b or "null")
    except ValueError:
        return a == b


def _break(rec: RecordedExecution, run: ExecutorRun, fd: pb.TaskFailureDetails) -> Divergence:
    sequence, row_key, event_type = _row_point(rec, run.failed_at)
    at = run.failed_at
    failed_event = rec.events[at] if at is not None and 0 <= at < len(rec.events) else None
    history = describe_event(failed_event) if failed_event is not None else "no further event"
    error_type = fd.errorType.rsplit(".", 1)[-1]
    if error_type == _NON_DETERMINISM:
        action = run.action_at_failure
        if action is None:
            kind = "missing action"
        elif action.WhichOneof("orchestratorActionType") != _ACTION_OF.get(
            failed_event.WhichOneof("eventType") if failed_event else ""
        ):
            kind = "different action"
        else:
            kind = "different name"
        code = _code_instead(run)
    elif error_type == _NOT_REGISTERED:
        kind, code = "not registered", "is not registered under this name"
    else:
        kind, code = "orchestrator error", f"raises {error_type}: {fd.errorMessage}"
    return Divergence(
        sequence, row_key, event_type, kind, history, code, fd.errorMessage, fd.errorType
    )


_ACTION_OF = {
    "taskScheduled": "scheduleTask",
    "timerCreated": "createTimer",
    "subOrchestrationInstanceCreated": "createSubOrchestration",
    "eventSent": "sendEvent",
}


def _completion_divergence(rec: RecordedExecution, run: ExecutorRun) -> Divergence | None:
    recorded = rec.completion()
    if recorded is None:
        return None
    index, event = recorded
    done = event.executionCompleted
    produced = next(
        (a.completeOrchestration for a in run.actions if a.HasField("completeOrchestration")),
        None,
    )
    sequence, row_key, event_type = _row_point(rec, index)
    if produced is None:
        code = "does not finish there"
    elif produced.orchestrationStatus != done.orchestrationStatus:
        code = "finishes differently: " + describe_action(
            pb.OrchestratorAction(completeOrchestration=produced)
        )
    elif done.orchestrationStatus == pb.ORCHESTRATION_STATUS_COMPLETED and not _same_json(
        done.result.value, produced.result.value
    ):
        code = f"returns {payload_text(produced.result.value)} instead"
    else:
        return None
    history = describe_event(event)
    return Divergence(sequence, row_key, event_type, "different result", history, code)


def _silent_divergence(rec: RecordedExecution, run: ExecutorRun) -> Divergence | None:
    found: list[tuple[int, Divergence]] = []
    if run.unrecorded is not None:
        index, actions = run.unrecorded
        sequence, row_key, event_type = _row_point(rec, index)
        code = "also schedules " + "; ".join(describe_action(a) for a in actions)
        history = rec.episode_text(index)
        found.append(
            (index, Divergence(sequence, row_key, event_type, "extra action", history, code))
        )
    if run.input_mismatch is not None:
        index, action, what = run.input_mismatch
        sequence, row_key, event_type = _row_point(rec, index)
        div = Divergence(
            sequence,
            row_key,
            event_type,
            what,
            describe_event(rec.events[index]),
            "calls " + describe_action(action),
        )
        found.append((index, div))
    completion = _completion_divergence(rec, run)
    if completion is not None:
        found.append((len(rec.events), completion))
    return min(found, key=lambda pair: pair[0])[1] if found else None


def _recorded_failure_matches(rec: RecordedExecution, fd: pb.TaskFailureDetails) -> bool:
    recorded = rec.completion()
    if recorded is None:
        return False
    done = recorded[1].executionCompleted
    return (
        done.orchestrationStatus == pb.ORCHESTRATION_STATUS_FAILED
        and done.failureDetails.errorMessage == fd.errorMessage
    )


def check_recorded(
    rec: RecordedExecution,
    orchestrator: Callable[..., Any],
    *,
    name: str | None = None,
    maximum_timer_interval: timedelta | None = DEFAULT_MAXIMUM_TIMER_INTERVAL,
    versioning: Any = None,
) -> ReplayResult:
    """Replay ``rec`` through ``orchestrator`` (registered as ``name``, default the history's).

    Example:
        >>> check_recorded(None, None)  # doctest: +SKIP
    """
    first = rec.first_action_id()
    events = list(rec.events)
    notes: list[str] = []
    if first == 0:
        events = [pb.HistoryEvent.FromString(e.SerializeToString()) for e in events]
        renumber(events, 1)
        notes.append("action ids renumbered from the host's 0-based ids to the SDK's 1-based")
    if rec.older_executions:
        notes.append(f"{rec.older_executions} earlier execution(s) in the frame not replayed")
    run = run_executor(
        rec.instance_id,
        name or rec.name or "",
        orchestrator,
        [*events, _now()],
        replayed=len(events),
        maximum_timer_interval=maximum_timer_interval,
        versioning=versioning,
    )
    if name and rec.name and name != rec.name:
        notes.append(f"the history is of orchestrator {rec.name!r}, the code is named {name!r}")
    fd = _failure(run)
    divergence: Divergence | None = None
    if fd is not None and not _recorded_failure_matches(rec, fd):
        divergence, verdict = _break(rec, run, fd), "breaks"
    else:
        divergence = _silent_divergence(rec, run)
        verdict = "diverges" if divergence else "ok"
    recorded = rec.completion()
    next_actions = tuple(
        describe_action(a)
        for a in run.actions
        if not (recorded is not None and a.HasField("completeOrchestration") and verdict == "ok")
    )
    custom = None
    if run.custom_status:
        try:
            custom = json.loads(run.custom_status)
        except ValueError:
            custom = run.custom_status
    return ReplayResult.for_execution(
        rec,
        "durabletask",
        verdict,
        divergence=divergence,
        next_actions=next_actions,
        waiting_for=tuple(run.waiting_for),
        custom_status=custom,
        notes=tuple(notes),
    )
