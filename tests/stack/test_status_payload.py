"""Durable Task messages -> Durable Functions status JSON, on hand-made protocol messages."""

from __future__ import annotations

import grpc
import pytest
from durabletask.internal import orchestrator_service_pb2 as pb
from google.protobuf import timestamp_pb2, wrappers_pb2

from durable_helpers.local import (
    seed_channel,
    status_payload,
)
from durable_helpers.local.ports import free_ports
from durable_helpers.local.status_payload import history_events, parse_runtime_statuses


def sv(text: str) -> wrappers_pb2.StringValue:
    return wrappers_pb2.StringValue(value=text)


def ts(seconds: int, nanos: int = 0) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


def event(event_id: int, seconds: int, **kind) -> pb.HistoryEvent:
    return pb.HistoryEvent(eventId=event_id, timestamp=ts(seconds), **kind)


def hello_history() -> list[pb.HistoryEvent]:
    events = [
        event(-1, 1, orchestratorStarted=pb.OrchestratorStartedEvent()),
        event(
            -1, 1, executionStarted=pb.ExecutionStartedEvent(name="HelloSequence", input=sv("null"))
        ),
    ]
    for n, city in enumerate(["Tokyo", "Seattle", "London"]):
        events += [
            event(
                n,
                10 * n + 2,
                taskScheduled=pb.TaskScheduledEvent(name="Hello", input=sv(f'"{city}"')),
            ),
            event(-1, 10 * n + 3, orchestratorCompleted=pb.OrchestratorCompletedEvent()),
            event(-1, 10 * n + 4, orchestratorStarted=pb.OrchestratorStartedEvent()),
            event(
                -1,
                10 * n + 5,
                taskCompleted=pb.TaskCompletedEvent(
                    taskScheduledId=n, result=sv(f'"Hello {city}!"')
                ),
            ),
        ]
    events.append(
        event(
            3,
            40,
            executionCompleted=pb.ExecutionCompletedEvent(
                orchestrationStatus=pb.ORCHESTRATION_STATUS_COMPLETED,
                result=sv('["Hello Tokyo!","Hello Seattle!","Hello London!"]'),
            ),
        )
    )
    return events


def test_hello_history_matches_the_documented_shape():
    items = history_events(hello_history(), show_history_output=True)
    assert [i["EventType"] for i in items] == [
        "ExecutionStarted",
        "TaskCompleted",
        "TaskCompleted",
        "TaskCompleted",
        "ExecutionCompleted",
    ]
    assert items[0] == {
        "EventType": "ExecutionStarted",
        "FunctionName": "HelloSequence",
        "Input": None,
        "Timestamp": "1970-01-01T00:00:01.0000000Z",
    }
    assert items[1] == {
        "EventType": "TaskCompleted",
        "FunctionName": "Hello",
        "ScheduledTime": "1970-01-01T00:00:02.0000000Z",
        "Input": "Tokyo",
        "Result": "Hello Tokyo!",
        "Timestamp": "1970-01-01T00:00:05.0000000Z",
    }
    assert items[-1]["OrchestrationStatus"] == "Completed"
    assert items[-1]["Result"] == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    assert all(
        "EventId" not in i and "IsPlayed" not in i and "TaskScheduledId" not in i for i in items
    )


def test_result_only_with_show_history_output_and_input_only_with_show_input():
    quiet = history_events(hello_history(), show_input=False)
    assert all("Result" not in i and "Input" not in i for i in quiet)


def test_retries_pair_each_completion_with_its_own_schedule():
    events = [
        event(-1, 0, executionStarted=pb.ExecutionStartedEvent(name="RetryFlaky")),
        event(1, 1, taskScheduled=pb.TaskScheduledEvent(name="FlakyActivity")),
        event(
            -1,
            2,
            taskFailed=pb.TaskFailedEvent(
                taskScheduledId=1,
                failureDetails=pb.TaskFailureDetails(
                    errorType="builtins.RuntimeError", errorMessage="boom"
                ),
            ),
        ),
        event(2, 3, timerCreated=pb.TimerCreatedEvent(fireAt=ts(4))),
        event(-1, 4, timerFired=pb.TimerFiredEvent(fireAt=ts(4), timerId=2)),
        event(1, 5, taskScheduled=pb.TaskScheduledEvent(name="FlakyActivity")),
        event(-1, 6, taskCompleted=pb.TaskCompletedEvent(taskScheduledId=1, result=sv("7"))),
    ]
    items = history_events(events, show_history_output=True)
    kinds = [i["EventType"] for i in items]
    assert kinds == [
        "ExecutionStarted",
        "TaskFailed",
        "TimerCreated",
        "TimerFired",
        "TaskCompleted",
    ]
    assert items[1]["ScheduledTime"] == "1970-01-01T00:00:01.0000000Z"
    assert items[1]["Reason"] == "boom"
    assert items[1]["FailureDetails"]["ErrorType"] == "builtins.RuntimeError"
    assert items[4]["ScheduledTime"] == "1970-01-01T00:00:05.0000000Z"
    assert items[4]["Result"] == 7
    assert "TimerId" not in items[3]


def test_pending_schedule_stays_and_only_the_latest_execution_is_shown():
    events = [
        event(-1, 0, executionStarted=pb.ExecutionStartedEvent(name="M", input=sv("1"))),
        event(
            -1,
            1,
            executionCompleted=pb.ExecutionCompletedEvent(
                orchestrationStatus=pb.ORCHESTRATION_STATUS_CONTINUED_AS_NEW
            ),
        ),
        event(-1, 2, executionStarted=pb.ExecutionStartedEvent(name="M", input=sv("2"))),
        event(
            0,
            3,
            subOrchestrationInstanceCreated=pb.SubOrchestrationInstanceCreatedEvent(
                name="Child", instanceId="p:0001", input=sv("not json")
            ),
        ),
        event(-1, 4, eventRaised=pb.EventRaisedEvent(name="Approval", input=sv("true"))),
    ]
    items = history_events(events)
    assert [i["EventType"] for i in items] == [
        "ExecutionStarted",
        "SubOrchestrationInstanceCreated",
        "EventRaised",
    ]
    assert items[0]["Input"] == 2
    assert items[1] == {
        "EventType": "SubOrchestrationInstanceCreated",
        "Name": "Child",
        "InstanceId": "p:0001",
        "Input": "not json",
        "Timestamp": "1970-01-01T00:00:03.0000000Z",
    }
    assert items[2]["Name"] == "Approval" and items[2]["Input"] is True


def test_status_payload_keys_times_and_failed_output():
    state = pb.OrchestrationState(
        instanceId="abc",
        name="FailingOrchestration",
        orchestrationStatus=pb.ORCHESTRATION_STATUS_FAILED,
        createdTimestamp=ts(1700000000, 999_000_000),
        lastUpdatedTimestamp=ts(1700000001),
        input=sv('{"a": 1}'),
        customStatus=sv("plain text"),
        failureDetails=pb.TaskFailureDetails(
            errorType="durabletask.task.TaskFailedError",
            errorMessage="abc: Activity task #2 failed: declined",
            innerFailure=pb.TaskFailureDetails(
                errorType="builtins.ValueError", errorMessage="declined"
            ),
        ),
    )
    payload = status_payload.status_payload(state)
    assert list(payload) == [
        "name",
        "instanceId",
        "runtimeStatus",
        "input",
        "customStatus",
        "output",
        "createdTime",
        "lastUpdatedTime",
    ]
    assert payload["createdTime"] == "2023-11-14T22:13:20Z"
    assert payload["input"] == {"a": 1}
    assert payload["customStatus"] == "plain text"
    assert payload["output"] == (
        "Orchestrator function 'FailingOrchestration' failed: "
        "Activity task #2 failed: declined (builtins.ValueError)"
    )
    assert status_payload.status_payload(state, show_input=False)["input"] is None


def test_runtime_status_names():
    assert parse_runtime_statuses("Running,completed, ContinuedAsNew") == [0, 1, 2]
    with pytest.raises(ValueError, match="Unknown runtimeStatus 'Sleeping'"):
        parse_runtime_statuses("Sleeping")


def test_startnew_reports_an_unreachable_sidecar(df):
    dead = f"127.0.0.1:{free_ports(1)[0]}"
    server = seed_channel.start_seed_channel(dead, port=0)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.bound_port}") as channel:
            stub = df.DurableTaskServiceStub(channel)
            with pytest.raises(grpc.RpcError) as caught:
                stub.StartNew(df.NewDurableTaskRequest(functionName="HelloSequence"), timeout=20)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "python -m durable_helpers.local up" in caught.value.details()
    finally:
        server.stop(None)


def test_startnew_refuses_a_taken_port():
    first = seed_channel.start_seed_channel("127.0.0.1:1", port=0)
    try:
        with pytest.raises(OSError, match="taken"):
            seed_channel.start_seed_channel("127.0.0.1:1", port=first.bound_port)
    finally:
        first.stop(None)
