"""The entity storage layout in schema: ids, scheduler state, status, messages, rows, queries.

Expected texts are the ones durable-entities.md gives for the two engines (DurableTask.Core and
classic DF 2.x, with its ``exists`` and ``$type`` keys); round trips are checked with hypothesis.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from durable_helpers import schema

UTC = schema.UTC
T = datetime(2025, 1, 10, 8, 1, 0, 123456, tzinfo=UTC)
CLASSIC_REQUEST_TYPE = (
    "Microsoft.Azure.WebJobs.Extensions.DurableTask.RequestMessage, "
    "Microsoft.Azure.WebJobs.Extensions.DurableTask"
)

names = st.text(min_size=1, max_size=20).filter(lambda s: "@" not in s)
keys = st.text(max_size=30)
stamps = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(9000, 1, 1), timezones=st.just(UTC)
)
json_texts = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
).map(schema.to_json)


# ---------------------------------------------------------------------------- ids


def test_entity_ids_lower_case_the_name_and_keep_the_key() -> None:
    assert schema.entity_instance_id("MyEntity", "TestInstance") == "@myentity@TestInstance"
    assert schema.split_entity_id("@counter@a@b/c") == ("counter", "a@b/c")  # first '@' after 0
    assert schema.split_entity_id("@lock@") == ("lock", "")  # an empty key is legal in DTFx


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ("counter", "not an entity id"),
        ("", "not an entity id"),
        ("@", "no second '@'"),
        ("@counter", "no second '@'"),
        ("@@key", "name before the key is empty"),
    ],
)
def test_malformed_entity_ids_raise_a_clear_error(bad: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        schema.split_entity_id(bad)


@pytest.mark.parametrize(("name", "key"), [("", "k"), ("a@b", "k"), ("ok", 5), (None, "k")])
def test_entity_instance_id_rejects_what_no_reader_could_split(name, key) -> None:
    with pytest.raises(ValueError, match=r"entity (name|key)"):
        schema.entity_instance_id(name, key)


@given(names, keys)
def test_entity_ids_round_trip(name: str, key: str) -> None:
    entity_id = schema.entity_instance_id(name, key)
    assert schema.is_entity_id(entity_id)
    assert schema.split_entity_id(entity_id) == (name.lower(), key)


@given(st.text(max_size=12))
def test_is_entity_id_is_the_partition_key_range_the_reader_leaves_out(instance_id: str) -> None:
    low, high = schema.ENTITY_KEY_RANGE
    in_range = low <= schema.escape_partition_key(instance_id) < high
    assert schema.is_entity_id(instance_id) == in_range


def test_the_not_entities_filter_is_the_providers() -> None:
    assert schema.NOT_ENTITIES_FILTER == "PartitionKey lt '@' or PartitionKey ge 'A'"
    assert schema.prefix_range(schema.ENTITY_ID_PREFIX) == schema.ENTITY_KEY_RANGE


# ---------------------------------------------------------------------------- scheduler state


def test_scheduler_state_is_written_in_the_core_shape() -> None:
    assert schema.scheduler_state_json(state="5") == '{"state":"5","sorter":{}}'
    assert schema.scheduler_state_json(state=None) == '{"sorter":{}}'  # deleted, idle
    waiting = [{"op": "add", "id": "r1"}, {"op": "get", "id": "r2", "parent": "orch3"}]
    text = schema.scheduler_state_json(
        state="5", queue=waiting, locked_by="orch2", suspended=True, sorter={"X": 1}
    )
    assert text == (
        '{"state":"5","queue":[{"op":"add","id":"r1"},{"op":"get","id":"r2","parent":"orch3"}],'
        '"lockedBy":"orch2","suspended":true,"sorter":{"X":1}}'
    )
    assert "exists" not in text and "$type" not in text
    with pytest.raises(ValueError, match="JSON text"):
        schema.scheduler_state_json(state={"value": 9})  # type: ignore[arg-type]


@given(
    state=st.none() | json_texts,
    queue=st.lists(st.fixed_dictionaries({"op": st.text(max_size=5), "id": st.uuids().map(str)})),
    locked_by=st.none() | st.text(min_size=1, max_size=10),
    suspended=st.booleans(),
)
def test_scheduler_state_round_trips(state, queue, locked_by, suspended) -> None:
    parsed = schema.parse_scheduler_state(
        schema.scheduler_state_json(
            state=state, queue=queue, locked_by=locked_by, suspended=suspended
        )
    )
    assert parsed == schema.SchedulerState(
        exists=state is not None,
        state=state,
        queue=queue,
        locked_by=locked_by,
        suspended=suspended,
        engine="core",
        sorter={},
    )


def test_classic_scheduler_states_are_read_with_their_exists_flag() -> None:
    classic = schema.parse_scheduler_state('{"exists":true,"state":"5","sorter":{}}')
    assert (classic.exists, classic.state, classic.engine) == (True, "5", "classic")
    # a classic entity whose state was deleted keeps exists false even with a stale state
    stale = schema.parse_scheduler_state('{"exists":false,"state":"5","sorter":{}}')
    assert (stale.exists, stale.engine) == (False, "classic")
    # $type anywhere (queued messages sent with the default converter) marks the classic engine
    queued = json.dumps(
        {
            "exists": True,
            "state": '{"value":9}',
            "queue": [{"$type": CLASSIC_REQUEST_TYPE, "op": "add", "id": "r1"}],
            "lockedBy": "orch2",
            "sorter": {},
        }
    )
    parsed = schema.parse_scheduler_state(queued)
    assert (parsed.engine, parsed.locked_by, parsed.queue[0]["op"]) == ("classic", "orch2", "add")
    assert schema.parse_scheduler_state('{"queue":[{"$type":"x","id":"r"}]}').engine == "classic"


def test_scheduler_state_reading_is_tolerant() -> None:
    core = schema.parse_scheduler_state(
        '{"state":"5","sorter":{"ReceivedFromInstance":{"orch1":{"Last":"2025-01-10T08:01:00.'
        '1234567Z","ExecutionId":"X1"}},"ReceiveHorizon":"2025-01-10T07:31:00.1234567Z"},'
        '"futureField":[1,2]}'
    )
    assert (core.exists, core.state, core.engine) == (True, "5", "core")
    assert core.sorter["ReceivedFromInstance"]["orch1"]["ExecutionId"] == "X1"
    # a tool that stored the state already parsed (issue #2800's dump) gives JSON text back
    dumped = schema.parse_scheduler_state('{"exists":true,"state":{"value":9}}')
    assert json.loads(dumped.state) == {"value": 9}
    for nothing in (None, "", "null"):
        assert schema.parse_scheduler_state(nothing) == schema.SchedulerState(False, None)
    for junk in ("not json", "[1,2]", '"text"'):
        with pytest.raises(ValueError, match="scheduler state"):
            schema.parse_scheduler_state(junk)


# ---------------------------------------------------------------------------- status


def test_entity_status_both_ways() -> None:
    assert schema.entity_status_json(exists=True, queue_size=0, locked_by=None) == (
        '{"entityExists":true}'
    )
    assert schema.entity_status_json(exists=False, queue_size=0, locked_by=None) == "{}"
    text = schema.entity_status_json(exists=True, queue_size=2, locked_by="orch2")
    assert text == '{"entityExists":true,"queueSize":2,"lockedBy":"orch2"}'
    assert schema.parse_entity_status(text) == schema.EntityStatus(True, 2, "orch2")
    with pytest.raises(ValueError, match="queue_size"):
        schema.entity_status_json(exists=True, queue_size=-1, locked_by=None)


def test_classic_entity_statuses_are_read() -> None:
    running = schema.parse_entity_status(
        '{"entityExists":true,"currentOperation":{"op":"add","id":"r1","parent":null,'
        '"startTime":"2025-01-10T08:01:00Z"}}'
    )
    assert running.exists and running.current_operation["op"] == "add"
    failed = schema.parse_entity_status("Internal Error: System.Exception: boom")
    assert failed == schema.EntityStatus(error="Internal Error: System.Exception: boom")
    assert schema.parse_entity_status(None) == schema.EntityStatus()
    assert schema.parse_entity_status("[1]").error == "[1]"


@given(st.booleans(), st.integers(min_value=0, max_value=10**6), st.none() | st.text(max_size=9))
def test_entity_status_round_trips(exists: bool, size: int, locked_by: str | None) -> None:
    text = schema.entity_status_json(exists=exists, queue_size=size, locked_by=locked_by)
    assert schema.parse_entity_status(text) == schema.EntityStatus(exists, size, locked_by)


# ---------------------------------------------------------------------------- messages


def test_request_messages_match_the_references_core_examples() -> None:
    signal = schema.request_message_json(op="add", id="R1", input="5", signal=True, timestamp=None)
    assert signal == (
        '{"op":"add","signal":true,"input":"5","id":"R1","Timestamp":"0001-01-01T00:00:00",'
        '"Predecessor":"0001-01-01T00:00:00","IsLockRequest":false,"createTrace":false}'
    )
    call = schema.request_message_json(
        op="get", id="R2", parent="orch1", parent_execution="X1", timestamp=T
    )
    assert call == (
        '{"op":"get","id":"R2","parent":"orch1","parentExecution":"X1",'
        '"Timestamp":"2025-01-10T08:01:00.123456Z","Predecessor":"0001-01-01T00:00:00",'
        '"IsLockRequest":false,"createTrace":false}'
    )
    lock = schema.request_message_json(
        op=None, id="CS", parent="orch1", timestamp=T, lockset=[("a", "1"), ("b", "2")], pos=1
    )
    assert json.loads(lock) == {
        "op": None,
        "id": "CS",
        "parent": "orch1",
        "Timestamp": "2025-01-10T08:01:00.123456Z",
        "Predecessor": "0001-01-01T00:00:00",
        "lockset": [{"name": "a", "key": "1"}, {"name": "b", "key": "2"}],
        "pos": 1,
        "IsLockRequest": True,
        "createTrace": False,
    }


@given(
    op=st.none() | st.text(max_size=8),
    input_=st.none() | json_texts,
    signal=st.booleans(),
    parent=st.none() | st.text(min_size=1, max_size=8),
    parent_execution=st.none() | st.text(min_size=1, max_size=8),
    due=st.none() | stamps,
    timestamp=st.none() | stamps,
    predecessor=st.none() | stamps,
    lockset=st.none() | st.lists(st.tuples(names.map(str.lower), keys), max_size=3),
    pos=st.integers(min_value=0, max_value=5),
)
def test_request_messages_round_trip_with_id_where_dtfx_looks_for_it(
    op, input_, signal, parent, parent_execution, due, timestamp, predecessor, lockset, pos
) -> None:
    fields = {
        "op": op,
        "id": "6f1c2a8e-0000-4000-8000-000000000001",
        "input": input_,
        "signal": signal,
        "parent": parent,
        "parent_execution": parent_execution,
        "due": due,
        "timestamp": timestamp,
        "predecessor": predecessor,
        "lockset": lockset,
        "pos": pos,
    }
    text = schema.request_message_json(**fields)
    order = list(json.loads(text))
    assert order.index("id") == len([k for k in order if k in schema.REQUEST_KEYS_BEFORE_ID])
    assert all(k in schema.REQUEST_KEYS_BEFORE_ID for k in order[: order.index("id")])
    parsed = schema.parse_request_message(text)
    assert parsed == schema.RequestMessage(**fields)
    assert parsed.is_lock_request == (lockset is not None)


def test_classic_request_messages_are_read() -> None:
    sent = (
        f'{{"$type":"{CLASSIC_REQUEST_TYPE}","op":"get","id":"R2","parent":"orch1",'
        '"Timestamp":"2025-01-10T08:01:00.1234567Z","Predecessor":"0001-01-01T00:00:00"}'
    )
    parsed = schema.parse_request_message(sent)
    assert (parsed.op, parsed.id, parsed.parent, parsed.type_name) == (
        "get",
        "R2",
        "orch1",
        CLASSIC_REQUEST_TYPE,
    )
    assert parsed.timestamp == T and parsed.predecessor is None and not parsed.is_lock_request
    lock = schema.parse_request_message(
        '{"$type":"X","op":null,"id":"CS","lockset":[{"$type":"EntityId","name":"a","key":"1"},'
        '{"Name":"b","Key":"2"},"@c@3"],"pos":2,"unknownKey":true}'
    )
    assert lock.lockset == [("a", "1"), ("b", "2"), ("c", "3")] and lock.pos == 2
    # a queued dict (from a scheduler state) is accepted as it is
    assert schema.parse_request_message({"op": "add", "id": "r", "input": 5}).input == "5"
    for junk, says in [("{}", "string id"), ("nope", "not JSON"), ("[]", "JSON object")]:
        with pytest.raises(ValueError, match=says):
            schema.parse_request_message(junk)
    with pytest.raises(ValueError, match="lockset element"):
        schema.parse_request_message('{"id":"CS","lockset":[{"name":"a"}]}')


def test_request_messages_refuse_what_would_not_deserialize() -> None:
    with pytest.raises(ValueError, match="request id"):
        schema.request_message_json(op="add", id="", timestamp=T)
    with pytest.raises(ValueError, match="JSON text"):
        schema.request_message_json(op="add", id="r", input=5, timestamp=T)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="entity name"):
        schema.request_message_json(op=None, id="r", timestamp=T, lockset=[("a@b", "1")])
    with pytest.raises(ValueError, match="pairs"):
        schema.request_message_json(op=None, id="r", timestamp=T, lockset=["@a@1"])


def test_responses_and_releases_both_ways() -> None:
    assert schema.response_message_json(result="5") == '{"result":"5"}'
    assert schema.response_message_json(result=None) == '{"result":null}'
    details = {"ErrorType": "builtins.ValueError", "ErrorMessage": "boom", "StackTrace": None}
    failed = schema.response_message_json(
        result="boom", exception_type="builtins.ValueError", failure_details=details
    )
    assert schema.parse_response_message(failed) == schema.ResponseMessage(
        "boom", "builtins.ValueError", details
    )
    assert schema.parse_response_message(failed).is_error
    granted = schema.parse_response_message(
        '{"$type":"Microsoft.Azure.WebJobs.Extensions.DurableTask.ResponseMessage, X",'
        '"result":"Lock Acquisition Completed"}'
    )
    assert granted.is_lock_granted and not granted.is_error
    classic_failure = schema.parse_response_message(
        '{"result":"{\\"Message\\":\\"boom\\"}","exceptionType":"System.Exception, mscorlib"}'
    )
    assert classic_failure.is_error and not classic_failure.is_lock_granted

    assert schema.release_message_json(parent="orch1", id="CS") == '{"parent":"orch1","id":"CS"}'
    classic = schema.parse_release_message('{"$type":"ReleaseMessage","parent":"orch1","id":"CS"}')
    assert classic == schema.ReleaseMessage("orch1", "CS")
    with pytest.raises(ValueError, match="parent"):
        schema.parse_release_message('{"id":"CS"}')
    with pytest.raises(ValueError, match="lock holder"):
        schema.release_message_json(parent="", id="CS")


def test_event_names_and_dotnet_datetimes() -> None:
    due = datetime(2025, 1, 10, 8, 0, tzinfo=UTC)
    assert schema.delayed_operation_event(due) == "op@2025-01-10T08:00:00.0000000Z"
    assert schema.dotnet_o_datetime(T) == "2025-01-10T08:01:00.1234560Z"
    assert schema.dotnet_json_datetime(due) == "2025-01-10T08:00:00Z"  # Newtonsoft trims zeros
    capped = schema.delayed_operation_event(due + timedelta(days=30), now=due)
    assert capped == f"op@{schema.dotnet_o_datetime(due + schema.MAX_SIGNAL_DELAY)}"
    assert schema.classify_entity_event("op@2025-01-10T08:00:00.0000000Z") == schema.EntityEvent(
        "request", due
    )
    assert schema.classify_entity_event(schema.OPERATION_EVENT) == schema.EntityEvent("request")
    assert schema.classify_entity_event(schema.RELEASE_EVENT).kind == "release"
    assert schema.classify_entity_event(schema.CONTINUE_EVENT).kind == "continue"
    assert schema.classify_entity_event("0b4c4d6e-guid").kind == "continue"  # as DTFx counts it


@given(stamps)
def test_delayed_event_names_round_trip(due: datetime) -> None:
    event = schema.classify_entity_event(schema.delayed_operation_event(due))
    assert event == schema.EntityEvent("request", due)


# ---------------------------------------------------------------------------- rows, queries


def test_a_batch_writes_the_three_rows_and_the_instances_row() -> None:
    state = schema.scheduler_state_json(state="5")
    status = schema.entity_status_json(exists=True, queue_size=0, locked_by=None)
    history, row = schema.entity_batch_rows(
        "@counter@a/b",
        "E1",
        scheduler_state=state,
        status=status,
        started=T,
        completed=T + timedelta(milliseconds=5),
        task_hub="H",
    )
    assert [(r["RowKey"], r.get("EventType")) for r in history] == [
        ("0000000000000000", "OrchestratorStarted"),
        ("0000000000000001", "ExecutionStarted"),
        ("0000000000000002", "OrchestratorCompleted"),
        ("sentinel", None),
    ]
    assert {r["PartitionKey"] for r in history} == {"@counter@a^0b"}
    assert {r["ExecutionId"] for r in history} == {"E1"}
    started = history[1]
    assert (started["Name"], started["Version"], started["Input"]) == ("@counter@a/b", "", state)
    assert json.loads(started["OrchestrationInstance"]) == {
        "InstanceId": "@counter@a/b",
        "ExecutionId": "E1",
    }
    assert row["Name"] == "@counter@a/b" and row["RuntimeStatus"] == "Running"
    assert (row["Input"], row["CustomStatus"], row["CreatedTime"]) == (state, status, T)
    assert row["Tags"] == "null" and "Generation" not in row
    decoded = schema.decode_entity_row(row)
    assert (decoded["Name"], decoded["Key"], decoded["State"], decoded["Engine"]) == (
        "counter",
        "a/b",
        5,
        "core",
    )
    with pytest.raises(ValueError, match="not an entity id"):
        schema.entity_batch_rows(
            "counter", "E", scheduler_state=state, status=status, started=T, completed=T
        )


def test_decoding_entity_rows_keeps_what_it_cannot_read() -> None:
    bad_id = schema.decode_entity_row({"PartitionKey": "@nokey", "Input": '{"state":"1"}'})
    assert (bad_id["InstanceId"], bad_id["Name"], bad_id["Key"], bad_id["State"]) == (
        "@nokey",
        None,
        None,
        1,
    )
    not_json = schema.decode_entity_row(
        {"PartitionKey": "@e@k", "Input": '{"state":"hello there"}', "CustomStatus": "{}"}
    )
    assert (not_json["State"], not_json["StateRaw"], not_json["Exists"]) == (
        None,
        "hello there",
        True,
    )
    broken = schema.decode_entity_row({"PartitionKey": "@e@k", "Input": "{truncated"})
    assert (broken["InputRaw"], broken["State"], broken["Engine"]) == ("{truncated", None, None)
    # status and scheduler state disagree: the larger backlog and any lock holder are reported
    both = schema.decode_entity_row(
        {
            "PartitionKey": "@e@k",
            "Input": '{"state":"1","queue":[{"id":"a"},{"id":"b"}],"lockedBy":"o"}',
            "CustomStatus": '{"entityExists":true,"queueSize":1}',
            "NewerColumn": "kept",
        }
    )
    assert (both["BacklogQueueSize"], both["LockedBy"], both["NewerColumn"]) == (2, "o", "kept")


def test_entity_query_filters_are_the_providers() -> None:
    assert schema.entity_query_filter() == "(PartitionKey ge '@' and PartitionKey lt 'A')"
    assert schema.entity_query_filter("@counter@") == (
        "(PartitionKey ge '@counter@' and PartitionKey lt '@counterA')"
    )
    assert schema.entity_query_filter("counter@") == schema.entity_query_filter("@counter@")
    text = schema.entity_query_filter(
        schema.entity_id_prefix("Counter", "a/"), modified_from=T, modified_to=T
    )
    assert text == (
        "(PartitionKey ge '@counter@a^0' and PartitionKey lt '@counter@a^1') and "
        "(CreatedTime ge datetime'2025-01-10T08:01:00.123456Z') and "
        "(CreatedTime le datetime'2025-01-10T08:01:00.123456Z')"
    )
    assert schema.entity_query_filter("@x'") == "(PartitionKey ge '@x''' and PartitionKey lt '@x(')"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
scheduler_like = st.dictionaries(
    st.sampled_from(["exists", "state", "queue", "lockedBy", "suspended", "sorter", "$type", "x"]),
    json_values,
).map(json.dumps)
status_like = st.dictionaries(
    st.sampled_from(["entityExists", "queueSize", "lockedBy", "currentOperation", "x"]),
    json_values,
).map(json.dumps)


@given(
    st.text(max_size=12),
    st.none() | st.text(max_size=30) | scheduler_like,
    st.none() | st.text(max_size=30) | status_like,
)
def test_decoding_any_entity_row_never_raises(tail: str, input_text, status_text) -> None:
    row = {"PartitionKey": schema.escape_partition_key("@" + tail), "RowKey": ""}
    if input_text is not None:
        row["Input"] = input_text
    if status_text is not None:
        row["CustomStatus"] = status_text
    decoded = schema.decode_entity_row(row)
    assert decoded["InstanceId"] == "@" + tail
    assert decoded["InputRaw"] == (input_text or None)
    assert decoded["CustomStatusRaw"] == (status_text or None)
    assert decoded["LockedBy"] is None or isinstance(decoded["LockedBy"], str)
    assert decoded["BacklogQueueSize"] is None or decoded["BacklogQueueSize"] >= 0
    assert decoded["Engine"] in (None, "classic", "core")


message_like = st.dictionaries(
    st.sampled_from(
        ["$type", "op", "signal", "input", "id", "parent", "parentExecution", "due", "Timestamp",
         "Predecessor", "lockset", "pos", "result", "exceptionType", "failureDetails", "x"]
    ),
    json_values,
)  # fmt: skip
#: Sometimes with the members a parser needs, so that it gets past them to the others.
messages = message_like | message_like.map(lambda d: {**d, "id": "r1", "parent": "o1"})


@given(messages.map(json.dumps))
def test_message_parsers_accept_or_say_why(text: str) -> None:
    for parse in (
        schema.parse_request_message,
        schema.parse_response_message,
        schema.parse_release_message,
    ):
        try:
            parse(text)
        except ValueError as error:
            assert "entity" in str(error) or "lockset" in str(error)
