"""schema without storage: names, keys, typed entities, large payloads; property-based checks."""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from durable_helpers import frames, schema

T = datetime(2026, 11, 26, 12, 0, tzinfo=schema.UTC)


# ------------------------------------------------------------------ names


@pytest.mark.parametrize("name", ["abc", "DurableFunctionsHub", "T" + "x" * 44, "Hub2"])
def test_valid_hub_names(name):
    assert schema.validate_hub_name(name) == name


@pytest.mark.parametrize("name", ["ab", "1hub", "my-hub", "hub_1", "T" + "x" * 45, "", "hüb"])
def test_invalid_hub_names_say_what_is_allowed(name):
    with pytest.raises(ValueError, match="3 to 45 characters, only letters and digits"):
        schema.hub_names(name)


def test_hub_names():
    names = schema.hub_names("MyHub")
    assert (names.hub, names.history_table, names.instances_table) == (
        "MyHub",
        "MyHubHistory",
        "MyHubInstances",
    )
    assert names.workitems_queue == "myhub-workitems"
    assert names.largemessages_container == "myhub-largemessages"
    assert names.control_queue(0) == "myhub-control-00"
    assert names.control_queues() == [f"myhub-control-0{i}" for i in range(4)]
    assert names.control_queues(16)[-1] == "myhub-control-15"
    with pytest.raises(ValueError):
        names.control_queues(17)


# ------------------------------------------------------------------ keys


@pytest.mark.parametrize(
    ("plain", "escaped"),
    [
        ("abc", "abc"),
        ("a/b\\c#d?e^f", "a^0b^1c^2d^3e^^f"),
        ("\x00", "^\u00c0"),
        ("\x1f", "^\u00df"),
        ("\x7f", "^\u013f"),
        ("\x9f", "^\u015f"),
        ("\xa0", "\xa0"),
        ("it's", "it's"),
    ],
)
def test_escape_partition_key_examples(plain, escaped):
    assert schema.escape_partition_key(plain) == escaped
    assert schema.unescape_partition_key(escaped) == plain


def test_unescape_is_tolerant():
    assert schema.unescape_partition_key("dangling^") == "dangling^"
    assert schema.unescape_partition_key("^A") == "A"  # below the offset: kept (as DTFx does)


@given(st.text())
def test_escape_round_trips(text):
    key = schema.escape_partition_key(text)
    assert schema.unescape_partition_key(key) == text
    assert not any(c in key for c in "/\\#?")
    assert not any(ord(c) <= 0x1F or 0x7F <= ord(c) <= 0x9F for c in key)


@given(st.text(), st.text())
def test_escape_is_injective(a, b):
    if a != b:
        assert schema.escape_partition_key(a) != schema.escape_partition_key(b)


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_row_key_round_trips_and_sorts(n):
    key = schema.row_key(n)
    assert len(key) == 16 and key == key.upper()
    assert schema.parse_row_key(key) == n
    assert (schema.row_key(n) < schema.row_key(n + 1)) or n + 1 >= 2**64


def test_row_key_examples_and_errors():
    assert schema.row_key(0) == "0000000000000000"
    assert schema.row_key(15) == "000000000000000F"
    assert schema.row_key(15) < schema.SENTINEL_ROW_KEY
    for bad in ["sentinel", "", "12", "000000000000000G"]:
        with pytest.raises(ValueError):
            schema.parse_row_key(bad)
    with pytest.raises(ValueError):
        schema.row_key(-1)


def test_odata_literals():
    assert schema.odata_string("a'b") == "'a''b'"
    assert schema.odata_datetime(datetime(2026, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))) == (
        "datetime'2026-01-01T00:00:00.000000Z'"
    )
    assert schema.odata_datetime(datetime(1, 1, 1, tzinfo=schema.UTC)).startswith("datetime'0001-")
    assert schema.prefix_range("a/") == ("a^0", "a^1")
    assert schema.prefix_range("") is None


def test_event_types_and_statuses():
    assert schema.EVENT_TYPES[0] == "ExecutionStarted"
    assert schema.EVENT_TYPES.index("OrchestratorStarted") == 12
    assert schema.EVENT_TYPES[21] == "ExecutionRewound"
    assert set(schema.RUNTIME_STATUSES) == set(schema.ORCHESTRATION_STATUS_CODES)


# ------------------------------------------------------------------ encode


def test_history_entity_types():
    e = schema.history_entity(
        "a/b", "ex", 14, "ExecutionCompleted", event_id=3, is_played=False,
        timestamp=datetime(2026, 1, 1), OrchestrationStatus="Completed",
        Result='["x"]', FailureDetails=None, Tags={"k": "v"}, FireAt=None,
    )  # fmt: skip
    assert e["PartitionKey"] == "a^0b" and e["RowKey"] == "000000000000000E"
    assert e["EventType"] == "ExecutionCompleted" and e["EventId"] == 3
    assert e["IsPlayed"] is False and e["ExecutionId"] == "ex"
    assert e["_Timestamp"] == datetime(2026, 1, 1, tzinfo=schema.UTC)  # naive taken as UTC
    assert "FailureDetails" not in e and "FireAt" not in e  # None is omitted
    assert e["Tags"] == '{"k":"v"}'  # complex members are compact JSON text
    assert "Timestamp" not in e


@pytest.mark.parametrize(
    "kwargs",
    [
        {"event_type": "NoSuchEvent"},
        {"TaskScheduledId": "0"},
        {"TaskScheduledId": 2**31},
        {"Timestamp": T},
        {"PartitionKey": "x"},
        {"OrchestrationStatus": "Done"},
    ],
)
def test_history_entity_rejects_bad_values(kwargs):
    base = {"event_type": "TaskCompleted"}
    base.update(kwargs)
    event_type = base.pop("event_type")
    with pytest.raises((ValueError, TypeError)):
        schema.history_entity("i", "e", 0, event_type, event_id=-1, is_played=True,
                              timestamp=T, **base)  # fmt: skip


def test_sentinel_and_instance_entities():
    final = schema.sentinel_entity("i", "e", checkpoint_completed=T)
    assert final == {"PartitionKey": "i", "RowKey": "sentinel", "ExecutionId": "e",
                     "IsCheckpointComplete": True, "CheckpointCompletedTimestamp": T}  # fmt: skip
    partial = schema.sentinel_entity("i", "e", checkpoint_completed=None)
    assert partial["IsCheckpointComplete"] is False
    assert "CheckpointCompletedTimestamp" not in partial
    inst = schema.instance_entity("i#1", Name="N", RuntimeStatus="Pending", Generation=0,
                                  CustomStatus="null", Input=None, CreatedTime=T)  # fmt: skip
    assert inst["PartitionKey"] == "i^21" and inst["RowKey"] == ""
    assert "Input" not in inst and inst["CustomStatus"] == "null"
    with pytest.raises(ValueError):
        schema.instance_entity("i", RuntimeStatus="Done")


def test_large_payload_threshold_and_offload():
    assert not schema.is_large("x" * 30720) and schema.is_large("x" * 30721)
    assert schema.is_large("🎉" * 15361)  # a non-BMP character is 4 UTF-16 bytes
    assert not schema.is_large("🎉" * 15360)
    small = schema.history_entity("i", "e", 1, "ExecutionStarted", event_id=-1, is_played=True,
                                  timestamp=T, Input='"x"')  # fmt: skip
    assert schema.offload_history_payloads(small) == (small, [])
    text = json.dumps("é" * 40000)
    big = dict(small, Input=text, Details="d" * 30721)
    out, blobs = schema.offload_history_payloads(big, random_hex="ABCDEF01")
    assert out["Input"] == "" and out["Details"] == ""
    assert (
        out["InputBlobName"] == "i/history-0000000000000001-ExecutionStarted-ABCDEF01-Input.json.gz"
    )
    assert [n for n, _ in blobs] == [out["InputBlobName"], out["DetailsBlobName"]]
    assert gzip.decompress(blobs[0][1]).decode("utf-8") == text
    assert big["Input"] == text  # the input entity is not modified
    back = schema.inline_large_payloads(out, dict(blobs).get)
    assert back["Input"] == text and back["Details"] == "d" * 30721


# ------------------------------------------------------------------ decode


def test_failure_split_variants():
    assert schema.split_failure("ExecutionSuspended", reason="maintenance") == (None, None, None)
    assert schema.split_failure(
        "TaskFailed", failure_details={"errorType": "ValueError", "errorMessage": "bad"}
    ) == ("ValueError", "bad", None)
    details = json.dumps({"$type": "System.Exception, mscorlib", "Message": "m"})
    assert schema.split_failure("TaskFailed", reason="r", details=details)[:2] == (
        "System.Exception",
        "m",
    )


def test_decode_accepts_string_datetimes_and_int64():
    from azure.data.tables import EdmType, EntityProperty

    row = schema.decode_history_row({
        "PartitionKey": "i", "RowKey": "0000000000000001", "EventType": "TimerCreated",
        "EventId": EntityProperty(7, EdmType.INT64), "IsPlayed": "false",
        "_Timestamp": "2026-11-26T12:00:00.1234567Z", "FireAt": "2026-11-26T12:01:00Z",
        "Timestamp": "2026-11-26T12:00:01Z",
    })  # fmt: skip
    assert row["EventId"] == 7 and row["IsPlayed"] is False
    assert row["Timestamp"] == T + timedelta(microseconds=123456)
    assert row["FireAt"] == T + timedelta(minutes=1)
    assert row["TableTimestamp"] == T + timedelta(seconds=1)


BASE_ROW = {
    "PartitionKey": "inst",
    "RowKey": "0000000000000005",
    "EventType": "TaskFailed",
    "EventId": -1,
    "IsPlayed": True,
    "_Timestamp": T,
    "ExecutionId": "e",
    "TaskScheduledId": 0,
    "Reason": "boom",
    "Details": "stack",
    "FailureDetails": '{"ErrorType":"E","ErrorMessage":"boom","StackTrace":"s"}',
    "Result": '"r"',
    "Input": "null",
    "Tags": "",
    "ParentInstance": "null",
    "Name": "Hello",
}
NULLISH = st.sampled_from([None, "", "null"])
EXTRA_NAMES = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", min_size=3,
                      max_size=12).map(lambda s: "X" + s)  # fmt: skip
EXTRA_VALUES = st.one_of(
    st.none(), st.text(max_size=20), st.integers(-(2**31), 2**31 - 1), st.booleans(),
    st.floats(allow_nan=False), st.datetimes(timezones=st.just(schema.UTC)),
)  # fmt: skip


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    drop=st.sets(st.sampled_from(sorted(BASE_ROW))),
    nulls=st.dictionaries(st.sampled_from(["FailureDetails", "Tags", "ParentInstance", "Input",
                                           "Result", "Reason", "Details"]), NULLISH),
    extras=st.dictionaries(EXTRA_NAMES, EXTRA_VALUES, max_size=4),
)  # fmt: skip
def test_decoding_rows_with_missing_and_extra_columns(drop, nulls, extras):
    row = {k: v for k, v in BASE_ROW.items() if k not in drop}
    row.update({k: v for k, v in nulls.items() if k in row})
    row = {k: v for k, v in row.items() if v is not None}
    row.update({k: v for k, v in extras.items()})
    decoded = schema.decode_history_row(row)
    for column in frames.HISTORY_COLUMNS:
        if column not in ("ScheduledTime", "Duration"):
            assert column in decoded
    for name in extras:
        assert name in decoded
    for complex_column in ("Tags", "ParentInstance"):
        if schema.is_null(row.get(complex_column)):
            assert decoded[complex_column] is None
    if schema.is_null(row.get("FailureDetails")):
        assert decoded["FailureDetails"] is None
    df = frames.history_frame([row, dict(row, RowKey="0000000000000006")])
    assert len(df) == 2
    assert list(df.columns[: len(frames.HISTORY_COLUMNS)]) == list(frames.HISTORY_COLUMNS)
    for name in extras:
        assert name in df.columns
    assert str(df.Timestamp.dtype) == "datetime64[ns, UTC]"
    if "FailureDetails" in row and not schema.is_null(row["FailureDetails"]):
        assert df.FailureType.iloc[0] == "E"


def test_instances_frame_unknown_status_and_empty():
    df = frames.instances_frame([{"PartitionKey": "a", "RowKey": "", "RuntimeStatus": "Paused"}])
    assert df.RuntimeStatus.iloc[0] == "Paused"
    assert "Paused" in df.RuntimeStatus.cat.categories
    empty = frames.instances_frame([])
    assert list(empty.columns) == list(frames.INSTANCE_COLUMNS) and len(empty) == 0
    assert str(empty.Duration.dtype) == "timedelta64[ns]"
    assert pd.api.types.is_string_dtype(empty.InstanceId)


def test_instance_input_from_a_queue_message_blob():
    message = {
        "$type": "DurableTask.AzureStorage.MessageData",
        "ActivityId": "5b4f...",
        "TaskMessage": {"Event": {"EventType": 0, "Input": '{"big":true}'}},
    }
    name = "my id/message-0123456789abcdef0123456789abcdef-ExecutionStarted.json.gz"
    blobs = {name: gzip.compress(json.dumps(message).encode())}
    url = "https://acct.blob.core.windows.net/h-largemessages/" + name.replace(" ", "%20")
    row = {"PartitionKey": "my id", "RowKey": "", "Input": url, "RuntimeStatus": "Pending"}
    df = frames.instances_frame([row], fetch_blob=blobs.get, container="h-largemessages")
    assert df.Input.iloc[0] == {"big": True}
    assert df.InputRaw.iloc[0] == '{"big":true}'
