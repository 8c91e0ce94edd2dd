"""calls(): pairing, outcomes, retries (Python SDK and .NET shapes), timers, sub-orchestrations."""

from __future__ import annotations

import pandas as pd
from analysis_builders import History, failure, histories, t

from durable_helpers.analysis import CALL_COLUMNS, calls


def hello_chain(first_id: int = 0) -> History:
    """The seed's Hello chain (Tokyo, Seattle, London), as in history-after-execution.md."""
    h = History("95c7f6639fe04bf0a919698255cecd33", "46021e13b9d54fb19d10b55e3cca502b")
    a, b, c = first_id, first_id + 1, first_id + 2
    h.episode(27.280, h.started("DurableFunctionsOrchestratorJS"), h.task("Hello", a, "Tokyo"))
    h.episode(27.550, h.done(a, "Hello Tokyo!"), h.task("Hello", b, "Seattle"), end=27.553)
    h.episode(27.700, h.done(b, "Hello Seattle!"), h.task("Hello", c, "London"))
    h.episode(27.873, h.done(c, "Hello London!"), h.complete("Completed", ["Hello Tokyo!"]))
    return h


def test_seed_chain_pairs_each_activity_with_its_completion():
    c = calls(hello_chain().frame())
    assert list(c.columns) == CALL_COLUMNS
    assert c["Kind"].tolist() == ["activity"] * 3
    assert c["EventId"].tolist() == [0, 1, 2]
    assert c["Outcome"].tolist() == ["completed"] * 3
    assert c["Result"].tolist() == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    assert c["Input"].tolist() == ["Tokyo", "Seattle", "London"]
    assert c["Attempt"].tolist() == [1, 1, 1]
    assert c["Duration"].dt.total_seconds().round(3).tolist() == [0.27, 0.15, 0.173]
    assert str(c["ScheduledTime"].dtype) == "datetime64[ns, UTC]"
    assert c["ScheduledTime"].iloc[0] == t(27.280)


def test_python_sdk_retry_is_a_new_event_id_after_a_timer():
    h = History("py")
    h.episode(0, h.started(), h.task("Flaky", 1, "x"))
    h.episode(1, h.fail(1, "ValueError", "try 1"), h.timer(2, 3))
    h.episode(3, h.fired(2, 3), h.task("Flaky", 3, "x"))
    h.episode(4, h.fail(3, "ValueError", "try 2"), h.timer(4, 6))
    h.episode(6, h.fired(4, 6), h.task("Flaky", 5, "x"))
    h.episode(7, h.done(5, "ok"), h.complete("Completed", "ok"))
    c = calls(h.frame())
    act = c[c["Kind"] == "activity"]
    assert act["EventId"].tolist() == [1, 3, 5]
    assert act["Attempt"].tolist() == [1, 2, 3]
    assert act["Retried"].tolist() == [True, True, False]
    assert act["Outcome"].tolist() == ["failed", "failed", "completed"]
    assert act["FailureMessage"].tolist()[:2] == ["try 1", "try 2"]
    timers = c[c["Kind"] == "timer"]
    assert timers["Outcome"].tolist() == ["completed", "completed"]
    assert timers["Duration"].dt.total_seconds().tolist() == [2.0, 2.0]
    assert timers["FireAt"].tolist() == [t(3), t(6)]
    assert timers["Attempt"].tolist() == [1, 1]


def test_dotnet_retry_repeating_the_same_event_id():
    h = History("net")
    h.episode(0, h.started(), h.task("Flaky", 0))
    h.episode(1, h.fail(0, "System.Exception", "first"), h.task("Flaky", 0))
    h.episode(2, h.fail(0, "System.Exception", "second"), h.task("Flaky", 0))
    h.episode(3, h.done(0, 42), h.complete("Completed", 42))
    c = calls(h.frame())
    assert c["EventId"].tolist() == [0, 0, 0]
    assert c["Attempt"].tolist() == [1, 2, 3]
    assert c["Outcome"].tolist() == ["failed", "failed", "completed"]
    assert c["FailureMessage"].iloc[:2].tolist() == ["first", "second"]
    assert pd.isna(c["FailureMessage"].iloc[2])
    assert c["Result"].iloc[2] == 42
    assert c["Duration"].dt.total_seconds().tolist() == [1.0, 1.0, 1.0]


def test_fan_out_retries_follow_their_own_input():
    h = History("fan")
    h.episode(
        0,
        h.started(),
        *[
            h.task("Hello", i, city)
            for i, city in enumerate(["Tokyo", "Seattle", "London"], start=1)
        ],
    )
    h.episode(1, h.fail(2, "E", "Seattle down"), h.done(1, "t"), h.timer(4, 2))
    h.episode(1.5, h.fail(3, "E", "London down"), h.timer(5, 2.5))
    h.episode(2, h.fired(4, 2), h.task("Hello", 6, "Seattle"))
    h.episode(2.5, h.fired(5, 2.5), h.task("Hello", 7, "London"))
    h.episode(3, h.fail(7, "E", "London down again"), h.done(6, "s"), h.timer(8, 4))
    h.episode(4, h.fired(8, 4), h.task("Hello", 9, "London"))
    c = calls(h.frame())
    act = c[c["Kind"] == "activity"].set_index("EventId")
    assert act.loc[[1, 2, 3, 6, 7, 9], "Attempt"].tolist() == [1, 1, 1, 2, 2, 3]
    assert act.loc[9, "Outcome"] == "pending"


def test_fan_out_retries_without_inputs_are_taken_first_in_first_out():
    h = History("fifo")
    h.episode(0, h.started(), h.task("A", 1), h.task("A", 2), h.task("A", 3))
    h.episode(1, h.fail(2, "E", "x"), h.fail(3, "E", "y"), h.done(1, None))
    h.episode(2, h.task("A", 4), h.task("A", 5))
    h.episode(3, h.fail(5, "E", "z"))
    h.episode(4, h.task("A", 6))
    c = calls(h.frame()).set_index("EventId")
    assert c["Attempt"].tolist() == [1, 1, 1, 2, 2, 3]
    assert c["Retried"].tolist() == [False, True, True, False, True, False]


def test_pending_while_running_and_canceled_once_the_execution_ended():
    running = History("running")
    running.episode(0, running.started(), running.timer(1, 3600), running.task("Slow", 2))
    ended = History("ended")
    ended.episode(0, ended.started(), ended.timer(1, 3600), ended.raised("approval"))
    ended.episode(5, ended.raised("Approval", True), ended.complete("Completed", "approved"))
    c = calls(histories(running, ended))
    assert c.set_index(["InstanceId", "EventId"])["Outcome"].to_dict() == {
        ("running", 1): "pending",
        ("running", 2): "pending",
        ("ended", 1): "canceled",
    }
    assert c["CompletedTime"].isna().all() and c["Duration"].isna().all()


def test_sub_orchestrations_carry_their_child_and_failure():
    h = History("parent")
    details = failure("MyError", "child broke", "at child()")
    h.episode(0, h.started(), h.sub("Child", 1, "child-1"), h.sub("Child", 2, "child-2"))
    h.episode(3, h.sub_done(1, {"n": 1}))
    h.episode(4, h.sub_fail(2, "MyError", "child broke", details))
    c = calls(h.frame())
    assert c["Kind"].tolist() == ["suborchestration"] * 2
    assert c["TargetInstanceId"].tolist() == ["child-1", "child-2"]
    assert c["Outcome"].tolist() == ["completed", "failed"]
    assert c["Result"].iloc[0] == {"n": 1}
    assert c["FailureType"].iloc[1] == "MyError"
    assert c["FailureStackTrace"].iloc[1] == "at child()"
    assert c["FailureDetails"].iloc[1]["ErrorMessage"] == "child broke"
    assert c["Result"].iloc[1] is None


def test_continue_as_new_keeps_executions_apart():
    h = History("eternal", "x1")
    h.episode(0, h.started("Eternal", 0), h.task("Tick", 1))
    h.episode(1, h.done(1, 1), h.continue_as_new(1))
    h.new_execution("x2")
    h.episode(2, h.started("Eternal", 1), h.task("Tick", 1))
    h.episode(4, h.fail(1, "E", "tick failed"))
    c = calls(h.frame())
    assert c["ExecutionId"].tolist() == ["x1", "x2"]
    assert c["Outcome"].tolist() == ["completed", "failed"]
    assert c["Duration"].dt.total_seconds().tolist() == [1.0, 2.0]
    assert c["Attempt"].tolist() == [1, 1]


def test_minimal_frames_and_empty_frames():
    minimal = pd.DataFrame(
        {
            "InstanceId": ["i", "i"],
            "EventType": ["TaskScheduled", "TaskCompleted"],
            "EventId": [0, -1],
            "TaskScheduledId": [None, 0],
            "Name": ["A", None],
            "Timestamp": pd.to_datetime(["2026-01-01T00:00:00Z", "2026-01-01T00:00:02Z"]),
        }
    )
    c = calls(minimal)
    assert c["Outcome"].tolist() == ["completed"]
    assert c["Duration"].iloc[0] == pd.Timedelta(seconds=2)
    empty = calls(hello_chain().frame().iloc[0:0])
    assert list(empty.columns) == CALL_COLUMNS and empty.empty
