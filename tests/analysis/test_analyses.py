"""episodes, failures, stuck, latency, status_over_time, compare, sizes on hand-made frames."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from analysis_builders import History, failure, histories, instance, instances, t
from test_calls import hello_chain

from durable_helpers import analysis as da


# -- episodes -------------------------------------------------------------------------------
def test_episodes_of_the_seed_chain():
    ep = da.episodes(hello_chain().frame())
    assert ep["Episode"].tolist() == [1, 2, 3, 4]
    assert ep["EventsReplayed"].tolist() == [0, 4, 8, 12]
    assert ep["EventsNew"].tolist() == [4, 4, 4, 4]
    assert ep["Inbound"].tolist() == [1, 1, 1, 1]
    assert ep["Actions"].tolist() == [1, 1, 1, 1]
    assert ep["End"].iloc[1] == t(27.553)
    assert ep["Duration"].iloc[1] == pd.Timedelta(milliseconds=3)


def test_episodes_restart_per_execution_and_tolerate_missing_orchestrator_completed():
    h = History("e", "x1")
    h.episode(0, h.started(), h.task("A", 1))
    h.episode(1, h.done(1), h.continue_as_new())
    h.new_execution("x2")
    h.episode(2, h.started(), h.timer(1, 5), markers=False)
    frame = h.frame()
    # the second execution over gRPC: OrchestratorStarted, then events, no OrchestratorCompleted
    start = frame.iloc[[0]].assign(ExecutionId="x2", Timestamp=t(2))
    frame = pd.concat([frame.iloc[:8], start, frame.iloc[8:]], ignore_index=True)
    frame.loc[9:, "Timestamp"] = [t(2.5), t(3)]
    ep = da.episodes(frame)
    assert ep[["ExecutionId", "Episode"]].values.tolist() == [["x1", 1], ["x1", 2], ["x2", 1]]
    assert ep["End"].iloc[2] == t(3)
    assert ep["EventsNew"].iloc[2] == 3


# -- failures -------------------------------------------------------------------------------
def nested_failure() -> tuple[pd.DataFrame, pd.DataFrame]:
    """parent -> sub-orchestration child -> sub-orchestration grand -> activity Boom (IOError)."""
    g = History("grand")
    g.episode(10, g.started("Grand"), g.task("Boom", 1))
    inner = failure("System.IO.IOException", "disk full", "at Disk.Write()")
    wrapped = failure("TaskFailedException", "Activity Boom failed", "at Grand", inner=inner)
    g.episode(
        11,
        g.fail(1, "TaskFailedException", "Activity Boom failed", wrapped),
        g.complete("Failed", details=failure("TaskFailedException", "Activity Boom failed")),
    )
    c = History("child")
    c.episode(5, c.started("Child"), c.sub("Grand", 1, "grand"))
    c.episode(
        12,
        c.sub_fail(1, "SubOrchestrationFailed", "Grand failed"),
        c.complete("Failed", details=failure("SubOrchestrationFailed", "Grand failed")),
    )
    p = History("parent")
    p.episode(0, p.started("Parent"), p.task("Prep", 1))
    p.episode(1, p.done(1, "ok"), p.sub("Child", 2, "child"))
    p.episode(
        13,
        p.sub_fail(2, "SubOrchestrationFailed", "Child failed"),
        p.complete("Failed", details=failure("SubOrchestrationFailed", "Child failed")),
    )
    inst = instances(
        instance("parent", "Failed", 0, completed=13, name="Parent"),
        instance("child", "Failed", 5, completed=12, name="Child"),
        instance("grand", "Failed", 10, completed=11, name="Grand"),
        instance("ok", "Completed", 0, completed=1),
    )
    return inst, histories(p, c, g)


def test_failures_follow_sub_orchestrations_two_deep_to_the_innermost_error():
    inst, hist = nested_failure()
    f = da.failures(inst, hist).set_index("InstanceId")
    assert list(f.index) == ["parent", "child", "grand"]
    top = f.loc["parent"]
    assert (top.FailedCallKind, top.FailedCallName, top.FailedCallEventId) == (
        "suborchestration",
        "Child",
        2,
    )
    assert (top.Depth, top.RootInstanceId, top.RootCallKind, top.RootCallName) == (
        2,
        "grand",
        "activity",
        "Boom",
    )
    assert (top.ErrorType, top.ErrorMessage, top.StackTrace) == (
        "System.IO.IOException",
        "disk full",
        "at Disk.Write()",
    )
    assert (top.OuterErrorType, top.OuterErrorMessage) == ("SubOrchestrationFailed", "Child failed")
    assert f.loc["child", "Depth"] == 1 and f.loc["grand", "Depth"] == 0
    assert f.loc["grand", "ErrorType"] == "System.IO.IOException"


def test_failures_without_the_child_history_stop_at_the_sub_orchestration():
    inst, hist = nested_failure()
    f = da.failures(inst.iloc[[0]], hist[hist["InstanceId"] == "parent"])
    row = f.iloc[0]
    assert (row.Depth, row.RootInstanceId, row.RootCallName) == (0, "parent", "Child")
    assert row.ErrorMessage == "Child failed"


def test_failures_legacy_text_retries_orchestrator_errors_and_missing_history():
    legacy = History("legacy")  # DF 2.x: Reason/Details only, no FailureDetails
    legacy.episode(0, legacy.started(), legacy.task("Pay", 0))
    ev = legacy.fail(0, "InvalidOperationException", "card declined")
    ev["FailureDetails"] = None
    legacy.episode(1, ev, legacy.task("Pay", 0))
    ev = legacy.fail(0, "InvalidOperationException", "card declined again")
    ev["FailureDetails"] = None
    legacy.episode(2, ev, legacy.complete("Failed", "Orchestrator function 'Orch' failed: ..."))
    own = History("own")  # the orchestrator code threw by itself
    own.episode(0, own.started(), own.complete("Failed", details=failure("KeyError", "'x'")))
    inst = instances(
        instance("legacy", "Failed", 0, completed=2),
        instance("own", "Failed", 0, completed=0),
        instance("gone", "Failed", 0, completed=1, output="TimeoutError: too slow"),
    )
    f = da.failures(inst, histories(legacy, own)).set_index("InstanceId")
    assert f.loc["legacy", "FailedCallAttempt"] == 2
    assert f.loc["legacy", "ErrorMessage"] == "card declined again"
    assert f.loc["legacy", "OuterErrorMessage"].startswith("Orchestrator function")
    assert (f.loc["own", "RootCallKind"], f.loc["own", "ErrorType"]) == ("orchestrator", "KeyError")
    assert pd.isna(f.loc["own", "FailedCallName"])
    assert (f.loc["gone", "ErrorType"], f.loc["gone", "ErrorMessage"]) == (
        "TimeoutError",
        "too slow",
    )


# -- stuck ----------------------------------------------------------------------------------
def test_stuck_reasons():
    done = History("done-in-history")
    done.episode(0, done.started(), done.complete("Completed", 1))
    busy = History("busy")
    busy.episode(0, busy.started(), busy.task("A", 1))
    busy.episode(7000, busy.done(1), busy.task("A", 2))
    lost = History("lost-completion")
    lost.episode(0, lost.started(), lost.task("A", 1))
    inst = instances(
        instance("done-in-history", "Running", 0, updated=0),
        instance("busy", "Running", 0, updated=10),  # old LastUpdated, recent history event
        instance("idle", "Running", 0, updated=100),
        instance("fresh", "Running", 7100, updated=7150),
        instance("pending-old", "Pending", 0),
        instance("pending-new", "Pending", 7150),
        instance("lost-completion", "Completed", 0, completed=5),
        instance("never", "Completed", 0, completed=1),  # no rows in histories: not compared
        instance("suspended", "Suspended", 0),
    )
    scheduled = instance("scheduled", "Pending", 0)
    scheduled["ScheduledStartTime"] = t(6000)  # a scheduled start: not due an hour ago
    inst = pd.concat([inst, instances(scheduled)], ignore_index=True)
    hist = histories(done, busy, lost)
    s = da.stuck(inst, hist, older_than="1h", now=t(7200))
    got = sorted(zip(s["InstanceId"], s["Reason"].astype(str), strict=True))
    assert got == [
        ("done-in-history", "no-progress"),
        ("done-in-history", "running-but-completed"),
        ("idle", "no-progress"),
        ("lost-completion", "finished-without-completion"),
        ("pending-old", "never-started"),
        ("pending-old", "no-progress"),
    ]
    idle = s[s["InstanceId"] == "idle"].iloc[0]
    assert idle["Idle"] == pd.Timedelta(seconds=7100)
    assert "idle for" in idle["Detail"]
    without_history = da.stuck(inst, older_than=pd.Timedelta("1h"), now=t(7200))
    assert set(without_history["Reason"].astype(str)) == {"no-progress"}
    assert set(without_history["InstanceId"]) == {"done-in-history", "busy", "idle", "pending-old"}
    assert (
        da.stuck(inst.iloc[0:0], hist, now=t(0)).columns.tolist()
        == da.stuck(inst, hist, now=t(0)).columns.tolist()
    )


# -- latency --------------------------------------------------------------------------------
def test_latency_percentiles_and_failure_rate():
    n = 100
    calls = pd.DataFrame(
        {
            "Kind": pd.Categorical(["activity"] * n + ["timer"]),
            "Name": pd.array(["A"] * 50 + ["B"] * 50 + [None], dtype="string"),
            "Outcome": pd.Categorical(
                ["completed"] * 45 + ["failed"] * 5 + ["completed"] * 49 + ["pending", "completed"]
            ),
            "Duration": pd.to_timedelta(
                list(range(1, 51)) + list(range(1, 50)) + [None, 999], unit="s"
            ),
        }
    )
    lat = da.latency(calls)
    assert list(lat.index) == ["A", "B"]  # timers left out; sorted by p95
    a = lat.loc["A"]
    assert (a.Count, a.Completed, a.Failed, a.Pending) == (50, 45, 5, 0)
    assert a.FailureRate == pytest.approx(0.1)
    assert a.P50.total_seconds() == 25.5
    assert a.P95.total_seconds() == pytest.approx(np.percentile(np.arange(1, 51), 95))
    assert a.Max == pd.Timedelta(seconds=50)
    assert lat.loc["B", "Pending"] == 1 and lat.loc["B", "FailureRate"] == 0
    both = da.latency(calls, by=["Kind", "Name"], kinds=None)
    assert len(both) == 3


def test_latency_agrees_with_pandas_groupby_on_interleaved_groups():
    rng = np.random.default_rng(7)
    n = 500
    calls = pd.DataFrame(
        {
            "Kind": pd.Categorical(["activity"] * n),
            "Name": pd.array(rng.choice(["x", "y", "z"], n), dtype="string"),
            "Outcome": pd.Categorical(rng.choice(["completed", "failed", "pending"], n)),
            "Duration": pd.to_timedelta(rng.exponential(2.0, n), unit="s"),
        }
    )
    calls.loc[calls["Outcome"] == "pending", "Duration"] = pd.NaT
    lat = da.latency(calls)
    finished = calls.dropna(subset=["Duration"]).groupby("Name")["Duration"]
    expected = {
        "Mean": finished.mean(),
        "P50": finished.quantile(0.5),
        "P95": finished.quantile(0.95),
        "Max": finished.max(),
    }
    for column, values in expected.items():
        for name, value in values.items():
            got = lat.loc[name, column]
            assert abs((got - value).total_seconds()) < 1e-6, (column, name, got, value)


# -- status over time -------------------------------------------------------------------------
def test_status_over_time_wide_and_tidy():
    inst = instances(
        instance("a", "Completed", 0, completed=125),
        instance("b", "Failed", 30, completed=70),
        instance("c", "Running", 90, updated=100),
        instance("d", "Pending", 150),
    )
    wide = da.status_over_time(inst, "1min")
    assert list(wide.index) == [t(0), t(60), t(120)]
    assert str(wide.index.dtype) == "datetime64[ns, UTC]"
    assert wide.to_dict("list") == {
        "Pending": [0, 0, 1],
        "Running": [2, 2, 1],
        "Completed": [0, 0, 1],
        "Failed": [0, 1, 1],
    }
    tidy = da.status_over_time(inst, "1min", tidy=True)
    assert list(tidy.columns) == ["Time", "RuntimeStatus", "Count"]
    assert len(tidy) == 12 and tidy["Count"].sum() == wide.to_numpy().sum()


# -- compare --------------------------------------------------------------------------------
def test_compare_identical_and_diverging_runs():
    good, bad = hello_chain(1).frame(), hello_chain(1)
    assert not da.compare(good, good)["Differs"].any()
    assert da.first_divergence(da.compare(good, good)) is None
    b = History("bad")
    b.episode(0, b.started("DurableFunctionsOrchestratorJS"), b.task("Hello", 1, "Tokyo"))
    b.episode(0.5, b.done(1, "Hello Tokyo!"), b.task("Hello", 2, "Seattle"))
    b.episode(2.5, b.fail(2, "E", "Seattle down"), b.complete("Failed"))
    d = da.compare(good, b.frame())
    step = da.first_divergence(d)
    assert step == d.attrs["first_divergence"] == 4
    row = d.iloc[step]
    assert (row.Op, row.EventTypeA, row.EventTypeB) == ("changed", "TaskCompleted", "TaskFailed")
    assert row.DurationA == pd.Timedelta(milliseconds=150)
    assert row.DurationB == pd.Timedelta(seconds=2)
    assert row.DurationDelta == pd.Timedelta(milliseconds=1850)
    assert d.iloc[:4]["Op"].tolist() == ["same"] * 4
    assert set(d.iloc[5:]["Op"]) == {"only_a", "changed"}
    assert (d.iloc[-1].EventTypeA, d.iloc[-1].Op) == ("ExecutionCompleted", "changed")
    assert d["PosA"].iloc[0] == 1  # row 0 is OrchestratorStarted, left out by default
    with_markers = da.compare(good, b.frame(), markers=True)
    assert with_markers["PosA"].iloc[0] == 0
    del bad


# -- sizes ----------------------------------------------------------------------------------
def test_sizes_count_events_and_flag_large_payloads():
    big = "x" * 30_721  # 61,442 UTF-16 bytes: over the 60 KiB offload threshold
    h = History("big")
    h.episode(0, h.started(input=big), h.task("A", 1, "é"))
    h.episode(1, h.done(1, "ok"))
    small = hello_chain()
    inst = instances(
        instance("big", "Running", 0, input=big),
        instance(small.instance_id, "Completed", 0, completed=28, output=["Hello Tokyo!"]),
    )
    s = da.sizes(inst, histories(h, small)).set_index("InstanceId")
    assert s.loc["big", "Events"] == 7 and s.loc[small.instance_id, "Events"] == 16
    assert s.loc["big", "Episodes"] == 2 and s.loc["big", "Executions"] == 1
    assert s.loc["big", "LargePayloads"] == 2 and s.loc["big", "HasLargePayload"]
    assert s.loc["big", "LargestPayloadBytes"] == len(json.dumps(big))
    assert s.loc["big", "HistoryPayloadBytes"] == len(json.dumps(big)) + len('"\\u00e9"') + 4
    assert not s.loc[small.instance_id, "HasLargePayload"]
    detail = da.sizes(inst, histories(h, small), detail=True)
    assert detail["Large"].sum() == 2
    assert set(detail.loc[detail["Large"], "Source"]) == {"Instances", "History"}


# -- empty input ------------------------------------------------------------------------------
def test_every_analysis_accepts_empty_frames():
    from analysis_builders import HISTORY_COLUMNS, INSTANCE_COLUMNS, typed

    h, i = typed([], HISTORY_COLUMNS), typed([], INSTANCE_COLUMNS)
    results = [
        da.calls(h),
        da.latency(da.calls(h)),
        da.episodes(h),
        da.failures(i, h),
        da.stuck(i, h),
        da.stuck(i),
        da.sizes(i, h),
        da.status_over_time(i),
        da.status_over_time(i, tidy=True),
        da.compare(h, h),
    ]
    assert all(r.empty for r in results)
    assert list(results[0].columns) == da.CALL_COLUMNS
