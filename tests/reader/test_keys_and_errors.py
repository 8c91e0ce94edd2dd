"""Instance ids with key-hostile characters, OData injection, and errors that help."""

from __future__ import annotations

import re
import socket
import time
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from durable_helpers import schema
from durable_helpers.storage import AZURITE_KEY, StorageConfigurationError
from durable_helpers.taskhub import HubNotFoundError, InstanceNotFoundError, TaskHub

T = datetime(2026, 11, 26, 12, 0, tzinfo=schema.UTC)
SERVICES = ("Table", "Blob", "Queue")

HOSTILE_IDS = [
    "a/b",
    "c\\d",
    "e#f",
    "g?h",
    "i^j",
    "k'l",
    "^0",
    "tab\tnew\nline",
    "nul\x00end",
    "del\x7fc1\x85",
    "unicodé✓🎉",
    "x' or PartitionKey ne 'x",
]


def write_instance_with_history(hub, iid: str, name: str = "Hello") -> None:
    hub.write_history([
        schema.history_entity(iid, "e", 0, "ExecutionStarted", event_id=-1, is_played=True,
                              timestamp=T, Name=name, Input=schema.to_json(iid)),
        schema.sentinel_entity(iid, "e", checkpoint_completed=T),
    ])  # fmt: skip
    hub.write_instance(schema.instance_entity(iid, Name=name, RuntimeStatus="Completed",
                                              CreatedTime=T, ExecutionId="e"))  # fmt: skip


def test_hostile_ids_round_trip_through_the_tables(hub):
    for iid in HOSTILE_IDS:
        write_instance_with_history(hub, iid)
    th = hub.taskhub()
    assert sorted(th.instances().InstanceId) == sorted(HOSTILE_IDS)
    for iid in HOSTILE_IDS:
        df = th.history(iid)
        assert df.InstanceId.tolist() == [iid], iid
        assert df.Input.tolist() == [iid]
    both = th.histories(HOSTILE_IDS, max_workers=4)
    assert both.InstanceId.tolist() == HOSTILE_IDS
    assert th.instances(instance_id_prefix="a/").InstanceId.tolist() == ["a/b"]
    assert th.instances(instance_id_prefix="^").InstanceId.tolist() == ["^0"]
    assert th.instances(instance_id_prefix="k'").InstanceId.tolist() == ["k'l"]


def test_odata_injection_is_impossible(hub):
    write_instance_with_history(hub, "victim", name="Secret")
    write_instance_with_history(hub, "x' or PartitionKey ne 'x", name="Hello")
    th = hub.taskhub()
    for evil in ["' or PartitionKey ne '", "victim' or '1' eq '1", "x') or (RowKey ne '"]:
        with pytest.raises(InstanceNotFoundError):
            th.history(evil)
    # an id that *looks* like an injection is just an id
    assert th.history("x' or PartitionKey ne 'x").InstanceId.unique().tolist() == [
        "x' or PartitionKey ne 'x"
    ]
    assert th.instances(name="Hello' or Name ne '").empty
    assert th.instances(name="Secret' or Name eq 'Hello").empty
    assert th.instances(instance_id_prefix="' or PartitionKey ne '").empty
    assert th.history("victim", execution="e' or ExecutionId ne 'e").empty
    with pytest.raises(ValueError, match="Unknown runtime status"):
        th.instances(status="Completed' or RuntimeStatus ne '")


def test_unknown_instance_is_a_key_error_with_a_clear_message(hub):
    th = hub.taskhub()
    with pytest.raises(KeyError) as info:
        th.history("does-not-exist")
    assert isinstance(info.value, InstanceNotFoundError)
    assert "does-not-exist" in str(info.value) and hub.names.hub in str(info.value)
    with pytest.raises(InstanceNotFoundError):
        th.instance("does-not-exist")
    with pytest.raises(InstanceNotFoundError):
        th.histories(["does-not-exist"])
    assert th.histories(["does-not-exist"], missing="skip").empty


def test_pending_instance_without_history_is_empty_not_missing(hub):
    hub.write_instance(schema.instance_entity("pending", Name="X", RuntimeStatus="Pending"))
    df = hub.taskhub().history("pending")
    assert df.empty and "EventType" in df.columns


def test_missing_hub_names_the_hubs_that_exist(hub, connection_string):
    th = TaskHub(connection_string, hub="NoSuchHub")
    with pytest.raises(LookupError) as info:
        th.history("x")
    assert isinstance(info.value, HubNotFoundError)
    assert "NoSuchHub" in str(info.value) and hub.names.hub in str(info.value)
    with pytest.raises(HubNotFoundError):
        th.instances()
    assert hub.names.hub in TaskHub.hubs(connection_string)


def test_invalid_hub_name():
    with pytest.raises(ValueError, match="letters and digits"):
        TaskHub("UseDevelopmentStorage=true", hub="my-hub")


def test_repr_and_errors_never_show_the_key(hub, connection_string):
    th = hub.taskhub()
    assert AZURITE_KEY not in repr(th) and "AccountKey" not in repr(th)
    assert hub.names.hub in repr(th)
    secret = "c2VjcmV0LWtleS1kby1ub3QtcHJpbnQ="
    unreachable = (
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={secret};"
        "TableEndpoint=http://127.0.0.1:9/devstoreaccount1;"
        "BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;"
        "QueueEndpoint=http://127.0.0.1:9/devstoreaccount1"
    )
    bad = TaskHub(unreachable, hub="H12", retry_total=0)  # client options: fail fast
    assert secret not in repr(bad)
    with pytest.raises(StorageConfigurationError) as info:
        bad.history("x")
    assert secret not in str(info.value) and "Cannot reach" in str(info.value)
    wrong_key = connection_string.replace(AZURITE_KEY, secret)
    with pytest.raises(StorageConfigurationError) as info:
        TaskHub(wrong_key, hub=hub.names.hub).history("x")
    assert secret not in str(info.value)
    # Listing the hubs says the same things (it builds its own clients, default retries: ~5 s).
    with pytest.raises(StorageConfigurationError, match="rejected the request") as info:
        TaskHub.hubs(wrong_key)
    assert secret not in str(info.value)
    with pytest.raises(StorageConfigurationError, match="Cannot reach") as info:
        TaskHub.hubs(unreachable)
    assert secret not in str(info.value)
    with pytest.raises(StorageConfigurationError):
        TaskHub("this is not a connection string", hub="H12")


def test_endpoint_that_never_answers_is_a_bounded_clear_error():
    with socket.socket() as listener:  # the kernel completes the handshake; nobody answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        silent = (
            f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};"
            + "".join(f"{s}Endpoint=http://127.0.0.1:{port}/devstoreaccount1;" for s in SERVICES)
        )
        started = time.monotonic()
        with pytest.raises(StorageConfigurationError, match="did not answer in time") as info:
            TaskHub(silent, hub="H12", read_timeout=1, retry_total=0).history("x")
        assert time.monotonic() - started < 30
        assert AZURITE_KEY not in str(info.value) and "read_timeout" in str(info.value)


def test_unreachable_blob_endpoint_while_inlining_a_payload(hub, connection_string):
    row = schema.history_entity("big", "e", 0, "ExecutionStarted", event_id=-1, is_played=True,
                                timestamp=T, Name="Big", Input="z" * 40000)  # fmt: skip
    entity, blobs = schema.offload_history_payloads(row)
    assert blobs, "the input is large enough to live in a blob"
    hub.upload(blobs)
    hub.write_history([entity, schema.sentinel_entity("big", "e", checkpoint_completed=T)])
    no_blobs = re.sub(r"BlobEndpoint=[^;]*", "BlobEndpoint=http://127.0.0.1:9/devstoreaccount1",
                      connection_string)  # fmt: skip
    assert no_blobs != connection_string
    with pytest.raises(StorageConfigurationError, match="Cannot reach"):
        TaskHub(no_blobs, hub=hub.names.hub, retry_total=0).history("big")


def test_one_id_as_a_string_is_one_instance(hub, tmp_path, monkeypatch):
    write_instance_with_history(hub, "abc")
    th = hub.taskhub()
    assert th.histories("abc").InstanceId.unique().tolist() == ["abc"]
    with pytest.raises(InstanceNotFoundError):
        th.histories("a")
    monkeypatch.setenv("HOME", str(tmp_path))
    saved = th.snapshot("~/one", instance_ids="abc")
    assert saved == tmp_path / "one"
    from durable_helpers.snapshot import load_snapshot

    assert load_snapshot("~/one").instances.InstanceId.tolist() == ["abc"]


def test_package_exports():
    import durable_helpers
    import durable_helpers.taskhub as taskhub

    assert durable_helpers.TaskHub is taskhub.TaskHub
    assert issubclass(durable_helpers.InstanceNotFoundError, KeyError)
    assert issubclass(durable_helpers.HubNotFoundError, LookupError)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(iid=st.text(min_size=1, max_size=40))
def test_any_instance_id_round_trips_through_azurite(hub, iid):
    hub.write_history([
        schema.history_entity(iid, "e", 0, "ExecutionStarted", event_id=-1, is_played=True,
                              timestamp=T, Name="N"),
    ])  # fmt: skip
    df = hub.taskhub().history(iid)
    assert df.InstanceId.tolist() == [iid]
