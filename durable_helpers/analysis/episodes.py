"""`episodes`: one row per orchestrator episode (one run of the orchestrator code)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._common import HISTORY_DTYPES, conform, group_codes, strings

#: Events an orchestrator episode writes itself (its actions), as opposed to inbound events.
ACTION_EVENTS = (
    "TaskScheduled",
    "SubOrchestrationInstanceCreated",
    "TimerCreated",
    "EventSent",
    "ExecutionCompleted",
    "ContinueAsNew",
)
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
    et = h["EventType"].astype("string").fillna("")
    execution = group_codes(strings(h["InstanceId"]), strings(h["ExecutionId"]))
    frame = pd.DataFrame(
        {
            "x": execution,
            "start": (et == "OrchestratorStarted").to_numpy(dtype=bool),
            "end": (et == "OrchestratorCompleted").to_numpy(dtype=bool),
            "action": et.isin(list(ACTION_EVENTS)).to_numpy(dtype=bool),
            "marker": et.isin(list(MARKERS)).to_numpy(dtype=bool),
            "ts": h["Timestamp"],
        }
    )
    by_x = frame.groupby("x", sort=False)
    frame["pos"] = by_x.cumcount()
    frame["ep"] = by_x["start"].cumsum()
    frame["end_ts"] = frame["ts"].where(frame["end"])
    frame = frame[frame["ep"] > 0]
    g = frame.groupby(["x", "ep"], sort=False)
    agg = g.agg(
        first_row=("pos", "min"),
        Start=("ts", "first"),
        last_ts=("ts", "last"),
        end_ts=("end_ts", "max"),
        EventsNew=("pos", "size"),
        Actions=("action", "sum"),
        Markers=("marker", "sum"),
    ).reset_index()
    first_of_x = pd.Series(np.arange(len(h)), index=execution).groupby(level=0).first()
    row0 = first_of_x.reindex(agg["x"]).to_numpy()
    end = agg["end_ts"].fillna(agg["last_ts"])
    out = pd.DataFrame(
        {
            "InstanceId": h["InstanceId"].iloc[row0].astype("string").to_numpy(),
            "ExecutionId": h["ExecutionId"].iloc[row0].astype("string").to_numpy(),
            "Episode": pd.array(agg["ep"], dtype="Int32"),
            "Start": agg["Start"],
            "End": end,
            "Duration": end - agg["Start"],
            "EventsReplayed": pd.array(agg["first_row"], dtype="Int64"),
            "EventsNew": pd.array(agg["EventsNew"], dtype="Int64"),
            "Inbound": pd.array(agg["EventsNew"] - agg["Actions"] - agg["Markers"], dtype="Int64"),
            "Actions": pd.array(agg["Actions"], dtype="Int64"),
        }
    )
    out["InstanceId"] = out["InstanceId"].astype("string")
    out["ExecutionId"] = out["ExecutionId"].astype("string")
    return out[EPISODE_COLUMNS]
