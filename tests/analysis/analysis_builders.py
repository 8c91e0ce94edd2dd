"""Hand-made history and instance frames in the shape of docs/frames.md, with known answers.

h = History("i1")  # one instance, execution "i1-e1", times in seconds
h.episode(0, h.started("Orch"), h.task("Hello", 1))
h.episode(2, h.done(1, "hi"), h.complete("Completed", result="hi"))
h.frame()
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

T0 = pd.Timestamp("2026-01-01T00:00:00Z")
UTC = "datetime64[ns, UTC]"

HISTORY_COLUMNS: dict[str, str] = {
    "InstanceId": "string",
    "ExecutionId": "string",
    "Sequence": "Int64",
    "RowKey": "string",
    "EventType": "string",
    "EventId": "Int32",
    "IsPlayed": "boolean",
    "Timestamp": UTC,
    "TableTimestamp": UTC,
    "Name": "string",
    "TaskScheduledId": "Int32",
    "TimerId": "Int32",
    "FireAt": UTC,
    "TargetInstanceId": "string",
    "OrchestrationStatus": "string",
    "Input": "object",
    "Result": "object",
    "InputRaw": "string",
    "ResultRaw": "string",
    "Reason": "string",
    "Details": "string",
    "FailureType": "string",
    "FailureMessage": "string",
    "FailureStackTrace": "string",
    "FailureDetails": "object",
    "ScheduledTime": UTC,
    "Duration": "timedelta64[ns]",
    "ParentInstance": "object",
    "OrchestrationInstance": "object",
    "Tags": "object",
}

INSTANCE_COLUMNS: dict[str, Any] = {
    "InstanceId": "string",
    "Name": "string",
    "Version": "string",
    "RuntimeStatus": pd.CategoricalDtype(
        [
            "Pending",
            "Running",
            "Suspended",
            "Completed",
            "Failed",
            "Terminated",
            "ContinuedAsNew",
            "Canceled",
            "Unknown",
        ]
    ),
    "CreatedTime": UTC,
    "LastUpdatedTime": UTC,
    "CompletedTime": UTC,
    "Duration": "timedelta64[ns]",
    "ExecutionId": "string",
    "Input": "object",
    "Output": "object",
    "CustomStatus": "object",
    "InputRaw": "string",
    "OutputRaw": "string",
    "CustomStatusRaw": "string",
    "Generation": "Int32",
    "ScheduledStartTime": UTC,
    "Tags": "object",
    "TaskHubName": "string",
    "TableTimestamp": UTC,
}


def t(seconds: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(seconds=seconds)


def typed(rows: list[dict], columns: dict[str, Any]) -> pd.DataFrame:
    """A frame with exactly ``columns`` (in order, with their dtypes) from row dicts."""
    data = {}
    for col, dtype in columns.items():
        values = [r.get(col) for r in rows]
        if dtype == "object":
            s = pd.Series(values, dtype=object)
        elif dtype == "timedelta64[ns]":
            s = pd.Series(pd.to_timedelta(values), dtype=dtype)
        elif dtype == UTC:
            s = pd.Series(pd.to_datetime(values, utc=True), dtype=dtype)
        else:
            s = pd.Series(values, dtype=dtype)
        data[col] = s
    return pd.DataFrame(data)


def failure(error_type: str, message: str, stack: str | None = None, inner: dict | None = None):
    return {
        "ErrorType": error_type,
        "ErrorMessage": message,
        "StackTrace": stack,
        "InnerFailure": inner,
        "IsNonRetriable": False,
    }


class History:
    """Builds one instance's history; events are dicts, episodes stamp them with a time."""

    def __init__(self, instance_id: str, execution_id: str | None = None) -> None:
        self.instance_id = instance_id
        self.execution_id = execution_id or f"{instance_id}-e1"
        self.rows: list[dict] = []
        self._scheduled: dict[int, dict] = {}
        self._seq = 0

    # -- events (returned, not yet stamped)
    def started(self, name: str = "Orch", input: Any = None) -> dict:
        return self._payload(
            {"EventType": "ExecutionStarted", "EventId": -1, "Name": name}, "Input", input
        )

    def task(self, name: str, event_id: int, input: Any = None) -> dict:
        ev = {"EventType": "TaskScheduled", "EventId": event_id, "Name": name}
        return self._payload(ev, "Input", input)

    def done(self, event_id: int, result: Any = None) -> dict:
        ev = {"EventType": "TaskCompleted", "EventId": -1, "TaskScheduledId": event_id}
        return self._payload(ev, "Result", result)

    def fail(self, event_id: int, error_type: str, message: str, details: dict | None = None):
        return {
            "EventType": "TaskFailed",
            "EventId": -1,
            "TaskScheduledId": event_id,
            "FailureType": error_type,
            "FailureMessage": message,
            "FailureStackTrace": (details or {}).get("StackTrace"),
            "FailureDetails": details or failure(error_type, message),
        }

    def sub(self, name: str, event_id: int, target: str) -> dict:
        return {
            "EventType": "SubOrchestrationInstanceCreated",
            "EventId": event_id,
            "Name": name,
            "TargetInstanceId": target,
        }

    def sub_done(self, event_id: int, result: Any = None) -> dict:
        ev = {
            "EventType": "SubOrchestrationInstanceCompleted",
            "EventId": -1,
            "TaskScheduledId": event_id,
        }
        return self._payload(ev, "Result", result)

    def sub_fail(self, event_id: int, error_type: str, message: str, details=None) -> dict:
        ev = self.fail(event_id, error_type, message, details)
        ev["EventType"] = "SubOrchestrationInstanceFailed"
        return ev

    def timer(self, event_id: int, fire_at: float) -> dict:
        return {"EventType": "TimerCreated", "EventId": event_id, "FireAt": t(fire_at)}

    def fired(self, timer_id: int, fire_at: float) -> dict:
        return {"EventType": "TimerFired", "EventId": -1, "TimerId": timer_id, "FireAt": t(fire_at)}

    def raised(self, name: str, input: Any = None) -> dict:
        return self._payload(
            {"EventType": "EventRaised", "EventId": -1, "Name": name}, "Input", input
        )

    def complete(self, status: str = "Completed", result: Any = None, details=None) -> dict:
        ev = {"EventType": "ExecutionCompleted", "EventId": -1, "OrchestrationStatus": status}
        if details:
            ev.update(
                FailureDetails=details,
                FailureType=details["ErrorType"],
                FailureMessage=details["ErrorMessage"],
                FailureStackTrace=details.get("StackTrace"),
            )
        return self._payload(ev, "Result", result)

    def continue_as_new(self, new_input: Any = None) -> dict:
        ev = {"EventType": "ContinueAsNew", "EventId": -1, "OrchestrationStatus": "ContinuedAsNew"}
        return self._payload(ev, "Result", new_input)

    def new_execution(self, execution_id: str) -> None:
        """Start a new execution (after continue-as-new): sequence restarts at 0."""
        self.execution_id = execution_id
        self._scheduled = {}
        self._seq = 0

    # -- stamping
    def episode(
        self, seconds: float, *events: dict, end: float | None = None, markers: bool = True
    ) -> History:
        """OrchestratorStarted, the events (all at ``seconds``), OrchestratorCompleted."""
        body = list(events)
        if markers:
            body = [
                {"EventType": "OrchestratorStarted", "EventId": -1},
                *body,
                {"EventType": "OrchestratorCompleted", "EventId": -1},
            ]
        for i, ev in enumerate(body):
            when = seconds if (end is None or i < len(body) - 1) else end
            self._add(dict(ev), when)
        return self

    def _add(self, ev: dict, seconds: float) -> None:
        ev.setdefault("IsPlayed", ev["EventId"] == -1 and not ev["EventType"].startswith("Orch"))
        ev.update(
            InstanceId=self.instance_id,
            ExecutionId=self.execution_id,
            Sequence=self._seq,
            RowKey=f"{self._seq:016X}",
            Timestamp=t(seconds),
            TableTimestamp=t(seconds) + pd.Timedelta(milliseconds=5),
        )
        self._seq += 1
        et = ev["EventType"]
        if et in ("TaskScheduled", "SubOrchestrationInstanceCreated", "TimerCreated"):
            self._scheduled[ev["EventId"]] = ev
        ref = ev.get("TimerId") if et == "TimerFired" else ev.get("TaskScheduledId")
        if ref is not None and ref in self._scheduled:
            sched = self._scheduled[ref]
            ev.setdefault("Name", sched.get("Name"))
            ev["ScheduledTime"] = sched["Timestamp"]
            ev["Duration"] = ev["Timestamp"] - sched["Timestamp"]
        self.rows.append(ev)

    @staticmethod
    def _payload(ev: dict, col: str, value: Any) -> dict:
        if value is not None:
            ev[col] = value
            ev[col + "Raw"] = json.dumps(value)
        return ev

    def frame(self) -> pd.DataFrame:
        return typed(self.rows, HISTORY_COLUMNS)


def histories(*builders: History) -> pd.DataFrame:
    return pd.concat([b.frame() for b in builders], ignore_index=True)


def instance(
    instance_id: str,
    status: str,
    created: float,
    updated: float | None = None,
    completed: float | None = None,
    name: str = "Orch",
    execution_id: str | None = None,
    output: Any = None,
    input: Any = None,
) -> dict:
    row = {
        "InstanceId": instance_id,
        "Name": name,
        "Version": "",
        "RuntimeStatus": status,
        "CreatedTime": t(created),
        "LastUpdatedTime": t(updated if updated is not None else (completed or created)),
        "CompletedTime": t(completed) if completed is not None else None,
        "ExecutionId": execution_id or f"{instance_id}-e1",
        "Generation": 0,
        "TaskHubName": "TestHub",
    }
    if completed is not None:
        row["Duration"] = t(completed) - t(created)
    for col, value in (("Input", input), ("Output", output)):
        if value is not None:
            row[col] = value
            row[col + "Raw"] = value if isinstance(value, str) else json.dumps(value)
    return row


def instances(*rows: dict) -> pd.DataFrame:
    return typed(list(rows), INSTANCE_COLUMNS)
