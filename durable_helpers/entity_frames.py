"""Durable entities as a typed DataFrame (docs/frames.md), and the arguments that select them.

Both readers build the entities frame here: ``TaskHub`` from ``{hub}Instances`` rows (decoded by
``schema.decode_entity_row``), ``GrpcTaskHub`` from the protocol's ``EntityMetadata``. The
arguments of ``entities()`` are checked once for both by :class:`EntityFilter`. No I/O here;
calls ``schema``, ``frames`` (the typed builder) and ``instance_filters`` (dates, limits).

Example:
    >>> from durable_helpers import schema
    >>> df = entities_frame([schema.instance_entity("@counter@c1", Name="@counter@c1",
    ...     RuntimeStatus="Running", Input='{"state":"5","sorter":{}}',
    ...     CustomStatus='{"entityExists":true}')])
    >>> df.loc[0, "Name"], df.loc[0, "Key"], df.loc[0, "State"], str(df["Exists"].dtype)
    ('counter', 'c1', 5, 'boolean')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from durable_helpers import schema
from durable_helpers.frames import DATETIME, OBJECT, STRING, frame_of
from durable_helpers.instance_filters import InstanceFilter, utc_datetime

#: Entities frame columns and their kinds, in contract order.
ENTITY_COLUMNS: dict[str, str] = {
    "InstanceId": STRING,
    "Name": STRING,
    "Key": STRING,
    "Exists": "boolean",
    "State": OBJECT,
    "StateRaw": STRING,
    "LockedBy": STRING,
    "BacklogQueueSize": "Int32",
    "Queue": OBJECT,
    "Suspended": "boolean",
    "LastModified": DATETIME,
    "LastUpdated": DATETIME,
    "ExecutionId": STRING,
    "Engine": STRING,
    "InputRaw": STRING,
    "CustomStatusRaw": STRING,
    "TableTimestamp": DATETIME,
}

#: The Instances columns an entity query reads when the state is not wanted (no Input, no blobs).
STATELESS_SELECT = [
    "PartitionKey",
    "RowKey",
    "Timestamp",
    "CustomStatus",
    "CreatedTime",
    "LastUpdatedTime",
    "ExecutionId",
]


class EntityNotFoundError(KeyError):
    """No durable entity with this id (a KeyError, as InstanceNotFoundError is for instances)."""

    def __str__(self) -> str:  # KeyError would show the message in quotes
        return str(self.args[0]) if self.args else ""


def check_entity_id(entity_id: Any) -> str:
    """The id itself if it is an entity's (``@name@key``), else a ValueError saying what to pass.

    Example:
        >>> check_entity_id("@counter@c1")
        '@counter@c1'
    """
    if not schema.is_entity_id(entity_id):
        raise ValueError(
            f"{entity_id!r} is not an entity id: entity ids look like '@name@key' "
            "(schema.entity_instance_id(name, key)); read orchestrations with instance()"
        )
    return entity_id


def unknown_entity(entity_id: str, where: str) -> EntityNotFoundError:
    """The error for an entity id that ``where`` (a hub, a sidecar) does not know.

    Example:
        >>> str(unknown_entity("@counter@c9", "task hub 'H'"))[:40]
        "No entity '@counter@c9' in task hub 'H'."
    """
    return EntityNotFoundError(
        f"No entity {entity_id!r} in {where}. An entity is stored once it has run an "
        "operation; check the name (lower-case in ids) and the key (case matters); "
        "entities(name=...) lists them."
    )


@dataclass(frozen=True)
class EntityFilter:
    """Checked arguments of ``entities()``: which entities, and whether with their state.

    Example:
        >>> f = EntityFilter.of(name="Counter", key_prefix="c")
        >>> f.id_prefix, f.matches("@counter@c1"), f.matches("@counter@d1")
        ('@counter@c', True, False)
    """

    name: str | None = None
    key_prefix: str = ""
    modified_from: datetime | None = None
    modified_to: datetime | None = None
    include_state: bool = True
    limit: int | None = None

    @classmethod
    def of(
        cls,
        name: Any = None,
        key_prefix: Any = None,
        modified_from: Any = None,
        modified_to: Any = None,
        include_state: Any = True,
        limit: Any = None,
    ) -> EntityFilter:
        """Check the user's arguments; a ValueError says which one and what to pass.

        Example:
            >>> EntityFilter.of(modified_from="2026-11-26").modified_from.year
            2026
        """
        if name is not None and (not isinstance(name, str) or not name or "@" in name):
            raise ValueError(
                f"name takes an entity name (a non-empty str without '@', e.g. 'counter'), "
                f"not {name!r}; pass name=None for every entity"
            )
        if key_prefix is not None and not isinstance(key_prefix, str):
            raise ValueError(f"key_prefix is a str (the start of the keys), not {key_prefix!r}")
        if not isinstance(include_state, bool):
            raise ValueError(f"include_state is True or False, not {include_state!r}")
        return cls(
            name=name,
            key_prefix=key_prefix or "",
            modified_from=None
            if modified_from is None
            else utc_datetime(modified_from, "modified_from"),
            modified_to=None if modified_to is None else utc_datetime(modified_to, "modified_to"),
            include_state=include_state,
            limit=InstanceFilter.of(limit=limit).limit,
        )

    @property
    def id_prefix(self) -> str:
        """The entity-id prefix the query asks the server for (``@`` without a name)."""
        return schema.entity_id_prefix(self.name, self.key_prefix)

    def odata(self) -> str:
        """The OData filter on ``{hub}Instances`` (prefix range, last-modified window).

        Example:
            >>> EntityFilter.of(name="counter").odata()
            "(PartitionKey ge '@counter@' and PartitionKey lt '@counterA')"
        """
        return schema.entity_query_filter(
            self.id_prefix, modified_from=self.modified_from, modified_to=self.modified_to
        )

    def matches(self, instance_id: str | None) -> bool:
        """True if the id is an entity's that this filter selects (checked again after the query:
        a key prefix without a name cannot be a range, and ranges are exact only when escaped).

        Example:
            >>> EntityFilter.of(key_prefix="a").matches("@x@abc"), EntityFilter().matches("o1")
            (True, False)
        """
        if instance_id is None or not instance_id.startswith(self.id_prefix):
            return False
        if self.name is None and self.key_prefix:
            try:
                return schema.split_entity_id(instance_id)[1].startswith(self.key_prefix)
            except ValueError:
                return False
        return schema.is_entity_id(instance_id)


def entities_frame(entities: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """``{hub}Instances`` rows of entities -> the entities frame (one row per entity).

    Large payloads must have been inlined (``schema.inline_large_payloads``).

    Example:
        >>> list(entities_frame([]).columns[:4])
        ['InstanceId', 'Name', 'Key', 'Exists']
    """
    return frame_of([schema.decode_entity_row(e) for e in entities], ENTITY_COLUMNS)


def metadata_row(entity: Any, *, include_state: bool) -> dict[str, Any]:
    """A protocol ``EntityMetadata`` as a row of the entities frame (what the protocol lacks is
    null: Queue, Suspended, LastUpdated, ExecutionId, Engine and the raw table columns).

    Example:
        >>> import durabletask.internal.orchestrator_service_pb2 as pb
        >>> metadata_row(pb.EntityMetadata(instanceId="@counter@c1", backlogQueueSize=2),
        ...              include_state=False)["BacklogQueueSize"]
        2
    """
    instance_id = entity.instanceId
    try:
        name, key = schema.split_entity_id(instance_id)
    except ValueError:
        name, key = None, None
    state = entity.serializedState.value if entity.HasField("serializedState") else None
    modified = None
    if entity.HasField("lastModifiedTime"):
        modified = entity.lastModifiedTime.ToDatetime(tzinfo=schema.UTC)
    return {
        "InstanceId": instance_id,
        "Name": name,
        "Key": key,
        "Exists": (state is not None) if include_state else None,
        "State": schema.decode_entity_state(state),
        "StateRaw": state,
        "LockedBy": entity.lockedBy.value if entity.HasField("lockedBy") else None,
        "BacklogQueueSize": entity.backlogQueueSize,
        "LastModified": modified,
    }


def metadata_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows made by :func:`metadata_row` -> the entities frame.

    Example:
        >>> metadata_frame([]).shape[1] == len(ENTITY_COLUMNS)
        True
    """
    return frame_of([dict(r) for r in rows], ENTITY_COLUMNS)
