"""History frames -> one recorded execution per instance, as protocol events. No I/O.

Accepts what ``TaskHub.history``/``.histories``, ``GrpcTaskHub.history``/``.histories`` and
``load_snapshot(...).history`` return (docs/frames.md), checks that it is a History frame, keeps
each instance's *current* execution (the last ExecutionId in the frame: after continue-as-new
only the current execution is replayed, as the worker does), orders rows by ``Sequence`` and
turns them into ``HistoryEvent`` messages through ``durable_helpers.protocol_rows`` (the one
row <-> event converter). ``renumber`` moves action ids between the two numberings in use: the
Durable Functions host (DTFx) counts scheduled actions from 0, the ``durabletask`` SDK from 1.

Example:
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"InstanceId": ["i", "i"], "ExecutionId": ["e", "e"],
    ...     "Sequence": [0, 1], "EventType": ["OrchestratorStarted", "ExecutionStarted"],
    ...     "EventId": [-1, -1], "Name": [None, "Hello"]})
    >>> [h.name for h in split_histories(frame)]
    ['Hello']
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import durabletask.internal.orchestrator_service_pb2 as pb
import pandas as pd

from durable_helpers.protocol_frames import frame_table_rows
from durable_helpers.protocol_rows import columns_to_event

#: Columns without which a frame cannot be a History frame.
REQUIRED_COLUMNS = ("InstanceId", "EventType", "EventId")
#: Columns the reports quote (kept per row next to the event).
ROW_COLUMNS = ("Sequence", "RowKey", "EventType", "EventId", "Name")
SCHEDULED_TYPES = ("taskScheduled", "timerCreated", "subOrchestrationInstanceCreated", "eventSent")
_COMPLETIONS = (
    "taskCompleted",
    "taskFailed",
    "subOrchestrationInstanceCompleted",
    "subOrchestrationInstanceFailed",
)


class ReportRows(Sequence[dict[str, Any]]):
    """The rows of one execution as the reports quote them (``ROW_COLUMNS``), built on demand.

    Example:
        >>> rows = ReportRows({"EventType": ["TaskScheduled"], "Name": [None]}, [0])
        >>> len(rows), rows[0]
        (1, {'EventType': 'TaskScheduled', 'Name': None})
    """

    def __init__(self, keys: dict[str, list[Any]], indices: list[int]) -> None:
        self._keys = {c: keys[c] for c in ROW_COLUMNS if c in keys}
        self._indices = indices

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, position: Any) -> Any:
        if isinstance(position, slice):
            return [self[i] for i in range(*position.indices(len(self)))]
        i = self._indices[position]
        return {c: _plain(values[i]) for c, values in self._keys.items()}


@dataclass
class RecordedExecution:
    """One instance's current execution: its rows (for reports) and its protocol events."""

    instance_id: str
    execution_id: str | None
    name: str | None
    rows: Sequence[dict[str, Any]]
    events: list[pb.HistoryEvent]
    #: other executions the frame held for this instance (not replayed)
    older_executions: int = 0

    def completion(self) -> tuple[int, pb.HistoryEvent] | None:
        """(index, event) of the execution's ExecutionCompleted row, or None while it runs.

        Example:
            >>> RecordedExecution("i", None, None, [], []).completion() is None
            True
        """
        if "_completion" not in self.__dict__:
            self.__dict__["_completion"] = next(
                ((i, e) for i, e in enumerate(self.events) if e.HasField("executionCompleted")),
                None,
            )
        return self.__dict__["_completion"]

    def episode_text(self, end: int) -> str:
        """How the reports name the episode that ends at event ``end`` (an OrchestratorCompleted).

        Example:
            >>> RecordedExecution("i", None, None, [], []).episode_text(3)
            'the end of the episode begun at row 0, without these actions'
        """
        before = range(min(end, len(self.events) - 1), -1, -1)
        start = next((i for i in before if self.events[i].HasField("orchestratorStarted")), 0)
        row = self.rows[start] if start < len(self.rows) else {}
        sequence = row.get("Sequence", start)
        return f"the end of the episode begun at row {sequence}, without these actions"

    def first_action_id(self) -> int | None:
        """The smallest id of a scheduled action (0: DTFx numbering, 1: the SDK's), or None.

        Example:
            >>> RecordedExecution("i", None, None, [], []).first_action_id() is None
            True
        """
        ids = [e.eventId for e in self.events if e.WhichOneof("eventType") in SCHEDULED_TYPES]
        return min(ids) if ids else None


def _not_a_history(frame: Any) -> str | None:
    if not isinstance(frame, pd.DataFrame):
        return (
            f"expected a History frame (a pandas DataFrame from TaskHub.history(), "
            f"TaskHub.histories(), GrpcTaskHub.history() or a snapshot), got {type(frame).__name__}"
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        hint = ""
        if "RuntimeStatus" in frame.columns:
            hint = (
                " This looks like an Instances frame: read the histories first, "
                "hub.histories(instances.InstanceId)."
            )
        return f"not a History frame: columns {missing} are missing (docs/frames.md).{hint}"
    return None


def check_frame(frame: Any) -> None:
    """Raise a clear error unless ``frame`` is a non-empty History frame.

    Example:
        >>> check_frame(pd.DataFrame({"InstanceId": [], "EventType": [], "EventId": []}))
        ... # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: the History frame is empty: no rows to replay (was the instance purged, ...
    """
    problem = _not_a_history(frame)
    if problem:
        raise (TypeError if not isinstance(frame, pd.DataFrame) else ValueError)(problem)
    if frame.empty:
        raise ValueError(
            "the History frame is empty: no rows to replay "
            "(was the instance purged, or the id misspelt?)"
        )


#: What a row of ``iter_histories``' table rows is replaced with once it became an event.
_USED: dict[str, Any] = {}


def _group(ids: list[Any]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for index, instance_id in enumerate(ids):
        groups.setdefault(str(instance_id), []).append(index)
    return groups


def _plain(value: Any) -> Any:
    return None if value is None or type(value).__name__ in ("NAType", "NaTType") else value


def iter_histories(
    frame: pd.DataFrame, *, on_error: Callable[[str, ValueError], None] | None = None
) -> Iterator[RecordedExecution]:
    """Each instance's current execution in ``frame``, in the order instances first appear.

    An instance whose rows cannot be replayed (no ExecutionStarted, an unknown EventType)
    raises ValueError, or, with ``on_error``, is passed to ``on_error(instance_id, error)``
    and skipped.

    Example:
        >>> frame = pd.DataFrame({"InstanceId": ["a"], "EventType": ["Nonsense"], "EventId": [1]})
        >>> next(iter_histories(frame))
        Traceback (most recent call last):
        ...
        ValueError: instance 'a', row 0: unknown EventType 'Nonsense' in a History row
    """
    check_frame(frame)
    rows = frame_table_rows(frame)
    keys = {c: frame[c].tolist() for c in ("ExecutionId", "Sequence", *ROW_COLUMNS) if c in frame}
    for instance_id, indices in _group(frame["InstanceId"].tolist()).items():
        try:
            execution = _execution(instance_id, indices, rows, keys)
        except ValueError as error:
            if on_error is None:
                raise
            on_error(instance_id, error)
            continue
        yield execution


def split_histories(frame: pd.DataFrame) -> list[RecordedExecution]:
    """All of ``iter_histories(frame)`` as a list.

    Example:
        >>> split_histories([])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        TypeError: expected a History frame (a pandas DataFrame from TaskHub.history(), ...
    """
    return list(iter_histories(frame))


def _execution(
    instance_id: str,
    indices: list[int],
    rows: list[dict[str, Any]],
    keys: dict[str, list[Any]],
) -> RecordedExecution:
    executions = keys.get("ExecutionId")
    older = 0
    current = None
    if executions is not None:
        seen = list(dict.fromkeys(_plain(executions[i]) for i in indices))
        current = seen[-1]
        older = len(seen) - 1
        if older:
            indices = [i for i in indices if _plain(executions[i]) == current]
    sequences = keys.get("Sequence")
    if sequences is not None and all(_plain(sequences[i]) is not None for i in indices):
        indices = sorted(indices, key=lambda i: sequences[i])
    events: list[pb.HistoryEvent] = []
    name = None
    for position, i in enumerate(indices):
        try:
            event = columns_to_event(rows[i])
        except (ValueError, TypeError, KeyError) as error:
            raise ValueError(f"instance {instance_id!r}, row {position}: {error}") from None
        rows[i] = _USED  # read once: freed now, the rows do not pile up for the cyclic GC
        if name is None and event.HasField("executionStarted"):
            name = event.executionStarted.name
        events.append(event)
    if name is None:
        raise ValueError(
            f"instance {instance_id!r}: the history has no ExecutionStarted row for execution "
            f"{current!r}, so there is nothing to start the orchestrator from (a partial frame? "
            "read it whole with hub.history(instance_id))"
        )
    return RecordedExecution(instance_id, current, name, ReportRows(keys, indices), events, older)


def renumber(events: Iterable[pb.HistoryEvent], delta: int) -> None:
    """Shift every action id (scheduled events' EventId and the ids completions point back to)
    by ``delta``, in place.

    Example:
        >>> ev = pb.HistoryEvent(eventId=0, taskScheduled=pb.TaskScheduledEvent(name="Hello"))
        >>> renumber([ev], 1); ev.eventId
        1
    """
    if not delta:
        return
    for event in events:
        kind = event.WhichOneof("eventType")
        if kind in SCHEDULED_TYPES or (kind == "executionCompleted" and event.eventId >= 0):
            event.eventId += delta
        elif kind in _COMPLETIONS:
            getattr(event, kind).taskScheduledId += delta
        elif kind == "timerFired":
            event.timerFired.timerId += delta
