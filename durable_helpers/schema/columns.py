"""Enums and columns: event types, runtime statuses, and the Edm type of every column.

Owns the EventType and OrchestrationStatus vocabularies, which columns are Int32 / Int64 /
DateTime / Boolean / JSON text, and ``encode_column`` / ``decode_column`` that type one column's
value by those rules. Calls ``values``; whole rows are built in ``encode`` and read in ``decode``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from durable_helpers.schema.values import (
    decode_payload,
    plain,
    to_bool,
    to_datetime,
    to_int,
    to_json,
    to_utc,
)

#: EventType names in enum order (index == numeric value).
EVENT_TYPES: tuple[str, ...] = (
    "ExecutionStarted",
    "ExecutionCompleted",
    "ExecutionFailed",
    "ExecutionTerminated",
    "TaskScheduled",
    "TaskCompleted",
    "TaskFailed",
    "SubOrchestrationInstanceCreated",
    "SubOrchestrationInstanceCompleted",
    "SubOrchestrationInstanceFailed",
    "TimerCreated",
    "TimerFired",
    "OrchestratorStarted",
    "OrchestratorCompleted",
    "EventSent",
    "EventRaised",
    "ContinueAsNew",
    "GenericEvent",
    "HistoryState",
    "ExecutionSuspended",
    "ExecutionResumed",
    "ExecutionRewound",
)

#: Runtime statuses in lifecycle order (the category order of the frames); ``Unknown`` is DF's -1.
RUNTIME_STATUSES: tuple[str, ...] = (
    "Pending",
    "Running",
    "Suspended",
    "Completed",
    "Failed",
    "Terminated",
    "ContinuedAsNew",
    "Canceled",
    "Unknown",
)

#: DurableTask.Core OrchestrationStatus numeric values (DF adds Unknown = -1).
ORCHESTRATION_STATUS_CODES: dict[str, int] = {
    "Running": 0,
    "Completed": 1,
    "ContinuedAsNew": 2,
    "Failed": 3,
    "Canceled": 4,
    "Terminated": 5,
    "Pending": 6,
    "Suspended": 7,
    "Unknown": -1,
}

#: Scheduled-action and completion event types used to pair events.
SCHEDULE_EVENT_TYPES = frozenset({"TaskScheduled", "SubOrchestrationInstanceCreated"})
COMPLETION_EVENT_TYPES = frozenset(
    {
        "TaskCompleted",
        "TaskFailed",
        "SubOrchestrationInstanceCompleted",
        "SubOrchestrationInstanceFailed",
    }
)
FAILURE_EVENT_TYPES = frozenset({"TaskFailed", "SubOrchestrationInstanceFailed"})

#: Columns the table service / the SDK own; never written as ordinary properties.
SYSTEM_COLUMNS = frozenset({"PartitionKey", "RowKey", "Timestamp", "odata.etag"})

#: Int32 columns (DTFx reads them with GetInt32).
INT32_COLUMNS = frozenset({"EventId", "TaskScheduledId", "TimerId", "Generation"})
#: Int64 columns (Instances table, newer providers).
INT64_COLUMNS = frozenset({"SequenceNumber"})
#: Edm.DateTime columns (UTC).
DATETIME_COLUMNS = frozenset(
    {
        "_Timestamp",
        "FireAt",
        "ScheduledStartTime",
        "CreatedTime",
        "LastUpdatedTime",
        "CompletedTime",
        "CheckpointCompletedTimestamp",
    }
)
#: Edm.Boolean columns.
BOOL_COLUMNS = frozenset({"IsPlayed", "IsCheckpointComplete", "GenerateNewTrace"})
#: Complex members the provider serializes as JSON strings (``"null"`` in DTFx.AS 2.x when unset).
JSON_OBJECT_COLUMNS = frozenset(
    {
        "OrchestrationInstance",
        "ParentInstance",
        "FailureDetails",
        "Tags",
        "ParentTraceContext",
        "State",
    }
)
#: Payload columns holding JSON text produced by the SDK's serializer.
PAYLOAD_COLUMNS = frozenset({"Input", "Result", "Output", "CustomStatus"})


def encode_column(name: str, value: Any) -> Any:
    """One column's value typed for azure-data-tables by the column's Edm type (checked).

    Example:
        >>> encode_column("EventId", 3), encode_column("Tags", {"a": "b"})
        (3, '{"a":"b"}')
    """
    if name in INT32_COLUMNS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"column {name} is Edm.Int32: pass an int, not {value!r}")
        if not -(2**31) <= value < 2**31:
            raise ValueError(f"column {name} is Edm.Int32; {value} is out of range")
        return int(value)
    if name in INT64_COLUMNS:
        from azure.data.tables import EdmType, EntityProperty

        return EntityProperty(int(value), EdmType.INT64)
    if name in DATETIME_COLUMNS:
        return to_utc(value)
    if name in BOOL_COLUMNS:
        if not isinstance(value, bool):
            raise TypeError(f"column {name} is Edm.Boolean: pass True/False, not {value!r}")
        return value
    if isinstance(value, (dict, list, tuple)):
        return to_json(value)  # complex members and payloads are JSON text
    if isinstance(value, datetime):
        return to_utc(value)
    return value


def decode_column(name: str, value: Any) -> Any:
    """One stored column's value read back by the column's Edm type (lenient: junk -> None).

    Example:
        >>> decode_column("Generation", "2"), decode_column("IsPlayed", "true")
        (2, True)
    """
    if name in DATETIME_COLUMNS:
        return to_datetime(value)
    if name in INT32_COLUMNS or name in INT64_COLUMNS:
        return to_int(value)
    if name in BOOL_COLUMNS:
        return to_bool(value)
    if name in JSON_OBJECT_COLUMNS:
        return decode_payload(value)
    return plain(value)
