"""TaskHub.entities() / entity() over entity rows written as Durable Functions writes them.

Rows of both engine generations (DurableTask.Core, classic DF 2.x with ``exists`` and ``$type``)
go into the session's Azurite through ``schema``; the reader must give them back as entities,
filtered on the server, with hostile keys, malformed ids, non-JSON state and blob payloads.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pandas as pd
import pytest
from entity_rows import (
    T0,
    WORKED_SORTER,
    classic_entity,
    classic_request,
    core_entity,
    orchestration_talking_to,
)

from durable_helpers import (
    EntityNotFoundError,
    HubNotFoundError,
    InstanceNotFoundError,
    TaskHub,
    schema,
)
from durable_helpers import analysis as da
from durable_helpers.entity_frames import ENTITY_COLUMNS

MINUTE = timedelta(minutes=1)
WAITING = classic_request("add", "a1b2c3d4-0000-4000-8000-000000000001", "orch-b", T0)


def write(hub, *batches) -> None:
    for history, row in batches:
        hub.write_history(history)
        hub.write_instance(row)


def write_orchestration(hub, instance_id: str, status: str, at=T0) -> None:
    hub.write_history(
        orchestration_talking_to(instance_id, "@counter@c1", "r-" + instance_id, at, classic=False)
    )
    hub.write_instance(
        schema.instance_entity(instance_id, Name="Caller", RuntimeStatus=status, CreatedTime=at,
                               LastUpdatedTime=at, ExecutionId="X1", CustomStatus="null")
    )  # fmt: skip


@pytest.fixture
def two_engines(hub):
    """Core and classic entities, one locked with a waiting request, one deleted, plus an
    orchestration: the hub an investigator opens."""
    write(
        hub,
        core_entity("@counter@c1", "5", T0, sorter=WORKED_SORTER),
        classic_entity("@counter@c2", "7", T0 + MINUTE, queue=[WAITING], locked_by="orch-a"),
        core_entity("@account@alice", '{"balance":100}', T0 + 2 * MINUTE),
        classic_entity("@account@bob", '{"balance":5}', T0 + 3 * MINUTE),
        core_entity("@counter@gone", None, T0 + 4 * MINUTE),
    )
    write_orchestration(hub, "orch-a", "Terminated")
    return hub


def test_entities_of_both_engines_come_back_right(two_engines) -> None:
    th = two_engines.taskhub()
    ents = th.entities()
    assert list(ents.columns[: len(ENTITY_COLUMNS)]) == list(ENTITY_COLUMNS)
    assert str(ents["LastModified"].dtype) == "datetime64[ns, UTC]"
    assert str(ents["BacklogQueueSize"].dtype) == "Int32"
    assert str(ents["Exists"].dtype) == "boolean" and str(ents["Key"].dtype) == "string"
    by_id = ents.set_index("InstanceId")
    assert sorted(by_id.index) == [
        "@account@alice",
        "@account@bob",
        "@counter@c1",
        "@counter@c2",
        "@counter@gone",
    ]
    c1 = by_id.loc["@counter@c1"]
    assert (c1.Name, c1.Key, c1.State, c1.StateRaw, c1.Exists, c1.Engine) == (
        "counter",
        "c1",
        5,
        "5",
        True,
        "core",
    )
    assert c1.LastModified == pd.Timestamp(T0) and c1.LastUpdated > c1.LastModified
    assert pd.isna(c1.LockedBy) and c1.BacklogQueueSize == 0 and not c1.Suspended
    c2 = by_id.loc["@counter@c2"]
    assert (c2.State, c2.Engine, c2.LockedBy, c2.BacklogQueueSize) == (7, "classic", "orch-a", 1)
    assert [(m["op"], m["parent"]) for m in c2.Queue] == [("add", "orch-b")]
    assert json.loads(c2.InputRaw)["exists"] is True
    assert by_id.loc["@account@alice", "State"] == {"balance": 100}
    assert by_id.loc["@account@bob", "Engine"] == "classic"
    gone = by_id.loc["@counter@gone"]
    assert (gone.Exists, gone.State, gone.StateRaw, gone.CustomStatusRaw) == (
        False,
        None,
        pd.NA,
        "{}",
    )
    # the ExecutionId is the batch's, as in the History rows
    assert th.history("@counter@c1")["ExecutionId"].unique().tolist() == [c1.ExecutionId]
    # instances() still leaves entities out, and shows them when asked
    assert th.instances()["InstanceId"].tolist() == ["orch-a"]
    assert len(th.instances(include_entities=True)) == 6
    one = th.entity("@counter@c2")
    assert (one.State, one.LockedBy, one.Engine) == (7, "orch-a", "classic")


def test_orchestrations_record_their_entity_traffic_in_the_dtfx_shape(hub) -> None:
    hub.write_history(orchestration_talking_to("o-core", "@counter@c1", "R2", T0, classic=False))
    hub.write_history(orchestration_talking_to("o-classic", "@counter@c1", "R3", T0, classic=True))
    th = hub.taskhub()
    both = th.histories(["o-core", "o-classic"])
    sent = both[both.EventType == "EventSent"].set_index("InstanceId")
    assert sent["TargetInstanceId"].tolist() == ["@counter@c1", "@counter@c1"]
    assert sent.loc["o-core", "Input"]["id"] == "R2" and "$type" in sent.loc["o-classic", "Input"]
    for instance_id, request_id in (("o-core", "R2"), ("o-classic", "R3")):
        assert schema.parse_request_message(sent.loc[instance_id, "InputRaw"]).id == request_id
    raised = both[both.EventType == "EventRaised"]
    assert raised["Name"].tolist() == ["R2", "R3"]
    assert [schema.parse_response_message(r).result for r in raised["InputRaw"]] == ["5", "5"]


def test_filters_run_on_the_server_as_the_provider_queries(two_engines) -> None:
    th = two_engines.taskhub()
    assert sorted(th.entities(name="Counter")["Key"]) == ["c1", "c2", "gone"]
    assert th.entities(name="counter", key_prefix="c")["Key"].tolist() == ["c1", "c2"]
    assert th.entities(key_prefix="b")["InstanceId"].tolist() == ["@account@bob"]
    window = th.entities(modified_from=T0 + MINUTE, modified_to=T0 + 3 * MINUTE)  # inclusive
    assert sorted(window["Key"]) == ["alice", "bob", "c2"]
    assert th.entities(modified_from="2025-01-10T08:04:00Z")["Key"].tolist() == ["gone"]
    assert len(th.entities(limit=2)) == 2 and th.entities(limit=0).empty
    assert th.entities(name="nobody").empty
    stateless = th.entities(include_state=False).set_index("InstanceId")
    assert stateless["State"].isna().all() and stateless["Queue"].isna().all()
    c2 = stateless.loc["@counter@c2"]
    assert (c2.Exists, c2.LockedBy, c2.BacklogQueueSize) == (True, "orch-a", 1)
    assert pd.isna(c2.InputRaw) and pd.isna(c2.Engine)


HOSTILE_KEYS = ["a/b", "c\\d", "e#f", "g?h", "i^j", "tab\tnew\nline", "del\x7fc\x85", "k@at", "q'x"]


def test_keys_with_special_and_control_characters(hub) -> None:
    write(hub, *(core_entity(schema.entity_instance_id("Key", k), "1", T0) for k in HOSTILE_KEYS))
    stored = {e["PartitionKey"] for e in hub.instances_table.list_entities()}
    assert "@key@a^0b" in stored and "@key@tab^\u00c9new^\u00caline" in stored
    th = hub.taskhub()
    assert sorted(th.entities(name="key")["Key"]) == sorted(HOSTILE_KEYS)
    for key in HOSTILE_KEYS:
        assert th.entities(name="key", key_prefix=key)["Key"].tolist() == [key], key
        assert th.entity(f"@key@{key}")["Key"] == key
    assert th.entities(name="key", key_prefix="q'")["Key"].tolist() == ["q'x"]


def test_malformed_ids_and_non_json_state_are_kept_not_fatal(hub) -> None:
    write(
        hub,
        core_entity("@counter@text", "not json", T0),
        core_entity("@counter@ok", "3", T0),
    )
    malformed_history, malformed = core_entity("@counter@x", "2", T0)
    for row in [*malformed_history, malformed]:
        row["PartitionKey"] = "@nokey"  # an '@' id without a key separator
    broken_history, broken = core_entity("@counter@broken", "1", T0)
    broken["Input"] = '{"state":"1","sor'  # a truncated scheduler state
    write(hub, (malformed_history, malformed), (broken_history, broken))
    th = hub.taskhub()
    by_id = th.entities().set_index("InstanceId")
    assert pd.isna(by_id.loc["@nokey", "Name"]) and pd.isna(by_id.loc["@nokey", "Key"])
    assert by_id.loc["@nokey", "State"] == 2
    text = by_id.loc["@counter@text"]
    assert (text.State, text.StateRaw, text.Exists) == (None, "not json", True)
    bad = by_id.loc["@counter@broken"]
    assert (bad.State, bad.InputRaw, bad.Exists) == (None, '{"state":"1","sor', True)
    assert "@nokey" not in th.entities(name="counter")["InstanceId"].tolist()
    assert "@nokey" not in th.entities(key_prefix="n")["InstanceId"].tolist()
    assert th.entity("@nokey")["State"] == 2


def test_errors_say_what_to_do(hub, connection_string) -> None:
    th = hub.taskhub()
    with pytest.raises(EntityNotFoundError, match=r"entities\(name=\.\.\.\) lists them") as caught:
        th.entity("@counter@nobody")
    assert isinstance(caught.value, KeyError)
    with pytest.raises(ValueError, match="not an entity id"):
        th.entity("orch-a")
    with pytest.raises(ValueError, match="entity name"):
        th.entities(name="a@b")
    with pytest.raises(ValueError, match="limit"):
        th.entities(limit=-1)
    with pytest.raises(ValueError, match="modified_from"):
        th.entities(modified_from="yesterday-ish")
    with pytest.raises(ValueError, match="key_prefix"):
        th.entities(key_prefix=5)
    missing = TaskHub(connection_string, hub="NoSuchHub")
    with pytest.raises(HubNotFoundError, match="NoSuchHubInstances"):
        missing.entities()
    with pytest.raises(HubNotFoundError):
        missing.entity("@counter@c1")
    assert not issubclass(InstanceNotFoundError, EntityNotFoundError)


def test_an_entity_whose_scheduler_state_is_in_a_blob(hub) -> None:
    big = json.dumps({"items": ["x" * 100] * 400})  # > 60 KiB in UTF-16
    history, row = core_entity("@bag@big", big, T0)
    started = next(r for r in history if r.get("EventType") == "ExecutionStarted")
    offloaded, blobs = schema.offload_history_payloads(started)
    history = [offloaded if r is started else r for r in history]
    container_url = hub.container.url
    row, more = schema.offload_instance_payloads(
        row, container_url, blob_names={"Input": offloaded["InputBlobName"]}
    )
    assert row["Input"].startswith(container_url) and not more
    hub.upload(blobs)
    write(hub, (history, row))
    th = hub.taskhub()
    got = th.entity("@bag@big")
    assert got.State == json.loads(big) and got.StateRaw == big and got.Exists
    assert th.entities(name="bag").loc[0, "State"] == json.loads(big)
    assert pd.isna(th.entities(name="bag", include_state=False).loc[0, "State"])
    assert th.history("@bag@big").set_index("EventType").loc["ExecutionStarted", "InputRaw"]


def test_stuck_reports_orphaned_locks_and_backlogs_from_the_tables(two_engines) -> None:
    write_orchestration(two_engines, "orch-live", "Running")
    write(two_engines, core_entity("@counter@held", "1", T0, locked_by="orch-live"))
    write(two_engines, core_entity("@counter@lost", "1", T0, locked_by="orch-purged"))
    th = two_engines.taskhub()
    found = da.stuck(th.instances(), entities=th.entities(), older_than="1h", now=T0 + 2 * MINUTE)
    got = sorted(zip(found["InstanceId"], found["Reason"].astype(str), strict=True))
    assert got == [("@counter@c2", "orphaned-lock"), ("@counter@lost", "orphaned-lock")]
    c2 = found.set_index("InstanceId").loc["@counter@c2"]
    assert (c2.LockedBy, c2.OwnerStatus) == ("orch-a", "Terminated")
    assert "Terminated" in c2.Detail and "clean_entity_storage" in c2.Detail
    hours_later = T0 + 2 * 60 * MINUTE
    later = da.stuck(th.instances(), entities=th.entities(), older_than="1h", now=hours_later)
    backlog = later[later.Reason == "entity-backlog"]
    assert backlog["InstanceId"].tolist() == ["@counter@c2"]
    assert backlog.iloc[0].BacklogQueueSize == 1
