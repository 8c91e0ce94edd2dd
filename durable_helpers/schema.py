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

Decode example:
    >>> decode_payload('"Hello Tokyo!"'), decode_payload("null"), decode_payload("not json")
    ('Hello Tokyo!', None, 'not json')
"""

from __future__ import annotations

import copy
import gzip
import json
import re
import secrets
from collections.abc import Callable, Mapping
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
    utc = to_utc(value)  # the year is zero-padded by hand: strftime's %Y gives "1" for year 1
    return f"datetime'{utc.year:04d}-" + utc.strftime("%m-%dT%H:%M:%S.%fZ") + "'"


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


def failed_output(error_type: str, error_message: str) -> str:
    """The Output text of a Failed instance row: DTFx writes ``FailureDetails.ToString()``.

    Example:
        >>> failed_output("builtins.ValueError", "kaputt")
        'builtins.ValueError: kaputt'
    """
    return f"{error_type}: {error_message}"


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


# --------------------------------------------------------------------------------------------
# Decode
# --------------------------------------------------------------------------------------------

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


def plain(value: Any) -> Any:
    """The Python value of a table property (unwraps azure-data-tables ``EntityProperty``).

    Example:
        >>> plain(5), plain(None)
        (5, None)
    """
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    inner = getattr(value, "value", None)
    if inner is not None and hasattr(value, "edm_type"):
        return inner
    return value


def is_null(value: Any) -> bool:
    """True for the provider's three spellings of null: absent/None, ``""`` and ``"null"``.

    Example:
        >>> is_null(None), is_null(""), is_null("null"), is_null("0")
        (True, True, True, False)
    """
    return value is None or (isinstance(value, str) and (value == "" or value == "null"))


def decode_payload(text: Any) -> Any:
    """Decode a payload column: JSON text -> Python object; non-JSON text stays a string.

    Absent, ``""`` and ``"null"`` all decode to None.

    Example:
        >>> decode_payload('"Hello Tokyo!"'), decode_payload("null"), decode_payload("not json")
        ('Hello Tokyo!', None, 'not json')
    """
    text = plain(text)
    if text is None or text == "":
        return None
    if not isinstance(text, str):
        return text
    first = text.lstrip()[:1]
    if not first or first not in '{["-0123456789tfn':
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


_ISO_FRACTION = re.compile(r"^(.*T\d\d:\d\d:\d\d)\.(\d+)(.*)$")


def to_datetime(value: Any) -> datetime | None:
    """A UTC datetime from a table value (datetime, ISO-8601 text with up to 7 digits) or None.

    Example:
        >>> to_datetime("2018-02-28T05:18:49.3452372Z")
        datetime.datetime(2018, 2, 28, 5, 18, 49, 345237, tzinfo=datetime.timezone.utc)
    """
    value = plain(value)
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return to_utc(value)
    if isinstance(value, str):
        text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
        match = _ISO_FRACTION.match(text)
        if match:  # fromisoformat on 3.10 wants 3 or 6 digits: use exactly 6
            text = match.group(1) + "." + (match.group(2) + "000000")[:6] + match.group(3)
        try:
            return to_utc(datetime.fromisoformat(text))
        except ValueError:
            return None
    return None


def to_int(value: Any) -> int | None:
    """An int from a table value (Int32, Int64 ``EntityProperty``, numeric text) or None.

    Example:
        >>> to_int("3"), to_int(None), to_int("null")
        (3, None, None)
    """
    value = plain(value)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def to_bool(value: Any) -> bool | None:
    """A bool from a table value (bool or ``"true"``/``"false"`` text) or None.

    Example:
        >>> to_bool(True), to_bool("false"), to_bool(None)
        (True, False, None)
    """
    value = plain(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def to_text(value: Any) -> str | None:
    """A string column's value: text as stored (``""`` kept), None when absent.

    Example:
        >>> to_text(""), to_text(None), to_text(5)
        ('', None, '5')
    """
    value = plain(value)
    if value is None or isinstance(value, str):
        return value
    return str(value)


def raw_payload(value: Any) -> str | None:
    """A payload column as stored text; None when absent or ``""`` (``"null"`` is kept).

    Example:
        >>> raw_payload('"x"'), raw_payload(""), raw_payload("null")
        ('"x"', None, 'null')
    """
    value = to_text(value)
    return value if value else None


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


def _exception_class(details: Mapping[str, Any]) -> str | None:
    for key in ("ClassName", "ErrorType", "errorType", "$type", "type"):
        value = details.get(key)
        if isinstance(value, str) and value:
            return value.split(",")[0].strip() if key == "$type" else value
    return None


def split_failure(
    event_type: str | None,
    *,
    failure_details: Any = None,
    reason: str | None = None,
    details: str | None = None,
    result: Any = None,
    orchestration_status: str | None = None,
) -> tuple[str | None, str | None, str | None]:
    """``(FailureType, FailureMessage, FailureStackTrace)`` of a history event, or three Nones.

    From the FailureDetails JSON (DTFx 2.x / isolated: ErrorType, ErrorMessage, StackTrace), else
    from the legacy columns (DF 2.x: Reason = message, Details = serialized .NET exception with
    ClassName/Message/StackTraceString, or plain text), else, for a failed ExecutionCompleted, from
    its Result text. Only failure events get parts (a suspend Reason is not a failure).

    Example:
        >>> split_failure("TaskFailed", failure_details={"ErrorType": "System.Exception",
        ...               "ErrorMessage": "boom", "StackTrace": "at X"})
        ('System.Exception', 'boom', 'at X')
        >>> split_failure("TaskFailed", reason="Activity function 'Hello' failed: boom",
        ...               details="at Hello()")
        (None, "Activity function 'Hello' failed: boom", 'at Hello()')
    """
    if isinstance(failure_details, Mapping) and failure_details:
        fd = failure_details
        return (
            _exception_class(fd),
            to_text(fd.get("ErrorMessage", fd.get("errorMessage", fd.get("Message")))),
            to_text(fd.get("StackTrace", fd.get("stackTrace", fd.get("StackTraceString")))),
        )
    failed_execution = event_type in ("ExecutionCompleted", "ExecutionFailed") and (
        orchestration_status == "Failed"
    )
    if event_type not in FAILURE_EVENT_TYPES and not failed_execution:
        return None, None, None
    ftype = message = stack = None
    decoded = decode_payload(details) if details else None
    if isinstance(decoded, Mapping):
        ftype = _exception_class(decoded)
        message = to_text(decoded.get("Message", decoded.get("message")))
        stack = to_text(decoded.get("StackTraceString", decoded.get("stack")))
    elif details:
        stack = details
    if reason:
        message = reason if message is None else message
    if message is None and failed_execution and result is not None:
        message = result if isinstance(result, str) else to_json(result)
    return ftype, message, stack


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
            row[name] = _decode_extra(name, value)
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
            row[name] = _decode_extra(name, value)
    return row


def _decode_extra(name: str, value: Any) -> Any:
    if name in DATETIME_COLUMNS:
        return to_datetime(value)
    if name in INT32_COLUMNS or name in INT64_COLUMNS:
        return to_int(value)
    if name in BOOL_COLUMNS:
        return to_bool(value)
    if name in JSON_OBJECT_COLUMNS:
        return decode_payload(value)
    return plain(value)


def blob_name_from_url(url: str, container: str) -> str | None:
    """The blob name inside ``container`` that a blob URL points at, or None if it does not.

    Only blobs of the given container are followed (a stored URL never sends us elsewhere).

    Example:
        >>> blob_name_from_url("https://a.blob.core.windows.net/h-largemessages/x%5E0/b.json.gz",
        ...                    "h-largemessages")
        'x^0/b.json.gz'
    """
    from urllib.parse import unquote, urlparse

    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return None
    path = urlparse(url).path
    marker = f"/{container}/"
    at = path.find(marker)
    if at < 0:
        return None
    name = unquote(path[at + len(marker) :])
    return name or None


def _message_blob_input(text: str) -> str | None:
    """The orchestration input inside a queue-message blob (``...-ExecutionStarted.json.gz``)."""
    try:
        message = json.loads(text)
    except ValueError:
        return None
    event = (message.get("TaskMessage") or {}).get("Event") if isinstance(message, dict) else None
    return event.get("Input") if isinstance(event, dict) else None


def inline_large_payloads(
    entity: Mapping[str, Any],
    fetch: Callable[[str], bytes | None],
    *,
    container: str | None = None,
) -> dict[str, Any]:
    """Replace offloaded properties with their (gunzipped) blob content.

    History rows: each ``<Prop>BlobName`` column is fetched into ``<Prop>`` (the BlobName column
    is kept). Instances rows: a payload column holding a blob URL of ``container`` is fetched (the
    input of a queue-message blob ``...-ExecutionStarted.json.gz`` is taken from the message).
    ``fetch(blob_name)`` returns the blob bytes, or None when the blob is gone (value left as is).

    Example:
        >>> blobs = {"id/history-x-Input.json.gz": compress_payload('"big"')}
        >>> inline_large_payloads({"Input": "", "InputBlobName": "id/history-x-Input.json.gz"},
        ...                       blobs.get)["Input"]
        '"big"'
    """
    out: dict[str, Any] | None = None
    for name, value in entity.items():
        if name.endswith(BLOB_NAME_SUFFIX) and isinstance(value, str) and value:
            prop = name[: -len(BLOB_NAME_SUFFIX)]
            if prop not in LARGE_PAYLOAD_PROPERTIES or not is_null(entity.get(prop)):
                continue
            data = fetch(value)
            if data is not None:
                out = out if out is not None else _writable_copy(entity)
                out[prop] = decompress_payload(data)
    if container:
        for prop in LARGE_PAYLOAD_PROPERTIES:
            value = entity.get(prop)
            if not (isinstance(value, str) and value.startswith("http") and ".json" in value):
                continue
            blob = blob_name_from_url(value, container)
            if blob is None:
                continue
            data = fetch(blob)
            if data is None:
                continue
            text = decompress_payload(data)
            if "/message-" in blob and blob.endswith("ExecutionStarted.json.gz"):
                text = _message_blob_input(text) or text
            out = out if out is not None else _writable_copy(entity)
            out[prop] = text
    if out is None:
        return entity if isinstance(entity, dict) else dict(entity)
    return out


def _writable_copy(entity: Mapping[str, Any]) -> dict[str, Any]:
    """A shallow copy that keeps a TableEntity's metadata (its table Timestamp lives there)."""
    return copy.copy(entity) if isinstance(entity, dict) else dict(entity)


def has_large_payloads(entity: Mapping[str, Any], container: str | None = None) -> bool:
    """True if the entity refers to blobs (``*BlobName`` columns, or blob URLs in ``container``).

    Example:
        >>> has_large_payloads({"Input": "", "InputBlobName": "x"})
        True
    """
    for name, value in entity.items():
        if name.endswith(BLOB_NAME_SUFFIX) and value:
            return True
        if (
            container
            and isinstance(value, str)
            and value.startswith("http")
            and f"/{container}/" in value
        ):
            return True
    return False
