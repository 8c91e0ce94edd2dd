"""Payloads over 60 KiB live gzipped in {h}-largemessages; the reader fetches them."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from durable_helpers import schema

T = datetime(2026, 11, 26, 12, 0, tzinfo=schema.UTC)


def test_large_input_and_result_in_blobs(hub):
    big_input = {"cities": ["Tokyo-" + str(i) for i in range(8000)]}  # ~100 KB of JSON
    big_result = "x" * 40000  # 80 KB in UTF-16
    instance = "big/one"
    rows = [
        schema.history_entity(instance, "e", 0, "OrchestratorStarted", event_id=-1,
                              is_played=False, timestamp=T),
        schema.history_entity(instance, "e", 1, "ExecutionStarted", event_id=-1, is_played=True,
                              timestamp=T, Name="Big", Version="", Input=big_input),
        schema.history_entity(instance, "e", 2, "TaskScheduled", event_id=0, is_played=False,
                              timestamp=T, Name="Echo"),
        schema.history_entity(instance, "e", 3, "TaskCompleted", event_id=-1, is_played=True,
                              timestamp=T + timedelta(seconds=2), TaskScheduledId=0,
                              Result=json.dumps(big_result)),
    ]  # fmt: skip
    written, blob_names = [], {}
    for row in rows:
        entity, blobs = schema.offload_history_payloads(row)
        hub.upload(blobs)
        written.append(entity)
        for prop in schema.LARGE_PAYLOAD_PROPERTIES:
            if prop + "BlobName" in entity:
                blob_names[(entity["RowKey"], prop)] = entity[prop + "BlobName"]
    assert set(blob_names) == {("0000000000000001", "Input"), ("0000000000000003", "Result")}
    name = blob_names[("0000000000000001", "Input")]
    assert name.startswith("big^0one/history-0000000000000001-ExecutionStarted-")
    assert name.endswith("-Input.json.gz")
    hub.write_history([*written, schema.sentinel_entity(instance, "e", checkpoint_completed=T)])

    stored = hub.history.get_entity("big^0one", "0000000000000001")
    assert stored["Input"] == "" and stored["InputBlobName"] == name

    df = hub.taskhub().history(instance)
    started = df[df.EventType == "ExecutionStarted"].iloc[0]
    assert started.Input == big_input
    assert json.loads(started.InputRaw) == big_input
    assert started.InputBlobName == name  # the blob reference is kept
    done = df[df.EventType == "TaskCompleted"].iloc[0]
    assert done.Result == big_result
    assert done.Duration.total_seconds() == 2
    assert df.TableTimestamp.notna().all()  # rows copied to inline a blob keep their Timestamp

    # The Instances row points at the same blob by URL, as the provider does.
    instance_row = schema.instance_entity(
        instance,
        Name="Big",
        RuntimeStatus="Running",
        Input=schema.to_json(big_input),
        CreatedTime=T,
    )
    entity, extra = schema.offload_instance_payloads(
        instance_row, hub.container.url, blob_names={"Input": name}
    )
    assert extra == [] and entity["Input"].startswith("http") and "%5E0" in entity["Input"]
    hub.write_instance(entity)
    inst = hub.taskhub().instances()
    assert inst.Input.iloc[0] == big_input
    assert inst.TableTimestamp.notna().all()


def test_instance_only_blob_and_missing_blob(hub):
    big = '"' + "y" * 31000 + '"'
    entity, blobs = schema.offload_instance_payloads(
        schema.instance_entity("solo", RuntimeStatus="Completed", Output=big), hub.container.url
    )
    assert len(blobs) == 1
    hub.upload(blobs)
    hub.write_instance(entity)
    # A History row whose blob was purged: the value stays empty, nothing raises.
    hub.write_history([
        schema.history_entity("solo", "e", 0, "ExecutionStarted", event_id=-1, is_played=True,
                              timestamp=T, Input="", InputBlobName="solo/history-gone.json.gz"),
    ])  # fmt: skip
    th = hub.taskhub()
    assert th.instances().Output.iloc[0] == "y" * 31000
    assert th.history("solo").Input.isna().all()


def test_url_of_another_container_is_not_followed(hub):
    hub.write_instance(schema.instance_entity(
        "elsewhere", RuntimeStatus="Completed",
        Output="http://example.invalid/other-container/x.json.gz"))  # fmt: skip
    out = hub.taskhub().instances().Output.iloc[0]
    assert out == "http://example.invalid/other-container/x.json.gz"
