"""Both provider generations: DF 2.x (absent nulls, legacy Reason/Details) and DF 3.x ("null",
FailureDetails JSON), written raw as the provider writes them."""

from __future__ import annotations

import pandas as pd
from reader_rows import (
    DF2_ORCHESTRATOR_FAILURE,
    FAILURE_DETAILS,
    df2_failed_rows,
    df3_failed_rows,
)


def test_df2_rows_absent_nulls_and_legacy_failure(hub):
    hub.write_history(df2_failed_rows("df2-instance", "exec2"))
    df = hub.taskhub().history("df2-instance")
    assert len(df) == 8
    failed = df[df.EventType == "TaskFailed"].iloc[0]
    assert failed.Name == "Hello"  # from its TaskScheduled
    assert failed.Reason == "Activity function 'Hello' failed: boom"
    assert failed.FailureType == "System.InvalidOperationException"
    assert failed.FailureMessage == "boom"
    assert failed.FailureStackTrace.strip().startswith("at Hello.Run")
    assert failed.FailureDetails is None
    assert failed.Duration == pd.Timedelta(milliseconds=19)
    completed = df[df.EventType == "ExecutionCompleted"].iloc[0]
    assert completed.OrchestrationStatus == "Failed"
    assert completed.FailureMessage == DF2_ORCHESTRATOR_FAILURE
    assert completed.Result == DF2_ORCHESTRATOR_FAILURE  # not JSON: kept as a plain string
    started = df[df.EventType == "ExecutionStarted"].iloc[0]
    assert started.Input == "Tokyo" and started.InputRaw == '"Tokyo"'
    assert started.ParentInstance is None and started.Tags is None
    # Columns that no DF 2.x row carries are present and null.
    assert df.FireAt.isna().all() and df.TimerId.isna().all()
    # Only failure events get failure parts.
    assert df.FailureMessage.notna().sum() == 2


def test_df3_rows_null_strings_failure_details_and_unknown_columns(hub):
    hub.write_history(df3_failed_rows("df3-instance", "exec3"))
    df = hub.taskhub().history("df3-instance")
    assert len(df) == 8
    started = df[df.EventType == "ExecutionStarted"].iloc[0]
    assert started.ParentInstance is None  # "null"
    assert started.Tags is None  # "null"
    assert started.ParentTraceContext is None
    assert started.Generation == 0
    failed = df[df.EventType == "TaskFailed"].iloc[0]
    assert failed.FailureDetails == FAILURE_DETAILS
    assert failed.FailureType == "System.InvalidOperationException"
    assert failed.FailureMessage == "boom"
    assert failed.FailureStackTrace == "   at Hello.Run(String city)"
    assert pd.isna(failed.Reason) and pd.isna(failed.Details)
    assert failed.Name == "Hello"
    completed = df[df.EventType == "ExecutionCompleted"].iloc[0]
    assert completed.FailureType == "TaskFailedException"
    assert completed.FailureMessage == "Task 'Hello' (#0) failed"
    # A column from a newer provider is kept, after the contract's columns.
    assert "FutureColumn" in df.columns
    assert df.columns.get_loc("FutureColumn") > df.columns.get_loc("Tags")
    assert df.loc[df.EventType == "TaskFailed", "FutureColumn"].tolist() == [
        "from a newer provider"
    ]
    assert df.FutureColumn.isna().sum() == 7


def test_both_generations_give_the_same_frame_shape(hub):
    hub.write_history(df2_failed_rows("a2", "x"))
    hub.write_history(df3_failed_rows("a3", "y"))
    both = hub.taskhub().histories(["a2", "a3"])
    assert both.InstanceId.unique().tolist() == ["a2", "a3"]
    per = both.groupby("InstanceId").FailureMessage.apply(lambda s: s.notna().sum())
    assert per.to_dict() == {"a2": 2, "a3": 2}
