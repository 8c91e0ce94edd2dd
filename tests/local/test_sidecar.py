"""The local task hub sidecar against the real durabletask SDK (client + worker) and Azurite.

One module-scoped sidecar and worker serve every test (see conftest.py); one test per behaviour.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import datetime, timedelta, timezone

import durabletask.internal.orchestrator_service_pb2 as pb
import grpc
import local_orchestrations as o
import pytest
from durabletask.client import OrchestrationQuery, OrchestrationStatus, TaskHubGrpcClient
from durabletask.grpc_options import GrpcChannelOptions
from durabletask.worker import TaskHubGrpcWorker
from local_orchestrations import register

from durable_helpers import schema
from durable_helpers.local.sidecar import LocalTaskHub

UTC = timezone.utc  # noqa: UP017
S = OrchestrationStatus


def done(client: TaskHubGrpcClient, instance_id: str, timeout: float = 20):
    state = client.wait_for_orchestration_completion(instance_id, timeout=timeout)
    assert state is not None
    return state


def rows(rest, hub: str, instance_id: str) -> list[dict]:
    pk = schema.escape_partition_key(instance_id)
    return sorted(
        rest.query_all(f"{hub}History", f"PartitionKey eq {schema.odata_string(pk)}"),
        key=lambda r: r["RowKey"],
    )


def test_activity_sequence_matches_the_seed_rows(client, rest, module_hub_name, iid):
    client.schedule_new_orchestration(o.HelloSequence, instance_id=iid)
    state = done(client, iid)
    assert state.runtime_status == S.COMPLETED
    assert json.loads(state.serialized_output) == [
        "Hello Tokyo!",
        "Hello Seattle!",
        "Hello London!",
    ]

    table = rows(rest, module_hub_name, iid)
    expected = [  # history-after-execution.md, with the Python SDK's action ids (from 1)
        ("OrchestratorStarted", -1, False),
        ("ExecutionStarted", -1, True),
        ("TaskScheduled", 1, False),
        ("OrchestratorCompleted", -1, False),
        ("OrchestratorStarted", -1, False),
        ("TaskCompleted", -1, True),
        ("TaskScheduled", 2, False),
        ("OrchestratorCompleted", -1, False),
        ("OrchestratorStarted", -1, False),
        ("TaskCompleted", -1, True),
        ("TaskScheduled", 3, False),
        ("OrchestratorCompleted", -1, False),
        ("OrchestratorStarted", -1, False),
        ("TaskCompleted", -1, True),
        ("ExecutionCompleted", 4, False),
        ("OrchestratorCompleted", -1, False),
    ]
    assert [r["RowKey"] for r in table] == [schema.row_key(i) for i in range(16)] + ["sentinel"]
    assert [(r["EventType"], r["EventId"], r["IsPlayed"]) for r in table[:-1]] == expected
    execution_id = table[-1]["ExecutionId"]
    assert table[-1]["IsCheckpointComplete"] is True and "CheckpointCompletedTimestamp" in table[-1]
    assert all(r["ExecutionId"] == execution_id for r in table)
    assert table[1]["Name"] == "HelloSequence" and table[2]["Name"] == "Hello"
    assert [r["TaskScheduledId"] for r in table if r.get("EventType") == "TaskCompleted"] == [
        1,
        2,
        3,
    ]
    assert [r["Result"] for r in table if r.get("EventType") == "TaskCompleted"] == [
        '"Hello Tokyo!"',
        '"Hello Seattle!"',
        '"Hello London!"',
    ]
    assert table[14]["OrchestrationStatus"] == "Completed"
    assert all(isinstance(r["_Timestamp"], datetime) for r in table[:-1])
    # rows of one checkpoint are written together (same entity-group transaction)
    assert abs(table[0]["Timestamp"] - table[3]["Timestamp"]) < timedelta(milliseconds=50)

    inst = rest.get_entity(f"{module_hub_name}Instances", iid, "")
    assert inst["RuntimeStatus"] == "Completed" and inst["Name"] == "HelloSequence"
    assert inst["ExecutionId"] == execution_id and inst["TaskHubName"] == module_hub_name
    assert inst["CustomStatus"] == "null" and inst["Generation"] == 0
    assert json.loads(inst["Output"]) == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    assert inst["CreatedTime"] <= inst["LastUpdatedTime"] <= inst["CompletedTime"]


def test_fan_out_fan_in_splits_big_checkpoints(client, rest, module_hub_name, iid):
    client.schedule_new_orchestration(o.fan_out, input=150, instance_id=iid)
    state = done(client, iid, 60)
    assert state.runtime_status == S.COMPLETED and json.loads(state.serialized_output) == 2 * sum(
        range(150)
    )
    table = rows(rest, module_hub_name, iid)
    keys = [r["RowKey"] for r in table[:-1]]
    assert keys == [schema.row_key(i) for i in range(len(keys))]
    scheduled = [r["EventId"] for r in table if r.get("EventType") == "TaskScheduled"]
    completed = sorted(r["TaskScheduledId"] for r in table if r.get("EventType") == "TaskCompleted")
    assert sorted(scheduled) == completed == list(range(1, 151))


def test_activity_failure_fails_the_orchestration(client, rest, module_hub_name, iid):
    client.schedule_new_orchestration(o.failing_activity, input="kaputt", instance_id=iid)
    state = done(client, iid)
    assert state.runtime_status == S.FAILED
    assert "kaputt" in state.failure_details.message
    failed = [r for r in rows(rest, module_hub_name, iid) if r.get("EventType") == "TaskFailed"]
    assert len(failed) == 1
    details = json.loads(failed[0]["FailureDetails"])
    assert details["ErrorType"] == "builtins.ValueError" and details["ErrorMessage"] == "kaputt"
    assert set(details) >= {
        "ErrorType",
        "ErrorMessage",
        "StackTrace",
        "InnerFailure",
        "IsNonRetriable",
    }
    # Like DTFx, the Instances row's Output is "<ErrorType>: <ErrorMessage>" of the failure.
    inst = rest.get_entity(f"{module_hub_name}Instances", iid, "")
    assert inst["RuntimeStatus"] == "Failed"
    expected = f"{state.failure_details.error_type}: {state.failure_details.message}"
    assert inst["Output"] == expected
    assert "kaputt" in inst["Output"]
    assert client.get_orchestration_state(iid).serialized_output is None


def test_retry_policy_on_activities(client, iid):
    client.schedule_new_orchestration(o.retry_activity, input=iid, instance_id=iid)
    state = done(client, iid)
    assert state.runtime_status == S.COMPLETED
    assert json.loads(state.serialized_output) == "ok after 3"


def test_retry_policy_on_sub_orchestrations(client, iid):
    client.schedule_new_orchestration(o.retry_sub_orchestration, input=iid, instance_id=iid)
    state = done(client, iid)
    assert state.runtime_status == S.COMPLETED
    assert json.loads(state.serialized_output) == "ok after 3"


def test_sub_orchestrations_fan_out_by_name_with_parent_id(client, rest, module_hub_name, iid):
    client.schedule_new_orchestration(o.parent_fan_out, input=5, instance_id=iid)
    state = done(client, iid)
    assert state.runtime_status == S.COMPLETED
    out = json.loads(state.serialized_output)
    assert [c["value"] for c in out] == [0, 1, 2, 3, 4, 100]
    assert all(c["parent"] == iid for c in out)
    assert out[-1]["me"] == iid + "-named"
    started = rows(rest, module_hub_name, out[0]["me"])[1]
    assert started["EventType"] == "ExecutionStarted"
    parent = json.loads(started["ParentInstance"])
    assert (
        parent["OrchestrationInstance"]["InstanceId"] == iid and parent["Name"] == "parent_fan_out"
    )


def test_external_events_before_start_several_and_timeout(client, iid):
    client.schedule_new_orchestration(
        o.wait_events,
        input=["a", "b", "c"],
        instance_id=iid,
        start_at=datetime.now(UTC) + timedelta(seconds=1),
    )
    client.raise_orchestration_event(iid, "b", data=2)  # before the orchestration runs
    client.raise_orchestration_event(iid, "a", data=1)
    client.raise_orchestration_event(iid, "c", data=3)
    assert json.loads(done(client, iid).serialized_output) == [1, 2, 3]

    client.schedule_new_orchestration(o.event_or_timeout, input=0.5, instance_id=iid + "t")
    assert json.loads(done(client, iid + "t").serialized_output) == "timed out"
    client.schedule_new_orchestration(o.event_or_timeout, input=30, instance_id=iid + "e")
    client.wait_for_orchestration_start(iid + "e", timeout=10)
    client.raise_orchestration_event(iid + "e", "approval", data="yes")
    assert json.loads(done(client, iid + "e").serialized_output) == {"approved": "yes"}
    with pytest.raises(grpc.RpcError) as info:
        client.raise_orchestration_event("no-such-instance-" + iid, "x")
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_timers_including_one_longer_than_the_max_interval(client, rest, module_hub_name, iid):
    client.schedule_new_orchestration(o.timers, input=[0.2, 2.5], instance_id=iid)
    state = done(client, iid, 30)
    assert state.runtime_status == S.COMPLETED
    assert json.loads(state.serialized_output) >= 2.7
    table = rows(rest, module_hub_name, iid)
    created = {r["EventId"]: r["FireAt"] for r in table if r.get("EventType") == "TimerCreated"}
    fired = {r["TimerId"]: r["FireAt"] for r in table if r.get("EventType") == "TimerFired"}
    assert len(created) >= 4  # the 2.5 s timer was chunked by maximum_timer_interval=1 s
    assert created == fired  # TimerFired echoes the exact fireAt


def test_when_any_cancels_the_loser(client, rest, module_hub_name, iid):
    client.schedule_new_orchestration(o.race, instance_id=iid)
    state = done(client, iid)
    assert json.loads(state.serialized_output) == "activity"
    assert not [r for r in rows(rest, module_hub_name, iid) if r.get("EventType") == "TimerFired"]


def test_suspend_and_resume(client, rest, module_hub_name, iid):
    client.schedule_new_orchestration(o.waiter, instance_id=iid)
    client.wait_for_orchestration_start(iid, timeout=10)
    client.resume_orchestration(iid)  # not suspended: must be ignored, not fail it
    client.suspend_orchestration(iid, reason="hold")
    deadline = time.monotonic() + 10
    while client.get_orchestration_state(iid).runtime_status != S.SUSPENDED:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    client.raise_orchestration_event(iid, "go", data="later")
    time.sleep(0.3)
    assert client.get_orchestration_state(iid).runtime_status == S.SUSPENDED
    assert rest.get_entity(f"{module_hub_name}Instances", iid, "")["RuntimeStatus"] == "Suspended"
    client.resume_orchestration(iid, reason="go on")
    state = done(client, iid)
    assert state.runtime_status == S.COMPLETED and json.loads(state.serialized_output) == "later"


def test_terminate_is_recursive(client, iid):
    client.schedule_new_orchestration(o.tree, input=2, instance_id=iid)
    deadline = time.monotonic() + 15
    while client.get_orchestration_state(f"{iid}/c/c") is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    client.wait_for_orchestration_start(f"{iid}/c/c", timeout=10)
    client.terminate_orchestration(iid, output="stop", recursive=True)
    for instance in (iid, f"{iid}/c", f"{iid}/c/c"):
        state = done(client, instance)
        assert state.runtime_status == S.TERMINATED, instance
    assert json.loads(client.get_orchestration_state(iid).serialized_output) == "stop"


def test_continue_as_new_with_saved_events(client, rest, module_hub_name, iid):
    client.schedule_new_orchestration(
        o.counter, input={"total": 0, "target": 6, "gen": 0}, instance_id=iid
    )
    client.wait_for_orchestration_start(iid, timeout=10)
    for value in (1, 2, 3):
        client.raise_orchestration_event(iid, "add", data=value)
    state = done(client, iid)
    assert json.loads(state.serialized_output) == {"total": 6, "generations": 3}
    table = rows(rest, module_hub_name, iid)
    sentinel = table[-1]
    current = [r for r in table[:-1] if r["ExecutionId"] == sentinel["ExecutionId"]]
    assert current[0]["RowKey"] == schema.row_key(0)  # the new execution starts at row 0
    assert [r["RowKey"] for r in current] == [schema.row_key(i) for i in range(len(current))]
    inst = rest.get_entity(f"{module_hub_name}Instances", iid, "")
    assert inst["ExecutionId"] == sentinel["ExecutionId"]

    client.schedule_new_orchestration(o.loop_as_new, input=5, instance_id=iid + "l")
    assert json.loads(done(client, iid + "l").serialized_output) == "done"


def test_custom_status(client, rest, module_hub_name, iid):
    client.schedule_new_orchestration(o.custom_status, instance_id=iid)
    deadline = time.monotonic() + 10
    while (client.get_orchestration_state(iid).serialized_custom_status or "") == "":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert json.loads(client.get_orchestration_state(iid).serialized_custom_status) == {"step": 1}
    assert json.loads(rest.get_entity(f"{module_hub_name}Instances", iid, "")["CustomStatus"]) == {
        "step": 1
    }
    client.raise_orchestration_event(iid, "next")
    state = done(client, iid)
    assert json.loads(state.serialized_custom_status) == {"step": 2}


def test_send_event_between_orchestrations_and_to_a_missing_target(
    client, rest, module_hub_name, iid
):
    client.schedule_new_orchestration(o.waiter, instance_id=iid + "target")
    client.wait_for_orchestration_start(iid + "target", timeout=10)
    client.schedule_new_orchestration(o.sender, input=iid + "target", instance_id=iid)
    assert done(client, iid).runtime_status == S.COMPLETED
    assert json.loads(done(client, iid + "target").serialized_output) == {"from": iid}
    sent = [r for r in rows(rest, module_hub_name, iid) if r.get("EventType") == "EventSent"]
    assert [r["InstanceId"] for r in sent] == [iid + "target", iid + "target-missing"]
    assert client.get_orchestration_state(iid + "target-missing") is None


def test_restart_same_and_new_id(client, iid):
    client.schedule_new_orchestration(o.echo, input={"x": 1}, instance_id=iid)
    first = done(client, iid)
    same = client.restart_orchestration(iid)
    assert same == iid
    second = done(client, iid)
    assert second.runtime_status == S.COMPLETED and json.loads(second.serialized_output) == {"x": 1}
    new = client.restart_orchestration(iid, restart_with_new_instance_id=True)
    assert new != iid and json.loads(done(client, new).serialized_output) == {"x": 1}
    assert first.created_at <= second.created_at


def test_rewind_a_failed_orchestration(client, iid):
    client.schedule_new_orchestration(o.fail_then_ok, input=iid, instance_id=iid)
    assert done(client, iid).runtime_status == S.FAILED
    client.rewind_orchestration(iid, reason="try again")
    state = done(client, iid)
    assert state.runtime_status == S.COMPLETED
    assert json.loads(state.serialized_output) == ["Hello before!", "recovered"]


def test_purge_single_recursive_and_by_filter(client, rest, module_hub_name, iid):
    client.schedule_new_orchestration(o.parent_fan_out, input=2, instance_id=iid)
    out = json.loads(done(client, iid).serialized_output)
    result = client.purge_orchestration(iid, recursive=True)
    assert result.deleted_instance_count == 4
    assert client.get_orchestration_state(iid) is None
    assert client.get_orchestration_state(out[0]["me"]) is None
    assert rows(rest, module_hub_name, iid) == []

    start = datetime.now(UTC)
    for n in range(3):
        client.schedule_new_orchestration(o.echo, input=n, instance_id=f"{iid}-f{n}")
    for n in range(3):
        done(client, f"{iid}-f{n}")
    client.schedule_new_orchestration(o.waiter, instance_id=f"{iid}-running")
    result = client.purge_orchestrations_by(created_time_from=start)
    assert result.deleted_instance_count == 3  # the running one is kept
    assert client.get_orchestration_state(f"{iid}-running") is not None
    client.terminate_orchestration(f"{iid}-running")


def test_query_and_list_with_paging(client, iid):
    start = datetime.now(UTC)
    for n in range(7):
        client.schedule_new_orchestration(o.echo, input=n, instance_id=f"{iid}-q{n}")
    for n in range(7):
        done(client, f"{iid}-q{n}")
    states = client.get_all_orchestration_states(
        OrchestrationQuery(
            instance_id_prefix=f"{iid}-q", max_instance_count=3, fetch_inputs_and_outputs=True
        )
    )
    assert sorted(s.instance_id for s in states) == [f"{iid}-q{n}" for n in range(7)]
    assert {json.loads(s.serialized_output) for s in states} == set(range(7))
    completed = client.get_all_orchestration_states(
        OrchestrationQuery(created_time_from=start, runtime_status=[S.COMPLETED])
    )
    assert {f"{iid}-q{n}" for n in range(7)} <= {s.instance_id for s in completed}
    seen: list[str] = []
    token = None
    while True:
        page = client.list_instance_ids(
            runtime_status=[S.COMPLETED],
            completed_time_from=start,
            page_size=2,
            continuation_token=token,
        )
        assert len(page.items) <= 2
        seen += page.items
        token = page.continuation_token
        if not token:
            break
    assert {f"{iid}-q{n}" for n in range(7)} <= set(seen)


def test_history_streaming(client, iid):
    client.schedule_new_orchestration(o.HelloSequence, instance_id=iid)
    done(client, iid)
    events = client.get_orchestration_history(iid)
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "OrchestratorStartedEvent" and "ExecutionCompletedEvent" in kinds
    assert len(events) == 16


def test_version_reaches_the_orchestration(client, iid):
    client.schedule_new_orchestration(o.versioned, instance_id=iid, version="2.1")
    assert json.loads(done(client, iid).serialized_output) == "2.1"


def test_scheduled_start_is_delayed(client, iid):
    at = datetime.now(UTC) + timedelta(seconds=1.5)
    client.schedule_new_orchestration(o.echo, input=1, instance_id=iid, start_at=at)
    assert client.get_orchestration_state(iid).runtime_status == S.PENDING
    time.sleep(0.5)
    assert client.get_orchestration_state(iid).runtime_status == S.PENDING
    state = done(client, iid)
    assert state.runtime_status == S.COMPLETED
    updated = state.last_updated_at
    updated = updated if updated.tzinfo else updated.replace(tzinfo=UTC)
    assert updated >= at - timedelta(milliseconds=50)


def test_duplicate_ids(client, iid):
    client.schedule_new_orchestration(o.waiter, instance_id=iid)
    with pytest.raises(grpc.RpcError) as info:
        client.schedule_new_orchestration(o.waiter, instance_id=iid)
    assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS
    client.terminate_orchestration(iid)
    done(client, iid)
    policy = pb.OrchestrationIdReusePolicy(replaceableStatus=[pb.ORCHESTRATION_STATUS_TERMINATED])
    client.schedule_new_orchestration(o.echo, input=5, instance_id=iid, reuse_id_policy=policy)
    assert json.loads(done(client, iid).serialized_output) == 5


@pytest.mark.parametrize("bad", ["x" * 257, "@counter@k1"])
def test_invalid_instance_ids_are_refused_with_the_reason(client, bad):
    with pytest.raises(grpc.RpcError) as info:
        client.schedule_new_orchestration(o.echo, input=1, instance_id=bad)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert ("256 characters" if len(bad) > 256 else "reserved for durable entities") in (
        info.value.details()
    )


def test_wait_timeouts_raise_timeout_error(client, iid):
    client.schedule_new_orchestration(o.waiter, instance_id=iid)
    with pytest.raises(TimeoutError):
        client.wait_for_orchestration_completion(iid, timeout=0.5)
    client.terminate_orchestration(iid)
    assert done(client, iid).runtime_status == S.TERMINATED


def test_unknown_orchestrator_fails_with_a_clear_message(client, iid):
    # Decision: with the SDK's default worker (no work-item filters) the worker reports the
    # orchestrator as not registered, and the instance FAILS with that message.
    client.schedule_new_orchestration("NoSuchOrchestrator", instance_id=iid)
    state = done(client, iid)
    assert state.runtime_status == S.FAILED
    assert "NoSuchOrchestrator" in state.failure_details.message
    assert "not registered" in state.failure_details.message


def test_unknown_orchestrator_with_filtered_workers_says_why_it_waits(
    connection_string, caplog, iid
):
    # With only filtered workers (like the demo's sample worker) nobody is offered the work:
    # the instance stays Pending, as in Durable Functions, and the sidecar log says why.
    hub = "F" + uuid.uuid4().hex[:10]
    with LocalTaskHub(connection=connection_string, hub=hub, port=0) as sidecar:
        w = register(TaskHubGrpcWorker(host_address=sidecar.address))
        w.use_work_item_filters()
        w.start()
        c = TaskHubGrpcClient(host_address=sidecar.address)
        try:
            with caplog.at_level(logging.WARNING, logger="durable_helpers.local.sidecar"):
                c.schedule_new_orchestration("NoSuchOrchestrator", instance_id=iid)
                deadline = time.monotonic() + 10
                while "NoSuchOrchestrator" not in caplog.text and time.monotonic() < deadline:
                    time.sleep(0.1)
            assert "No connected worker handles orchestrator 'NoSuchOrchestrator'" in caplog.text
            assert c.get_orchestration_state(iid).runtime_status == S.PENDING
        finally:
            c.close()
            w.stop()


def test_non_json_input_is_passed_through(client, sidecar, iid):
    import durabletask.internal.orchestrator_service_pb2_grpc as stubs

    raw = pb.CreateInstanceRequest(instanceId=iid, name="echo")
    raw.input.value = "this is not json"
    with grpc.insecure_channel(sidecar.address) as channel:  # the SDK client always sends JSON
        stubs.TaskHubSidecarServiceStub(channel).StartInstance(raw, timeout=10)
    state = done(client, iid)
    assert state.runtime_status == S.FAILED  # the SDK cannot decode it: a clear failure, no hang
    assert state.failure_details.message


def test_work_item_larger_than_the_worker_accepts_fails_with_what_to_do(connection_string, iid):
    # echo_via_activity with 2 MB: its second work item carries the input, the activity's input
    # and its result (~6 MB), more than an SDK worker receives by default (4 MiB). The worker's
    # stream breaks on it each time; the instance must end Failed and say what to do.
    payload = "x" * (2 * 1024 * 1024)
    with LocalTaskHub(connection=connection_string, hub="Big" + iid, port=0) as hub:
        client = TaskHubGrpcClient(host_address=hub.address)
        small = register(TaskHubGrpcWorker(host_address=hub.address))
        small.start()
        try:
            client.schedule_new_orchestration(o.echo_via_activity, input=payload, instance_id=iid)
            state = done(client, iid, 90)
        finally:
            small.stop()
        assert state.runtime_status == S.FAILED
        assert state.failure_details.error_type == "WorkItemUndeliverable"
        assert "max_receive_message_length" in state.failure_details.message
        # What the message says works: a worker (and a client, for the 4 MB state) that accept
        # larger messages run it.
        options = GrpcChannelOptions(max_receive_message_length=64 * 1024 * 1024)
        client.close()
        client = TaskHubGrpcClient(host_address=hub.address, channel_options=options)
        large = register(TaskHubGrpcWorker(host_address=hub.address, channel_options=options))
        large.start()
        try:
            client.schedule_new_orchestration(
                o.echo_via_activity, input=payload, instance_id=iid + "b"
            )
            state = done(client, iid + "b", 90)
        finally:
            large.stop()
            client.close()
        assert state.runtime_status == S.COMPLETED
        assert json.loads(state.serialized_output) == payload


@pytest.mark.parametrize("suffix", ["a/b", "a\\b", "a#b", "a?b", "a^b", "it's", "ctl\x01\x1f\x7f"])
def test_odd_instance_ids(client, rest, module_hub_name, iid, suffix):
    instance_id = f"{iid}-{suffix}"
    client.schedule_new_orchestration(o.echo_via_activity, input=suffix, instance_id=instance_id)
    state = done(client, instance_id)
    assert state.runtime_status == S.COMPLETED and json.loads(state.serialized_output) == suffix
    table = rows(rest, module_hub_name, instance_id)
    assert table and table[0]["PartitionKey"] == schema.escape_partition_key(instance_id)
    assert client.get_orchestration_history(instance_id)


def test_one_megabyte_payload(client, rest, module_hub_name, iid):
    payload = "x" * (1024 * 1024)
    client.schedule_new_orchestration(o.echo_via_activity, input=payload, instance_id=iid)
    state = done(client, iid, 60)
    assert state.runtime_status == S.COMPLETED and json.loads(state.serialized_output) == payload
    table = rows(rest, module_hub_name, iid)
    started = next(r for r in table if r.get("EventType") == "ExecutionStarted")
    assert started["Input"] == "" and started["InputBlobName"].endswith("-Input.json.gz")
    blob = rest.get_blob(f"{module_hub_name.lower()}-largemessages", started["InputBlobName"])
    assert json.loads(schema.decompress_payload(blob)) == payload
    inst = rest.get_entity(f"{module_hub_name}Instances", iid, "")
    assert inst["Output"].startswith("http")
    fetched = client.get_orchestration_state(iid)
    assert json.loads(fetched.serialized_input) == payload
