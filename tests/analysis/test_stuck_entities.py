"""stuck(entities=...): orphaned locks and backlogs, on frames from the reader's own builder."""

from __future__ import annotations

import pandas as pd
from analysis_builders import instance, instances, t

from durable_helpers import analysis as da
from durable_helpers import schema
from durable_helpers.entity_frames import entities_frame


def entity(key: str, at: float, *, locked_by: str | None = None, waiting: int = 0) -> dict:
    """An entity's Instances row after its last batch at ``at`` seconds."""
    queue = [{"op": "add", "id": f"r{i}", "parent": "other"} for i in range(waiting)]
    _, row = schema.entity_batch_rows(
        schema.entity_instance_id("lock", key),
        "E" + key,
        scheduler_state=schema.scheduler_state_json(state="1", queue=queue, locked_by=locked_by),
        status=schema.entity_status_json(exists=True, queue_size=waiting, locked_by=locked_by),
        started=t(at).to_pydatetime(),
        completed=t(at).to_pydatetime(),
    )
    return row


def test_orphaned_locks_and_backlogs() -> None:
    inst = instances(
        instance("running", "Running", 0, updated=7100),
        instance("suspended", "Suspended", 0, updated=7100),
        instance("done", "Completed", 0, completed=10),
        instance("killed", "Terminated", 0, completed=10),
    )
    ents = entities_frame(
        [
            entity("by-running", 7000, locked_by="running"),
            entity("by-suspended", 7000, locked_by="suspended"),
            entity("by-done", 7190, locked_by="done"),  # orphaned at once: no age limit
            entity("by-killed", 0, locked_by="killed", waiting=2),
            entity("by-purged", 7000, locked_by="purged"),
            entity("free", 7000),
            entity("busy-recent", 7100, locked_by="running", waiting=3),
            entity("waiting-old", 100, waiting=1),
        ]
    )
    s = da.stuck(inst, entities=ents, older_than="1h", now=t(7200))
    got = sorted(zip(s["InstanceId"], s["Reason"].astype(str), strict=True))
    assert got == [
        ("@lock@by-done", "orphaned-lock"),
        ("@lock@by-killed", "entity-backlog"),
        ("@lock@by-killed", "orphaned-lock"),
        ("@lock@by-purged", "orphaned-lock"),
        ("@lock@waiting-old", "entity-backlog"),
    ]
    rows = s.set_index(["InstanceId", s["Reason"].astype(str)])
    killed = rows.loc[("@lock@by-killed", "orphaned-lock")]
    assert (killed.Name, killed.LockedBy, killed.OwnerStatus) == ("lock", "killed", "Terminated")
    assert "which is Terminated" in killed.Detail
    purged = rows.loc[("@lock@by-purged", "orphaned-lock")]
    assert pd.isna(purged.OwnerStatus) and "not among the instances" in purged.Detail
    backlog = rows.loc[("@lock@waiting-old", "entity-backlog")]
    assert backlog.BacklogQueueSize == 1 and backlog.Idle == pd.Timedelta(seconds=7100)
    assert "1 request(s) waiting and no batch for 0 days 01:58:20" in backlog.Detail
    assert "locked by killed" in rows.loc[("@lock@by-killed", "entity-backlog")].Detail


def test_entity_rows_join_instance_rows_with_one_set_of_dtypes() -> None:
    inst = instances(
        instance("idle", "Running", 0, updated=0), instance("gone", "Failed", 0, completed=1)
    )
    ents = entities_frame([entity("k", 0, locked_by="gone")])
    s = da.stuck(inst, entities=ents, older_than="1h", now=t(7200))
    assert s["Reason"].astype(str).tolist() == ["no-progress", "orphaned-lock"]
    plain = da.stuck(inst, older_than="1h", now=t(7200))
    assert s.dtypes.to_dict() == plain.dtypes.to_dict()
    assert str(s["BacklogQueueSize"].dtype) == "Int32" and str(s["Idle"].dtype) == "timedelta64[ns]"
    assert pd.isna(s.loc[0, "LockedBy"]) and s.loc[1, "OwnerStatus"] == "Failed"
    assert list(s["Reason"].cat.categories[-2:]) == ["orphaned-lock", "entity-backlog"]
    # nothing wrong, or no entities at all: the same columns
    quiet = da.stuck(inst, entities=entities_frame([entity("k", 7100)]), now=t(7200))
    assert quiet.columns.tolist() == plain.columns.tolist()
    assert da.stuck(inst, entities=entities_frame([]), now=t(7200)).columns.tolist() == (
        plain.columns.tolist()
    )
