"""Table entities -> typed DataFrames (the contract in docs/frames.md). No I/O here.

Every reader builds its frames with these two functions: ``TaskHub`` from Azure Table entities,
``GrpcTaskHub`` from table-shaped dicts it makes out of gRPC messages, so every analysis works on
either. Input rows are raw entities as azure-data-tables returns them, or plain dicts with the
same keys (PartitionKey, RowKey, EventType, ``_Timestamp``, Timestamp, ...). Large payloads are
fetched before (``schema.inline_large_payloads``), or here through ``fetch_blob``.

Example:
    >>> from durable_helpers.frames import history_frame
    >>> df = history_frame([{"PartitionKey": "i", "RowKey": "0000000000000000",
    ...     "EventType": "OrchestratorStarted", "EventId": -1, "IsPlayed": False,
    ...     "ExecutionId": "e", "_Timestamp": "2026-01-01T00:00:00Z"},
    ...     {"PartitionKey": "i", "RowKey": "sentinel", "ExecutionId": "e"}])
    >>> len(df), str(df["Timestamp"].dtype)
    (1, 'datetime64[ns, UTC]')
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from durable_helpers import schema

STRING = "string"
OBJECT = "object"
DATETIME = "datetime"
TIMEDELTA = "timedelta"
CATEGORY = "category"

#: History frame columns and their kinds, in contract order.
HISTORY_COLUMNS: dict[str, str] = {
    "InstanceId": STRING,
    "ExecutionId": STRING,
    "Sequence": "Int64",
    "RowKey": STRING,
    "EventType": STRING,
    "EventId": "Int32",
    "IsPlayed": "boolean",
    "Timestamp": DATETIME,
    "TableTimestamp": DATETIME,
    "Name": STRING,
    "TaskScheduledId": "Int32",
    "TimerId": "Int32",
    "FireAt": DATETIME,
    "TargetInstanceId": STRING,
    "OrchestrationStatus": STRING,
    "Input": OBJECT,
    "Result": OBJECT,
    "InputRaw": STRING,
    "ResultRaw": STRING,
    "Reason": STRING,
    "Details": STRING,
    "FailureType": STRING,
    "FailureMessage": STRING,
    "FailureStackTrace": STRING,
    "FailureDetails": OBJECT,
    "ScheduledTime": DATETIME,
    "Duration": TIMEDELTA,
    "ParentInstance": OBJECT,
    "OrchestrationInstance": OBJECT,
    "Tags": OBJECT,
}

#: Instances frame columns and their kinds, in contract order.
INSTANCE_COLUMNS: dict[str, str] = {
    "InstanceId": STRING,
    "Name": STRING,
    "Version": STRING,
    "RuntimeStatus": CATEGORY,
    "CreatedTime": DATETIME,
    "LastUpdatedTime": DATETIME,
    "CompletedTime": DATETIME,
    "Duration": TIMEDELTA,
    "ExecutionId": STRING,
    "Input": OBJECT,
    "Output": OBJECT,
    "CustomStatus": OBJECT,
    "InputRaw": STRING,
    "OutputRaw": STRING,
    "CustomStatusRaw": STRING,
    "Generation": "Int32",
    "ScheduledStartTime": DATETIME,
    "Tags": OBJECT,
    "TaskHubName": STRING,
    "TableTimestamp": DATETIME,
}

#: Kinds of columns we know from the layout but that are not part of the contract (kept after it).
KNOWN_EXTRAS: dict[str, str] = {
    "Version": STRING,
    "Generation": "Int32",
    "ScheduledStartTime": DATETIME,
    "Correlation": STRING,
    "ParentTraceContext": OBJECT,
    "State": OBJECT,
    "Data": STRING,
    "ParentExecutionId": STRING,
    "ClientSpanId": STRING,
    "GenerateNewTrace": "boolean",
    "SequenceNumber": "Int64",
}

TERMINAL_STATUSES = frozenset({"Completed", "Failed", "Terminated", "Canceled"})
_TIMER_FIRED = "TimerFired"
_TIMER_CREATED = "TimerCreated"


_STRING_DTYPE = pd.StringDtype("python")  # "string"; python storage builds small frames fast
_EPOCH = datetime(1970, 1, 1, tzinfo=schema.UTC)
_MICROSECOND = timedelta(microseconds=1)
_NAT = np.iinfo(np.int64).min
_ZERO = timedelta(0)
_NS_LIMIT_US = 2**63 // 1000 - 1
_IN_NS_RANGE = (
    datetime(1678, 1, 1, tzinfo=schema.UTC),
    datetime(2262, 1, 1, tzinfo=schema.UTC),
)


def _nanoseconds(values: list[Any], origin: Any) -> np.ndarray:
    """int64 nanoseconds since ``origin``; NaT for None and for values datetime64[ns] cannot hold
    (before 1677 or after 2262, e.g. .NET's DateTime.MaxValue)."""
    out = []
    for value in values:
        if value is None:
            out.append(_NAT)
            continue
        micros = (value - origin) // _MICROSECOND
        out.append(micros * 1000 if -_NS_LIMIT_US < micros < _NS_LIMIT_US else _NAT)
    return np.array(out, dtype=np.int64)


def _string_array(values: np.ndarray) -> Any:
    try:  # pandas >= 3: say the storage, or the array claims the default (pyarrow) storage
        return pd.arrays.StringArray(values, dtype=_STRING_DTYPE)
    except TypeError:  # pandas 2.x: no dtype argument; python storage is the default there
        return pd.arrays.StringArray(values)


def _objects(values: list[Any]) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _masked(values: list[Any], dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    mask = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
    data = np.array([0 if v is None else v for v in values], dtype=dtype)
    return data, mask


@lru_cache(maxsize=256)
def _null_template(kind: str, length: int) -> Any:
    return _typed(kind, [None] * length)


def _column(values: list[Any], kind: str) -> Any:
    """A typed 1-D array for one column (all-null columns are copies of a cached template)."""
    if kind not in (OBJECT, CATEGORY) and all(v is None for v in values):
        return _null_template(kind, len(values)).copy()
    return _typed(kind, values)


def _typed(kind: str, values: list[Any]) -> Any:
    # Direct array constructors: several times faster than pd.array() on small frames.
    if kind == STRING:
        return _string_array(_objects([pd.NA if v is None else v for v in values]))
    if kind in ("Int32", "Int64"):
        return pd.arrays.IntegerArray(*_masked(values, np.int32 if kind == "Int32" else np.int64))
    if kind == "boolean":
        return pd.arrays.BooleanArray(*_masked(values, bool))
    if kind == DATETIME:
        values = [
            v if v is None or isinstance(v, datetime) else schema.to_datetime(v) for v in values
        ]
        values = [schema.to_utc(v) if v is not None and v.tzinfo is None else v for v in values]
        return pd.DatetimeIndex(_nanoseconds(values, _EPOCH).view("datetime64[ns]"), tz="UTC").array
    if kind == TIMEDELTA:
        return _nanoseconds(values, _ZERO).view("timedelta64[ns]")
    if kind == OBJECT:
        return _objects(values)
    if kind == CATEGORY:
        return _objects(values)  # made categorical by the caller (it knows the categories)
    return pd.array(values, dtype=kind)


def _infer_kind(name: str, values: list[Any]) -> str:
    known = KNOWN_EXTRAS.get(name)
    if known is not None:
        return known
    if name.endswith(schema.BLOB_NAME_SUFFIX):
        return STRING
    kinds = {type(v) for v in values if v is not None}
    if not kinds:
        return OBJECT
    if kinds <= {str}:
        return STRING
    if kinds <= {bool}:
        return "boolean"
    if kinds <= {int}:
        return "Int64"
    if all(issubclass(k, datetime) for k in kinds):
        stamps = [schema.to_utc(v) for v in values if v is not None]
        in_range = all(_IN_NS_RANGE[0] <= v <= _IN_NS_RANGE[1] for v in stamps)
        return DATETIME if in_range else OBJECT
    return OBJECT


def _build(rows: list[dict[str, Any]], columns: Mapping[str, str]) -> pd.DataFrame:
    index = pd.RangeIndex(len(rows))
    data: dict[str, Any] = {}
    for name, kind in columns.items():
        values = [row.get(name) for row in rows]
        data[name] = _column(values, kind)
    extras: dict[str, None] = {}
    for row in rows:
        for name in row:
            if name not in columns:
                extras[name] = None
    for name in extras:
        values = [row.get(name) for row in rows]
        data[name] = _column(values, _infer_kind(name, values))
    return _frame(data, index)


def frame_of(rows: list[dict[str, Any]], columns: Mapping[str, str]) -> pd.DataFrame:
    """Decoded rows -> a frame with ``columns`` (name -> kind) typed, in order, extras after.

    The builder every frame of docs/frames.md goes through (``entity_frames`` uses it too).

    Example:
        >>> df = frame_of([{"InstanceId": "a", "Extra": 1}], {"InstanceId": STRING})
        >>> list(df.columns), str(df["Extra"].dtype)
        (['InstanceId', 'Extra'], 'Int64')
    """
    return _build(rows, columns)


def _frame(data: dict[str, Any], index: pd.Index) -> pd.DataFrame:
    """A DataFrame from ready-made, correctly typed 1-D arrays, without re-inspecting them.

    ``DataFrame._from_arrays(verify_integrity=False)`` (pandas 1.x to 3.x) skips the per-column
    sanitizing that dominates small frames; the public constructor is the fallback.
    """
    names = pd.Index(list(data), dtype=object)
    from_arrays = getattr(pd.DataFrame, "_from_arrays", None)
    if from_arrays is not None:
        try:
            return from_arrays(
                list(data.values()), columns=names, index=index, verify_integrity=False
            )
        except TypeError:  # a future signature change: use the public path
            pass
    # Object arrays go in as object Series on the same index: no string inference, no reindexing.
    safe = {
        k: pd.Series(v, index=index, dtype=object, copy=False)
        if isinstance(v, np.ndarray) and v.dtype == object
        else v
        for k, v in data.items()
    }
    return pd.DataFrame(safe, index=index, columns=names, copy=False)


def _inline(
    entities: Iterable[Mapping[str, Any]],
    fetch_blob: Callable[[str], bytes | None] | None,
    container: str | None,
) -> Iterable[Mapping[str, Any]]:
    if fetch_blob is None:
        return entities
    return (
        schema.inline_large_payloads(e, fetch_blob, container=container)
        if schema.has_large_payloads(e, container)
        else e
        for e in entities
    )


def match_completions(rows: list[dict[str, Any]]) -> None:
    """Fill Name, ScheduledTime and Duration of completions in place (rows in history order).

    A completion's TaskScheduledId matches the EventId of the latest TaskScheduled or
    SubOrchestrationInstanceCreated before it in the same instance and execution; a TimerFired's
    TimerId matches its TimerCreated. With retries the latest scheduled event wins.

    Example:
        >>> from datetime import datetime, timezone
        >>> t0, t1 = (datetime(2026, 1, 1, 0, 0, s, tzinfo=timezone.utc) for s in (1, 3))
        >>> rows = [{"InstanceId": "i", "ExecutionId": "e", "EventType": "TaskScheduled",
        ...          "EventId": 0, "Name": "Hello", "Timestamp": t0},
        ...         {"InstanceId": "i", "ExecutionId": "e", "EventType": "TaskCompleted",
        ...          "EventId": -1, "TaskScheduledId": 0, "Name": None, "Timestamp": t1}]
        >>> match_completions(rows)
        >>> rows[1]["Name"], rows[1]["Duration"].total_seconds()
        ('Hello', 2.0)
    """
    scheduled: dict[tuple[Any, Any, int], dict[str, Any]] = {}
    timers: dict[tuple[Any, Any, int], dict[str, Any]] = {}
    for row in rows:
        event_type = row.get("EventType")
        key = (row.get("InstanceId"), row.get("ExecutionId"))
        if event_type in schema.SCHEDULE_EVENT_TYPES:
            if row.get("EventId") is not None:
                scheduled[(*key, row["EventId"])] = row
            continue
        if event_type == _TIMER_CREATED:
            if row.get("EventId") is not None:
                timers[(*key, row["EventId"])] = row
            continue
        if event_type in schema.COMPLETION_EVENT_TYPES:
            ref = row.get("TaskScheduledId")
            source = scheduled.get((*key, ref)) if ref is not None else None
        elif event_type == _TIMER_FIRED:
            ref = row.get("TimerId")
            source = timers.get((*key, ref)) if ref is not None else None
        else:
            continue
        if source is None:
            continue
        if row.get("Name") is None and source.get("Name") is not None:
            row["Name"] = source["Name"]
        started, ended = source.get("Timestamp"), row.get("Timestamp")
        row["ScheduledTime"] = started
        if started is not None and ended is not None:
            row["Duration"] = ended - started


def history_frame(
    entities: Iterable[Mapping[str, Any]],
    *,
    fetch_blob: Callable[[str], bytes | None] | None = None,
    container: str | None = None,
) -> pd.DataFrame:
    """History entities -> the history frame of docs/frames.md (one row per event).

    Rows keep the order given (give them in RowKey order per instance and execution); sentinel
    rows are dropped; completions get Name, ScheduledTime and Duration from their scheduled
    event. ``fetch_blob(name) -> bytes | None`` resolves ``*BlobName`` large payloads if given.

    Example:
        >>> df = history_frame([])
        >>> list(df.columns[:4]), len(df)
        (['InstanceId', 'ExecutionId', 'Sequence', 'RowKey'], 0)
    """
    rows = [
        schema.decode_history_row(e)
        for e in _inline(entities, fetch_blob, container)
        if not schema.is_sentinel(e)
    ]
    match_completions(rows)
    return _build(rows, HISTORY_COLUMNS)


def instances_frame(
    entities: Iterable[Mapping[str, Any]],
    *,
    fetch_blob: Callable[[str], bytes | None] | None = None,
    container: str | None = None,
) -> pd.DataFrame:
    """Instances entities -> the instances frame of docs/frames.md (one row per instance).

    ``fetch_blob`` with ``container`` (``{h}-largemessages``) resolves payloads stored as blob URLs.

    Example:
        >>> df = instances_frame([{"PartitionKey": "a", "RowKey": "", "RuntimeStatus": "Running",
        ...                        "CreatedTime": "2026-01-01T00:00:00Z"}])
        >>> df.loc[0, "RuntimeStatus"], df["Duration"].isna().all()
        ('Running', np.True_)
    """
    rows = [schema.decode_instance_row(e) for e in _inline(entities, fetch_blob, container)]
    for row in rows:
        if row.get("RuntimeStatus") not in TERMINAL_STATUSES:
            row["CompletedTime"] = None
        elif row.get("CompletedTime") is not None and row.get("CreatedTime") is not None:
            row["Duration"] = row["CompletedTime"] - row["CreatedTime"]
    frame = _build(rows, INSTANCE_COLUMNS)
    statuses = [
        s for s in frame["RuntimeStatus"].dropna().unique() if s not in schema.RUNTIME_STATUSES
    ]
    frame["RuntimeStatus"] = pd.Categorical(
        frame["RuntimeStatus"], categories=[*schema.RUNTIME_STATUSES, *sorted(statuses)]
    )
    return frame
