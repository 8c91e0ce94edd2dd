"""Durable entities in the tables, both directions: ids, scheduler state, status, rows, queries.

Owns how the Azure Storage provider stores an entity (``reference/durable-entities.md`` §1):
an instance ``@{name}@{key}`` (name lower-cased, key kept, split at the first ``@`` after the
first character) whose Instances row carries the **scheduler state** JSON in ``Input`` (the user
state as a JSON *string* inside it, the queue of waiting requests, the lock holder) and the
**entity status** JSON in ``CustomStatus``, and whose History partition is rewritten every batch
as OrchestratorStarted, ExecutionStarted, OrchestratorCompleted and the sentinel. Writers give
the DurableTask.Core shape; parsers accept the classic DF 2.x shape too (``exists``, ``$type``)
and ignore keys they do not know. The message bodies are in ``entity_messages``. Calls
``keys``, ``values``, ``columns``, ``encode`` and ``decode``.

Choices where the reference is [unsure] (the readers accept both ways):

- The Instances row of an entity gets ``Tags="null"`` and no ``Generation`` column: AutoStart's
  ExecutionStarted has no tags (the provider serializes that as ``"null"``) and sets no
  generation. The reader does not look at either.
- An empty queue is left out of the scheduler state, like every other default (the provider
  may write ``"queue":[]`` once a queue has drained; both read the same).
- The engine of a row is "classic" when its scheduler state has an ``exists`` key or a ``$type``
  anywhere, else "core". A deleted classic entity (``{"sorter":{}}``) therefore reads as "core":
  the two are byte-for-byte the same there.
- A CustomStatus that is not a JSON object (classic writes ``Internal Error: ...`` when its
  scheduler failed) parses to an empty status whose ``error`` keeps the text.

Example:
    >>> entity_instance_id("Counter", "c1"), split_entity_id("@counter@a@b")
    ('@counter@c1', ('counter', 'a@b'))
    >>> parse_scheduler_state('{"exists":true,"state":"5","sorter":{}}').engine
    'classic'
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from durable_helpers.schema.columns import decode_column
from durable_helpers.schema.decode import INSTANCE_CONSUMED, instance_id_of, table_timestamp
from durable_helpers.schema.encode import history_entity, instance_entity, sentinel_entity
from durable_helpers.schema.keys import odata_datetime, odata_string, prefix_range
from durable_helpers.schema.values import raw_payload, to_datetime, to_json, to_text

#: Every entity id starts with this; the Instances rows of entities are the PartitionKeys in
#: :data:`ENTITY_KEY_RANGE` (``@`` is never escaped, and ``A`` is the next character).
ENTITY_ID_PREFIX = "@"
ENTITY_KEY_RANGE: tuple[str, str] = ("@", "A")
#: The OData condition that leaves entities out of an Instances query (what the provider's
#: ``ExcludeEntities`` writes).
NOT_ENTITIES_FILTER = (
    f"PartitionKey lt {odata_string(ENTITY_KEY_RANGE[0])} "
    f"or PartitionKey ge {odata_string(ENTITY_KEY_RANGE[1])}"
)
#: The event names of the three History rows of every entity batch, in RowKey order.
ENTITY_BATCH_EVENTS = ("OrchestratorStarted", "ExecutionStarted", "OrchestratorCompleted")

Engine = Literal["classic", "core"]


# ---------------------------------------------------------------------------- ids


def entity_instance_id(name: str, key: str) -> str:
    """The instance id of entity ``name`` / ``key``: ``@{name.lower()}@{key}`` (key kept).

    The name must be non-empty without ``@``; the key may hold anything, ``@`` included (DTFx
    splits at the first ``@`` after position 0, so ids stay unambiguous).

    Example:
        >>> entity_instance_id("MyEntity", "TestInstance")
        '@myentity@TestInstance'
    """
    if not isinstance(name, str) or not name or "@" in name:
        raise ValueError(
            f"an entity name is a non-empty str without '@', not {name!r} "
            "(e.g. entity_instance_id('counter', 'c1'))"
        )
    if not isinstance(key, str):
        raise ValueError(f"an entity key is a str, not {key!r}")
    return f"{ENTITY_ID_PREFIX}{name.lower()}{ENTITY_ID_PREFIX}{key}"


def is_entity_id(instance_id: str) -> bool:
    """True for the id of an entity (it starts with ``@``): the rows ``instances()`` leaves out.

    Example:
        >>> is_entity_id("@counter@c1"), is_entity_id("order-1")
        (True, False)
    """
    return isinstance(instance_id, str) and instance_id.startswith(ENTITY_ID_PREFIX)


def split_entity_id(instance_id: str) -> tuple[str, str]:
    """``(name, key)`` of an entity id, by the DTFx rule: split at the first ``@`` after position 0.

    Raises a ValueError saying what is wrong for anything but ``@name@key`` with a non-empty name
    (the key may be empty or hold ``@``).

    Example:
        >>> split_entity_id("@counter@c1"), split_entity_id("@lock@")
        (('counter', 'c1'), ('lock', ''))
    """
    if not is_entity_id(instance_id):
        raise ValueError(
            f"{instance_id!r} is not an entity id: entity ids look like '@name@key' "
            "(entity_instance_id(name, key) builds one)"
        )
    at = instance_id.find(ENTITY_ID_PREFIX, 1)
    if at < 0:
        raise ValueError(
            f"{instance_id!r} is not an entity id: it has no second '@' between name and key"
        )
    if at == 1:
        raise ValueError(f"{instance_id!r} is not an entity id: the name before the key is empty")
    return instance_id[1:at], instance_id[at + 1 :]


def entity_id_prefix(name: str | None = None, key_prefix: str = "") -> str:
    """The id prefix of the entities of ``name`` whose key starts with ``key_prefix``.

    Without a name it is ``@`` (every entity; a key prefix then needs filtering afterwards).

    Example:
        >>> entity_id_prefix("Counter", "c"), entity_id_prefix()
        ('@counter@c', '@')
    """
    if name is None:
        return ENTITY_ID_PREFIX
    return entity_instance_id(name, key_prefix)


# ---------------------------------------------------------------------------- scheduler state


def json_object(text: str | None, what: str) -> dict[str, Any] | None:
    """The JSON object in ``text``; None for None, ``""`` and ``"null"``; else a ValueError
    that names ``what`` it should have been.

    Example:
        >>> json_object('{"a":1}', "status"), json_object("null", "status")
        ({'a': 1}, None)
    """
    if text is None or text == "" or text == "null":
        return None
    try:
        value = json.loads(text)
    except ValueError:
        raise ValueError(f"{what} is a JSON object; this is not JSON: {text[:200]!r}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{what} is a JSON object, not {text[:200]!r}")
    return value


def _has_type_key(value: Any) -> bool:
    if isinstance(value, dict):
        return "$type" in value or any(_has_type_key(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_type_key(v) for v in value)
    return False


@dataclass(frozen=True)
class SchedulerState:
    """An entity's scheduler state (the Instances ``Input``), of either engine.

    ``state`` is the user state as JSON text (None: no state); ``queue`` the waiting requests as
    decoded dicts; ``locked_by`` the orchestration holding the lock.

    Example:
        >>> s = parse_scheduler_state('{"state":"{\\\\"value\\\\":9}","lockedBy":"o1","sorter":{}}')
        >>> s.exists, s.state, s.locked_by, s.engine
        (True, '{"value":9}', 'o1', 'core')
    """

    exists: bool
    state: str | None
    queue: list[dict[str, Any]] = field(default_factory=list)
    locked_by: str | None = None
    suspended: bool = False
    engine: Engine = "core"
    sorter: dict[str, Any] = field(default_factory=dict)


def scheduler_state_json(
    *,
    state: str | None,
    queue: Sequence[Mapping[str, Any]] = (),
    locked_by: str | None = None,
    suspended: bool = False,
    sorter: Mapping[str, Any] | None = None,
) -> str:
    """The scheduler state as DurableTask.Core writes it: defaults left out, ``sorter`` always.

    ``state`` is the user state already serialized (JSON text), or None for no state; ``queue``
    holds RequestMessages decoded (``json.loads(request_message_json(...))``).

    Example:
        >>> scheduler_state_json(state="5")
        '{"state":"5","sorter":{}}'
        >>> scheduler_state_json(state=None, queue=[{"op": "add", "id": "r"}], locked_by="o")
        '{"queue":[{"op":"add","id":"r"}],"lockedBy":"o","sorter":{}}'
    """
    if state is not None and not isinstance(state, str):
        raise ValueError("state is the entity state serialized as JSON text (a str), or None")
    doc: dict[str, Any] = {}
    if state is not None:
        doc["state"] = state
    if queue:
        doc["queue"] = [dict(m) for m in queue]
    if locked_by is not None:
        doc["lockedBy"] = locked_by
    if suspended:
        doc["suspended"] = True
    doc["sorter"] = dict(sorter or {})
    return to_json(doc)


def parse_scheduler_state(text: str | None) -> SchedulerState:
    """An entity's scheduler state from its ``Input`` text, classic or core.

    None, ``""`` and ``"null"`` (an entity not yet run) give an empty state. A ``state`` that a
    tool stored already parsed is turned back into JSON text. Raises ValueError for text that is
    not a JSON object.

    Example:
        >>> parse_scheduler_state('{"exists":true,"state":"5","sorter":{}}').state
        '5'
        >>> parse_scheduler_state(None).exists
        False
    """
    doc = json_object(text, "an entity's scheduler state (Input)")
    if doc is None:
        return SchedulerState(exists=False, state=None)
    state = doc.get("state")
    if state is not None and not isinstance(state, str):
        state = to_json(state)
    queue = doc.get("queue")
    sorter = doc.get("sorter")
    locked_by = doc.get("lockedBy")
    exists = doc["exists"] is True if "exists" in doc else state is not None
    classic = "exists" in doc or _has_type_key(doc)
    return SchedulerState(
        exists=exists,
        state=state,
        queue=[dict(m) for m in queue if isinstance(m, dict)] if isinstance(queue, list) else [],
        locked_by=locked_by if isinstance(locked_by, str) else None,
        suspended=doc.get("suspended") is True,
        engine="classic" if classic else "core",
        sorter=dict(sorter) if isinstance(sorter, dict) else {},
    )


# ---------------------------------------------------------------------------- status


@dataclass(frozen=True)
class EntityStatus:
    """An entity's status (the Instances ``CustomStatus``), of either engine.

    Example:
        >>> parse_entity_status('{"entityExists":true,"queueSize":2,"lockedBy":"o1"}')
        EntityStatus(exists=True, queue_size=2, locked_by='o1', current_operation=None, error=None)
    """

    exists: bool = False
    queue_size: int = 0
    locked_by: str | None = None
    current_operation: dict[str, Any] | None = None
    error: str | None = None


def entity_status_json(*, exists: bool, queue_size: int, locked_by: str | None) -> str:
    """The entity status JSON (``entityExists``, ``queueSize``, ``lockedBy``; defaults left out).

    Example:
        >>> entity_status_json(exists=True, queue_size=0, locked_by=None)
        '{"entityExists":true}'
        >>> entity_status_json(exists=False, queue_size=0, locked_by=None)
        '{}'
    """
    if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 0:
        raise ValueError(f"queue_size is a count (an int >= 0), not {queue_size!r}")
    doc: dict[str, Any] = {}
    if exists:
        doc["entityExists"] = True
    if queue_size:
        doc["queueSize"] = queue_size
    if locked_by is not None:
        doc["lockedBy"] = locked_by
    return to_json(doc)


def parse_entity_status(text: str | None) -> EntityStatus:
    """An entity's status from its ``CustomStatus`` text (never raises; see ``error``).

    Example:
        >>> parse_entity_status("{}"), parse_entity_status("Internal Error: boom").error
        (EntityStatus(exists=False, queue_size=0, locked_by=None, current_operation=None, \
error=None), 'Internal Error: boom')
    """
    try:
        doc = json_object(text, "an entity's status (CustomStatus)")
    except ValueError:
        return EntityStatus(error=text)
    if doc is None:
        return EntityStatus()
    size = doc.get("queueSize")
    locked_by = doc.get("lockedBy")
    current = doc.get("currentOperation")
    return EntityStatus(
        exists=doc.get("entityExists") is True,
        queue_size=size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else 0,
        locked_by=locked_by if isinstance(locked_by, str) else None,
        current_operation=dict(current) if isinstance(current, dict) else None,
    )


# ---------------------------------------------------------------------------- rows


def entity_batch_rows(
    instance_id: str,
    execution_id: str,
    *,
    scheduler_state: str,
    status: str,
    started: datetime,
    completed: datetime,
    task_hub: str | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The rows one entity batch leaves: its History partition and its Instances row.

    History: OrchestratorStarted, ExecutionStarted (Name = the entity id, Version ``""``, Input =
    the scheduler state), OrchestratorCompleted (RowKeys 0-2, all of ``execution_id``) and the
    sentinel; they replace the previous batch's rows (upsert). Instances: Name = the id,
    RuntimeStatus Running, CreatedTime = ``started`` (what the entity queries call
    LastModified), LastUpdatedTime = ``completed``. Large payloads are offloaded by the caller
    (``offload_history_payloads`` / ``offload_instance_payloads``).

    Example:
        >>> from datetime import datetime, timezone
        >>> t = datetime(2025, 1, 10, 8, tzinfo=timezone.utc)
        >>> history, row = entity_batch_rows("@counter@c1", "e1", scheduler_state='{"sorter":{}}',
        ...                                  status="{}", started=t, completed=t)
        >>> [r["RowKey"] for r in history], row["Name"], row["RuntimeStatus"]
        (['0000000000000000', '0000000000000001', '0000000000000002', 'sentinel'], \
'@counter@c1', 'Running')
    """
    split_entity_id(instance_id)
    instance = {"InstanceId": instance_id, "ExecutionId": execution_id}
    times = (started, started, completed)
    history = []
    for sequence, (event_type, at) in enumerate(zip(ENTITY_BATCH_EVENTS, times, strict=True)):
        columns: dict[str, Any] = {}
        if event_type == "ExecutionStarted":
            columns = {
                "Name": instance_id,
                "Version": "",
                "Input": scheduler_state,
                "OrchestrationInstance": instance,
            }
        history.append(
            history_entity(
                instance_id,
                execution_id,
                sequence,
                event_type,
                event_id=-1,
                is_played=event_type == "ExecutionStarted",
                timestamp=at,
                **columns,
            )
        )
    history.append(sentinel_entity(instance_id, execution_id, checkpoint_completed=completed))
    row = instance_entity(
        instance_id,
        Name=instance_id,
        Version="",
        RuntimeStatus="Running",
        Input=scheduler_state,
        CustomStatus=status,
        CreatedTime=started,
        LastUpdatedTime=completed,
        ExecutionId=execution_id,
        Tags="null",
        TaskHubName=task_hub,
    )
    return history, row


#: Instances columns the entity decoder consumes (those that mean nothing for an entity, such as
#: Output or CompletedTime, are dropped); any other column is kept as an extra.
ENTITY_CONSUMED = INSTANCE_CONSUMED


def decode_entity_state(text: str | None) -> Any:
    """The user state decoded from its JSON text; None when absent or not JSON (the text is
    kept beside it as ``StateRaw``, so nothing is lost).

    Example:
        >>> decode_entity_state('{"value":9}'), decode_entity_state("not json")
        ({'value': 9}, None)
    """
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def decode_entity_row(entity: Mapping[str, Any]) -> dict[str, Any]:
    """One entity's Instances row -> a dict keyed by the entities frame's columns (+ extras).

    Name and Key come from the id (None for a malformed ``@`` id); Exists, LockedBy and
    BacklogQueueSize from the status (the scheduler state where the status lacks them); State is
    the user state decoded (None when it is not JSON; ``StateRaw`` keeps the text either way).
    A scheduler state that is not JSON leaves the state columns null (``InputRaw`` keeps it).
    Large payloads must have been inlined first.

    Example:
        >>> row = decode_entity_row({"PartitionKey": "@counter@c^01", "RowKey": "",
        ...     "Input": '{"exists":true,"state":"5","sorter":{}}', "CustomStatus": "{}"})
        >>> row["Name"], row["Key"], row["State"], row["StateRaw"], row["Engine"], row["Exists"]
        ('counter', 'c/1', 5, '5', 'classic', True)
    """
    get = entity.get
    instance_id = instance_id_of(entity)
    try:
        name, key = split_entity_id(instance_id) if instance_id is not None else (None, None)
    except ValueError:
        name, key = None, None
    input_raw = raw_payload(get("Input"))
    status_raw = raw_payload(get("CustomStatus"))
    try:
        scheduler = parse_scheduler_state(input_raw) if "Input" in entity else None
    except ValueError:
        scheduler = None
    status = parse_entity_status(status_raw)
    has_status = status_raw is not None and status.error is None
    locked_by = status.locked_by if has_status else None
    backlog = status.queue_size if has_status else None
    exists = status.exists if has_status else None
    if scheduler is not None:  # cross-check with the scheduler state, which the status mirrors
        locked_by = locked_by or scheduler.locked_by
        backlog = max(backlog or 0, len(scheduler.queue))
        exists = bool(exists) or scheduler.exists
    row: dict[str, Any] = {
        "InstanceId": instance_id,
        "Name": name,
        "Key": key,
        "Exists": exists,
        "State": decode_entity_state(scheduler.state) if scheduler else None,
        "StateRaw": scheduler.state if scheduler else None,
        "LockedBy": locked_by,
        "BacklogQueueSize": backlog,
        "Queue": scheduler.queue if scheduler else None,
        "Suspended": scheduler.suspended if scheduler else None,
        "LastModified": to_datetime(get("CreatedTime")),
        "LastUpdated": to_datetime(get("LastUpdatedTime")),
        "ExecutionId": to_text(get("ExecutionId")) or None,
        "Engine": scheduler.engine if scheduler and input_raw is not None else None,
        "InputRaw": input_raw,
        "CustomStatusRaw": status_raw,
        "TableTimestamp": table_timestamp(entity),
    }
    for column, value in entity.items():
        if column not in ENTITY_CONSUMED and not column.startswith("odata."):
            row[column] = decode_column(column, value)
    return row


# ---------------------------------------------------------------------------- queries


def entity_query_filter(
    prefix: str = ENTITY_ID_PREFIX,
    *,
    modified_from: datetime | None = None,
    modified_to: datetime | None = None,
) -> str:
    """The OData filter of the provider's entity query on ``{hub}Instances`` (§1.9).

    ``prefix`` (``@`` added when missing) becomes a PartitionKey range; ``modified_from`` and
    ``modified_to`` (both inclusive, as DTFx does) filter CreatedTime, the time of the batch
    that last changed the entity.

    Example:
        >>> entity_query_filter("@counter@")
        "(PartitionKey ge '@counter@' and PartitionKey lt '@counterA')"
        >>> entity_query_filter()
        "(PartitionKey ge '@' and PartitionKey lt 'A')"
    """
    if not prefix.startswith(ENTITY_ID_PREFIX):
        prefix = ENTITY_ID_PREFIX + prefix
    bounds = prefix_range(prefix)
    if bounds is None:  # the prefix ends in U+10FFFF: no upper bound exists
        conditions = [f"PartitionKey ge {odata_string(prefix)}"]
    else:
        low, high = (odata_string(b) for b in bounds)
        conditions = [f"PartitionKey ge {low} and PartitionKey lt {high}"]
    if modified_from is not None:
        conditions.append(f"CreatedTime ge {odata_datetime(modified_from)}")
    if modified_to is not None:
        conditions.append(f"CreatedTime le {odata_datetime(modified_to)}")
    return " and ".join(f"({c})" for c in conditions)
