"""`stuck`: instances that stopped making progress, or whose tables disagree; stuck entities."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._common import HISTORY_DTYPES, INSTANCE_DTYPES, TERMINAL_STATUSES, conform, short_delta
from .stuck_entities import ENTITY_COLUMNS, ENTITY_REASONS, stuck_entities

STUCK_COLUMNS = [
    "InstanceId",
    "Name",
    "RuntimeStatus",
    "Reason",
    "Detail",
    "CreatedTime",
    "LastUpdatedTime",
    "LastEventTime",
    "LastEventType",
    "Idle",
    *ENTITY_COLUMNS,
]

#: Reasons, in the order they are reported.
REASONS = pd.CategoricalDtype(
    [
        "no-progress",
        "never-started",
        "running-but-completed",
        "finished-without-completion",
        *ENTITY_REASONS,
    ]
)


def stuck(
    instances: pd.DataFrame,
    histories: pd.DataFrame | None = None,
    *,
    entities: pd.DataFrame | None = None,
    older_than: pd.Timedelta | str = "1h",
    now: pd.Timestamp | str | None = None,
) -> pd.DataFrame:
    """Instances that look stuck, one row per (instance, reason), with a ``Reason`` column.

    Reasons:

    - ``no-progress``: Running or Pending, and nothing happened for longer than ``older_than``
      (the last progress is the latest of ``LastUpdatedTime``, the instance's last history
      event when ``histories`` is given, and ``ScheduledStartTime``).
    - ``never-started``: Pending, due (created, or scheduled to start) longer than
      ``older_than`` ago, and (``histories`` given) its history holds no ExecutionStarted: the
      start message never got processed.
    - ``running-but-completed``: Running/Pending in Instances while the history of its current
      execution already holds ExecutionCompleted (the Instances update was lost). No age limit.
    - ``finished-without-completion``: the reverse: Completed/Failed/Terminated/Canceled in
      Instances while the history of the current execution has rows but no ExecutionCompleted.
      No age limit. ``ContinuedAsNew`` counts when the history has a ContinueAsNew event,
      ``Terminated`` when it has ExecutionTerminated.

    The table comparisons only look at instances that have rows in ``histories`` (a history you
    did not load is not a disagreement). Read Instances and History close together: a checkpoint
    writes History first, so a live instance can look ``running-but-completed`` for milliseconds.

    With ``entities`` (``TaskHub.entities()``), entity rows follow (see ``stuck_entities``):
    ``orphaned-lock`` (locked by an orchestration that is not Running/Suspended in
    ``instances``, or missing from it; pass all instances) and ``entity-backlog`` (requests
    waiting and no batch for longer than ``older_than``).

    Output columns: InstanceId, Name, RuntimeStatus, Reason (category), Detail, CreatedTime,
    LastUpdatedTime, LastEventTime, LastEventType, Idle (now - last progress), and for entity
    rows LockedBy, OwnerStatus, BacklogQueueSize.

    Example:
        >>> stuck(hub.instances(), older_than="30min")                   # doctest: +SKIP
    """
    threshold = pd.Timedelta(older_than)
    now_ts = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    if now_ts.tzinfo is None:
        now_ts = now_ts.tz_localize("UTC")
    inst = conform(
        instances,
        INSTANCE_DTYPES,
        [
            "InstanceId",
            "Name",
            "RuntimeStatus",
            "CreatedTime",
            "LastUpdatedTime",
            "ExecutionId",
            "ScheduledStartTime",
        ],
    )
    inst["RuntimeStatus"] = inst["RuntimeStatus"].astype("string")
    inst["InstanceId"] = inst["InstanceId"].astype("string")
    last = _last_events(inst, histories)
    inst = inst.merge(last, on="InstanceId", how="left")
    if "HasRows" not in inst:
        inst["HasRows"] = False
    inst["HasRows"] = inst["HasRows"].eq(True).to_numpy(dtype=bool)
    for col in ("HasStarted", "HasCompleted", "HasContinued", "HasTerminated"):
        inst[col] = inst[col].eq(True).to_numpy(dtype=bool) if col in inst else False

    # A scheduled start counts as progress: the instance is not due before it.
    progress = inst[["LastUpdatedTime", "LastEventTime", "ScheduledStartTime"]].max(axis=1)
    progress = progress.fillna(inst["CreatedTime"])
    inst["Idle"] = now_ts - progress
    status = inst["RuntimeStatus"]
    open_ = status.isin(["Running", "Pending"]).to_numpy(dtype=bool)
    due = inst[["CreatedTime", "ScheduledStartTime"]].max(axis=1)
    age = (now_ts - due).to_numpy()
    rows = inst["HasRows"].to_numpy()

    checks = {
        "no-progress": (open_ & (inst["Idle"] > threshold).to_numpy(dtype=bool), "idle for {idle}"),
        "never-started": (
            (status == "Pending").to_numpy(dtype=bool)
            & (histories is not None)
            & ~inst["HasStarted"].to_numpy()
            & (pd.Series(age) > threshold).to_numpy(dtype=bool),
            "Pending for {age} and no ExecutionStarted in its history",
        ),
        "running-but-completed": (
            open_ & rows & inst["HasCompleted"].to_numpy(),
            "{status} in Instances, ExecutionCompleted in History",
        ),
        "finished-without-completion": (
            status.isin([s for s in TERMINAL_STATUSES if s != "ContinuedAsNew"]).to_numpy(bool)
            & rows
            & ~inst["HasCompleted"].to_numpy()
            & ~((status == "Terminated").to_numpy(bool) & inst["HasTerminated"].to_numpy())
            | (
                (status == "ContinuedAsNew").to_numpy(bool)
                & rows
                & ~inst["HasContinued"].to_numpy()
            ),
            "{status} in Instances, no ExecutionCompleted in History",
        ),
    }
    parts = []
    for reason, (mask, template) in checks.items():
        sel = inst[np.asarray(mask, dtype=bool)].copy()
        if sel.empty:
            continue
        sel["Reason"] = reason
        sel["Detail"] = [
            template.format(idle=short_delta(i), age=short_delta(now_ts - c), status=s)
            for i, c, s in zip(sel["Idle"], sel["CreatedTime"], sel["RuntimeStatus"], strict=True)
        ]
        parts.append(sel)
    if parts:
        out = pd.concat(parts, ignore_index=True)
    else:
        out = inst.iloc[0:0].assign(Reason=pd.Series(dtype=object), Detail=pd.Series(dtype=object))
    out["Reason"] = pd.Categorical(out["Reason"], dtype=REASONS)
    out["Detail"] = out["Detail"].astype("string")
    out["LastEventType"] = (
        out["LastEventType"].astype("string")
        if "LastEventType" in out
        else pd.Series(pd.array([None] * len(out), dtype="string"))
    )
    if "LastEventTime" not in out:
        out["LastEventTime"] = pd.Series(pd.NaT, index=out.index, dtype="datetime64[ns, UTC]")
    for column, dtype in ENTITY_COLUMNS.items():
        out[column] = pd.Series(pd.array([None] * len(out), dtype=dtype), index=out.index)
    out = out[STUCK_COLUMNS].reset_index(drop=True)
    if entities is None:
        return out
    found = stuck_entities(entities, instances, older_than=threshold, now=now_ts)
    if found.empty:
        return out
    found = found.reindex(columns=STUCK_COLUMNS)
    return pd.concat([out, found], ignore_index=True).astype(out.dtypes.to_dict())


def _last_events(inst: pd.DataFrame, histories: pd.DataFrame | None) -> pd.DataFrame:
    """Per instance: last event time/type and which terminal events its current execution has."""
    cols = [
        "InstanceId",
        "LastEventTime",
        "LastEventType",
        "HasRows",
        "HasStarted",
        "HasCompleted",
        "HasContinued",
        "HasTerminated",
    ]
    if histories is None or len(histories) == 0:
        return pd.DataFrame(
            {c: pd.Series(dtype="string" if c == "InstanceId" else object) for c in cols}
        ).astype({"LastEventTime": "datetime64[ns, UTC]"})
    h = conform(histories, HISTORY_DTYPES, ["InstanceId", "ExecutionId", "EventType", "Timestamp"])
    h["InstanceId"] = h["InstanceId"].astype("string")
    # Keep the instance's current execution (all rows when either side has no ExecutionId).
    cur = inst[["InstanceId", "ExecutionId"]].rename(columns={"ExecutionId": "_cur"})
    h = h.merge(cur, on="InstanceId", how="left")
    keep = h["_cur"].isna() | h["ExecutionId"].isna() | (h["ExecutionId"] == h["_cur"])
    h = h[keep.fillna(True).to_numpy(dtype=bool)]
    et = h["EventType"].astype("string")
    h = h.assign(
        _started=(et == "ExecutionStarted").to_numpy(bool),
        _completed=(et == "ExecutionCompleted").to_numpy(bool),
        _continued=(et == "ContinueAsNew").to_numpy(bool),
        _terminated=(et == "ExecutionTerminated").to_numpy(bool),
    )
    g = h.groupby("InstanceId", sort=False)
    out = g.agg(
        LastEventTime=("Timestamp", "max"),
        HasStarted=("_started", "any"),
        HasCompleted=("_completed", "any"),
        HasContinued=("_continued", "any"),
        HasTerminated=("_terminated", "any"),
    )
    out["LastEventType"] = g["EventType"].last().astype("string")
    out["HasRows"] = True
    return out.reset_index()[cols]
