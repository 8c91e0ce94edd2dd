"""The seed's Hello chain (history-after-execution.md), written through schema, read by TaskHub."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest
from reader_rows import (
    HELLO_EVENTS,
    SEED_EXECUTION,
    SEED_INSTANCE,
    SEED_ORCHESTRATOR,
    hello_checkpoints,
    hello_instance,
    ms,
)

from durable_helpers import frames

EXPECTED = [  # the seed table: RowKey, EventId, EventType, IsPlayed
    ("0000000000000000", -1, "OrchestratorStarted", False),
    ("0000000000000001", -1, "ExecutionStarted", True),
    ("0000000000000002", 0, "TaskScheduled", False),
    ("0000000000000003", -1, "OrchestratorCompleted", False),
    ("0000000000000004", -1, "OrchestratorStarted", False),
    ("0000000000000005", -1, "TaskCompleted", True),
    ("0000000000000006", 1, "TaskScheduled", False),
    ("0000000000000007", -1, "OrchestratorCompleted", False),
    ("0000000000000008", -1, "OrchestratorStarted", False),
    ("0000000000000009", -1, "TaskCompleted", True),
    ("000000000000000A", 2, "TaskScheduled", False),
    ("000000000000000B", -1, "OrchestratorCompleted", False),
    ("000000000000000C", -1, "OrchestratorStarted", False),
    ("000000000000000D", -1, "TaskCompleted", True),
    ("000000000000000E", 3, "ExecutionCompleted", False),
    ("000000000000000F", -1, "OrchestratorCompleted", False),
]


@pytest.fixture
def seeded(hub):
    for batch in hello_checkpoints():
        hub.write_history(batch)
    hub.write_instance(hello_instance(hub=hub.names.hub))
    return hub


def test_table_holds_17_rows_like_the_seed(seeded):
    rows = list(seeded.history.query_entities(f"PartitionKey eq '{SEED_INSTANCE}'"))
    assert len(rows) == 17
    assert [r["RowKey"] for r in rows] == [e[0] for e in EXPECTED] + ["sentinel"]
    scheduled = rows[2]
    assert type(scheduled["EventId"]) is int  # Edm.Int32 (an Int64 would come back wrapped)
    assert scheduled["EventId"] == 0 and scheduled["Name"] == "Hello"
    assert isinstance(scheduled["_Timestamp"], datetime) and scheduled["IsPlayed"] is False
    assert type(rows[5]["TaskScheduledId"]) is int
    sentinel = rows[-1]
    assert sentinel["ExecutionId"] == SEED_EXECUTION
    assert sentinel["IsCheckpointComplete"] is True
    assert "EventType" not in sentinel


def test_history_rows_order_event_ids_and_is_played(seeded):
    df = seeded.taskhub().history(SEED_INSTANCE)
    assert len(df) == 16  # sentinel dropped
    got = list(zip(df.RowKey, df.EventId, df.EventType, df.IsPlayed, strict=True))
    assert got == EXPECTED
    assert df.Sequence.tolist() == list(range(16))
    assert (df.InstanceId == SEED_INSTANCE).all()
    assert (df.ExecutionId == SEED_EXECUTION).all()


def test_history_dtypes_follow_the_contract(seeded):
    df = seeded.taskhub().history(SEED_INSTANCE)
    assert list(df.columns[: len(frames.HISTORY_COLUMNS)]) == list(frames.HISTORY_COLUMNS)
    expected = {
        "InstanceId": "string",
        "Sequence": "Int64",
        "EventId": "Int32",
        "IsPlayed": "boolean",
        "Timestamp": "datetime64[ns, UTC]",
        "TableTimestamp": "datetime64[ns, UTC]",
        "TaskScheduledId": "Int32",
        "FireAt": "datetime64[ns, UTC]",
        "ScheduledTime": "datetime64[ns, UTC]",
        "Duration": "timedelta64[ns]",
        "Input": "object",
        "Result": "object",
        "ResultRaw": "string",
        "FailureDetails": "object",
    }
    for column, dtype in expected.items():
        assert str(df[column].dtype) == dtype, column
    assert df.Version.dtype == "string"  # a known non-contract column, kept after ours


def test_timestamps_event_time_and_table_time(seeded):
    df = seeded.taskhub().history(SEED_INSTANCE)
    assert df.Timestamp.tolist() == [pd.Timestamp(ms(e[3])) for e in HELLO_EVENTS]
    assert df.TableTimestamp.notna().all()
    assert (df.TableTimestamp > df.Timestamp).all()  # written now, events are from 2019


def test_names_results_and_durations(seeded):
    df = seeded.taskhub().history(SEED_INSTANCE)
    started = df[df.EventType == "ExecutionStarted"].iloc[0]
    assert started.Name == SEED_ORCHESTRATOR
    assert pd.isna(started.Input) and pd.isna(started.InputRaw)
    assert started.OrchestrationInstance == {
        "InstanceId": SEED_INSTANCE,
        "ExecutionId": SEED_EXECUTION,
    }
    done = df[df.EventType == "TaskCompleted"]
    assert done.Name.tolist() == ["Hello"] * 3  # filled from the TaskScheduled they complete
    assert done.TaskScheduledId.tolist() == [0, 1, 2]
    assert done.Result.tolist() == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    assert done.ResultRaw.tolist() == ['"Hello Tokyo!"', '"Hello Seattle!"', '"Hello London!"']
    scheduled = df[df.EventType == "TaskScheduled"]
    assert done.ScheduledTime.tolist() == scheduled.Timestamp.tolist()
    assert [d.total_seconds() for d in done.Duration] == [0.240, 0.105, 0.125]
    assert df[~df.EventType.isin(["TaskCompleted"])].Duration.isna().all()
    completed = df[df.EventType == "ExecutionCompleted"].iloc[0]
    assert completed.OrchestrationStatus == "Completed"
    assert completed.Result == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    assert df.FailureType.isna().all() and df.FailureMessage.isna().all()


def test_instance_row(seeded):
    th = seeded.taskhub()
    df = th.instances()
    assert len(df) == 1
    row = df.iloc[0]
    assert row.InstanceId == SEED_INSTANCE
    assert row.RuntimeStatus == "Completed"
    assert row.Output == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    assert row.CustomStatus is None and row.CustomStatusRaw == "null"
    assert row.Tags is None
    assert pd.isna(row.Input)
    assert row.Duration == pd.Timedelta(milliseconds=770)
    assert row.Generation == 0 and row.Version == ""
    assert str(df.RuntimeStatus.dtype) == "category"
    assert list(df.RuntimeStatus.cat.categories[:3]) == ["Pending", "Running", "Suspended"]
    assert list(df.columns[: len(frames.INSTANCE_COLUMNS)]) == list(frames.INSTANCE_COLUMNS)
    assert th.instance(SEED_INSTANCE).ExecutionId == SEED_EXECUTION
