"""The entity part of `stuck`: locks whose owner no longer runs, and requests left waiting.

Works on the entities frame (``TaskHub.entities()``, docs/frames.md) and the instances frame;
``stuck`` calls it when given ``entities=`` and puts its rows after the instance rows.
"""

from __future__ import annotations

import pandas as pd

from ._common import conform, short_delta

#: Owner statuses under which a lock is legitimately held (DTFx's CleanEntityStorage rule).
LOCK_OWNER_STATUSES = ("Running", "Suspended")

#: Entity reasons, in the order they are reported.
ENTITY_REASONS = ["orphaned-lock", "entity-backlog"]

#: Columns ``stuck`` has for entities only (null on instance rows), with their dtypes.
ENTITY_COLUMNS = {"LockedBy": "string", "OwnerStatus": "string", "BacklogQueueSize": "Int32"}

_ENTITY_DTYPES = {
    "InstanceId": "string",
    "Name": "string",
    "LockedBy": "string",
    "BacklogQueueSize": "Int32",
    "LastModified": "datetime64[ns, UTC]",
    "LastUpdated": "datetime64[ns, UTC]",
}


def stuck_entities(
    entities: pd.DataFrame,
    instances: pd.DataFrame,
    *,
    older_than: pd.Timedelta,
    now: pd.Timestamp,
) -> pd.DataFrame:
    """Entity rows of ``stuck``: one per (entity, reason), in ``stuck``'s columns.

    - ``orphaned-lock``: LockedBy names an orchestration that is not Running or Suspended in
      ``instances``, or is not there at all (purged, or not among the instances you passed):
      nothing will release the lock; ``clean_entity_storage`` does. No age limit.
    - ``entity-backlog``: requests wait in the entity's queue (BacklogQueueSize > 0) and no
      batch ran for longer than ``older_than`` (Idle = now - LastModified): the queue is not
      draining, typically behind a lock.

    Example:
        >>> now, hour = pd.Timestamp.now("UTC"), pd.Timedelta("1h")
        >>> ents, inst = hub.entities(), hub.instances()  # doctest: +SKIP
        >>> stuck_entities(ents, inst, older_than=hour, now=now)  # doctest: +SKIP
    """
    ent = conform(entities, _ENTITY_DTYPES, list(_ENTITY_DTYPES))
    owner_dtypes = {"InstanceId": "string", "RuntimeStatus": "string"}
    owners = conform(instances, owner_dtypes, list(owner_dtypes))
    status_of = dict(zip(owners["InstanceId"], owners["RuntimeStatus"], strict=True))
    rows = []
    for e in ent.itertuples(index=False):
        idle = now - e.LastModified if not pd.isna(e.LastModified) else pd.NaT
        owner = None if pd.isna(e.LockedBy) else str(e.LockedBy)
        owner_status = status_of.get(owner) if owner is not None else None
        owner_status = None if pd.isna(owner_status) else owner_status
        backlog = 0 if pd.isna(e.BacklogQueueSize) else int(e.BacklogQueueSize)
        base = {
            "InstanceId": e.InstanceId,
            "Name": e.Name,
            "LastUpdatedTime": e.LastUpdated,
            "Idle": idle,
            "LockedBy": owner,
            "OwnerStatus": owner_status,
            "BacklogQueueSize": backlog,
        }
        if owner is not None and owner_status not in LOCK_OWNER_STATUSES:
            why = (
                f"which is {owner_status}"
                if owner_status is not None
                else "which is not among the instances (purged, or not passed)"
            )
            detail = f"locked by {owner}, {why}; nothing releases it but clean_entity_storage"
            rows.append({**base, "Reason": "orphaned-lock", "Detail": detail})
        if backlog > 0 and not pd.isna(idle) and idle > older_than:
            detail = f"{backlog} request(s) waiting and no batch for {short_delta(idle)}"
            if owner is not None:
                detail += f", locked by {owner}"
            rows.append({**base, "Reason": "entity-backlog", "Detail": detail})
    return pd.DataFrame(rows)
