"""Instances filters (server side), limits and paging, queues, hubs, histories and snapshot."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from durabletask.client import OrchestrationStatus

from durable_helpers import schema

T = datetime(2026, 11, 26, 12, 0, tzinfo=schema.UTC)


def instance(iid: str, status: str, name: str, created_minutes: int, **cols):
    created = T + timedelta(minutes=created_minutes)
    done = created + timedelta(seconds=30) if status in ("Completed", "Failed") else None
    columns = dict(
        Name=name, Version="", RuntimeStatus=status, CreatedTime=created,
        LastUpdatedTime=done or created, CompletedTime=done, ExecutionId="e" + iid,
        CustomStatus="null", Tags="null", Generation=0)  # fmt: skip
    return schema.instance_entity(iid, **{**columns, **cols})


@pytest.fixture
def populated(hub):
    rows = [
        instance("order-1", "Completed", "Order", 0, Output='{"ok":true}'),
        instance("order-2", "Failed", "Order", 10, Output="TaskFailedException: boom"),
        instance("order-3", "Running", "Order", 20, CustomStatus='{"step":2}'),
        instance("ship-1", "Pending", "Ship", 30, Input='"box"'),
        instance("ship-2", "Completed", "Ship", 40, Tags='{"team":"blue"}'),
        instance("@counter@k1", "Running", "counter", 50),  # a durable entity
    ]
    for row in rows:
        hub.write_instance(row)
    return hub


def test_instances_filters(populated):
    th = populated.taskhub()
    ids = lambda df: sorted(df.InstanceId)  # noqa: E731
    assert ids(th.instances()) == ["order-1", "order-2", "order-3", "ship-1", "ship-2"]
    assert "@counter@k1" in ids(th.instances(include_entities=True))
    assert ids(th.instances(status="Completed")) == ["order-1", "ship-2"]
    assert ids(th.instances(status=["Running", "Pending"])) == ["order-3", "ship-1"]
    assert ids(th.instances(name="Ship")) == ["ship-1", "ship-2"]
    assert ids(th.instances(name="Order", status="Failed")) == ["order-2"]
    window = th.instances(created_from=T + timedelta(minutes=10), created_to="2026-11-26T12:30Z")
    assert ids(window) == ["order-2", "order-3", "ship-1"]
    assert ids(th.instances(created_from="2026-11-26 12:35")) == ["ship-2"]  # naive = UTC
    everything = th.instances(created_from=datetime.min.replace(tzinfo=schema.UTC))
    assert len(everything) == len(th.instances())  # year 1 is sent as 0001, not 1
    assert len(th.instances(created_from=T.date(), created_to=np.datetime64("2999-01-01"))) == 5
    assert ids(th.instances(instance_id_prefix="order-")) == ["order-1", "order-2", "order-3"]
    assert len(th.instances(limit=2)) == 2
    assert th.instances(name="Nobody").empty
    with pytest.raises(ValueError, match="Unknown runtime status"):
        th.instances(status="Done")
    assert ids(th.instances(status=OrchestrationStatus.PENDING)) == ["ship-1"]
    assert ids(th.instances(status="completed")) == ["order-1", "ship-2"]
    assert th.instances(limit=0).empty


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        ({"status": []}, "Unknown runtime status"),
        ({"status": 3}, "Unknown runtime status"),
        ({"name": []}, "name=None"),
        ({"name": ["Order", 7]}, "name=None"),
        ({"limit": -1}, "whole number"),
        ({"limit": 2.5}, "whole number"),
        ({"limit": "10"}, "whole number"),
        ({"created_from": ""}, "ISO 8601"),
        ({"created_from": 1764158400}, "ISO 8601"),
        ({"created_to": "yesterday-ish"}, "ISO 8601"),
        ({"instance_id_prefix": 5}, "instance_id_prefix"),
    ],
)
def test_bad_filters_say_which_argument_and_what_to_pass(populated, arguments, complaint):
    with pytest.raises(ValueError, match=complaint):
        populated.taskhub().instances(**arguments)


def test_bad_instance_ids_are_value_errors(populated):
    th = populated.taskhub()
    for bad in (None, "", 42):
        with pytest.raises(ValueError, match="non-empty string"):
            th.instance(bad)
        with pytest.raises(ValueError, match="non-empty string"):
            th.history(bad)
    with pytest.raises(ValueError, match="non-empty string"):
        th.histories(["order-1", None])


def test_instances_columns(populated):
    df = populated.taskhub().instances().set_index("InstanceId")
    assert df.loc["order-1", "Output"] == {"ok": True}
    assert df.loc["order-2", "Output"] == "TaskFailedException: boom"  # not JSON: plain text
    assert df.loc["order-3", "CustomStatus"] == {"step": 2}
    assert df.loc["ship-1", "Input"] == "box" and df.loc["ship-1", "InputRaw"] == '"box"'
    assert df.loc["ship-2", "Tags"] == {"team": "blue"}
    assert df.loc["order-1", "Duration"] == pd.Timedelta(seconds=30)
    assert pd.isna(df.loc["order-3", "Duration"]) and pd.isna(df.loc["order-3", "CompletedTime"])
    assert str(df.CreatedTime.dtype) == "datetime64[ns, UTC]"
    assert str(df.Generation.dtype) == "Int32"
    assert df.TableTimestamp.notna().all()


def test_instances_follow_continuation(hub):
    rows = [instance(f"many-{i:04d}", "Completed", "Many", i % 50) for i in range(1050)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(hub.write_instance, rows))
    th = hub.taskhub()
    assert len(th.instances()) == 1050  # more than one 1000-row page
    assert len(th.instances(limit=1020)) == 1020


def test_queues(hub, account):
    names = hub.names
    stray = [f"{names.lower}-other", f"{names.lower}-control-16", f"{names.lower}-control-x"]
    for queue in [*names.control_queues(4), names.workitems_queue, *stray]:
        account.queues.create_queue(queue)
    account.queues.get_queue_client(names.control_queue(2)).send_message("{}")
    account.queues.get_queue_client(names.control_queue(2)).send_message("{}")
    account.queues.get_queue_client(names.workitems_queue).send_message("{}")
    try:
        df = hub.taskhub().queues()
        assert df.Queue.tolist() == [*names.control_queues(4), names.workitems_queue]
        assert df.Kind.tolist() == ["control"] * 4 + ["workitems"]
        assert df.Partition.tolist()[:4] == [0, 1, 2, 3] and pd.isna(df.Partition.iloc[4])
        assert df.ApproximateMessageCount.tolist() == [0, 0, 2, 0, 1]
        assert df.OldestMessageTime.notna().tolist() == [False, False, True, False, True]
        assert (df.OldestMessageAge.dropna() >= pd.Timedelta(0)).all()
    finally:
        for queue in [*names.control_queues(4), names.workitems_queue, *stray]:
            account.queues.delete_queue(queue)


def test_queues_of_a_missing_hub_is_hub_not_found(connection_string):
    from durable_helpers.taskhub import HubNotFoundError, TaskHub

    with pytest.raises(HubNotFoundError, match="NoSuchHub"):
        TaskHub(connection_string, hub="NoSuchHub").queues()


def test_queues_all_empty(hub, account):
    """An idle hub (every queue empty, as the local task hub leaves them) gives a frame."""
    names = hub.names
    for queue in [*names.control_queues(4), names.workitems_queue]:
        account.queues.create_queue(queue)
    try:
        df = hub.taskhub().queues()
        assert len(df) == 5
        assert df.ApproximateMessageCount.sum() == 0
        assert str(df.OldestMessageTime.dtype) == "datetime64[ns, UTC]"
        assert df.OldestMessageTime.isna().all()
    finally:
        for queue in [*names.control_queues(4), names.workitems_queue]:
            account.queues.delete_queue(queue)


def test_hubs_lists_table_pairs(hub, account, connection_string):
    from durable_helpers.taskhub import TaskHub

    account.tables.create_table("OnlyHistoryHistory")  # no Instances table: not a hub
    try:
        found = TaskHub.hubs(connection_string)
        assert hub.names.hub in found and "OnlyHistory" not in found
    finally:
        account.tables.delete_table("OnlyHistoryHistory")


def test_histories_parallel_with_progress(hub, capsys):
    for i in range(25):
        iid = f"p{i}"
        hub.write_history([
            schema.history_entity(iid, "e", k, "EventRaised", event_id=-1, is_played=True,
                                  timestamp=T + timedelta(seconds=k), Name="e", Input=str(k))
            for k in range(3)
        ])  # fmt: skip
    th = hub.taskhub()
    ids = [f"p{i}" for i in range(25)]
    df = th.histories(ids, max_workers=4)  # 25 >= 20: a tqdm bar on stderr
    assert df.InstanceId.drop_duplicates().tolist() == ids  # in the order asked
    assert len(df) == 75
    assert "histories" in capsys.readouterr().err
    quiet = th.histories(ids[:3], progress=False)
    assert len(quiet) == 9 and capsys.readouterr().err == ""


def test_snapshot_delegates_to_save_snapshot(populated, tmp_path, monkeypatch):
    import durable_helpers.snapshot as snapshot

    calls = {}

    def fake_save(path, *, instances, histories):
        calls.update(path=path, instances=instances, histories=histories)
        return path

    monkeypatch.setattr(snapshot, "save_snapshot", fake_save)
    populated.write_history([
        schema.history_entity("order-1", "e", 0, "ExecutionStarted", event_id=-1,
                              is_played=True, timestamp=T, Name="Order"),
    ])  # fmt: skip
    result = populated.taskhub().snapshot(tmp_path / "snap", name="Order")
    assert result == tmp_path / "snap"
    assert sorted(calls["instances"].InstanceId) == ["order-1", "order-2", "order-3"]
    assert calls["histories"].InstanceId.tolist() == ["order-1"]


def test_snapshot_round_trip_through_parquet(populated, tmp_path):
    from durable_helpers.snapshot import load_snapshot

    populated.write_history([
        schema.history_entity("order-1", "e", 0, "ExecutionStarted", event_id=-1,
                              is_played=True, timestamp=T, Name="Order", Input='{"n":1}'),
        schema.history_entity("order-1", "e", 1, "TaskScheduled", event_id=0,
                              is_played=False, timestamp=T, Name="Charge"),
        schema.history_entity("order-1", "e", 2, "TaskCompleted", event_id=-1, is_played=True,
                              timestamp=T + timedelta(seconds=3), TaskScheduledId=0, Result="7"),
    ])  # fmt: skip
    th = populated.taskhub()
    folder = th.snapshot(tmp_path / "snap", name="Order")
    snap = load_snapshot(folder)
    assert sorted(snap.instances.InstanceId) == ["order-1", "order-2", "order-3"]
    done = snap.history[snap.history.EventType == "TaskCompleted"].iloc[0]
    assert done.Name == "Charge" and done.Duration == pd.Timedelta(seconds=3)
    assert snap.history.Input.iloc[0] == {"n": 1}
