"""The entity client RPCs: SignalEntity, GetEntity, QueryEntities, CleanEntityStorage.

Semantics follow the Azure Storage provider (DTFx ``EntityTrackingStoreQueries``):

* an entity *exists* when it has user state; ``includeTransient`` also lists entities that are
  tracked without state (locked, with waiting requests, or deleted and not yet cleaned);
* ``lastModifiedTime`` is the time of its latest step (the Instances row's CreatedTime), and the
  time window is ``from <= t <= to``;
* a QueryEntities page never comes back empty only because its rows were transient: it reads on
  (for at most ``EMPTY_PAGE_RETRY_SECONDS``), as DTFx re-queries empty pages;
* ``backlogQueueSize`` counts the requests parked in its scheduler state; ``lockedBy`` is the
  instance id of the orchestration holding its lock;
* CleanEntityStorage releases locks held by orchestrations that are not Running, Pending or
  Suspended (by sending the entity a ``release``, as DTFx does) and removes entities with no
  state, no lock and no waiting request. Unlike DTFx it does not wait 30 minutes before removing
  one (that delay protects a message sorter this task hub does not have).

May call: the hub's live entities, the engine's client part (journal and deliver a message),
the store's reads and purge, and the journal. Each function takes the lock itself for its
in-memory steps, never across I/O.

Example:
    >>> entity_id_argument("@Counter@Key")
    '@counter@Key'
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import timezone
from typing import TYPE_CHECKING

import durabletask.internal.orchestrator_service_pb2 as pb

from durable_helpers import schema
from durable_helpers.local.sidecar.continuation import decode_token, encode_token
from durable_helpers.local.sidecar.entities.hub import EntityHub
from durable_helpers.local.sidecar.entities.model import EntityRecord
from durable_helpers.local.sidecar.entities.orchestration import (
    EntityMessage,
    event_raised,
    signal_message,
)
from durable_helpers.local.sidecar.entities.rows import normalized_entity_id, record_from_row
from durable_helpers.local.sidecar.entities.steps import message
from durable_helpers.schema import entities as es
from durable_helpers.schema import entity_messages as em

if TYPE_CHECKING:
    pass

log = logging.getLogger("durable_helpers.local.sidecar")
UTC = timezone.utc  # noqa: UP017
#: How long QueryEntities goes on reading pages that held only transient entities (DTFx: 100 ms).
EMPTY_PAGE_RETRY_SECONDS = 1.0

#: Owners whose locks CleanEntityStorage leaves alone.
_LIVE_OWNER = {"Running", "Pending", "Suspended"}


class EntityArgumentError(ValueError):
    """A client passed an entity id or query the task hub cannot serve (INVALID_ARGUMENT)."""


def entity_id_argument(instance_id: str) -> str:
    """``@name@key`` with the name lower-cased; EntityArgumentError when it is not one.

    Example:
        >>> entity_id_argument("@Counter@c1")
        '@counter@c1'
        >>> try:
        ...     entity_id_argument("counter")
        ... except EntityArgumentError as error:
        ...     print(str(error)[:36])
        'counter' is not an entity id: use '
    """
    normalized = normalized_entity_id(instance_id)
    if normalized is None:
        raise EntityArgumentError(
            f"{instance_id!r} is not an entity id: use '@<name>@<key>' with a non-empty "
            "name and key and no further '@' (build it with "
            "durabletask.entities.EntityInstanceId(name, key))."
        )
    return normalized


def signal(hub: EntityHub, request: pb.SignalEntityRequest) -> None:
    """Journal a client's signal (held back until ``scheduledTime``), then deliver it."""
    target = entity_id_argument(request.instanceId)
    engine = hub.engine
    now = engine.now()
    due = (
        request.scheduledTime.ToDatetime(tzinfo=UTC) if request.HasField("scheduledTime") else None
    )
    m = signal_message(
        target,
        request.name,
        request.input.value if request.HasField("input") else None,
        request.requestId or str(uuid.uuid4()),
        parent=None,
        due=due,
        now=now,
    )
    engine.clients.send(
        message(engine, target, event_raised(m), m.due.timestamp() if m.due else 0.0)
    )


def _record(hub: EntityHub, instance_id: str) -> EntityRecord | None:
    """The entity's record, memory first; once a client sees it, its rows are in the tables."""
    with hub.engine.lock:
        live = hub.live.get(instance_id)
        record = live.record if live is not None and live.loaded else None
    if record is not None:
        hub.engine.store.writer.flush(schema.escape_partition_key(instance_id))
        return record
    row = hub.engine.store.get_instance_row(instance_id)
    return record_from_row(instance_id, row) if row is not None else None


def _metadata(record: EntityRecord, include_state: bool) -> pb.EntityMetadata:
    meta = pb.EntityMetadata(instanceId=record.instance_id, backlogQueueSize=len(record.queue))
    if record.modified is not None:
        meta.lastModifiedTime.FromDatetime(record.modified.astimezone(UTC).replace(tzinfo=None))
    if record.locked_by is not None:
        meta.lockedBy.value = record.locked_by
    if include_state and record.state is not None:
        meta.serializedState.value = record.state
    return meta


def get(hub: EntityHub, request: pb.GetEntityRequest) -> pb.GetEntityResponse:
    """GetEntity: the entity's metadata; ``exists`` false when it has no state."""
    instance_id = entity_id_argument(request.instanceId)
    record = _record(hub, instance_id)
    if record is None or record.state is None:
        return pb.GetEntityResponse(exists=False)
    return pb.GetEntityResponse(exists=True, entity=_metadata(record, request.includeState))


def _decode_token(value: str) -> tuple[str, str] | None:
    try:
        return decode_token(value)
    except ValueError as error:
        raise EntityArgumentError(str(error)) from None


def query(hub: EntityHub, request: pb.QueryEntitiesRequest) -> pb.QueryEntitiesResponse:
    """QueryEntities: one page of entities by id prefix and last-modified window."""
    q = request.query
    prefix = q.instanceIdStartsWith.value if q.HasField("instanceIdStartsWith") else ""
    flt = es.entity_query_filter(
        prefix or es.ENTITY_ID_PREFIX,
        modified_from=q.lastModifiedFrom.ToDatetime(tzinfo=UTC)
        if q.HasField("lastModifiedFrom")
        else None,
        modified_to=q.lastModifiedTo.ToDatetime(tzinfo=UTC)
        if q.HasField("lastModifiedTo")
        else None,
    )
    token = _decode_token(q.continuationToken.value if q.HasField("continuationToken") else "")
    size = q.pageSize.value if q.HasField("pageSize") and q.pageSize.value > 0 else 100
    out: list[pb.EntityMetadata] = []
    # A page whose rows are all transient (no state) would come back empty with a token; like
    # DTFx, read the next page instead, for a bounded time, so a page holds something if it can.
    deadline = time.monotonic() + EMPTY_PAGE_RETRY_SECONDS
    while True:
        rows, next_token = hub.engine.store.query_instances(flt, min(size, 1000), token)
        for row in rows:
            row = hub.engine.store.resolve_instance_payloads(row)
            record = record_from_row(schema.unescape_partition_key(row["PartitionKey"]), row)
            if record.state is None and not q.includeTransient:
                continue
            out.append(_metadata(record, q.includeState))
        if out or next_token is None or time.monotonic() > deadline:
            break
        token = next_token
    response = pb.QueryEntitiesResponse(entities=out)
    if next_token is not None:
        response.continuationToken.value = encode_token(next_token)
    return response


def clean(hub: EntityHub, request: pb.CleanEntityStorageRequest) -> pb.CleanEntityStorageResponse:
    """CleanEntityStorage: release orphaned locks, remove empty entities (one full pass)."""
    engine = hub.engine
    removed = released = 0
    token = None
    while True:
        rows, token = engine.store.query_instances(es.entity_query_filter(), 100, token)
        for row in rows:
            iid = schema.unescape_partition_key(row["PartitionKey"])
            record = _record(hub, iid)
            if record is None:
                continue
            if request.releaseOrphanedLocks and record.locked_by is not None:
                owner = engine.store.get_instance_row(record.locked_by)
                if owner is None or owner.get("RuntimeStatus") not in _LIVE_OWNER:
                    _send_release(hub, iid, record.locked_by)
                    released += 1
                    continue
            if request.removeEmptyEntities and _remove_if_empty(hub, iid):
                removed += 1
        if token is None:
            break
    return pb.CleanEntityStorageResponse(
        emptyEntitiesRemoved=removed, orphanedLocksReleased=released
    )


def _send_release(hub: EntityHub, instance_id: str, owner: str) -> None:
    body = em.release_message_json(parent=owner, id=em.ORPHANED_LOCK_RELEASE_ID)
    release = EntityMessage(instance_id, em.RELEASE_EVENT, body)
    hub.engine.clients.send(message(hub.engine, instance_id, event_raised(release)))
    log.info("released the lock of %r held by %r (no longer running)", instance_id, owner)


def _remove_if_empty(hub: EntityHub, instance_id: str) -> bool:
    engine = hub.engine
    pk = schema.escape_partition_key(instance_id)
    with engine.lock:
        live = hub.live.get(instance_id)
        if live is not None:
            if live.inbox or live.batch is not None or not live.loaded:
                return False
            record = live.record
        else:
            record = None
    if record is None:
        record = _record(hub, instance_id)
    if record is None or record.state is not None or record.locked_by or record.queue:
        return False
    journal = engine.store.journal
    journal.begin()
    try:
        with engine.lock:
            live = hub.live.get(instance_id)
            if live is not None and (live.inbox or live.batch is not None):
                return False
            hub.live.pop(instance_id, None)
        ops = [{"t": "purge", "pk": pk}]
        journal.append({"ops": ops})
        engine.store.write(ops, now=True)
    finally:
        journal.done()
    return True
