"""protocol_rows: every protocol event survives event -> table columns -> event."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import durabletask.internal.orchestrator_service_pb2 as pb
import pandas as pd
import pytest
from google.protobuf import timestamp_pb2, wrappers_pb2

from durable_helpers import frames, schema
from durable_helpers.local.sidecar.rest import entity_from_wire, entity_to_wire
from durable_helpers.protocol_frames import frame_row_table_columns, frame_row_to_event
from durable_helpers.protocol_rows import columns_to_event, event_to_columns

UTC = timezone.utc  # noqa: UP017
T = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def _ts() -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(T.replace(tzinfo=None))
    return out


def sv(v: str) -> wrappers_pb2.StringValue:
    return wrappers_pb2.StringValue(value=v)


FAILURE = pb.TaskFailureDetails(
    errorType="builtins.ValueError",
    errorMessage="bad",
    stackTrace=sv("trace"),
    innerFailure=pb.TaskFailureDetails(errorType="Inner", errorMessage="inner"),
    isNonRetriable=True,
)
OI = pb.OrchestrationInstance(instanceId="i/1", executionId=sv("e1"))

EVENTS = [
    pb.HistoryEvent(eventId=-1, orchestratorStarted=pb.OrchestratorStartedEvent()),
    pb.HistoryEvent(
        eventId=-1,
        executionStarted=pb.ExecutionStartedEvent(
            name="Orch",
            version=sv("1.0"),
            input=sv('{"a":1}'),
            orchestrationInstance=OI,
            parentInstance=pb.ParentInstanceInfo(
                taskScheduledId=3, name=sv("P"), orchestrationInstance=OI
            ),
            scheduledStartTimestamp=_ts(),
            tags={"k": "v"},
            parentTraceContext=pb.TraceContext(traceParent="00-abc-def-01", traceState=sv("s")),
        ),
    ),
    pb.HistoryEvent(
        eventId=4,
        executionCompleted=pb.ExecutionCompletedEvent(
            orchestrationStatus=pb.ORCHESTRATION_STATUS_FAILED, failureDetails=FAILURE
        ),
    ),
    pb.HistoryEvent(
        eventId=-1, executionTerminated=pb.ExecutionTerminatedEvent(input=sv('"bye"'), recurse=True)
    ),
    pb.HistoryEvent(
        eventId=1,
        taskScheduled=pb.TaskScheduledEvent(name="Hello", input=sv('"Tokyo"'), tags={"t": "1"}),
    ),
    pb.HistoryEvent(
        eventId=-1, taskCompleted=pb.TaskCompletedEvent(taskScheduledId=1, result=sv('"Hello"'))
    ),
    pb.HistoryEvent(
        eventId=-1, taskFailed=pb.TaskFailedEvent(taskScheduledId=1, failureDetails=FAILURE)
    ),
    pb.HistoryEvent(
        eventId=2,
        subOrchestrationInstanceCreated=pb.SubOrchestrationInstanceCreatedEvent(
            instanceId="c", name="Child", input=sv("1")
        ),
    ),
    pb.HistoryEvent(
        eventId=-1,
        subOrchestrationInstanceCompleted=pb.SubOrchestrationInstanceCompletedEvent(
            taskScheduledId=2, result=sv("2")
        ),
    ),
    pb.HistoryEvent(
        eventId=-1,
        subOrchestrationInstanceFailed=pb.SubOrchestrationInstanceFailedEvent(
            taskScheduledId=2, failureDetails=FAILURE
        ),
    ),
    pb.HistoryEvent(eventId=5, timerCreated=pb.TimerCreatedEvent(fireAt=_ts())),
    pb.HistoryEvent(eventId=-1, timerFired=pb.TimerFiredEvent(fireAt=_ts(), timerId=5)),
    pb.HistoryEvent(eventId=-1, orchestratorCompleted=pb.OrchestratorCompletedEvent()),
    pb.HistoryEvent(
        eventId=6, eventSent=pb.EventSentEvent(instanceId="x", name="go", input=sv("3"))
    ),
    pb.HistoryEvent(eventId=-1, eventRaised=pb.EventRaisedEvent(name="go", input=sv("3"))),
    pb.HistoryEvent(eventId=-1, genericEvent=pb.GenericEvent(data=sv("d"))),
    pb.HistoryEvent(eventId=7, continueAsNew=pb.ContinueAsNewEvent(input=sv("9"))),
    pb.HistoryEvent(eventId=-1, executionSuspended=pb.ExecutionSuspendedEvent(input=sv("why"))),
    pb.HistoryEvent(eventId=-1, executionResumed=pb.ExecutionResumedEvent(input=sv("ok"))),
    pb.HistoryEvent(eventId=-1, executionRewound=pb.ExecutionRewoundEvent(reason=sv("again"))),
    pb.HistoryEvent(
        eventId=8,
        entityOperationSignaled=pb.EntityOperationSignaledEvent(
            requestId="r", operation="add", input=sv("1"), targetInstanceId=sv("@e@k")
        ),
    ),
]


def _stored(event: pb.HistoryEvent) -> tuple[pb.HistoryEvent, dict]:
    """A timestamped copy of ``event`` and its table row after the table service's wire format."""
    event = pb.HistoryEvent.FromString(event.SerializeToString())
    event.timestamp.CopyFrom(_ts())
    event_type, cols = event_to_columns(event)
    entity = schema.history_entity(
        "i/1", "e1", 3, event_type, event_id=event.eventId, is_played=True, timestamp=T, **cols
    )
    return event, entity_from_wire(entity_to_wire(entity))


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.WhichOneof("eventType"))
def test_round_trip_through_a_table_row(event):
    event, row = _stored(event)
    assert columns_to_event(row) == event


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.WhichOneof("eventType"))
def test_round_trip_through_a_history_frame(event):
    """event -> table row -> the readers' History frame (docs/frames.md) -> event."""
    event, row = _stored(event)
    frame = frames.history_frame([row])
    (row,) = frame.to_dict("records")
    assert frame_row_to_event(row) == event


def test_frame_rows_drop_derived_columns_and_pandas_nulls():
    row = {"EventType": "TaskScheduled", "EventId": 1, "Name": "Hello", "Input": "Tokyo",
           "InputRaw": '"Tokyo"', "TimerId": pd.NA, "FireAt": pd.NaT, "Sequence": 4,
           "TargetInstanceId": None, "FailureType": "x"}  # fmt: skip
    assert frame_row_table_columns(row) == {
        "EventType": "TaskScheduled",
        "EventId": 1,
        "Name": "Hello",
        "Input": '"Tokyo"',
    }


def test_columns_use_the_dtfx_names_and_shapes():
    _, cols = event_to_columns(EVENTS[1])
    assert json.loads(cols["OrchestrationInstance"]) == {"InstanceId": "i/1", "ExecutionId": "e1"}
    parent = json.loads(cols["ParentInstance"])
    assert parent["TaskScheduleId"] == 3 and parent["OrchestrationInstance"]["InstanceId"] == "i/1"
    assert cols["Name"] == "Orch" and cols["Input"] == '{"a":1}' and cols["ScheduledStartTime"] == T
    event_type, cols = event_to_columns(EVENTS[6])
    assert event_type == "TaskFailed" and cols["TaskScheduledId"] == 1 and cols["Reason"] == "bad"
    details = json.loads(cols["FailureDetails"])
    assert details["ErrorType"] == "builtins.ValueError" and details["IsNonRetriable"] is True
    assert details["InnerFailure"]["ErrorMessage"] == "inner" and details["StackTrace"] == "trace"
    assert event_to_columns(EVENTS[11]) == ("TimerFired", {"TimerId": 5, "FireAt": T})


def test_nulls_in_both_provider_generations_are_read_as_null():
    row = {
        "EventType": "ExecutionStarted",
        "EventId": -1,
        "Name": "O",
        "Input": "null",
        "ParentInstance": "null",
        "Tags": "null",
        "FailureDetails": "",
    }
    event = columns_to_event(row)
    # A payload "null" is the JSON value null (every SDK reads it as null); absent stays absent.
    assert event.executionStarted.input.value == "null"
    assert not columns_to_event({**row, "Input": None}).executionStarted.HasField("input")
    assert not event.executionStarted.HasField("parentInstance")
    legacy = columns_to_event({"EventType": "TaskFailed", "TaskScheduledId": 0, "Reason": "boom"})
    assert legacy.taskFailed.failureDetails.errorMessage == "boom"
