"""An entity in the task hub tables, as the Azure Storage provider keeps it (via ``schema``).

* :func:`step_ops` builds the journaled table writes of one committed entity step: its History
  partition rewritten as ``[OrchestratorStarted, ExecutionStarted(Input=scheduler state),
  OrchestratorCompleted]`` + sentinel under a new ExecutionId, and its Instances row (Name = the
  entity id, RuntimeStatus Running, Input = scheduler state JSON, CustomStatus = status JSON).
* :func:`record_from_row` reads an Instances row back into an :class:`EntityRecord`.
* :func:`request_from_json` / :func:`request_json` convert queue requests to and from the
  provider's RequestMessage JSON.

The JSON shapes come from ``durable_helpers.schema`` (its entities part), the one place that
knows them. May call: ``schema`` and the store's wire form; nothing stateful.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from durable_helpers import schema
from durable_helpers.local.sidecar.entities.model import EntityRecord, Request
from durable_helpers.local.sidecar.store import wire
from durable_helpers.schema import entities as es
from durable_helpers.schema import entity_messages as em

UTC = timezone.utc  # noqa: UP017
log = logging.getLogger("durable_helpers.local.sidecar")


def normalized_entity_id(instance_id: str) -> str | None:
    """``@name@key`` with the name lower-cased; None when a Python worker could not run it.

    The DTFx rule splits at the first ``@`` after the leading one; on top of it the key must be
    non-empty and free of ``@``, since the Python SDK's ``EntityInstanceId`` rejects other keys
    (a batch for such an entity could never complete).

    Example:
        >>> normalized_entity_id("@Counter@c1"), normalized_entity_id("@counter@a@b")
        ('@counter@c1', None)
    """
    try:
        name, key = es.split_entity_id(instance_id)
    except ValueError:
        return None
    if not key or "@" in key:
        return None
    return es.entity_instance_id(name, key)


def request_from_json(text: str) -> Request:
    """A RequestMessage JSON (an ``op`` message body) as a :class:`Request`.

    Example:
        >>> request_from_json('{"op":"add","signal":true,"input":"5","id":"r1"}').input
        '5'
    """
    m = em.parse_request_message(text)
    lockset = None
    if m.lockset is not None:
        lockset = tuple(es.entity_instance_id(name, key) for name, key in m.lockset)
    return Request(
        id=m.id,
        op=m.op,
        input=m.input,
        signal=m.signal,
        parent=m.parent,
        parent_execution=m.parent_execution,
        due=m.due,
        lockset=lockset,
        pos=m.pos,
        raw=text,
    )


def request_json(req: Request, *, timestamp: datetime | None = None) -> str:
    """The RequestMessage JSON of a request (its ``raw`` text when it has one).

    Example:
        >>> request_json(Request(id="r1", op="add", signal=True)).startswith('{"op":"add"')
        True
    """
    if req.raw:
        return req.raw
    return em.request_message_json(
        op=req.op,
        id=req.id,
        input=req.input,
        signal=req.signal,
        parent=req.parent,
        parent_execution=req.parent_execution,
        due=req.due,
        timestamp=timestamp,
        lockset=[es.split_entity_id(e) for e in req.lockset] if req.lockset is not None else None,
        pos=req.pos,
    )


def scheduler_state_of(record: EntityRecord) -> str:
    """The Instances ``Input`` (scheduler state JSON) of a record.

    Example:
        >>> scheduler_state_of(EntityRecord("@a@1", state="5"))
        '{"state":"5","sorter":{}}'
    """
    import json

    return es.scheduler_state_json(
        state=record.state,
        queue=[json.loads(request_json(r)) for r in record.queue],
        locked_by=record.locked_by,
    )


def status_of(record: EntityRecord) -> str:
    """The Instances ``CustomStatus`` (entity status JSON) of a record.

    Example:
        >>> status_of(EntityRecord("@a@1", state="5"))
        '{"entityExists":true}'
    """
    return es.entity_status_json(
        exists=record.state is not None,
        queue_size=len(record.queue),
        locked_by=record.locked_by,
    )


def record_from_row(instance_id: str, row: dict[str, Any] | None) -> EntityRecord:
    """An Instances row (payloads resolved) as a record; an empty record when there is none.

    Example:
        >>> record_from_row("@a@1", {"Input": '{"state":"7","sorter":{}}'}).state
        '7'
    """
    record = EntityRecord(instance_id)
    if row is None:
        return record
    import json

    try:
        parsed = es.parse_scheduler_state(schema.raw_payload(row.get("Input")))
    except ValueError as error:  # not written by an entity engine: start it afresh
        log.error("entity %r: unreadable scheduler state (%s); starting empty", instance_id, error)
        parsed = es.SchedulerState(exists=False, state=None)
    record.state = parsed.state
    record.queue = [request_from_json(json.dumps(q, ensure_ascii=False)) for q in parsed.queue]
    record.locked_by = parsed.locked_by
    record.engine = parsed.engine
    record.execution_id = row.get("ExecutionId") or ""
    record.modified = row.get("CreatedTime")
    record.updated = row.get("LastUpdatedTime") or record.modified
    record.stored = True
    return record


def step_ops(
    record: EntityRecord, hub: str, largemessages_url: str, now: datetime
) -> tuple[list[dict[str, Any]], list[tuple[str, bytes]]]:
    """Journal ops (History partition + Instances row) for ``record`` as it is after a step.

    ``record.execution_id`` must already be the step's new execution id; ``record.modified`` is
    when the step started. Returns (ops, blobs to upload first).

    Example:
        >>> from datetime import datetime, timezone
        >>> rec = EntityRecord("@a@1", state="5", execution_id="e1")
        >>> ops, _ = step_ops(rec, "H", "http://h/c", datetime(2026, 1, 1, tzinfo=timezone.utc))
        >>> [op["t"] for op in ops], [e["EventType"] for e in ops[0]["batches"][0][:3]]
        (['h', 'i'], ['OrchestratorStarted', 'ExecutionStarted', 'OrchestratorCompleted'])
    """
    history, row = es.entity_batch_rows(
        record.instance_id,
        record.execution_id,
        scheduler_state=scheduler_state_of(record),
        status=status_of(record),
        started=record.modified or now,
        completed=now,
        task_hub=hub,
    )
    blobs: list[tuple[str, bytes]] = []
    offloaded = []
    input_blob: dict[str, str] = {}
    for event in history:
        event, event_blobs = schema.offload_history_payloads(event)
        blobs.extend(event_blobs)
        if event.get("InputBlobName"):
            input_blob["Input"] = event["InputBlobName"]
        offloaded.append(wire(event))
    row, row_blobs = schema.offload_instance_payloads(row, largemessages_url, blob_names=input_blob)
    blobs.extend(row_blobs)
    pk = schema.escape_partition_key(record.instance_id)
    ops = [
        {"t": "h", "pk": pk, "batches": [offloaded]},
        {"t": "i", "pk": pk, "e": wire(row)},
    ]
    return ops, blobs
