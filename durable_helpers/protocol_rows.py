"""Durable Task protocol history events <-> History table columns (the DTFx names). No I/O.

``event_to_columns`` turns a ``durabletask`` protobuf ``HistoryEvent`` into the EventType name and
the type-specific columns the Azure Storage provider writes (layout doc §2.4): ``Name``,
``Version``, ``Input``, ``Result``, ``TaskScheduledId``, ``TimerId``, ``FireAt``,
``OrchestrationStatus``, ``Reason``/``Details``, JSON strings for complex members
(``OrchestrationInstance``, ``ParentInstance``, ``FailureDetails`` with
ErrorType/ErrorMessage/StackTrace/InnerFailure/IsNonRetriable/Properties, ``Tags``,
``ParentTraceContext``). The common columns (EventId, IsPlayed, ``_Timestamp``, ExecutionId, keys)
are the caller's: ``event.eventId`` and ``event.timestamp`` are not part of the returned dict
(pass them to :func:`durable_helpers.schema.history_entity`).

``columns_to_event`` is the inverse: it reads a History row (a mapping; absent columns and ``""``
count as null, and so does ``"null"`` outside the payload columns, where it is the JSON value
null) back into a ``HistoryEvent``, including ``EventId`` and ``_Timestamp``. It does not
follow ``<Prop>BlobName`` columns: resolve large payloads first. For rows of a *History frame*
(the readers' column names) see :mod:`durable_helpers.protocol_frames`.

Event types without a DTFx row type (entity events) are stored as ``GenericEvent`` with the
protobuf JSON in ``Data`` and the oneof name in ``DurableTaskEventType`` so they round-trip.

Example:
    >>> import durabletask.internal.orchestrator_service_pb2 as pb
    >>> from google.protobuf import wrappers_pb2
    >>> ev = pb.HistoryEvent(eventId=1, taskScheduled=pb.TaskScheduledEvent(
    ...     name="Hello", input=wrappers_pb2.StringValue(value='"Tokyo"')))
    >>> event_to_columns(ev)
    ('TaskScheduled', {'Name': 'Hello', 'Version': '', 'Input': '"Tokyo"'})
    >>> row = {"EventType": "TaskScheduled", "EventId": 1, "Name": "Hello"}
    >>> columns_to_event(row).taskScheduled.name
    'Hello'
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import durabletask.internal.orchestrator_service_pb2 as pb
from google.protobuf import json_format, timestamp_pb2

__all__ = [
    "STATUS_FROM_NAME",
    "STATUS_NAMES",
    "columns_to_event",
    "compact_json",
    "event_to_columns",
    "failure_from_json",
    "failure_to_json",
]

UTC = timezone.utc  # noqa: UP017

#: pb OrchestrationStatus -> DTFx OrchestrationStatus name.
STATUS_NAMES: dict[int, str] = {
    pb.ORCHESTRATION_STATUS_RUNNING: "Running",
    pb.ORCHESTRATION_STATUS_COMPLETED: "Completed",
    pb.ORCHESTRATION_STATUS_CONTINUED_AS_NEW: "ContinuedAsNew",
    pb.ORCHESTRATION_STATUS_FAILED: "Failed",
    pb.ORCHESTRATION_STATUS_CANCELED: "Canceled",
    pb.ORCHESTRATION_STATUS_TERMINATED: "Terminated",
    pb.ORCHESTRATION_STATUS_PENDING: "Pending",
    pb.ORCHESTRATION_STATUS_SUSPENDED: "Suspended",
}
#: DTFx OrchestrationStatus name -> pb OrchestrationStatus.
STATUS_FROM_NAME: dict[str, int] = {v: k for k, v in STATUS_NAMES.items()}

# pb oneof name -> DTFx EventType name
_TYPE_NAMES = {
    "executionStarted": "ExecutionStarted",
    "executionCompleted": "ExecutionCompleted",
    "executionTerminated": "ExecutionTerminated",
    "taskScheduled": "TaskScheduled",
    "taskCompleted": "TaskCompleted",
    "taskFailed": "TaskFailed",
    "subOrchestrationInstanceCreated": "SubOrchestrationInstanceCreated",
    "subOrchestrationInstanceCompleted": "SubOrchestrationInstanceCompleted",
    "subOrchestrationInstanceFailed": "SubOrchestrationInstanceFailed",
    "timerCreated": "TimerCreated",
    "timerFired": "TimerFired",
    "orchestratorStarted": "OrchestratorStarted",
    "orchestratorCompleted": "OrchestratorCompleted",
    "eventSent": "EventSent",
    "eventRaised": "EventRaised",
    "genericEvent": "GenericEvent",
    "historyState": "HistoryState",
    "continueAsNew": "ContinueAsNew",
    "executionSuspended": "ExecutionSuspended",
    "executionResumed": "ExecutionResumed",
    "executionRewound": "ExecutionRewound",
}
_ONEOF_OF = {v: k for k, v in _TYPE_NAMES.items()}


# ------------------------------------------------------------------------------------------
# small helpers
# ------------------------------------------------------------------------------------------


def string_value(message: Any, field: str) -> str | None:
    """The value of an optional ``google.protobuf.StringValue`` field, or None when unset.

    Example:
        >>> string_value(pb.TaskFailureDetails(), "stackTrace") is None
        True
    """
    return getattr(message, field).value if message.HasField(field) else None


_sv = string_value


def _is_null(value: Any) -> bool:
    return value is None or value == "" or value == "null"


def _str(entity: Mapping[str, Any], name: str) -> str | None:
    value = entity.get(name)
    return None if value is None or value == "null" else str(value)


def _payload(entity: Mapping[str, Any], name: str) -> str | None:
    """A JSON payload column: absent (or empty) is no payload; ``"null"`` is the JSON null."""
    value = entity.get(name)
    return None if value is None or value == "" else str(value)


def _json_col(entity: Mapping[str, Any], name: str) -> Any:
    value = entity.get(name)
    if _is_null(value):
        return None
    if isinstance(value, (dict, list)):
        return value
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return None


def _dt(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value).rstrip("Z")
    if "." in text:
        main, frac = text.split(".", 1)
        frac = "".join(c for c in frac if c.isdigit())
        text = f"{main}.{(frac + '000000')[:6]}"
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _ts_to_dt(ts: timestamp_pb2.Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def _dt_to_ts(value: datetime) -> timestamp_pb2.Timestamp:
    nanoseconds = getattr(value, "value", None)  # a pandas Timestamp: ns since the epoch (UTC)
    if isinstance(nanoseconds, int) and value.tzinfo is not None:
        seconds, nanos = divmod(nanoseconds, 1_000_000_000)
        return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value.astimezone(UTC).replace(tzinfo=None))
    return ts


def _set_ts(ts: timestamp_pb2.Timestamp, value: datetime) -> None:
    """Write ``value`` into the (sub-message) Timestamp ``ts`` in place (sets its presence)."""
    nanoseconds = getattr(value, "value", None)  # a pandas Timestamp: ns since the epoch (UTC)
    if isinstance(nanoseconds, int) and value.tzinfo is not None:
        ts.seconds, ts.nanos = divmod(nanoseconds, 1_000_000_000)
        ts.SetInParent()
    else:
        ts.CopyFrom(_dt_to_ts(value))


def compact_json(value: Any) -> str:
    """JSON text without spaces, non-ASCII kept (as DTFx writes JSON columns).

    Example:
        >>> compact_json({"a": [1, "é"]})
        '{"a":[1,"é"]}'
    """
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def failure_to_json(fd: pb.TaskFailureDetails) -> dict[str, Any]:
    """A TaskFailureDetails as the DTFx FailureDetails object (a dict, ready for JSON).

    Example:
        >>> failure_to_json(pb.TaskFailureDetails(errorType="E", errorMessage="m"))["ErrorType"]
        'E'
    """
    return {
        "ErrorType": fd.errorType,
        "ErrorMessage": fd.errorMessage,
        "StackTrace": _sv(fd, "stackTrace"),
        "InnerFailure": failure_to_json(fd.innerFailure) if fd.HasField("innerFailure") else None,
        "IsNonRetriable": bool(fd.isNonRetriable),
        "Properties": (
            {k: json_format.MessageToDict(v) for k, v in fd.properties.items()}
            if fd.properties
            else None
        ),
    }


def failure_from_json(data: Any) -> pb.TaskFailureDetails | None:
    """A DTFx FailureDetails object (dict or JSON text) as TaskFailureDetails (None for null).

    Example:
        >>> failure_from_json('{"ErrorType":"E","ErrorMessage":"m"}').errorMessage
        'm'
    """
    if isinstance(data, str):
        if _is_null(data):
            return None
        try:
            data = json.loads(data)
        except ValueError:
            return pb.TaskFailureDetails(errorType="Unknown", errorMessage=data)
    if not isinstance(data, dict):
        return None
    fd = pb.TaskFailureDetails(
        errorType=str(data.get("ErrorType") or ""),
        errorMessage=str(data.get("ErrorMessage") or ""),
        isNonRetriable=bool(data.get("IsNonRetriable") or False),
    )
    if data.get("StackTrace") is not None:
        fd.stackTrace.value = str(data["StackTrace"])
    inner = failure_from_json(data.get("InnerFailure"))
    if inner is not None:
        fd.innerFailure.CopyFrom(inner)
    for key, value in (data.get("Properties") or {}).items():
        json_format.ParseDict(value, fd.properties[key])
    return fd


def _trace_to_json(tc: pb.TraceContext) -> dict[str, Any]:
    return {
        "TraceParent": tc.traceParent,
        "TraceState": _sv(tc, "traceState"),
        "SpanId": tc.spanID or None,
    }


def _trace_from_json(data: Any) -> pb.TraceContext | None:
    if not isinstance(data, dict) or not data.get("TraceParent"):
        return None
    tc = pb.TraceContext(traceParent=str(data["TraceParent"]), spanID=str(data.get("SpanId") or ""))
    if data.get("TraceState") is not None:
        tc.traceState.value = str(data["TraceState"])
    return tc


def _instance_json(oi: pb.OrchestrationInstance) -> dict[str, Any]:
    return {"InstanceId": oi.instanceId, "ExecutionId": _sv(oi, "executionId")}


def _instance_from_json(data: Any) -> pb.OrchestrationInstance | None:
    if not isinstance(data, dict):
        return None
    oi = pb.OrchestrationInstance(instanceId=str(data.get("InstanceId") or ""))
    if data.get("ExecutionId") is not None:
        oi.executionId.value = str(data["ExecutionId"])
    return oi


def _put(cols: dict[str, Any], name: str, value: Any) -> None:
    if value is not None:
        cols[name] = value


def _failure_cols(cols: dict[str, Any], fd: pb.TaskFailureDetails | None) -> None:
    if fd is None:
        return
    cols["Reason"] = fd.errorMessage
    if fd.HasField("stackTrace"):
        cols["Details"] = fd.stackTrace.value
    cols["FailureDetails"] = compact_json(failure_to_json(fd))


# ------------------------------------------------------------------------------------------
# encode
# ------------------------------------------------------------------------------------------


def _scheduled_cols(cols: dict[str, Any], e: Any) -> None:
    """Name, Version, Input, Tags and ParentTraceContext: what every started or scheduled
    event (ExecutionStarted, TaskScheduled, SubOrchestrationInstanceCreated) carries."""
    cols["Name"] = e.name
    cols["Version"] = _sv(e, "version") or ""
    _put(cols, "Input", _sv(e, "input"))
    _put(cols, "Tags", compact_json(dict(e.tags)) if e.tags else None)
    if e.HasField("parentTraceContext"):
        cols["ParentTraceContext"] = compact_json(_trace_to_json(e.parentTraceContext))


def event_to_columns(event: pb.HistoryEvent) -> tuple[str, dict[str, Any]]:
    """The DTFx EventType name and type-specific History columns of one protocol event.

    Values are str (JSON text for payloads and complex members), int (Int32 ids) or UTC
    datetimes (FireAt, ScheduledStartTime); nulls are left out. Common columns (EventId,
    IsPlayed, _Timestamp, ExecutionId, keys) are not included.

    Example:
        >>> from google.protobuf import wrappers_pb2
        >>> event_to_columns(pb.HistoryEvent(eventId=-1, taskCompleted=pb.TaskCompletedEvent(
        ...     taskScheduledId=1, result=wrappers_pb2.StringValue(value='"Hello Tokyo!"'))))
        ('TaskCompleted', {'TaskScheduledId': 1, 'Result': '"Hello Tokyo!"'})
    """
    kind = event.WhichOneof("eventType")
    cols: dict[str, Any] = {}
    if kind is None:
        raise ValueError("the HistoryEvent has no event type set")
    if kind not in _TYPE_NAMES:
        # Entity events and anything newer: keep them, losslessly, as a GenericEvent.
        cols["Data"] = json_format.MessageToJson(
            getattr(event, kind), indent=None, preserving_proto_field_name=False
        )
        cols["DurableTaskEventType"] = kind
        return "GenericEvent", cols
    e = getattr(event, kind)
    if kind == "executionStarted":
        _put(
            cols,
            "OrchestrationInstance",
            compact_json(_instance_json(e.orchestrationInstance))
            if e.HasField("orchestrationInstance")
            else None,
        )
        if e.HasField("parentInstance"):
            p = e.parentInstance
            cols["ParentInstance"] = compact_json(
                {
                    "Name": _sv(p, "name"),
                    "OrchestrationInstance": _instance_json(p.orchestrationInstance),
                    "TaskScheduleId": p.taskScheduledId,
                    "Version": _sv(p, "version"),
                }
            )
        _scheduled_cols(cols, e)
        _put(
            cols,
            "ScheduledStartTime",
            _ts_to_dt(e.scheduledStartTimestamp) if e.HasField("scheduledStartTimestamp") else None,
        )
        _put(cols, "OrchestrationSpanId", _sv(e, "orchestrationSpanID"))
    elif kind == "executionCompleted":
        cols["OrchestrationStatus"] = STATUS_NAMES.get(e.orchestrationStatus, "Running")
        _put(cols, "Result", _sv(e, "result"))
        if e.HasField("failureDetails"):
            cols["FailureDetails"] = compact_json(failure_to_json(e.failureDetails))
    elif kind == "executionTerminated":
        _put(cols, "Input", _sv(e, "input"))
        if e.recurse:
            cols["Recurse"] = True
    elif kind == "taskScheduled":
        _scheduled_cols(cols, e)
    elif kind in ("taskCompleted", "subOrchestrationInstanceCompleted"):
        cols["TaskScheduledId"] = e.taskScheduledId
        _put(cols, "Result", _sv(e, "result"))
    elif kind in ("taskFailed", "subOrchestrationInstanceFailed"):
        cols["TaskScheduledId"] = e.taskScheduledId
        _failure_cols(cols, e.failureDetails if e.HasField("failureDetails") else None)
    elif kind == "subOrchestrationInstanceCreated":
        _scheduled_cols(cols, e)
        cols["InstanceId"] = e.instanceId
    elif kind == "timerCreated":
        cols["FireAt"] = _ts_to_dt(e.fireAt)
    elif kind == "timerFired":
        cols["TimerId"] = e.timerId
        cols["FireAt"] = _ts_to_dt(e.fireAt)
    elif kind == "eventSent":
        cols["InstanceId"] = e.instanceId
        cols["Name"] = e.name
        _put(cols, "Input", _sv(e, "input"))
    elif kind == "eventRaised":
        cols["Name"] = e.name
        _put(cols, "Input", _sv(e, "input"))
    elif kind == "genericEvent":
        _put(cols, "Data", _sv(e, "data"))
    elif kind == "historyState":
        cols["State"] = json_format.MessageToJson(e.orchestrationState, indent=None)
    elif kind == "continueAsNew":
        cols["OrchestrationStatus"] = "ContinuedAsNew"
        _put(cols, "Result", _sv(e, "input"))
    elif kind in ("executionSuspended", "executionResumed"):
        _put(cols, "Reason", _sv(e, "input"))
    elif kind == "executionRewound":
        _put(cols, "Reason", _sv(e, "reason"))
        _put(cols, "ParentExecutionId", _sv(e, "parentExecutionId"))
        _put(cols, "InstanceId", _sv(e, "instanceId"))
        _put(cols, "Name", _sv(e, "name"))
        _put(cols, "Version", _sv(e, "version"))
        _put(cols, "Input", _sv(e, "input"))
        _put(
            cols,
            "ParentTraceContext",
            compact_json(_trace_to_json(e.parentTraceContext))
            if e.HasField("parentTraceContext")
            else None,
        )
    # orchestratorStarted / orchestratorCompleted: no extra columns
    return _TYPE_NAMES[kind], cols


# ------------------------------------------------------------------------------------------
# decode
# ------------------------------------------------------------------------------------------


def _set_sv(msg: Any, field: str, value: str | None) -> None:
    if value is not None:
        getattr(msg, field).value = value  # sets the wrapper's presence too, even for ""


def columns_to_event(entity: Mapping[str, Any]) -> pb.HistoryEvent:
    """Rebuild a protocol HistoryEvent from a History row (EventId, _Timestamp included).

    Unknown columns are ignored; absent and ``""`` values count as null, and so does ``"null"``
    except in the payload columns (Input, Result, Data), where it is the JSON value null, kept
    as the text ``null`` (an absent payload stays absent); datetimes may be ``datetime`` objects
    or ISO-8601 strings.

    Example:
        >>> ev = columns_to_event({"EventType": "TimerFired", "EventId": -1, "TimerId": 2,
        ...                        "FireAt": "2026-01-01T00:00:00Z"})
        >>> ev.timerFired.timerId, ev.timerFired.fireAt.seconds > 0
        (2, True)
    """
    get = entity.get
    event_type = str(get("EventType") or "")
    event = pb.HistoryEvent()
    if event_type == "GenericEvent" and get("DurableTaskEventType"):
        kind = str(entity["DurableTaskEventType"])
        json_format.Parse(str(get("Data") or "{}"), getattr(event, kind))
    else:
        kind = _ONEOF_OF.get(event_type)
        if kind is None:
            raise ValueError(f"unknown EventType {event_type!r} in a History row")
        if kind in _NO_COLUMNS:  # the most frequent rows: nothing to read but the type
            getattr(event, kind).SetInParent()
        else:
            _decode_into(event, kind, entity)
    event_id = get("EventId")
    event.eventId = int(event_id) if event_id is not None and event_id != "" else -1
    ts = _dt(get("_Timestamp"))
    if ts is not None:
        _set_ts(event.timestamp, ts)
    return event


#: Event types whose rows carry no type-specific columns.
_NO_COLUMNS = frozenset({"orchestratorStarted", "orchestratorCompleted"})


def _decode_into(event: pb.HistoryEvent, kind: str, c: Mapping[str, Any]) -> None:
    e = getattr(event, kind)
    e.SetInParent()
    if kind in _NO_COLUMNS:
        return
    if kind == "executionStarted":
        e.name = _str(c, "Name") or ""
        version = _str(c, "Version")
        if version:
            e.version.value = version
        _set_sv(e, "input", _payload(c, "Input"))
        oi = _instance_from_json(_json_col(c, "OrchestrationInstance"))
        if oi is not None:
            e.orchestrationInstance.CopyFrom(oi)
        parent = _json_col(c, "ParentInstance")
        if isinstance(parent, dict):
            p = e.parentInstance
            p.taskScheduledId = int(parent.get("TaskScheduleId") or 0)
            _set_sv(p, "name", parent.get("Name"))
            _set_sv(p, "version", parent.get("Version"))
            poi = _instance_from_json(parent.get("OrchestrationInstance"))
            if poi is not None:
                p.orchestrationInstance.CopyFrom(poi)
        for key, value in (_json_col(c, "Tags") or {}).items():
            e.tags[str(key)] = str(value)
        tc = _trace_from_json(_json_col(c, "ParentTraceContext"))
        if tc is not None:
            e.parentTraceContext.CopyFrom(tc)
        sst = _dt(c.get("ScheduledStartTime"))
        if sst is not None:
            _set_ts(e.scheduledStartTimestamp, sst)
        _set_sv(e, "orchestrationSpanID", _str(c, "OrchestrationSpanId"))
    elif kind == "executionCompleted":
        e.orchestrationStatus = STATUS_FROM_NAME.get(
            str(c.get("OrchestrationStatus") or "Completed"), pb.ORCHESTRATION_STATUS_COMPLETED
        )
        _set_sv(e, "result", _payload(c, "Result"))
        fd = failure_from_json(c.get("FailureDetails"))
        if fd is not None:
            e.failureDetails.CopyFrom(fd)
    elif kind == "executionTerminated":
        _set_sv(e, "input", _payload(c, "Input"))
        e.recurse = bool(c.get("Recurse") or False)
    elif kind == "taskScheduled":
        e.name = _str(c, "Name") or ""
        version = _str(c, "Version")
        if version:
            e.version.value = version
        _set_sv(e, "input", _payload(c, "Input"))
        for key, value in (_json_col(c, "Tags") or {}).items():
            e.tags[str(key)] = str(value)
        tc = _trace_from_json(_json_col(c, "ParentTraceContext"))
        if tc is not None:
            e.parentTraceContext.CopyFrom(tc)
    elif kind in ("taskCompleted", "subOrchestrationInstanceCompleted"):
        e.taskScheduledId = int(c.get("TaskScheduledId") or 0)
        _set_sv(e, "result", _payload(c, "Result"))
    elif kind in ("taskFailed", "subOrchestrationInstanceFailed"):
        e.taskScheduledId = int(c.get("TaskScheduledId") or 0)
        fd = failure_from_json(c.get("FailureDetails"))
        if fd is None and not _is_null(c.get("Reason")):  # legacy rows: Reason/Details only
            fd = pb.TaskFailureDetails(errorType="Unknown", errorMessage=str(c["Reason"]))
            if not _is_null(c.get("Details")):
                fd.stackTrace.value = str(c["Details"])
        if fd is not None:
            e.failureDetails.CopyFrom(fd)
    elif kind == "subOrchestrationInstanceCreated":
        e.name = _str(c, "Name") or ""
        e.instanceId = _str(c, "InstanceId") or ""
        version = _str(c, "Version")
        if version:
            e.version.value = version
        _set_sv(e, "input", _payload(c, "Input"))
        for key, value in (_json_col(c, "Tags") or {}).items():
            e.tags[str(key)] = str(value)
        tc = _trace_from_json(_json_col(c, "ParentTraceContext"))
        if tc is not None:
            e.parentTraceContext.CopyFrom(tc)
    elif kind == "timerCreated":
        fire_at = _dt(c.get("FireAt"))
        if fire_at is not None:
            _set_ts(e.fireAt, fire_at)
    elif kind == "timerFired":
        e.timerId = int(c.get("TimerId") or 0)
        fire_at = _dt(c.get("FireAt"))
        if fire_at is not None:
            _set_ts(e.fireAt, fire_at)
    elif kind == "eventSent":
        e.instanceId = _str(c, "InstanceId") or ""
        e.name = _str(c, "Name") or ""
        _set_sv(e, "input", _payload(c, "Input"))
    elif kind == "eventRaised":
        e.name = _str(c, "Name") or ""
        _set_sv(e, "input", _payload(c, "Input"))
    elif kind == "genericEvent":
        _set_sv(e, "data", _payload(c, "Data"))
    elif kind == "historyState":
        state = _str(c, "State")
        if state:
            json_format.Parse(state, e.orchestrationState, ignore_unknown_fields=True)
    elif kind == "continueAsNew":
        _set_sv(e, "input", _payload(c, "Result"))
    elif kind in ("executionSuspended", "executionResumed"):
        _set_sv(e, "input", _str(c, "Reason"))
    elif kind == "executionRewound":
        _set_sv(e, "reason", _str(c, "Reason"))
        _set_sv(e, "parentExecutionId", _str(c, "ParentExecutionId"))
        _set_sv(e, "instanceId", _str(c, "InstanceId"))
        _set_sv(e, "name", _str(c, "Name"))
        _set_sv(e, "version", _str(c, "Version"))
        _set_sv(e, "input", _payload(c, "Input"))
        tc = _trace_from_json(_json_col(c, "ParentTraceContext"))
        if tc is not None:
            e.parentTraceContext.CopyFrom(tc)
