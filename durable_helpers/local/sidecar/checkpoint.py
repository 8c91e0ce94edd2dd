"""A checkpoint as data: the ``Plan`` of one orchestrator response and the rows it writes.

A plan is everything a completed orchestrator work item changes, computed before anything is
durable: the messages it consumes and sends (``omsgs``; ``amsgs`` for activities), the table
operations (``ops``: History batches and Instances rows, in the journal's ``{"t": ...}`` form),
the large-payload blobs, the sub-orchestrations it creates, its new history and the instance's
new state. The orchestrator work-item part journals ``plan.record()``, applies ``plan.ops`` to
the tables and then the plan to memory. An ``Episode`` is one response being planned: the
planning steps add History rows (``add_row``) and messages (``send``) through it. A new kind of
work (entities) plans into the same shape: rows into ``ops``, messages into ``omsgs``.

May call: :mod:`durable_helpers.schema`, :mod:`durable_helpers.protocol_rows`, the store (for
the Instances row's blob names) and the engine's clock and ids; it holds no lock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import durabletask.internal.orchestrator_service_pb2 as pb

from durable_helpers import schema
from durable_helpers.local.sidecar.state import UTC, AMsg, Inst, NewState, OMsg, now_utc, ts
from durable_helpers.local.sidecar.store import Store, wire
from durable_helpers.protocol_rows import STATUS_NAMES, event_to_columns, failure_to_json

if TYPE_CHECKING:
    from durable_helpers.local.sidecar.engine import Engine

log = logging.getLogger("durable_helpers.local.sidecar")

#: History entities per entity-group transaction (99 events + the sentinel).
BATCH_EVENTS = 99


@dataclass
class Plan:
    """What one checkpoint writes and sends (see the module docstring)."""

    consumed: list[str]
    omsgs: list[OMsg] = field(default_factory=list)
    amsgs: list[AMsg] = field(default_factory=list)
    ops: list[dict[str, Any]] = field(default_factory=list)
    blobs: list[tuple[str, bytes]] = field(default_factory=list)
    children: list[tuple[str, NewState]] = field(default_factory=list)
    history_events: list[pb.HistoryEvent] = field(default_factory=list)
    state: NewState = field(default_factory=NewState)

    def record(self) -> dict[str, Any]:
        """The journal record that makes the plan durable."""
        return {
            "m": [m.record() for m in self.omsgs] + [a.record() for a in self.amsgs],
            "a": self.consumed,
            "ops": self.ops,
        }


@dataclass
class Episode:
    """One orchestrator response being planned: the instance, its new state, where rows go.

    The planning functions (:mod:`~.planner` and the modules it calls) take an episode and
    one action, and add to ``history`` (the new History rows, each with its IsPlayed flag)
    and to ``plan`` (messages, activities, other rows).
    """

    engine: Engine
    inst: Inst
    st: NewState
    now: datetime
    plan: Plan
    history: list[tuple[pb.HistoryEvent, bool]] = field(default_factory=list)

    def add_row(self, event_id: int, **event: Any) -> pb.HistoryEvent:
        """Add the History row an action writes (stamped with the episode's time)."""
        ev = pb.HistoryEvent(eventId=event_id, timestamp=ts(self.now), **event)
        self.history.append((ev, False))
        return ev

    def send(self, instance_id: str, **event: Any) -> None:
        """Send ``instance_id`` a message (a new event) once the checkpoint is durable."""
        ev = self.engine.new_event(**event)
        self.plan.omsgs.append(OMsg(self.engine.new_id(), instance_id, ev))


def instance_op(row: dict[str, Any]) -> dict[str, Any]:
    """The table operation that writes an Instances row.

    Example:
        >>> instance_op({"PartitionKey": "i1", "RowKey": ""})["t"]
        'i'
    """
    return {"t": "i", "pk": row["PartitionKey"], "e": wire(row)}


def plan_history_rows(
    store: Store,
    instance_id: str,
    st: NewState,
    events: list[tuple[pb.HistoryEvent, bool]],
    first_row: int,
    plan: Plan,
) -> None:
    """Add the History batches (and the Instances row, when it changes) for ``events``.

    ``events`` pairs each event with its IsPlayed flag; row numbers start at ``first_row``.
    """
    entities = []
    for offset, (event, played) in enumerate(events):
        event_type, cols = event_to_columns(event)
        when = event.timestamp.ToDatetime(tzinfo=UTC) if event.HasField("timestamp") else now_utc()
        if event.timestamp.seconds <= 0:
            when = now_utc()
        entity = schema.history_entity(
            instance_id,
            st.execution_id,
            first_row + offset,
            event_type,
            event_id=event.eventId,
            is_played=played,
            timestamp=when,
            **cols,
        )
        entity, blobs = schema.offload_history_payloads(entity)
        plan.blobs.extend(blobs)
        if event_type == "ExecutionStarted" and entity.get("InputBlobName"):
            st.row_blobs["Input"] = entity["InputBlobName"]
        entities.append(entity)
    batches: list[list[dict[str, Any]]] = []
    for start in range(0, len(entities), BATCH_EVENTS):
        chunk = entities[start : start + BATCH_EVENTS]
        final = start + BATCH_EVENTS >= len(entities)
        sentinel = schema.sentinel_entity(
            instance_id, st.execution_id, checkpoint_completed=now_utc() if final else None
        )
        batches.append([wire(e) for e in chunk] + [wire(sentinel)])
    pk = schema.escape_partition_key(instance_id)
    plan.ops.append({"t": "h", "pk": pk, "batches": batches})
    row, blobs = instance_row(store, instance_id, st, st.row_blobs)
    row_wire = wire(row)
    # Like a checkpoint, but skip the Instances write when only LastUpdatedTime would change
    # (the engine answers status queries for live instances from memory).
    signature = repr(
        sorted((k, v) for k, v in row_wire.items() if not k.startswith("LastUpdatedTime"))
    )
    if signature != st.row_sig or st.kick or st.new_execution:
        plan.blobs.extend(blobs)
        plan.ops.append({"t": "i", "pk": pk, "e": row_wire})
        st.row_sig = signature


def instance_row(
    store: Store, instance_id: str, st: NewState, blob_names: dict[str, str]
) -> tuple[dict[str, Any], list]:
    """The Instances row for ``st`` and the large-payload blobs it needs uploaded."""
    status = st.status
    if st.continued:
        status = pb.ORCHESTRATION_STATUS_RUNNING
    row = schema.instance_entity(
        instance_id,
        Name=st.name,
        Version=st.version or "",
        Input=st.input,
        Output=schema.failed_output(st.failure.errorType, st.failure.errorMessage)
        if st.failure is not None
        else st.output,
        CustomStatus=st.custom_status if st.custom_status is not None else "null",
        RuntimeStatus=STATUS_NAMES[status],
        CreatedTime=st.created,
        LastUpdatedTime=st.last_updated,
        CompletedTime=st.completed,
        ExecutionId=st.execution_id,
        TaskHubName=store.hub,
        Generation=st.generation,
        Tags=schema.to_json(st.tags) if st.tags else "null",
        ScheduledStartTime=st.scheduled_start,
        FailureDetails=schema.to_json(failure_to_json(st.failure))
        if st.failure is not None
        else None,
    )
    row, blobs = schema.offload_instance_payloads(
        row, store.largemessages_url, blob_names=blob_names
    )
    return row, blobs
