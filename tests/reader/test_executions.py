"""Continue-as-new leftovers, rewound instances, retries and long histories."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd

from durable_helpers import schema

T = datetime(2026, 11, 26, 12, 0, tzinfo=schema.UTC)


def at(seconds: float) -> datetime:
    return T + timedelta(seconds=seconds)


def ev(iid, exe, seq, etype, eid=-1, played=False, t=0.0, **cols):
    return schema.history_entity(iid, exe, seq, etype, event_id=eid, is_played=played,
                                 timestamp=at(t), **cols)  # fmt: skip


def test_continue_as_new_leftover_rows(hub):
    iid = "eternal"
    old = [
        ev(iid, "old", 0, "OrchestratorStarted", t=0),
        ev(iid, "old", 1, "ExecutionStarted", played=True, t=0, Name="Eternal", Input="1"),
    ]
    old += [
        ev(
            iid,
            "old",
            k,
            "TimerCreated" if k % 2 == 0 else "TimerFired",
            eid=k if k % 2 == 0 else -1,
            t=k,
            **({"FireAt": at(k + 1)} if k % 2 == 0 else {"TimerId": k - 1, "FireAt": at(k)}),
        )
        for k in range(2, 9)
    ]
    old += [
        ev(
            iid,
            "old",
            9,
            "ContinueAsNew",
            eid=9,
            t=9,
            OrchestrationStatus="ContinuedAsNew",
            Result="2",
        )
    ]
    hub.write_history([*old, schema.sentinel_entity(iid, "old", checkpoint_completed=at(9))])
    new = [ev(iid, "new", 0, "OrchestratorStarted", t=10),
           ev(iid, "new", 1, "ExecutionStarted", played=True, t=10, Name="Eternal", Input="2"),
           ev(iid, "new", 2, "TimerCreated", eid=0, t=10, FireAt=at(11)),
           ev(iid, "new", 3, "OrchestratorCompleted", t=10)]  # fmt: skip
    hub.write_history([*new, schema.sentinel_entity(iid, "new", checkpoint_completed=at(10))])

    th = hub.taskhub()
    current = th.history(iid)
    assert current.ExecutionId.unique().tolist() == ["new"]
    assert current.Sequence.tolist() == [0, 1, 2, 3]
    assert current.Input.dropna().tolist() == [2]

    everything = th.history(iid, execution="all")
    assert len(everything) == 10  # 4 new + 6 leftovers (rows 4..9 of the old execution)
    assert everything.ExecutionId.tolist() == ["old"] * 6 + ["new"] * 4  # older first
    assert everything.Sequence.tolist() == [4, 5, 6, 7, 8, 9, 0, 1, 2, 3]
    leftovers = th.history(iid, execution="old")
    assert leftovers.Sequence.tolist() == [4, 5, 6, 7, 8, 9]
    fired = leftovers[leftovers.EventType == "TimerFired"]
    # TimerFired 5 matches TimerCreated 4; 7 -> 6 (both leftovers), timers are 1 s.
    assert fired.Duration.dt.total_seconds().tolist() == [1.0, 1.0]
    assert th.history(iid, execution="nope").empty


def test_rewound_instance_generic_events(hub):
    iid = "rewound"
    rows = [
        ev(iid, "x", 0, "OrchestratorStarted", t=0),
        ev(iid, "x", 1, "ExecutionStarted", played=True, t=0, Name="Flaky"),
        # rewind rewrote the failed attempt in place: both rows are GenericEvent now
        ev(iid, "x", 2, "GenericEvent", eid=0, t=0.1, Name="Hello",
           Reason="Rewound: TaskScheduled"),
        ev(iid, "x", 3, "OrchestratorCompleted", t=0.1),
        ev(iid, "x", 4, "OrchestratorStarted", t=1),
        ev(iid, "x", 5, "GenericEvent", played=True, t=0.9, TaskScheduledId=0,
           Reason="Rewound: TaskFailed", Details="boom"),
        ev(iid, "x", 6, "ExecutionRewound", t=5, Reason="try again"),
        ev(iid, "x", 7, "TaskScheduled", eid=0, t=5.1, Name="Hello"),
        ev(iid, "x", 8, "OrchestratorCompleted", t=5.1),
        ev(iid, "x", 9, "OrchestratorStarted", t=6),
        ev(iid, "x", 10, "TaskCompleted", played=True, t=5.6, TaskScheduledId=0, Result='"ok"'),
    ]  # fmt: skip
    hub.write_history([*rows, schema.sentinel_entity(iid, "x", checkpoint_completed=at(6))])
    df = hub.taskhub().history(iid)
    generic = df[df.EventType == "GenericEvent"]
    assert generic.Reason.tolist() == ["Rewound: TaskScheduled", "Rewound: TaskFailed"]
    assert generic.FailureMessage.isna().all()  # not a failure any more
    assert generic.Duration.isna().all()
    done = df[df.EventType == "TaskCompleted"].iloc[0]
    assert done.Name == "Hello"
    assert done.ScheduledTime == pd.Timestamp(at(5.1))
    assert round(done.Duration.total_seconds(), 3) == 0.5


def test_retries_share_an_event_id(hub):
    iid = "retry"
    rows = [
        ev(iid, "r", 0, "ExecutionStarted", played=True, t=0, Name="Retrying"),
        ev(iid, "r", 1, "TaskScheduled", eid=0, t=1, Name="Hello"),
        ev(iid, "r", 2, "TaskFailed", played=True, t=2, TaskScheduledId=0, Reason="boom 1"),
        ev(iid, "r", 3, "TimerCreated", eid=1, t=2.1, FireAt=at(4)),
        ev(iid, "r", 4, "TimerFired", played=True, t=4, TimerId=1, FireAt=at(4)),
        ev(iid, "r", 5, "TaskScheduled", eid=0, t=4.1, Name="Hello"),
        ev(iid, "r", 6, "TaskFailed", played=True, t=4.6, TaskScheduledId=0, Reason="boom 2"),
        ev(iid, "r", 7, "TaskScheduled", eid=0, t=5, Name="Hello"),
        ev(iid, "r", 8, "TaskCompleted", played=True, t=5.9, TaskScheduledId=0, Result="1"),
    ]  # fmt: skip
    hub.write_history(rows)  # no sentinel: the first row gives the execution
    df = hub.taskhub().history(iid)
    ends = df[df.EventType.isin(["TaskFailed", "TaskCompleted"])]
    assert [round(d.total_seconds(), 3) for d in ends.Duration] == [1.0, 0.5, 0.9]
    assert ends.ScheduledTime.tolist() == [pd.Timestamp(at(s)) for s in (1, 4.1, 5)]
    assert ends.FailureMessage.tolist()[:2] == ["boom 1", "boom 2"]
    fired = df[df.EventType == "TimerFired"].iloc[0]
    assert fired.Duration.total_seconds() == 1.9 and fired.ScheduledTime == pd.Timestamp(at(2.1))


def test_long_history_follows_continuation(hub):
    iid = "long"
    rows = [ev(iid, "l", k, "EventRaised", played=True, t=k, Name=f"e{k}", Input=str(k))
            for k in range(1150)]  # fmt: skip
    hub.write_history([*rows, schema.sentinel_entity(iid, "l", checkpoint_completed=at(2000))])
    df = hub.taskhub().history(iid)
    assert len(df) == 1150  # more than one page (1000) of the table service
    assert df.Sequence.is_monotonic_increasing
    assert df.Input.iloc[-1] == 1149
