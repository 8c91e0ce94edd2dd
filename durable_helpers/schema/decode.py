"""Rows as read: History and Instances rows of either provider generation -> frame-ready dicts.

Owns ``decode_history_row`` and ``decode_instance_row``: tolerant of both provider generations
(nulls absent, ``"null"`` or ``""``; unknown columns kept as extras), payloads decoded with their
stored text kept, failures split. Calls ``keys``, ``columns``, ``values`` and ``failures``; large
payloads are inlined beforehand by ``payloads``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from durable_helpers.schema.columns import decode_column
from durable_helpers.schema.failures import split_failure
from durable_helpers.schema.keys import SENTINEL_ROW_KEY, parse_row_key, unescape_partition_key
from durable_helpers.schema.values import (
    decode_payload,
    is_null,
    raw_payload,
    to_bool,
    to_datetime,
    to_int,
    to_text,
)

#: History columns the decoder turns into frame columns (everything else is kept as extra).
HISTORY_CONSUMED = frozenset(
    {
        "PartitionKey",
        "RowKey",
        "Timestamp",
        "_Timestamp",
        "EventType",
        "EventId",
        "IsPlayed",
        "ExecutionId",
        "Name",
        "TaskScheduledId",
        "TimerId",
        "FireAt",
        "InstanceId",
        "OrchestrationStatus",
        "Input",
        "Result",
        "Reason",
        "Details",
        "FailureDetails",
        "ParentInstance",
        "OrchestrationInstance",
        "Tags",
    }
)
#: Instances columns the decoder turns into frame columns.
INSTANCE_CONSUMED = frozenset(
    {
        "PartitionKey",
        "RowKey",
        "Timestamp",
        "Name",
        "Version",
        "RuntimeStatus",
        "CreatedTime",
        "LastUpdatedTime",
        "CompletedTime",
        "ExecutionId",
        "Input",
        "Output",
        "CustomStatus",
        "Generation",
        "ScheduledStartTime",
        "Tags",
        "TaskHubName",
    }
)


def table_timestamp(entity: Mapping[str, Any]) -> datetime | None:
    """The table service's write time: the ``Timestamp`` key, or azure-data-tables' metadata.

    Example:
        >>> table_timestamp({"Timestamp": "2019-12-23T14:16:27.28Z"}).second
        27
    """
    value = entity.get("Timestamp")
    if value is None:
        metadata = getattr(entity, "metadata", None)
        if isinstance(metadata, Mapping):
            value = metadata.get("timestamp")
    return to_datetime(value)


def is_sentinel(entity: Mapping[str, Any]) -> bool:
    """True for the History ``sentinel`` row.

    Example:
        >>> is_sentinel({"RowKey": "sentinel"})
        True
    """
    return entity.get("RowKey") == SENTINEL_ROW_KEY


def instance_id_of(entity: Mapping[str, Any]) -> str | None:
    """The unescaped instance id of a History or Instances row.

    Example:
        >>> instance_id_of({"PartitionKey": "a^0b"})
        'a/b'
    """
    key = entity.get("PartitionKey")
    return None if key is None else unescape_partition_key(key)


def decode_history_row(entity: Mapping[str, Any]) -> dict[str, Any]:
    """One History entity -> a dict keyed by the history frame's columns (+ extras).

    Tolerates both provider generations (absent nulls, ``"null"``, ``""``), keeps unknown columns,
    decodes JSON payloads (keeping the stored text as ``InputRaw``/``ResultRaw``) and splits
    failures. Large payloads must have been inlined first (:func:`inline_large_payloads`).

    Example:
        >>> row = decode_history_row({"PartitionKey": "p", "RowKey": "0000000000000005",
        ...     "EventType": "TaskCompleted", "EventId": -1, "IsPlayed": True,
        ...     "ExecutionId": "e", "TaskScheduledId": 0, "Result": '"Hello Tokyo!"'})
        >>> row["Sequence"], row["Result"], row["ResultRaw"], row["TaskScheduledId"]
        (5, 'Hello Tokyo!', '"Hello Tokyo!"', 0)
    """
    get = entity.get
    key = get("RowKey")
    try:
        sequence = parse_row_key(key) if key is not None else None
    except ValueError:
        sequence = None
    event_type = to_text(get("EventType"))
    failure_details = decode_payload(get("FailureDetails"))
    if not isinstance(failure_details, Mapping):
        failure_details = None if is_null(get("FailureDetails")) else failure_details
    input_raw = raw_payload(get("Input"))
    result_raw = raw_payload(get("Result"))
    result = decode_payload(result_raw)
    reason = to_text(get("Reason")) or None
    details = to_text(get("Details")) or None
    status = to_text(get("OrchestrationStatus")) or None
    ftype, fmessage, fstack = split_failure(
        event_type,
        failure_details=failure_details,
        reason=reason,
        details=details,
        result=result if result is not None else result_raw,
        orchestration_status=status,
    )
    row: dict[str, Any] = {
        "InstanceId": instance_id_of(entity),
        "ExecutionId": to_text(get("ExecutionId")),
        "Sequence": sequence,
        "RowKey": key,
        "EventType": event_type,
        "EventId": to_int(get("EventId")),
        "IsPlayed": to_bool(get("IsPlayed")),
        "Timestamp": to_datetime(get("_Timestamp")),
        "TableTimestamp": table_timestamp(entity),
        "Name": to_text(get("Name")),
        "TaskScheduledId": to_int(get("TaskScheduledId")),
        "TimerId": to_int(get("TimerId")),
        "FireAt": to_datetime(get("FireAt")),
        "TargetInstanceId": to_text(get("InstanceId")) or None,
        "OrchestrationStatus": status,
        "Input": decode_payload(input_raw),
        "Result": result,
        "InputRaw": input_raw,
        "ResultRaw": result_raw,
        "Reason": reason,
        "Details": details,
        "FailureType": ftype,
        "FailureMessage": fmessage,
        "FailureStackTrace": fstack,
        "FailureDetails": failure_details,
        "ParentInstance": decode_payload(get("ParentInstance")),
        "OrchestrationInstance": decode_payload(get("OrchestrationInstance")),
        "Tags": decode_payload(get("Tags")),
    }
    for name, value in entity.items():
        if name not in HISTORY_CONSUMED and not name.startswith("odata."):
            row[name] = decode_column(name, value)
    return row


def decode_instance_row(entity: Mapping[str, Any]) -> dict[str, Any]:
    """One Instances entity -> a dict keyed by the instances frame's columns (+ extras).

    Example:
        >>> row = decode_instance_row({"PartitionKey": "a^2b", "RowKey": "", "Name": "Hello",
        ...     "RuntimeStatus": "Completed", "CustomStatus": "null", "Output": '["x"]'})
        >>> row["InstanceId"], row["Output"], row["CustomStatus"], row["CustomStatusRaw"]
        ('a#b', ['x'], None, 'null')
    """
    get = entity.get
    input_raw = raw_payload(get("Input"))
    output_raw = raw_payload(get("Output"))
    custom_raw = raw_payload(get("CustomStatus"))
    tags = decode_payload(get("Tags"))
    row: dict[str, Any] = {
        "InstanceId": instance_id_of(entity),
        "Name": to_text(get("Name")),
        "Version": to_text(get("Version")),
        "RuntimeStatus": to_text(get("RuntimeStatus")) or None,
        "CreatedTime": to_datetime(get("CreatedTime")),
        "LastUpdatedTime": to_datetime(get("LastUpdatedTime")),
        "CompletedTime": to_datetime(get("CompletedTime")),
        "ExecutionId": to_text(get("ExecutionId")) or None,
        "Input": decode_payload(input_raw),
        "Output": decode_payload(output_raw),
        "CustomStatus": decode_payload(custom_raw),
        "InputRaw": input_raw,
        "OutputRaw": output_raw,
        "CustomStatusRaw": custom_raw,
        "Generation": to_int(get("Generation")),
        "ScheduledStartTime": to_datetime(get("ScheduledStartTime")),
        "Tags": tags if isinstance(tags, Mapping) else None,
        "TaskHubName": to_text(get("TaskHubName")),
        "TableTimestamp": table_timestamp(entity),
    }
    for name, value in entity.items():
        if name not in INSTANCE_CONSUMED and not name.startswith("odata."):
            row[name] = decode_column(name, value)
    return row
