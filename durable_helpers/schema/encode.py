"""Rows as the provider writes them: History events, the sentinel, Instances rows.

Owns ``history_entity``, ``sentinel_entity`` and ``instance_entity``: whole rows typed for
azure-data-tables, with nulls left out as DF 2.x stores them and statuses checked. The local
task hub writes through these. Calls ``keys`` (PartitionKey, RowKey), ``columns`` (typing) and
``values``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from durable_helpers.schema.columns import (
    EVENT_TYPES,
    ORCHESTRATION_STATUS_CODES,
    RUNTIME_STATUSES,
    SYSTEM_COLUMNS,
    encode_column,
)
from durable_helpers.schema.keys import (
    INSTANCE_ROW_KEY,
    SENTINEL_ROW_KEY,
    escape_partition_key,
    row_key,
)
from durable_helpers.schema.values import to_utc


def _encode_columns(target: dict[str, Any], columns: Mapping[str, Any]) -> dict[str, Any]:
    for name, value in columns.items():
        if name in SYSTEM_COLUMNS:
            raise ValueError(
                f"{name!r} is a table-service column and cannot be set here"
                + (
                    " (the event time goes to timestamp=..., stored as _Timestamp)"
                    if name == "Timestamp"
                    else ""
                )
            )
        if value is None:
            continue  # DF 2.x style: a null property is simply not stored
        target[name] = encode_column(name, value)
    return target


def history_entity(
    instance_id: str,
    execution_id: str,
    sequence: int,
    event_type: str,
    *,
    event_id: int,
    is_played: bool,
    timestamp: datetime,
    **columns: Any,
) -> dict[str, Any]:
    """One History row, typed for azure-data-tables (``upsert_entity`` / ``submit_transaction``).

    PartitionKey is the escaped instance id, RowKey the 16-hex ``sequence``, ``EventType`` the name,
    ``EventId`` Int32, ``IsPlayed`` bool, ``_Timestamp`` the event's own UTC time, ``ExecutionId``
    on every row. Extra ``columns`` use the provider's names and types (Int32 for
    TaskScheduledId/TimerId/Generation, UTC datetimes for FireAt/ScheduledStartTime, JSON text for
    payloads and complex members: pass JSON text as a str, or a dict/list to have it serialized
    compactly). Columns whose value is None are left out (how DF 2.x stores nulls).

    Example:
        >>> from datetime import datetime, timezone
        >>> e = history_entity("id", "ex", 5, "TaskCompleted", event_id=-1, is_played=True,
        ...                    timestamp=datetime(2026, 1, 1, tzinfo=timezone.utc),
        ...                    TaskScheduledId=0, Result='"Hello Tokyo!"', Details=None)
        >>> e["RowKey"], e["TaskScheduledId"], "Details" in e
        ('0000000000000005', 0, False)
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(
            f"unknown EventType {event_type!r}; expected one of {', '.join(EVENT_TYPES)}"
        )
    entity: dict[str, Any] = {
        "PartitionKey": escape_partition_key(instance_id),
        "RowKey": row_key(sequence),
        "EventType": event_type,
        "EventId": encode_column("EventId", event_id),
        "IsPlayed": encode_column("IsPlayed", is_played),
        "_Timestamp": to_utc(timestamp),
        "ExecutionId": str(execution_id),
    }
    if "OrchestrationStatus" in columns and columns["OrchestrationStatus"] is not None:
        _check_status(columns["OrchestrationStatus"])
    return _encode_columns(entity, columns)


def sentinel_entity(
    instance_id: str, execution_id: str, *, checkpoint_completed: datetime | None
) -> dict[str, Any]:
    """The History ``sentinel`` row that closes an instance partition (written in every batch).

    ``checkpoint_completed`` is set on the final batch of a checkpoint (then IsCheckpointComplete
    is True and CheckpointCompletedTimestamp is written); None for an intermediate batch.

    Example:
        >>> sentinel_entity("id", "ex", checkpoint_completed=None)["IsCheckpointComplete"]
        False
    """
    entity: dict[str, Any] = {
        "PartitionKey": escape_partition_key(instance_id),
        "RowKey": SENTINEL_ROW_KEY,
        "ExecutionId": str(execution_id),
        "IsCheckpointComplete": checkpoint_completed is not None,
    }
    if checkpoint_completed is not None:
        entity["CheckpointCompletedTimestamp"] = to_utc(checkpoint_completed)
    return entity


def _check_status(status: str) -> str:
    if status not in ORCHESTRATION_STATUS_CODES:
        raise ValueError(
            f"unknown runtime status {status!r}; expected one of {', '.join(RUNTIME_STATUSES)}"
        )
    return status


def instance_entity(instance_id: str, **columns: Any) -> dict[str, Any]:
    """One Instances row (RowKey ``""``), typed like the provider writes it.

    Columns use the provider's names (Name, Version, Input, Output, CustomStatus, RuntimeStatus,
    CreatedTime, LastUpdatedTime, CompletedTime, ExecutionId, TaskHubName, ScheduledStartTime,
    Generation, Tags). None values are left out. The provider writes ``CustomStatus="null"`` and
    ``Tags="null"`` when unset: doing the same is the caller's choice (pass ``"null"``).

    Example:
        >>> e = instance_entity("id", Name="Hello", RuntimeStatus="Pending", CustomStatus="null")
        >>> e["RowKey"], e["RuntimeStatus"]
        ('', 'Pending')
    """
    if columns.get("RuntimeStatus") is not None:
        _check_status(columns["RuntimeStatus"])
    entity: dict[str, Any] = {
        "PartitionKey": escape_partition_key(instance_id),
        "RowKey": INSTANCE_ROW_KEY,
    }
    return _encode_columns(entity, columns)
