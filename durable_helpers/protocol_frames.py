"""History *frame* rows (docs/frames.md) back into protocol events. No I/O, no pandas import.

A History frame uses the readers' column names (``InputRaw``/``ResultRaw`` for the raw payload
text, ``Timestamp`` for the event's own time, ``TargetInstanceId``), pandas nulls and derived
columns (decoded payloads, Sequence, matches, failure parts). This module renames the event
columns back to the table's and hands them to ``protocol_rows.columns_to_event``, which owns
the event layout. Used by ``durable_helpers.replay``.

Example:
    >>> frame_row_to_event({"EventType": "TaskScheduled", "EventId": 1, "Name": "Hello",
    ...     "InputRaw": '"Tokyo"'}).taskScheduled.name
    'Hello'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import durabletask.internal.orchestrator_service_pb2 as pb

from durable_helpers.protocol_rows import columns_to_event, compact_json

#: Frame column -> the table column ``columns_to_event`` reads it from.
_FRAME_TO_TABLE = {
    "InputRaw": "Input",
    "ResultRaw": "Result",
    "TargetInstanceId": "InstanceId",
    "Timestamp": "_Timestamp",
}
#: Frame columns that are derived (decoded payloads, keys, matches), not stored event data.
_FRAME_DERIVED = frozenset(
    {
        "InstanceId",
        "Input",
        "Result",
        "Sequence",
        "RowKey",
        "TableTimestamp",
        "IsPlayed",
        "FailureType",
        "FailureMessage",
        "FailureStackTrace",
        "ScheduledTime",
        "Duration",
        "PartitionKey",
    }
)


#: pandas' null scalars, by type name (the sidecar imports this module and stays pandas-free).
_PANDAS_NULLS = frozenset({"NAType", "NaTType"})


def _frame_null(value: Any) -> bool:
    if value is None or type(value).__name__ in _PANDAS_NULLS:
        return True
    return isinstance(value, float) and value != value


def frame_event_columns(columns: Iterable[str]) -> list[str]:
    """The columns of a History frame that carry event data (not derived from other columns).

    Example:
        >>> frame_event_columns(["InstanceId", "Sequence", "EventType", "InputRaw", "Input"])
        ['EventType', 'InputRaw']
    """
    return [c for c in columns if c not in _FRAME_DERIVED]


def frame_table_rows(frame: Any) -> list[dict[str, Any]]:
    """Every row of a History frame (a pandas DataFrame) as ``frame_row_table_columns`` gives
    it, column by column (fast for large frames: only non-null cells are visited).

    Example:
        >>> import pandas as pd
        >>> frame_table_rows(pd.DataFrame({"EventType": ["TaskCompleted"], "TimerId": [pd.NA],
        ...     "ResultRaw": ['"hi"'], "Sequence": [3]}))
        [{'EventType': 'TaskCompleted', 'Result': '"hi"'}]
    """
    import numpy as np

    rows: list[dict[str, Any]] = [{} for _ in range(len(frame))]
    for column in frame_event_columns(frame.columns):
        series = frame[column]
        present = np.flatnonzero(series.notna().to_numpy()).tolist()
        if not present:
            continue
        values = series.to_numpy(dtype=object)
        name = _FRAME_TO_TABLE.get(column, column)
        if name == "State":
            for i in present:
                value = values[i]
                rows[i][name] = compact_json(value) if isinstance(value, (dict, list)) else value
        else:
            for i in present:
                rows[i][name] = values[i]
    return rows


def frame_row_table_columns(row: Mapping[str, Any]) -> dict[str, Any]:
    """A History frame row (docs/frames.md) as the table columns ``columns_to_event`` reads.

    The raw payload text (``InputRaw``, ``ResultRaw``) becomes ``Input``/``Result``,
    ``TargetInstanceId`` the table's ``InstanceId``, ``Timestamp`` (the event's own time)
    ``_Timestamp``; derived columns (decoded payloads, Sequence, matches, failure parts) are
    dropped, pandas nulls (``NA``, ``NaT``, NaN) are left out, extras keep their table names.

    Example:
        >>> frame_row_table_columns({"EventType": "TaskCompleted", "TaskScheduledId": 1,
        ...     "Result": "Hello Tokyo!", "ResultRaw": '"Hello Tokyo!"', "TimerId": None})
        {'EventType': 'TaskCompleted', 'TaskScheduledId': 1, 'Result': '"Hello Tokyo!"'}
    """
    out: dict[str, Any] = {}
    for name, value in row.items():
        if name in _FRAME_DERIVED or _frame_null(value):
            continue
        if name == "State" and isinstance(value, (dict, list)):
            value = compact_json(value)
        out[_FRAME_TO_TABLE.get(name, name)] = value
    return out


def frame_row_to_event(row: Mapping[str, Any]) -> pb.HistoryEvent:
    """Rebuild a protocol HistoryEvent from one row of a History frame (docs/frames.md).

    Example:
        >>> ev = frame_row_to_event({"EventType": "TaskScheduled", "EventId": 1, "Name": "Hello",
        ...     "Input": "Tokyo", "InputRaw": '"Tokyo"', "TimerId": float("nan")})
        >>> ev.eventId, ev.taskScheduled.name, ev.taskScheduled.input.value
        (1, 'Hello', '"Tokyo"')
    """
    return columns_to_event(frame_row_table_columns(row))
