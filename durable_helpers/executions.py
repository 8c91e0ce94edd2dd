"""Which History rows make up one execution of an instance, as the provider reads them. No I/O.

A History partition can hold rows of several executions (continue-as-new leftovers, rewinds);
the sentinel row names the current one. Used by ``TaskHub.history`` and the export.

Example:
    >>> select_execution([{"RowKey": "0000000000000000", "ExecutionId": "e1"}])
    [{'RowKey': '0000000000000000', 'ExecutionId': 'e1'}]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from durable_helpers import schema


def select_execution(
    entities: Iterable[Mapping[str, Any]], execution: str = "current"
) -> list[Any]:
    """Pick the History rows of one execution, as the provider reads them (sentinel dropped).

    ``"current"``: the sentinel's ExecutionId (else the first row's); rows in RowKey order up to
    the first row of another execution. ``"all"``: every row, older executions first, each in
    RowKey order. Anything else: the rows of that execution id.

    Example:
        >>> rows = [{"RowKey": "0000000000000000", "ExecutionId": "new"},
        ...         {"RowKey": "0000000000000001", "ExecutionId": "old"},
        ...         {"RowKey": "sentinel", "ExecutionId": "new"}]
        >>> [r["RowKey"] for r in select_execution(rows)]
        ['0000000000000000']
    """
    sentinel = None
    events = []
    for entity in entities:
        if schema.is_sentinel(entity):
            sentinel = entity
        else:
            events.append(entity)
    events.sort(key=lambda e: e.get("RowKey") or "")
    if execution == "current":
        current = (sentinel or (events[0] if events else {})).get("ExecutionId")
        selected = []
        for entity in events:
            if entity.get("ExecutionId") != current:
                break
            selected.append(entity)
        return selected
    if execution == "all":
        current = sentinel.get("ExecutionId") if sentinel else None
        first_seen: dict[Any, Any] = {}
        for entity in events:
            stamp = schema.to_datetime(entity.get("_Timestamp"))
            key = entity.get("ExecutionId")
            if stamp is not None and (key not in first_seen or stamp < first_seen[key]):
                first_seen[key] = stamp
            first_seen.setdefault(key, None)
        order = sorted(
            first_seen,
            key=lambda k: (k == current, first_seen[k] is None, first_seen[k] or 0),
        )
        rank = {k: i for i, k in enumerate(order)}
        return sorted(events, key=lambda e: (rank[e.get("ExecutionId")], e.get("RowKey") or ""))
    return [e for e in events if e.get("ExecutionId") == execution]
