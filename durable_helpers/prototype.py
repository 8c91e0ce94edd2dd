"""The 2019 prototype's run as data: its History rows, and ours next to them row for row.

The prototype's README shows Azure Storage Explorer on ``DurableFunctionsHubHistory`` after its
Python client called ``StartNew(functionName="DurableFunctionsOrchestratorJS")``: the JavaScript
orchestrator called the activity ``Hello`` with Tokyo, Seattle and London, and the real Durable
Task Framework wrote 16 rows (and the sentinel). :func:`prototype_history` gives those rows as a
frame with the columns of a :meth:`TaskHub.history` frame; :func:`compare_with_prototype` puts a
run of ours next to them. Pure pandas; no I/O.

Example:
    >>> rows = prototype_history()
    >>> len(rows), rows.loc[1, "Name"]
    (16, 'DurableFunctionsOrchestratorJS')
"""

from __future__ import annotations

from typing import Any

import pandas as pd

PROTOTYPE_INSTANCE = "95c7f6639fe04bf0a919698255cecd33"
PROTOTYPE_EXECUTION = "46021e13b9d54fb19d10b55e3cca502b"
PROTOTYPE_ORCHESTRATOR = "DurableFunctionsOrchestratorJS"
GREETINGS = ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]

# EventType, EventId, IsPlayed, Name, Result, table write time (2019-12-23 14:16:…)
_ROWS: list[tuple[str, int, bool, str | None, Any, str]] = [
    ("OrchestratorStarted", -1, False, None, None, "27.280"),
    ("ExecutionStarted", -1, True, PROTOTYPE_ORCHESTRATOR, None, "27.280"),
    ("TaskScheduled", 0, False, "Hello", None, "27.280"),
    ("OrchestratorCompleted", -1, False, None, None, "27.280"),
    ("OrchestratorStarted", -1, False, None, None, "27.550"),
    ("TaskCompleted", -1, True, None, GREETINGS[0], "27.550"),
    ("TaskScheduled", 1, False, "Hello", None, "27.550"),
    ("OrchestratorCompleted", -1, False, None, None, "27.553"),
    ("OrchestratorStarted", -1, False, None, None, "27.700"),
    ("TaskCompleted", -1, True, None, GREETINGS[1], "27.700"),
    ("TaskScheduled", 2, False, "Hello", None, "27.700"),
    ("OrchestratorCompleted", -1, False, None, None, "27.700"),
    ("OrchestratorStarted", -1, False, None, None, "27.870"),
    ("TaskCompleted", -1, True, None, GREETINGS[2], "27.873"),
    ("ExecutionCompleted", 3, False, None, GREETINGS, "27.873"),
    ("OrchestratorCompleted", -1, False, None, None, "27.873"),
]

#: The columns compared row for row.
COMPARED = ("EventType", "EventId", "IsPlayed", "Name", "Result")


def prototype_history() -> pd.DataFrame:
    """The prototype's 16 History rows (without the sentinel), in RowKey order.

    Columns: RowKey, EventType, EventId (``Int32``), IsPlayed, Name (as written: only on
    ExecutionStarted and TaskScheduled), Result (decoded JSON) and TableTimestamp (UTC).

    Example:
        >>> row = prototype_history().iloc[2]
        >>> row.RowKey, row.EventType, int(row.EventId), row.Name
        ('0000000000000002', 'TaskScheduled', 0, 'Hello')
    """
    frame = pd.DataFrame(
        [
            {
                "RowKey": f"{index:016X}",
                "EventType": event_type,
                "EventId": event_id,
                "IsPlayed": played,
                "Name": name,
                "Result": result,
                "TableTimestamp": f"2019-12-23T14:16:{seconds}Z",
            }
            for index, (event_type, event_id, played, name, result, seconds) in enumerate(_ROWS)
        ]
    )
    return frame.astype(
        {
            "RowKey": "string",
            "EventType": "string",
            "EventId": "Int32",
            "IsPlayed": "bool",
            "Name": "string",
        }
    ).assign(TableTimestamp=lambda f: pd.to_datetime(f["TableTimestamp"], utc=True))


def _same(theirs: Any, ours: Any, column: str, action_offset: int) -> bool:
    if isinstance(theirs, list) or isinstance(ours, list):
        return bool(theirs == ours)
    if pd.isna(theirs):  # the prototype's table names only starts and schedules
        return column == "Name" or bool(pd.isna(ours))
    if pd.isna(ours):
        return False
    if column == "EventId" and theirs >= 0:
        return bool(ours == theirs + action_offset)
    return bool(theirs == ours)


def compare_with_prototype(history: pd.DataFrame, *, action_offset: int = 1) -> pd.DataFrame:
    """Our run next to the prototype's rows: one row per position, and whether they agree.

    ``history`` is a :meth:`TaskHub.history` frame of one run of the Hello chain. The result has
    the RowKey as index, then for EventType, EventId, IsPlayed, Name and Result the prototype's
    value and ours (``EventType 2019``, ``EventType now``, ...), and ``same`` (True where the row
    agrees).
    Action ids (EventId of TaskScheduled and ExecutionCompleted) agree when ours is the
    prototype's plus ``action_offset``: .NET counted from 0, the durabletask SDKs (Python and
    JavaScript) count from 1. The Name of a completion is filled in by the reader, so it is
    compared only where the prototype's table had one.

    Example:
        >>> table = compare_with_prototype(prototype_history(), action_offset=0)
        >>> bool(table["same"].all()), len(table)
        (True, 16)
    """
    theirs = prototype_history()[list(COMPARED)]
    ours = history.reset_index(drop=True).reindex(columns=list(COMPARED))
    ours = ours.reindex(range(max(len(ours), len(theirs))))
    theirs = theirs.reindex(ours.index)
    same = [
        all(
            _same(theirs.at[i, column], ours.at[i, column], column, action_offset)
            for column in COMPARED
        )
        for i in ours.index
    ]
    table = pd.concat([theirs.add_suffix(" 2019"), ours.add_suffix(" now")], axis=1)
    order = [f"{column} {run}" for column in COMPARED for run in ("2019", "now")]
    table = table[order].assign(same=same)
    table.index = pd.Index([f"{i:016X}" for i in table.index], name="RowKey")
    return table
