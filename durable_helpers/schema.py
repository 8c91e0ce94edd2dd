"""The task hub storage layout, in both directions: THE one module that knows it.

Everything about names, keys, columns, column types, nulls and large-payload blobs of the Durable
Task Framework's Azure Storage provider lives here (see
``/work/shared/reference/task-hub-storage-layout.md``). The reader (``taskhub``, ``frames``) uses
the decode half; the local task hub uses the encode half, so what it writes is exactly what the
reader (and real tooling) understands.

Encode example:
    >>> from datetime import datetime, timezone
    >>> t = datetime(2019, 12, 23, 14, 16, 27, tzinfo=timezone.utc)
    >>> e = history_entity("abc", "e1", 2, "TaskScheduled", event_id=0, is_played=False,
    ...                    timestamp=t, Name="Hello", Version="")
    >>> e["PartitionKey"], e["RowKey"], e["EventType"], e["EventId"]
    ('abc', '0000000000000002', 'TaskScheduled', 0)
"""

from __future__ import annotations

import gzip
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

#: UTC (``datetime.UTC`` needs Python 3.11; we support 3.10).
UTC = timezone.utc  # noqa: UP017

# --------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------

DEFAULT_HUB = "DurableFunctionsHub"
DEFAULT_PARTITION_COUNT = 4
MAX_PARTITION_COUNT = 16
_HUB_RE = re.compile(r"[A-Za-z][A-Za-z0-9]{2,44}")


def validate_hub_name(hub: str) -> str:
    """Return ``hub`` if it is a valid task hub name, else raise a ValueError saying why.

    The safe rule (docs + provider code): 3 to 45 letters and digits, starting with a letter.

    Example:
        >>> validate_hub_name("DurableFunctionsHub")
        'DurableFunctionsHub'
    """
    if not isinstance(hub, str) or not _HUB_RE.fullmatch(hub):
        raise ValueError(
            f"Invalid task hub name {hub!r}: a hub name must be 3 to 45 characters, only letters "
            "and digits (A-Z, a-z, 0-9), and start with a letter, e.g. 'DurableFunctionsHub'."
        )
    return hub


@dataclass(frozen=True)
class HubNames:
    """The storage resource names of one task hub (tables keep the case, queues are lower-cased).

    Example:
        >>> names = hub_names("MyHub")
        >>> names.history_table, names.workitems_queue, names.control_queue(2)
        ('MyHubHistory', 'myhub-workitems', 'myhub-control-02')
    """

    hub: str
    history_table: str
    instances_table: str
    partitions_table: str
    workitems_queue: str
    largemessages_container: str
    leases_container: str
    applease_container: str

    @property
    def lower(self) -> str:
        """The hub name lower-cased, as used for queues and containers."""
        return self.hub.lower()

    def control_queue(self, index: int) -> str:
        """Name of control queue ``index`` (0-based, 2-digit zero-padded).

        Example:
            >>> hub_names("MyHub").control_queue(0)
            'myhub-control-00'
        """
        if not 0 <= int(index) < MAX_PARTITION_COUNT:
            raise ValueError(
                f"control queue index must be 0..{MAX_PARTITION_COUNT - 1}, not {index}"
            )
        return f"{self.lower}-control-{int(index):02d}"

    def control_queues(self, partition_count: int = DEFAULT_PARTITION_COUNT) -> list[str]:
        """Names of all control queues for ``partition_count`` partitions (1..16, default 4).

        Example:
            >>> hub_names("MyHub").control_queues(2)
            ['myhub-control-00', 'myhub-control-01']
        """
        if not 1 <= int(partition_count) <= MAX_PARTITION_COUNT:
            raise ValueError(
                f"partition_count must be 1..{MAX_PARTITION_COUNT}, not {partition_count}"
            )
        return [self.control_queue(i) for i in range(int(partition_count))]


def hub_names(hub: str) -> HubNames:
    """Validate ``hub`` and return the names of its tables, queues and containers.

    Example:
        >>> hub_names("DurableFunctionsHub").largemessages_container
        'durablefunctionshub-largemessages'
    """
    validate_hub_name(hub)
    low = hub.lower()
    return HubNames(
        hub=hub,
        history_table=f"{hub}History",
        instances_table=f"{hub}Instances",
        partitions_table=f"{hub}Partitions",
        workitems_queue=f"{low}-workitems",
        largemessages_container=f"{low}-largemessages",
        leases_container=f"{low}-leases",
        applease_container=f"{low}-applease",
    )


def control_queue_index(instance_id: str, partition_count: int = DEFAULT_PARTITION_COUNT) -> int:
    """The control-queue partition of an instance: 32-bit FNV-1a of its UTF-8 bytes, modulo count.

    Example:
        >>> 0 <= control_queue_index("abc") < 4
        True
    """
    h = 2166136261
    for byte in instance_id.encode("utf-8"):
        h ^= byte
        h = (h * 16777619) & 0xFFFFFFFF
    return h % int(partition_count)


# --------------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------------

ESCAPE_CHAR = "^"
_ESCAPE_OFFSET = 0xC0  # 'À'
_ESCAPES = {"^": "^^", "/": "^0", "\\": "^1", "#": "^2", "?": "^3"}
_UNESCAPES = {"^": "^", "0": "/", "1": "\\", "2": "#", "3": "?"}
SENTINEL_ROW_KEY = "sentinel"
INSTANCE_ROW_KEY = ""


def _is_control(code: int) -> bool:
    return code <= 0x1F or 0x7F <= code <= 0x9F


def escape_partition_key(instance_id: str) -> str:
    """Escape an instance id into a PartitionKey the way the provider does (``^`` scheme).

    ``^`` -> ``^^``, ``/`` -> ``^0``, ``\\`` -> ``^1``, ``#`` -> ``^2``, ``?`` -> ``^3``, and a
    control character (U+0000-U+001F, U+007F-U+009F) -> ``^`` + chr(0xC0 + code).

    Example:
        >>> escape_partition_key("a/b#c^d")
        'a^0b^2c^^d'
    """
    out = []
    for ch in instance_id:
        esc = _ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif _is_control(ord(ch)):
            out.append(ESCAPE_CHAR + chr(_ESCAPE_OFFSET + ord(ch)))
        else:
            out.append(ch)
    return "".join(out)


def unescape_partition_key(key: str) -> str:
    """Reverse :func:`escape_partition_key` (a dangling trailing ``^`` is kept as it is).

    Example:
        >>> unescape_partition_key("a^0b^2c^^d")
        'a/b#c^d'
    """
    if ESCAPE_CHAR not in key:
        return key
    out = []
    i, n = 0, len(key)
    while i < n:
        ch = key[i]
        if ch != ESCAPE_CHAR or i + 1 == n:
            out.append(ch)
            i += 1
            continue
        nxt = key[i + 1]
        plain = _UNESCAPES.get(nxt)
        if plain is None:
            code = ord(nxt)
            plain = nxt if code < _ESCAPE_OFFSET else chr(code - _ESCAPE_OFFSET)
        out.append(plain)
        i += 2
    return "".join(out)


def row_key(sequence: int) -> str:
    """The History RowKey of event number ``sequence``: 16 upper-case hex digits.

    Example:
        >>> row_key(10)
        '000000000000000A'
    """
    sequence = int(sequence)
    if sequence < 0:
        raise ValueError(f"a history sequence number is >= 0, not {sequence}")
    return f"{sequence:016X}"


def parse_row_key(key: str) -> int:
    """The sequence number of a History RowKey (raises ValueError for ``sentinel`` and junk).

    Example:
        >>> parse_row_key("000000000000000F")
        15
    """
    if not isinstance(key, str) or len(key) != 16:
        raise ValueError(f"not a history RowKey (16 hex digits): {key!r}")
    try:
        return int(key, 16)
    except ValueError:
        raise ValueError(f"not a history RowKey (16 hex digits): {key!r}") from None


def odata_string(value: str) -> str:
    """An OData string literal: single-quoted, embedded quotes doubled (no injection possible).

    Example:
        >>> odata_string("it's")
        "'it''s'"
    """
    if not isinstance(value, str):
        raise TypeError(f"expected a str for an OData string literal, got {type(value).__name__}")
    return "'" + value.replace("'", "''") + "'"


def odata_datetime(value: datetime) -> str:
    """An OData datetime literal in UTC.

    Example:
        >>> odata_datetime(datetime(2026, 1, 2, tzinfo=timezone.utc))
        "datetime'2026-01-02T00:00:00.000000Z'"
    """
    return "datetime'" + to_utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ") + "'"


def prefix_range(prefix: str) -> tuple[str, str] | None:
    """PartitionKey range ``[low, high)`` holding every escaped key that starts with ``prefix``'s
    escaped form (as the provider's instance-id-prefix query does), or None for an empty prefix.

    Example:
        >>> prefix_range("ab")
        ('ab', 'ac')
    """
    low = escape_partition_key(prefix)
    if not low:
        return None
    last = ord(low[-1])
    if last >= 0x10FFFF:
        return None
    nxt = last + 1
    if 0xD800 <= nxt <= 0xDFFF:  # skip the surrogate block
        nxt = 0xE000
    return low, low[:-1] + chr(nxt)


# --------------------------------------------------------------------------------------------
# Enums and columns
# --------------------------------------------------------------------------------------------

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

#: String properties the provider moves to a blob when too large (UTF-16 byte count).
LARGE_PAYLOAD_PROPERTIES: tuple[str, ...] = (
    "Name",
    "Input",
    "Result",
    "Output",
    "Reason",
    "Details",
    "Correlation",
    "FailureDetails",
    "Tags",
)
#: A property is offloaded when its UTF-16 byte count is greater than this (60 KiB).
LARGE_PAYLOAD_THRESHOLD = 61440
BLOB_NAME_SUFFIX = "BlobName"


# --------------------------------------------------------------------------------------------
# Encode
# --------------------------------------------------------------------------------------------


def to_utc(value: datetime) -> datetime:
    """A timezone-aware UTC datetime (a naive one is taken as UTC already).

    Example:
        >>> to_utc(datetime(2026, 1, 1)).tzinfo
        datetime.timezone.utc
    """
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}: {value!r}")
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def to_json(value: Any) -> str:
    """Compact JSON text, as the SDKs write payloads (``["a","b"]``, non-ASCII kept).

    Example:
        >>> to_json({"InstanceId": "abc", "ExecutionId": "e1"})
        '{"InstanceId":"abc","ExecutionId":"e1"}'
    """
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _encode_column(name: str, value: Any) -> Any:
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
        target[name] = _encode_column(name, value)
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
        "EventId": _encode_column("EventId", event_id),
        "IsPlayed": _encode_column("IsPlayed", is_played),
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


# --------------------------------------------------------------------------------------------
# Large payloads
# --------------------------------------------------------------------------------------------


def utf16_size(text: str) -> int:
    """Bytes of ``text`` in UTF-16 (what the provider compares with the threshold).

    Example:
        >>> utf16_size("abc")
        6
    """
    return len(text.encode("utf-16-le", "surrogatepass"))


def is_large(text: Any) -> bool:
    """True if a string property is over :data:`LARGE_PAYLOAD_THRESHOLD` UTF-16 bytes.

    Example:
        >>> is_large("x" * 30720), is_large("x" * 30721)
        (False, True)
    """
    # 2 bytes per code unit: only strings longer than threshold/4 can possibly be large.
    return (
        isinstance(text, str)
        and len(text) * 2 > LARGE_PAYLOAD_THRESHOLD // 2
        and (utf16_size(text) > LARGE_PAYLOAD_THRESHOLD)
    )


def compress_payload(text: str) -> bytes:
    """gzip the UTF-8 bytes of ``text`` (blob content in ``{h}-largemessages``).

    Example:
        >>> decompress_payload(compress_payload("hi"))
        'hi'
    """
    return gzip.compress(text.encode("utf-8"))


def decompress_payload(data: bytes) -> str:
    """gunzip blob content back to text (plain content is accepted too).

    Example:
        >>> decompress_payload(b"plain")
        'plain'
    """
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return data.decode("utf-8-sig")


def history_blob_name(
    instance_id: str, row_key_: str, event_type: str, prop: str, random_hex: str | None = None
) -> str:
    """Blob name of an offloaded History property (the provider's naming since May 2023).

    Example:
        >>> history_blob_name("a/b", "000000000000000E", "ExecutionCompleted", "Result", "1A2B3C4D")
        'a^0b/history-000000000000000E-ExecutionCompleted-1A2B3C4D-Result.json.gz'
    """
    rand = random_hex if random_hex is not None else secrets.token_hex(4).upper()
    return (
        f"{escape_partition_key(instance_id)}/history-{row_key_}-{event_type}-{rand}-{prop}.json.gz"
    )


def offload_history_payloads(
    entity: Mapping[str, Any], *, random_hex: str | None = None
) -> tuple[dict[str, Any], list[tuple[str, bytes]]]:
    """Move oversized properties of a History entity to blobs, as the provider does.

    Returns ``(entity, blobs)``: the entity with each large property (of
    :data:`LARGE_PAYLOAD_PROPERTIES`) set to ``""`` plus ``<Prop>BlobName``, and the list of
    ``(blob_name, gzip_bytes)`` to upload into ``{h}-largemessages``. Small entities come back
    unchanged with an empty list.

    Example:
        >>> from datetime import datetime, timezone
        >>> e = history_entity("id", "ex", 1, "ExecutionStarted", event_id=-1, is_played=True,
        ...                    timestamp=datetime(2026, 1, 1, tzinfo=timezone.utc),
        ...                    Input='"' + "x" * 40000 + '"')
        >>> e2, blobs = offload_history_payloads(e, random_hex="00000000")
        >>> e2["Input"], e2["InputBlobName"], len(blobs)
        ('', 'id/history-0000000000000001-ExecutionStarted-00000000-Input.json.gz', 1)
    """
    out = dict(entity)
    blobs: list[tuple[str, bytes]] = []
    instance_id = unescape_partition_key(out["PartitionKey"])
    for prop in LARGE_PAYLOAD_PROPERTIES:
        value = out.get(prop)
        if not is_large(value):
            continue
        name = history_blob_name(
            instance_id, out["RowKey"], out.get("EventType", ""), prop, random_hex
        )
        blobs.append((name, compress_payload(value)))
        out[prop] = ""
        out[prop + BLOB_NAME_SUFFIX] = name
    return out, blobs


def blob_url(container_url: str, blob_name: str) -> str:
    """The URL of a blob in a container (``/`` kept, other special characters percent-encoded).

    Example:
        >>> blob_url("http://127.0.0.1:10000/devstoreaccount1/h-largemessages", "a/b.json.gz")
        'http://127.0.0.1:10000/devstoreaccount1/h-largemessages/a/b.json.gz'
    """
    from urllib.parse import quote

    return container_url.rstrip("/") + "/" + quote(blob_name, safe="/")


def offload_instance_payloads(
    entity: Mapping[str, Any],
    container_url: str,
    *,
    blob_names: Mapping[str, str] | None = None,
    random_hex: str | None = None,
) -> tuple[dict[str, Any], list[tuple[str, bytes]]]:
    """Move oversized properties of an Instances entity to blobs; the column gets the blob URL.

    The provider points the Instances row at the blob already written for the History row (e.g.
    ExecutionStarted's ``InputBlobName``): pass those in ``blob_names`` (property -> blob name) and
    nothing new is uploaded. Otherwise a blob ``{escapedId}/instance-{Prop}-{8 hex}.json.gz`` is
    returned for upload (our own name; readers only follow the URL).

    Example:
        >>> e = instance_entity("id", Output='"' + "y" * 40000 + '"')
        >>> e2, blobs = offload_instance_payloads(e, "http://h/c", random_hex="00000000")
        >>> e2["Output"], len(blobs)
        ('http://h/c/id/instance-Output-00000000.json.gz', 1)
    """
    out = dict(entity)
    blobs: list[tuple[str, bytes]] = []
    escaped = out["PartitionKey"]
    for prop in LARGE_PAYLOAD_PROPERTIES:
        value = out.get(prop)
        if not is_large(value):
            continue
        name = (blob_names or {}).get(prop)
        if name is None:
            rand = random_hex if random_hex is not None else secrets.token_hex(4).upper()
            name = f"{escaped}/instance-{prop}-{rand}.json.gz"
            blobs.append((name, compress_payload(value)))
        out[prop] = blob_url(container_url, name)
    return out, blobs
