"""`episodes`: one row per orchestrator episode (one run of the orchestrator code)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._common import HISTORY_DTYPES, combine, conform, execution_codes

#: Events an orchestrator episode writes itself (its actions), as opposed to inbound events.
ACTION_EVENTS = [
    "TaskScheduled",
    "SubOrchestrationInstanceCreated",
    "TimerCreated",
    "EventSent",
    "ExecutionCompleted",
    "ContinueAsNew",
]
MARKERS = ("OrchestratorStarted", "OrchestratorCompleted")

EPISODE_COLUMNS = [
    "InstanceId",
    "ExecutionId",
    "Episode",
    "Start",
    "End",
    "Duration",
    "EventsReplayed",
    "EventsNew",
    "Inbound",
    "Actions",
]


def episodes(history: pd.DataFrame) -> pd.DataFrame:
    """One row per orchestrator episode: OrchestratorStarted up to OrchestratorCompleted.

    Every time new events arrive the orchestrator code runs again from the top, replaying the
    history written so far; an episode is one such run. Episodes are numbered 1, 2, ... per
    execution (continue-as-new starts a new execution and a new count). Rows before the first
    OrchestratorStarted of an execution (none in a well-formed history) are not counted.

    Output columns: InstanceId, ExecutionId, Episode (Int32), Start (the OrchestratorStarted
    time), End (the OrchestratorCompleted time, else the last event of the episode; histories
    over gRPC often have no OrchestratorCompleted), Duration, EventsReplayed (events of the
    execution before this episode: what the worker replayed), EventsNew (rows of this episode,
    markers included), Inbound (events that woke the orchestrator: ExecutionStarted,
    TaskCompleted, TimerFired, EventRaised, ...), Actions (what it wrote: TaskScheduled,
    TimerCreated, SubOrchestrationInstanceCreated, EventSent, ExecutionCompleted, ContinueAsNew).

    Example:
        >>> ep = episodes(hub.history("abc"))                            # doctest: +SKIP
        >>> ep.EventsReplayed.sum()  # replayed over the life   # doctest: +SKIP
    """
    h = conform(history, HISTORY_DTYPES, ["InstanceId", "ExecutionId", "EventType", "Timestamp"])
    et = h["EventType"]
    execution = execution_codes(h)
    start = (et == "OrchestratorStarted").fillna(False).to_numpy(dtype=bool)
    end = (et == "OrchestratorCompleted").fillna(False).to_numpy(dtype=bool)
    action = et.isin(ACTION_EVENTS).to_numpy(dtype=bool)
    marker = start | end
    n = len(h)
    # Position within the execution and episode number (cumulative OrchestratorStarted count).
    order = np.argsort(execution, kind="stable")
    x_sorted = execution[order]
    first = np.r_[True, x_sorted[1:] != x_sorted[:-1]] if n else np.zeros(0, dtype=bool)
    group_start = np.maximum.accumulate(np.where(first, np.arange(n), 0)) if n else first
    pos = np.empty(n, dtype=np.int64)
    pos[order] = np.arange(n) - group_start
    starts_sorted = start[order].astype(np.int64)
    cum = np.cumsum(starts_sorted)
    before = (cum - starts_sorted)[group_start] if n else cum  # starts before each group
    ep = np.empty(n, dtype=np.int64)
    ep[order] = cum - before
    keep = ep > 0
    if not keep.any():
        return _empty(h)
    key = combine(execution[keep], ep[keep])
    ts = h["Timestamp"][keep].reset_index(drop=True)
    rows = np.flatnonzero(keep)
    g = pd.DataFrame(
        {
            "k": key,
            "row": rows,
            "pos": pos[keep],
            "ts": ts,
            "end_ts": ts.where(pd.Series(end[keep])),
            "action": action[keep],
            "marker": marker[keep],
        }
    ).groupby("k", sort=False)
    agg = g.agg(
        row0=("row", "first"),
        replayed=("pos", "min"),
        Start=("ts", "first"),
        last_ts=("ts", "last"),
        end_ts=("end_ts", "max"),
        new=("pos", "size"),
        actions=("action", "sum"),
        markers=("marker", "sum"),
    )
    row0 = agg["row0"].to_numpy()
    end_time = agg["end_ts"].fillna(agg["last_ts"])
    out = pd.DataFrame(
        {
            "InstanceId": h["InstanceId"].iloc[row0].array,
            "ExecutionId": h["ExecutionId"].iloc[row0].array,
            "Episode": pd.array(ep[row0], dtype="Int32"),
            "Start": agg["Start"].array,
            "End": end_time.array,
            "Duration": (end_time - agg["Start"]).array,
            "EventsReplayed": pd.array(agg["replayed"].to_numpy(), dtype="Int64"),
            "EventsNew": pd.array(agg["new"].to_numpy(), dtype="Int64"),
            "Inbound": pd.array(
                (agg["new"] - agg["actions"] - agg["markers"]).to_numpy(), dtype="Int64"
            ),
            "Actions": pd.array(agg["actions"].to_numpy(), dtype="Int64"),
        }
    )
    return out[EPISODE_COLUMNS]


def _empty(h: pd.DataFrame) -> pd.DataFrame:
    dtypes = {
        "InstanceId": h["InstanceId"].dtype,
        "ExecutionId": h["ExecutionId"].dtype,
        "Episode": "Int32",
        "Start": h["Timestamp"].dtype,
        "End": h["Timestamp"].dtype,
        "Duration": "timedelta64[ns]",
    }
    return pd.DataFrame({c: pd.Series(dtype=dtypes.get(c, "Int64")) for c in EPISODE_COLUMNS})
