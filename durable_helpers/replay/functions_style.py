"""The replay check for Functions-app orchestrators (``azure-functions-durable``, optional extra
``durable-helpers[functions]``).

In a Functions app the host (the Durable Functions extension, DTFx) sends the whole history to
the Python worker, the ``azure-functions-durable`` SDK replays it through the orchestrator and
returns every action the code has scheduled so far, and the *host* compares those actions with
the history (by sequence number, action type and name) and fails the instance with a
non-determinism error when they differ. This module does the same: it builds the host's
orchestration context from the recorded events (``event_to_columns`` of ``protocol_rows`` gives
the host's column names), runs the SDK's own ``TaskOrchestrationExecutor``, and makes the host's
comparison, which is ours (DTFx is .NET code), modelled on DTFx's rules: each activity, timer,
sub-orchestration and sent event takes the next sequence number from 0, waits for external
events take none, a retried call (``*_with_retry``) owns the timer and reschedule rows of its
failed attempts.

Private ``azure-functions-durable`` names used (pinned ``==1.7.0`` in the ``functions`` extra):
``DurableOrchestrationContext._action_payload_v1``, ``.open_tasks`` and the executor's
``process_event``/``exception``. Histories written with the SDK's 1-based ids (the local task
hub) are renumbered to the host's 0-based ones.

Example:
    >>> ACTION_EVENT[0], EVENT_TYPES["SubOrchestrationInstanceCreated"]
    ('taskScheduled', 7)
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import durabletask.internal.orchestrator_service_pb2 as pb

from durable_helpers.protocol_rows import event_to_columns
from durable_helpers.replay.history_input import SCHEDULED_TYPES, RecordedExecution, renumber
from durable_helpers.replay.result import (
    Divergence,
    ReplayResult,
    describe_event,
    payload_text,
    short,
)

try:
    from azure.durable_functions import DurableOrchestrationContext, Orchestrator
    from azure.durable_functions.models.history import HistoryEventType
except ImportError as missing:  # pragma: no cover - the extra is installed in the dev setup
    raise ImportError(
        "checking Functions-app orchestrators needs azure-functions-durable: "
        "pip install 'durable-helpers[functions]'"
    ) from missing

#: azure-functions-durable HistoryEventType values, by DTFx EventType name.
EVENT_TYPES = {
    "".join(part.capitalize() for part in member.name.split("_")): int(member)
    for member in HistoryEventType
}
#: ActionType -> the history event that confirms it (None: takes no sequence number).
ACTION_EVENT: dict[int, str | None] = {
    0: "taskScheduled",  # CallActivity
    1: "taskScheduled",  # CallActivityWithRetry
    2: "subOrchestrationInstanceCreated",  # CallSubOrchestrator
    3: "subOrchestrationInstanceCreated",  # CallSubOrchestratorWithRetry
    4: None,  # ContinueAsNew
    5: "timerCreated",  # CreateTimer
    6: None,  # WaitForExternalEvent
    7: "eventSent",  # CallEntity
    8: "taskScheduled",  # CallHttp (the host's built-in HTTP activity)
    9: "eventSent",  # SignalEntity
}
_RETRY = {1, 3}
_CALLS = {
    0: "call_activity",
    1: "call_activity_with_retry",
    2: "call_sub_orchestrator",
    3: "call_sub_orchestrator_with_retry",
    5: "create_timer",
    7: "call_entity",
    8: "call_http",
    9: "signal_entity",
}
HOST_ERROR = "NonDeterministicOrchestrationException"


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return str(value)


def host_event(event: pb.HistoryEvent) -> dict[str, Any]:
    """One protocol event as the host sends it to the Python worker (PascalCase JSON).

    Example:
        >>> host_event(pb.HistoryEvent(eventId=0, taskScheduled=pb.TaskScheduledEvent(
        ...     name="Hello")))["EventType"]
        4
    """
    event_type, columns = event_to_columns(event)
    out: dict[str, Any] = {
        "EventType": EVENT_TYPES.get(event_type, EVENT_TYPES["GenericEvent"]),
        "EventId": event.eventId,
        "IsPlayed": True,
        "Timestamp": _iso(event.timestamp.ToDatetime(tzinfo=UTC))
        if event.HasField("timestamp")
        else "0001-01-01T00:00:00Z",
    }
    for key, value in columns.items():
        out[key] = _iso(value) if isinstance(value, datetime) else value
    return out


def _flatten(payload: list[list[Any]]) -> list[dict[str, Any]]:
    return [action.to_json() for group in payload for action in group]


def describe_host_action(action: dict[str, Any]) -> str:
    """A Functions action as the call that made it.

    Example:
        >>> describe_host_action({"actionType": 0, "functionName": "Hello", "input": '"Tokyo"'})
        "call_activity('Hello', 'Tokyo')"
    """
    kind = action.get("actionType")
    call = _CALLS.get(kind, f"action {kind}")
    if kind == 5:
        return f"{call}({action.get('fireAt')})"
    if kind == 6:
        return f"wait_for_external_event({action.get('externalEventName')!r})"
    name = action.get("functionName") or action.get("instanceId") or ""
    raw = action.get("input")
    text = raw if isinstance(raw, str) or raw is None else json.dumps(raw)
    return f"{call}({name!r}, {payload_text(text)})" if raw is not None else f"{call}({name!r})"


def user_function(fn: Any) -> Callable[..., Any]:
    """The orchestrator generator function behind what a Functions app exposes: a plain
    function, ``df.Orchestrator.create(fn)``'s handle, or a ``df.DFApp`` decorated function.

    Example:
        >>> def orch(context):
        ...     yield context.call_activity("Hello", "Tokyo")
        >>> user_function(Orchestrator.create(orch)) is orch
        True
    """
    builder = getattr(fn, "_function", None)
    if builder is not None and hasattr(builder, "get_user_function"):
        fn = builder.get_user_function()
    return getattr(fn, "orchestrator_function", fn)


@dataclass
class _SdkRun:
    """What the SDK's replay gave: its context and executor, the actions with the index of the
    event that made them, and the orchestrator's exception with the event it happened at."""

    context: Any
    executor: Any
    made: list[tuple[int, dict[str, Any]]]
    error: Exception | None
    error_at: int


def _run_sdk(
    rec: RecordedExecution, events: list[pb.HistoryEvent], fn: Callable[..., Any]
) -> _SdkRun:
    started = next(e.executionStarted for e in events if e.HasField("executionStarted"))
    body = {
        "history": [host_event(e) for e in events],
        "instanceId": rec.instance_id,
        "isReplaying": True,
        "parentInstanceId": (
            started.parentInstance.orchestrationInstance.instanceId
            if started.HasField("parentInstance")
            else None
        ),
        "input": started.input.value if started.HasField("input") else None,
    }
    context = DurableOrchestrationContext.from_json(json.dumps(body))
    orchestrator = Orchestrator(user_function(fn))
    executor = orchestrator.task_orchestration_executor
    original = executor.process_event
    made: list[tuple[int, dict[str, Any]]] = []
    position = {"index": -1}
    index_of = {id(e): i for i, e in enumerate(context.histories)}

    def probe(event: Any) -> None:
        position["index"] = index_of.get(id(event), -1)
        before = len(context._action_payload_v1)
        original(event)
        for group in context._action_payload_v1[before:]:
            made.extend((position["index"], a.to_json()) for a in group)

    executor.process_event = probe
    error: Exception | None = None
    try:
        with warnings.catch_warnings():  # the SDK's typing deprecation notes, not ours to show
            warnings.simplefilter("ignore", DeprecationWarning)
            orchestrator.handle(context)
    except Exception as raised:  # the orchestrator raised: the SDK re-raises it, wrapped
        error = executor.exception or raised
    return _SdkRun(context, executor, made, error, position["index"])


def _point(rec: RecordedExecution, index: int) -> tuple[int | None, str | None, str]:
    row = rec.rows[index] if 0 <= index < len(rec.rows) else {}
    seq = row.get("Sequence")
    return (int(seq) if seq is not None else index, row.get("RowKey"), str(row.get("EventType")))


def _episode_end(events: list[pb.HistoryEvent], index: int) -> int:
    return next(
        (j for j in range(index, len(events)) if events[j].HasField("orchestratorCompleted")),
        len(events),
    )


def _match(
    rec: RecordedExecution, events: list[pb.HistoryEvent], made: list[tuple[int, dict[str, Any]]]
) -> tuple[Divergence | None, list[tuple[int, dict[str, Any]]], Divergence | None]:
    """The host's comparison: (break, actions not in the history, first changed input).

    Actions the code makes in an episode but the history records only in a later one count
    as not in the history (returned with the others, at the episode they were made in).
    """
    early: list[tuple[int, dict[str, Any]]] = []
    queue = [(i, a) for i, a in made if ACTION_EVENT.get(a.get("actionType")) is not None]
    scheduled = [i for i, e in enumerate(events) if e.WhichOneof("eventType") in SCHEDULED_TYPES]
    failed_ids = {
        getattr(e, k).taskScheduledId
        for e in events
        for k in ("taskFailed", "subOrchestrationInstanceFailed")
        if e.HasField(k)
    }
    changed_input: Divergence | None = None
    pointer = 0
    for at in range(len(queue)):
        _, action = queue[at]
        expected = ACTION_EVENT[action["actionType"]]
        if pointer >= len(scheduled):
            return None, early + queue[at:], changed_input
        index = scheduled[pointer]
        event = events[index]
        kind = event.WhichOneof("eventType")
        recorded = getattr(event, kind)
        name = getattr(recorded, "name", "")
        if kind != expected or ("functionName" in action and action["functionName"] != name):
            what = "different action" if kind != expected else "different name"
            return _host_break(rec, index, what, describe_host_action(action)), [], changed_input
        if changed_input is None and kind != "timerCreated":
            produced = action.get("input")
            if recorded.HasField("input") and produced is not None:
                text = produced if isinstance(produced, str) else json.dumps(produced)
                if not _same(recorded.input.value, text):
                    sequence, row_key, event_type = _point(rec, index)
                    changed_input = Divergence(
                        sequence,
                        row_key,
                        event_type,
                        "different input",
                        describe_event(event),
                        "calls " + describe_host_action(action),
                    )
        if index > _episode_end(events, queue[at][0]):
            early.append(queue[at])
        pointer += 1
        if action["actionType"] in _RETRY:
            pointer = _skip_retries(events, scheduled, pointer, event.eventId, kind, failed_ids)
    if pointer < len(scheduled):
        index = scheduled[pointer]
        return _host_break(rec, index, "missing action", None), [], changed_input
    return None, early, changed_input


def _skip_retries(
    events: list[pb.HistoryEvent],
    scheduled: list[int],
    pointer: int,
    attempt: int,
    kind: str,
    failed_ids: set[int],
) -> int:
    """Past the rows a retried call's failed attempts left: a timer, then the call again."""

    def at(position: int) -> pb.HistoryEvent | None:
        return events[scheduled[position]] if position < len(scheduled) else None

    while attempt in failed_ids and (timer := at(pointer)) is not None:
        if not timer.HasField("timerCreated"):
            break
        pointer += 1
        again = at(pointer)
        if again is None or again.WhichOneof("eventType") != kind:
            break
        attempt = again.eventId
        pointer += 1
    return pointer


def _same(a: str, b: str) -> bool:
    try:
        return json.loads(a) == json.loads(b)
    except ValueError:
        return a == b


def _host_break(rec: RecordedExecution, index: int, kind: str, code: str | None) -> Divergence:
    event = rec.events[index]
    sequence, row_key, event_type = _point(rec, index)
    history = describe_event(event)
    did = f"schedules {code} there" if code else "has not scheduled it (yet?)"
    message = (
        f"Non-deterministic workflow detected: a previous execution of this orchestration "
        f"scheduled {history} with sequence number {event.eventId}, but the current replay "
        f"{did}. Was a change made to the orchestrator code after this instance had already "
        "started running? (the Durable Functions host's check, as this kit models it)"
    )
    return Divergence(sequence, row_key, event_type, kind, history, did, message, HOST_ERROR)


def _failure_text(done: pb.ExecutionCompletedEvent | None) -> str | None:
    if done is None or done.orchestrationStatus != pb.ORCHESTRATION_STATUS_FAILED:
        return None
    return done.failureDetails.errorMessage


def _orchestrator_error(
    rec: RecordedExecution, run: _SdkRun, done: pb.ExecutionCompletedEvent | None
) -> Divergence | None:
    """The code raised: a break, unless the history records the same failure."""
    error = run.error
    if error is None:
        return None
    message = str(error).split("\n\n$OutOfProcData$", 1)[0]
    recorded = _failure_text(done)
    if recorded is not None and message.splitlines()[0] in recorded:
        return None
    index = min(max(run.error_at, 0), len(rec.events) - 1)
    sequence, row_key, event_type = _point(rec, index)
    name = type(error).__name__
    code = f"raises {name}: {short(message, 200)}"
    history = describe_event(rec.events[index]) + ", and the history goes on"
    return Divergence(
        sequence, row_key, event_type, "orchestrator error", history, code, message, name
    )


def _extra_actions(
    rec: RecordedExecution, events: list[pb.HistoryEvent], unrecorded: list[tuple[int, Any]]
) -> Divergence | None:
    """Actions made in an episode the history records as complete, without them."""
    last_completed = max(
        (i for i, e in enumerate(events) if e.HasField("orchestratorCompleted")), default=-1
    )
    extra = [(i, a) for i, a in unrecorded if i < last_completed]
    if not extra:
        return None
    index = _episode_end(events, extra[0][0])
    extra = [(i, a) for i, a in extra if _episode_end(events, i) == index]
    sequence, row_key, event_type = _point(rec, index)
    code = "also schedules " + "; ".join(describe_host_action(a) for _, a in extra)
    history = rec.episode_text(index)
    return Divergence(sequence, row_key, event_type, "extra action", history, code)


def _result_divergence(
    rec: RecordedExecution, run: _SdkRun, done: pb.ExecutionCompletedEvent | None
) -> Divergence | None:
    """The history records a completion: does the code finish there, with the same output?"""
    if done is None or done.orchestrationStatus != pb.ORCHESTRATION_STATUS_COMPLETED:
        return None
    returned = run.executor.orchestrator_returned
    recorded = json.loads(done.result.value) if done.HasField("result") else None
    if returned and run.executor.output == recorded:
        return None
    index = next(i for i, e in enumerate(rec.events) if e.HasField("executionCompleted"))
    sequence, row_key, event_type = _point(rec, index)
    code = (
        f"returns {short(repr(run.executor.output))} instead"
        if returned
        else "does not finish there"
    )
    history = describe_event(rec.events[index])
    return Divergence(sequence, row_key, event_type, "different result", history, code)


def check_recorded(
    rec: RecordedExecution, orchestrator: Callable[..., Any], *, name: str | None = None, **_: Any
) -> ReplayResult:
    """Replay ``rec`` through a Functions-app orchestrator and make the host's comparison.

    ``name`` is not used: the Functions host finds the orchestrator by its function name,
    which the check cannot see. Worker options of the ``durabletask`` style are ignored.

    Example:
        >>> check_recorded(None, None)  # doctest: +SKIP
    """
    events = [pb.HistoryEvent.FromString(e.SerializeToString()) for e in rec.events]
    notes: list[str] = []
    first = rec.first_action_id()
    if first not in (None, 0):
        renumber(events, -int(first or 0))
        notes.append("action ids renumbered from the SDK's 1-based ids to the host's 0-based")
    if rec.older_executions:
        notes.append(f"{rec.older_executions} earlier execution(s) in the frame not replayed")
    now = pb.HistoryEvent(eventId=-1, orchestratorStarted=pb.OrchestratorStartedEvent())
    now.timestamp.FromDatetime(datetime.now(UTC).replace(tzinfo=None))
    run = _run_sdk(rec, [*events, now], orchestrator)
    broken, unrecorded, changed_input = _match(rec, events, run.made)
    done = next((e.executionCompleted for e in events if e.HasField("executionCompleted")), None)
    divergence = broken or _orchestrator_error(rec, run, done)
    if divergence is not None:
        verdict = "breaks"
        next_actions: tuple[str, ...] = (
            f"fail({divergence.error_type}: {short(divergence.error, 120)})",
        )
    else:
        divergence = (
            _extra_actions(rec, events, unrecorded)
            or changed_input
            or _result_divergence(rec, run, done)
        )
        verdict = "diverges" if divergence else "ok"
        next_actions = tuple(
            describe_host_action(a) for i, a in unrecorded if _episode_end(events, i) >= len(events)
        )
        if run.executor.orchestrator_returned and done is None:
            next_actions += (f"complete(result={short(repr(run.executor.output))})",)
    waiting = tuple(sorted(k for k in run.context.open_tasks if isinstance(k, str)))
    return ReplayResult.for_execution(
        rec,
        "functions",
        verdict,
        divergence=divergence,
        next_actions=next_actions,
        waiting_for=waiting,
        custom_status=run.context.custom_status,
        notes=tuple(notes),
    )
