"""Durable Task protocol messages -> the Durable Functions status JSON (§6.3 of the reference).

``status_payload`` turns an ``OrchestrationState`` into ``StatusResponsePayload`` (keys name,
instanceId, runtimeStatus, input, customStatus, output, createdTime, lastUpdatedTime and, with
showHistory, historyEvents); ``history_events`` post-processes a history the way
``DurableClient.GetDurableOrchestrationStatusAsync`` does (completions absorb their schedule,
Orchestrator* rows dropped, EventId/IsPlayed dropped, Result only with showHistoryOutput).

Example:
    >>> from durabletask.internal import orchestrator_service_pb2 as pb
    >>> status_payload(pb.OrchestrationState(instanceId="a", name="N"))["runtimeStatus"]
    'Running'
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from durabletask.internal import orchestrator_service_pb2 as pb
from google.protobuf import timestamp_pb2

from durable_helpers.protocol_rows import failure_to_json
from durable_helpers.protocol_rows import string_value as _sv

#: OrchestrationStatus enum value -> the Durable Functions runtimeStatus name.
RUNTIME_STATUS_NAMES: dict[int, str] = {
    pb.ORCHESTRATION_STATUS_RUNNING: "Running",
    pb.ORCHESTRATION_STATUS_COMPLETED: "Completed",
    pb.ORCHESTRATION_STATUS_CONTINUED_AS_NEW: "ContinuedAsNew",
    pb.ORCHESTRATION_STATUS_FAILED: "Failed",
    pb.ORCHESTRATION_STATUS_CANCELED: "Canceled",
    pb.ORCHESTRATION_STATUS_TERMINATED: "Terminated",
    pb.ORCHESTRATION_STATUS_PENDING: "Pending",
    pb.ORCHESTRATION_STATUS_SUSPENDED: "Suspended",
}
_BY_NAME = {name.lower(): value for value, name in RUNTIME_STATUS_NAMES.items()}

TERMINAL = frozenset({"Completed", "Failed", "Terminated", "Canceled"})
RUNNING_LIKE = frozenset({"Running", "Pending", "ContinuedAsNew", "Suspended"})


def parse_runtime_statuses(text: str) -> list[int]:
    """``"Running,Completed"`` -> enum values; raises ValueError naming the valid names.

    Example:
        >>> parse_runtime_statuses("running, Completed") == [0, 1]
        True
    """
    values = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part.lower() not in _BY_NAME:
            valid = ", ".join(RUNTIME_STATUS_NAMES.values())
            raise ValueError(f"Unknown runtimeStatus {part!r}; use one or more of: {valid}.")
        values.append(_BY_NAME[part.lower()])
    return values


def status_name(value: int) -> str:
    """The runtimeStatus name of an OrchestrationStatus value (``Unknown`` if new).

    Example:
        >>> status_name(1)
        'Completed'
    """
    return RUNTIME_STATUS_NAMES.get(value, "Unknown")


def format_seconds(ts: timestamp_pb2.Timestamp) -> str | None:
    """``yyyy-MM-ddTHH:mm:ssZ`` (whole seconds), as createdTime/lastUpdatedTime; None if unset.

    Example:
        >>> format_seconds(timestamp_pb2.Timestamp(seconds=1700000000, nanos=5))
        '2023-11-14T22:13:20Z'
    """
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return ts.ToDatetime().strftime("%Y-%m-%dT%H:%M:%SZ")


def format_precise(ts: timestamp_pb2.Timestamp) -> str | None:
    """ISO-8601 round-trip with 7 fractional digits and ``Z`` (.NET's "o" format).

    Example:
        >>> format_precise(timestamp_pb2.Timestamp(seconds=1700000000, nanos=123456700))
        '2023-11-14T22:13:20.1234567Z'
    """
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return ts.ToDatetime().strftime("%Y-%m-%dT%H:%M:%S") + f".{ts.nanos // 100:07d}Z"


def parse_json(text: str | None) -> Any:
    """JSON text -> value; text that is not JSON stays a string; None/empty -> None.

    Example:
        >>> parse_json('["a"]'), parse_json("not json"), parse_json(None)
        (['a'], 'not json', None)
    """
    if text is None or text == "":
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def failure_text(details: pb.TaskFailureDetails) -> str:
    """A one-line failure message: the message, plus the innermost error's type and message.

    Example:
        >>> inner = pb.TaskFailureDetails(errorType="builtins.ValueError", errorMessage="no")
        >>> failure_text(pb.TaskFailureDetails(errorMessage="Task failed", innerFailure=inner))
        'Task failed (builtins.ValueError: no)'
    """
    message = details.errorMessage or details.errorType
    inner = details
    while inner.HasField("innerFailure"):
        inner = inner.innerFailure
    if inner is not details and inner.errorType and inner.errorMessage not in message:
        message += f" ({inner.errorType}: {inner.errorMessage})"
    elif inner is not details and inner.errorType:
        message += f" ({inner.errorType})"
    return message


def status_payload(
    state: pb.OrchestrationState,
    *,
    show_input: bool = True,
    history: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The status JSON of one instance (keys in the Functions host's order).

    A Failed instance's ``output`` is ``"Orchestrator function '<name>' failed: <message>"``, as
    the Functions host reports it. ``history`` (from :func:`history_events`) adds historyEvents.

    Example:
        >>> from google.protobuf import wrappers_pb2
        >>> state = pb.OrchestrationState(instanceId="a", name="N", orchestrationStatus=1,
        ...     output=wrappers_pb2.StringValue(value='"done"'))
        >>> status_payload(state)["output"]
        'done'
    """
    runtime_status = status_name(state.orchestrationStatus)
    output = parse_json(_sv(state, "output"))
    if runtime_status == "Failed" and output is None and state.HasField("failureDetails"):
        output = f"Orchestrator function '{state.name}' failed: " + failure_text(
            state.failureDetails
        ).removeprefix(f"{state.instanceId}: ")
    payload: dict[str, Any] = {
        "name": state.name,
        "instanceId": state.instanceId,
        "runtimeStatus": runtime_status,
        "input": parse_json(_sv(state, "input")) if show_input else None,
        "customStatus": parse_json(_sv(state, "customStatus")),
        "output": output,
        "createdTime": format_seconds(state.createdTimestamp),
        "lastUpdatedTime": format_seconds(state.lastUpdatedTimestamp),
    }
    if history is not None:
        payload["historyEvents"] = history
    return payload


def _event_type(event: pb.HistoryEvent) -> str:
    kind = event.WhichOneof("eventType") or "unknown"
    return kind[0].upper() + kind[1:]


def _base(event: pb.HistoryEvent) -> dict[str, Any]:
    return {"EventType": _event_type(event)}


def history_events(
    events: Iterable[pb.HistoryEvent],
    *,
    show_input: bool = True,
    show_history_output: bool = False,
) -> list[dict[str, Any]]:
    """Post-process a history into Durable Functions ``historyEvents`` items.

    Only the latest execution is kept (events from the last ExecutionStarted on). Example:
        >>> started = pb.HistoryEvent(eventId=-1, executionStarted=pb.ExecutionStartedEvent(
        ...     name="HelloSequence"))
        >>> history_events([started])[0]["FunctionName"]
        'HelloSequence'
    """
    events = list(events)
    starts = [i for i, e in enumerate(events) if e.HasField("executionStarted")]
    if starts:
        events = events[starts[-1] :]
    # Pair every completion with the latest schedule of the same EventId before it (retries
    # re-use ids, so EventId is not unique).
    open_tasks: dict[int, int] = {}
    open_children: dict[int, int] = {}
    absorbed: dict[int, int] = {}  # completion index -> schedule index
    for index, event in enumerate(events):
        kind = event.WhichOneof("eventType")
        if kind == "taskScheduled":
            open_tasks[event.eventId] = index
        elif kind == "subOrchestrationInstanceCreated":
            open_children[event.eventId] = index
        elif kind in ("taskCompleted", "taskFailed"):
            scheduled_id = getattr(event, kind).taskScheduledId
            if scheduled_id in open_tasks:
                absorbed[index] = open_tasks.pop(scheduled_id)
        elif kind in ("subOrchestrationInstanceCompleted", "subOrchestrationInstanceFailed"):
            scheduled_id = getattr(event, kind).taskScheduledId
            if scheduled_id in open_children:
                absorbed[index] = open_children.pop(scheduled_id)
    schedules_absorbed = set(absorbed.values())

    items: list[dict[str, Any]] = []
    for index, event in enumerate(events):
        kind = event.WhichOneof("eventType")
        if kind in ("orchestratorStarted", "orchestratorCompleted") or index in schedules_absorbed:
            continue
        item = _base(event)
        schedule = events[absorbed[index]] if index in absorbed else None
        if schedule is not None:
            scheduled_kind = schedule.WhichOneof("eventType")
            scheduled = getattr(schedule, scheduled_kind)
            item["FunctionName"] = scheduled.name
            item["ScheduledTime"] = format_precise(schedule.timestamp)
            if scheduled_kind == "subOrchestrationInstanceCreated":
                item["InstanceId"] = scheduled.instanceId
            if show_input:
                item["Input"] = parse_json(_sv(scheduled, "input"))
        _add_fields(item, event, kind, show_input, show_history_output)
        item["Timestamp"] = format_precise(event.timestamp)
        items.append(item)
    return items


def _add_fields(
    item: dict[str, Any],
    event: pb.HistoryEvent,
    kind: str | None,
    show_input: bool,
    show_output: bool,
) -> None:
    body = getattr(event, kind) if kind else None
    if kind == "executionStarted":
        item["FunctionName"] = body.name
        if show_input:
            item["Input"] = parse_json(_sv(body, "input"))
        if body.HasField("scheduledStartTimestamp"):
            item["ScheduledStartTime"] = format_precise(body.scheduledStartTimestamp)
        if body.HasField("parentInstance"):
            item["ParentInstanceId"] = body.parentInstance.orchestrationInstance.instanceId
    elif kind == "executionCompleted":
        item["OrchestrationStatus"] = status_name(body.orchestrationStatus)
        if show_output:
            item["Result"] = parse_json(_sv(body, "result"))
        if body.HasField("failureDetails"):
            item["FailureDetails"] = failure_to_json(body.failureDetails)
    elif kind in ("taskCompleted", "subOrchestrationInstanceCompleted"):
        if show_output:
            item["Result"] = parse_json(_sv(body, "result"))
    elif kind in ("taskFailed", "subOrchestrationInstanceFailed"):
        item["Reason"] = body.failureDetails.errorMessage
        item["FailureDetails"] = failure_to_json(body.failureDetails)
    elif kind == "taskScheduled":
        item["Name"] = body.name
        if show_input:
            item["Input"] = parse_json(_sv(body, "input"))
    elif kind == "subOrchestrationInstanceCreated":
        item["Name"] = body.name
        item["InstanceId"] = body.instanceId
        if show_input:
            item["Input"] = parse_json(_sv(body, "input"))
    elif kind in ("timerCreated", "timerFired"):
        item["FireAt"] = format_precise(body.fireAt)
    elif kind == "eventRaised":
        item["Name"] = body.name
        if show_input:
            item["Input"] = parse_json(_sv(body, "input"))
    elif kind == "eventSent":
        item["Name"] = body.name
        item["InstanceId"] = body.instanceId
        if show_input:
            item["Input"] = parse_json(_sv(body, "input"))
    elif kind in ("executionTerminated",):
        if show_input:
            item["Input"] = parse_json(_sv(body, "input"))
    elif kind in ("executionSuspended", "executionResumed"):
        item["Reason"] = parse_json(_sv(body, "input"))
    elif kind == "executionRewound":
        item["Reason"] = _sv(body, "reason")
    elif kind == "continueAsNew":
        if show_output:
            item["Result"] = parse_json(_sv(body, "input"))
    elif kind == "genericEvent":
        item["Data"] = _sv(body, "data")
