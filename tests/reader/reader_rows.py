"""Row sets for the reader tests, written the way the provider writes them."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from durable_helpers import schema

UTC = schema.UTC
SEED_INSTANCE = "95c7f6639fe04bf0a919698255cecd33"
SEED_EXECUTION = "46021e13b9d54fb19d10b55e3cca502b"
SEED_ORCHESTRATOR = "DurableFunctionsOrchestratorJS"
T0 = datetime(2019, 12, 23, 14, 16, 27, tzinfo=UTC)


def ms(milliseconds: float) -> datetime:
    """T0 plus some milliseconds (the seed's 14:16:27.xxx)."""
    return T0 + timedelta(milliseconds=milliseconds)


#: The seed's 16 events: (EventType, EventId, IsPlayed, _Timestamp ms, extra columns).
HELLO_EVENTS: list[tuple[str, int, bool, float, dict[str, Any]]] = [
    ("OrchestratorStarted", -1, False, 250, {}),
    ("ExecutionStarted", -1, True, 100, {"Name": SEED_ORCHESTRATOR, "Version": "",
     "OrchestrationInstance": {"InstanceId": SEED_INSTANCE, "ExecutionId": SEED_EXECUTION}}),
    ("TaskScheduled", 0, False, 260, {"Name": "Hello", "Version": ""}),
    ("OrchestratorCompleted", -1, False, 265, {}),
    ("OrchestratorStarted", -1, False, 540, {}),
    ("TaskCompleted", -1, True, 500, {"TaskScheduledId": 0, "Result": '"Hello Tokyo!"'}),
    ("TaskScheduled", 1, False, 545, {"Name": "Hello", "Version": ""}),
    ("OrchestratorCompleted", -1, False, 546, {}),
    ("OrchestratorStarted", -1, False, 690, {}),
    ("TaskCompleted", -1, True, 650, {"TaskScheduledId": 1, "Result": '"Hello Seattle!"'}),
    ("TaskScheduled", 2, False, 695, {"Name": "Hello", "Version": ""}),
    ("OrchestratorCompleted", -1, False, 696, {}),
    ("OrchestratorStarted", -1, False, 860, {}),
    ("TaskCompleted", -1, True, 820, {"TaskScheduledId": 2, "Result": '"Hello London!"'}),
    ("ExecutionCompleted", 3, False, 865, {"OrchestrationStatus": "Completed",
     "Result": '["Hello Tokyo!","Hello Seattle!","Hello London!"]'}),
    ("OrchestratorCompleted", -1, False, 866, {}),
]  # fmt: skip

#: The checkpoints of the seed run: which rows each wrote (rows of one checkpoint share a batch).
HELLO_CHECKPOINTS = [range(0, 4), range(4, 8), range(8, 12), range(12, 16)]


def hello_checkpoints(
    instance_id: str = SEED_INSTANCE, execution_id: str = SEED_EXECUTION
) -> list[list[dict[str, Any]]]:
    """The seed chain as 4 checkpoint batches, each with the sentinel, through schema."""
    events = [
        schema.history_entity(
            instance_id,
            execution_id,
            seq,
            event_type,
            event_id=event_id,
            is_played=played,
            timestamp=ms(at),
            **columns,
        )
        for seq, (event_type, event_id, played, at, columns) in enumerate(HELLO_EVENTS)
    ]
    batches = []
    for rows in HELLO_CHECKPOINTS:
        done = ms(HELLO_EVENTS[rows[-1]][3] + 5)
        batch = [events[i] for i in rows]
        batch.append(schema.sentinel_entity(instance_id, execution_id, checkpoint_completed=done))
        batches.append(batch)
    return batches


def hello_instance(
    instance_id: str = SEED_INSTANCE, execution_id: str = SEED_EXECUTION, hub: str = "H"
) -> dict[str, Any]:
    """The Instances row after the seed run (no input, CustomStatus/Tags "null")."""
    return schema.instance_entity(
        instance_id,
        Name=SEED_ORCHESTRATOR,
        Version="",
        Output='["Hello Tokyo!","Hello Seattle!","Hello London!"]',
        CustomStatus="null",
        RuntimeStatus="Completed",
        CreatedTime=ms(100),
        LastUpdatedTime=ms(866),
        CompletedTime=ms(870),
        ExecutionId=execution_id,
        TaskHubName=hub,
        Generation=0,
        Tags="null",
    )


NET_EXCEPTION_DETAILS = json.dumps(
    {
        "ClassName": "System.InvalidOperationException",
        "Message": "boom",
        "Data": None,
        "InnerException": None,
        "StackTraceString": "   at Hello.Run(String city) in Hello.cs:line 12",
        "HResult": -2146233079,
    }
)


DF2_ORCHESTRATOR_FAILURE = (
    "Orchestrator function 'Failing' failed: Activity function 'Hello' failed: boom"
)


def df2_failed_rows(instance_id: str, execution_id: str) -> list[dict[str, Any]]:
    """A failed activity as DF 2.x / DTFx.AS 1.x writes it: raw dicts, nulls absent, legacy text."""
    pk = schema.escape_partition_key(instance_id)

    def row(seq: int, event_type: str, event_id: int, played: bool, at: float, **cols: Any):
        return {"PartitionKey": pk, "RowKey": f"{seq:016X}", "EventType": event_type,
                "EventId": event_id, "IsPlayed": played, "_Timestamp": ms(at),
                "ExecutionId": execution_id, **cols}  # fmt: skip

    return [
        row(0, "OrchestratorStarted", -1, False, 10),
        row(1, "ExecutionStarted", -1, True, 5, Name="Failing", Version="", Input='"Tokyo"',
            OrchestrationInstance=json.dumps({"InstanceId": instance_id,
                                              "ExecutionId": execution_id})),
        row(2, "TaskScheduled", 0, False, 11, Name="Hello", Version=""),
        row(3, "OrchestratorCompleted", -1, False, 12),
        row(4, "OrchestratorStarted", -1, False, 40),
        row(5, "TaskFailed", -1, True, 30, TaskScheduledId=0,
            Reason="Activity function 'Hello' failed: boom", Details=NET_EXCEPTION_DETAILS),
        row(6, "ExecutionCompleted", 1, False, 41, OrchestrationStatus="Failed",
            Result=DF2_ORCHESTRATOR_FAILURE),
        row(7, "OrchestratorCompleted", -1, False, 42),
        {"PartitionKey": pk, "RowKey": "sentinel", "ExecutionId": execution_id},  # 1.6-style
    ]  # fmt: skip


FAILURE_DETAILS = {
    "ErrorType": "System.InvalidOperationException",
    "ErrorMessage": "boom",
    "StackTrace": "   at Hello.Run(String city)",
    "InnerFailure": None,
    "IsNonRetriable": False,
    "Properties": None,
}


def df3_failed_rows(instance_id: str, execution_id: str) -> list[dict[str, Any]]:
    """The same failure as DF 3.x writes it: "null" complex members, FailureDetails JSON."""
    pk = schema.escape_partition_key(instance_id)
    fd = json.dumps(FAILURE_DETAILS)

    def row(seq: int, event_type: str, event_id: int, played: bool, at: float, **cols: Any):
        return {"PartitionKey": pk, "RowKey": f"{seq:016X}", "EventType": event_type,
                "EventId": event_id, "IsPlayed": played, "_Timestamp": ms(at),
                "ExecutionId": execution_id, **cols}  # fmt: skip

    return [
        row(0, "OrchestratorStarted", -1, False, 10),
        row(1, "ExecutionStarted", -1, True, 5, Name="Failing", Version="", Input='"Tokyo"',
            ParentInstance="null", Tags="null", ParentTraceContext="null", Generation=0,
            OrchestrationInstance=json.dumps({"InstanceId": instance_id,
                                              "ExecutionId": execution_id})),
        row(2, "TaskScheduled", 0, False, 11, Name="Hello", Version="", Tags="null",
            ParentTraceContext="null"),
        row(3, "OrchestratorCompleted", -1, False, 12),
        row(4, "OrchestratorStarted", -1, False, 40),
        row(5, "TaskFailed", -1, True, 30, TaskScheduledId=0, FailureDetails=fd,
            FutureColumn="from a newer provider"),
        row(6, "ExecutionCompleted", 1, False, 41, OrchestrationStatus="Failed",
            FailureDetails=json.dumps({**FAILURE_DETAILS, "ErrorType": "TaskFailedException",
                                       "ErrorMessage": "Task 'Hello' (#0) failed"})),
        row(7, "OrchestratorCompleted", -1, False, 42),
        {"PartitionKey": pk, "RowKey": "sentinel", "ExecutionId": execution_id,
         "IsCheckpointComplete": True, "CheckpointCompletedTimestamp": ms(43)},
    ]  # fmt: skip
