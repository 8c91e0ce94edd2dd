"""`calls`: one row per activity call, sub-orchestration and durable timer of a history frame."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._common import (
    COMPLETION_KIND,
    END_EVENTS,
    HISTORY_DTYPES,
    KINDS,
    OUTCOMES,
    SCHEDULED_KIND,
    conform,
    group_codes,
    ints,
    strings,
)

CALL_COLUMNS = [
    "InstanceId",
    "ExecutionId",
    "Kind",
    "Name",
    "EventId",
    "Attempt",
    "Retried",
    "Outcome",
    "ScheduledTime",
    "CompletedTime",
    "Duration",
    "FireAt",
    "TargetInstanceId",
    "Input",
    "Result",
    "FailureType",
    "FailureMessage",
    "FailureStackTrace",
    "FailureDetails",
]

_NEEDED = [
    "InstanceId",
    "ExecutionId",
    "EventType",
    "EventId",
    "Timestamp",
    "Name",
    "TaskScheduledId",
    "TimerId",
    "FireAt",
    "TargetInstanceId",
    "Input",
    "InputRaw",
    "Result",
    "FailureType",
    "FailureMessage",
    "FailureStackTrace",
    "FailureDetails",
]


def calls(history: pd.DataFrame) -> pd.DataFrame:
    """One row per activity call, sub-orchestration and durable timer, paired with its outcome.

    Pairing follows docs/frames.md: a completion (TaskCompleted/TaskFailed,
    SubOrchestrationInstanceCompleted/Failed) points at its scheduled event through
    ``TaskScheduledId``, a TimerFired at its TimerCreated through ``TimerId``; when several
    scheduled events of one execution share an EventId the completion goes to the latest one
    before it. Rows are expected in history order per instance and execution (as every reader
    returns them); the output keeps that order (by scheduled event).

    ``Outcome`` is ``completed`` / ``failed``, ``pending`` while the execution is still open, and
    ``canceled`` when the execution ended (ExecutionCompleted or ContinueAsNew) without the call
    completing (a timer that lost a race, work abandoned by a terminate or a failure).

    **Attempts (retries).** Within one execution, calls of the same kind and ``Name`` (and the same
    ``InputRaw`` when the history stores inputs) form retry chains: a call scheduled after a
    failure of an earlier call with that key, which no earlier call has taken up yet, is the next
    attempt of that failed call (failures are taken up first-in, first-out). This covers the
    Python SDK (a retry is a new TaskScheduled with a new EventId after a timer) and .NET (the
    same EventId may repeat), because it never looks at EventIds. ``Attempt`` is 1 for a first
    call, 2 for its first retry, ...; ``Retried`` is True when a later attempt took this failure
    up. A deliberate second call after a caught failure, with the same name and input, counts as
    a retry too: the history cannot tell the two apart.

    Output columns: InstanceId, ExecutionId, Kind (category: activity/suborchestration/timer),
    Name, EventId (Int32), Attempt (Int32), Retried (bool), Outcome (category:
    completed/failed/pending/canceled), ScheduledTime, CompletedTime (UTC), Duration (timedelta),
    FireAt (timers), TargetInstanceId (sub-orchestration child), Input, Result, FailureType,
    FailureMessage, FailureStackTrace, FailureDetails.

    Example:
        >>> c = calls(hub.history("abc"))                                  # doctest: +SKIP
        >>> c[c.Kind == "activity"][["Name", "Attempt", "Outcome", "Duration"]]  # doctest: +SKIP
    """
    h = conform(history, HISTORY_DTYPES, _NEEDED)
    et = h["EventType"].astype("string")
    inst = strings(h["InstanceId"])
    exe = strings(h["ExecutionId"])
    pos = np.arange(len(h), dtype=np.int64)

    s_mask = et.isin(list(SCHEDULED_KIND)).to_numpy(dtype=bool)
    c_mask = et.isin(list(COMPLETION_KIND)).to_numpy(dtype=bool)
    et_obj = et.fillna("").to_numpy(dtype=object)

    # -- scheduled events
    s_idx = np.flatnonzero(s_mask)
    s_kind = pd.Series(et_obj[s_idx]).map(SCHEDULED_KIND).to_numpy(dtype=object)
    s_eid = ints(h["EventId"])[s_idx]

    # -- completions, with the id of what they complete
    c_idx = np.flatnonzero(c_mask)
    c_et = pd.Series(et_obj[c_idx])
    c_kind = c_et.map({e: v[0] for e, v in COMPLETION_KIND.items()}).to_numpy(dtype=object)
    c_outcome = c_et.map({e: v[1] for e, v in COMPLETION_KIND.items()}).to_numpy(dtype=object)
    ref_task = ints(h["TaskScheduledId"])[c_idx]
    ref_timer = ints(h["TimerId"])[c_idx]
    c_ref = np.where(c_kind == "timer", ref_timer, ref_task)

    # One integer key per (instance, execution, kind, id) over both sides, then an as-of join:
    # each completion takes the latest scheduled event with its key before it.
    n_s = len(s_idx)
    keys = group_codes(
        np.concatenate([inst[s_idx], inst[c_idx]]),
        np.concatenate([exe[s_idx], exe[c_idx]]),
        np.concatenate([s_kind, c_kind]),
        np.concatenate([s_eid, c_ref]),
    )
    left = pd.DataFrame({"_k": keys[n_s:], "_cpos": pos[c_idx], "_cout": c_outcome})
    right = pd.DataFrame({"_k": keys[:n_s], "_spos": pos[s_idx]})
    matched = pd.merge_asof(
        left, right, left_on="_cpos", right_on="_spos", by="_k", direction="backward"
    )
    matched = matched.dropna(subset=["_spos"]).drop_duplicates("_spos", keep="first")
    done_pos = np.full(len(h), -1, dtype=np.int64)
    done_pos[matched["_spos"].to_numpy(dtype=np.int64)] = matched["_cpos"].to_numpy()
    c_of_s = done_pos[s_idx]  # position of the completion of each scheduled event, or -1
    has_c = c_of_s >= 0
    cpos = np.where(has_c, c_of_s, 0)

    # -- did the execution end (ExecutionCompleted or ContinueAsNew)?
    exec_code = group_codes(inst, exe)
    end_mask = et.isin(list(END_EVENTS)).to_numpy(dtype=bool)
    ended_exec = np.bincount(exec_code[end_mask], minlength=exec_code.max(initial=-1) + 1) > 0
    ended = ended_exec[exec_code[s_idx]]
    outcome_of = {e: v[1] for e, v in COMPLETION_KIND.items()}
    outcome_done = pd.Series(et_obj[cpos]).map(outcome_of).fillna("").to_numpy(dtype=object)
    outcome = np.where(has_c, outcome_done, np.where(ended, "canceled", "pending"))

    ts = h["Timestamp"]
    sched_t = ts.iloc[s_idx].reset_index(drop=True)
    comp_t = ts.iloc[cpos].reset_index(drop=True).where(pd.Series(has_c))

    def from_c(col: str) -> pd.Series:
        return h[col].iloc[cpos].reset_index(drop=True).where(pd.Series(has_c))

    def from_s(col: str) -> pd.Series:
        return h[col].iloc[s_idx].reset_index(drop=True)

    out = pd.DataFrame(
        {
            "InstanceId": from_s("InstanceId").astype("string"),
            "ExecutionId": from_s("ExecutionId").astype("string"),
            "Kind": pd.Categorical(s_kind, dtype=KINDS),
            "Name": from_s("Name").astype("string"),
            "EventId": pd.array(from_s("EventId"), dtype="Int32"),
            "Attempt": pd.array(np.ones(n_s, dtype=np.int32), dtype="Int32"),
            "Retried": np.zeros(n_s, dtype=bool),
            "Outcome": pd.Categorical(outcome, dtype=OUTCOMES),
            "ScheduledTime": sched_t,
            "CompletedTime": comp_t,
            "Duration": comp_t - sched_t,
            "FireAt": from_s("FireAt"),
            "TargetInstanceId": from_s("TargetInstanceId").astype("string"),
            "Input": from_s("Input").astype(object),
            "Result": from_c("Result").astype(object),
            "FailureType": from_c("FailureType").astype("string"),
            "FailureMessage": from_c("FailureMessage").astype("string"),
            "FailureStackTrace": from_c("FailureStackTrace").astype("string"),
            "FailureDetails": from_c("FailureDetails").astype(object),
        }
    )
    # Null out payloads of calls without a completion (``where`` left NaN in object columns).
    for col in ("Result", "FailureDetails"):
        out[col] = out[col].where(pd.Series(has_c), None)

    if n_s:
        attempt, retried = _attempts(
            inst[s_idx],
            exe[s_idx],
            s_kind,
            strings(from_s("Name")),
            strings(from_s("InputRaw"), fill="\x00"),
            pos[s_idx],
            cpos,
            outcome == "failed",
        )
        out["Attempt"] = pd.array(attempt, dtype="Int32")
        out["Retried"] = retried
    return out[CALL_COLUMNS]


def _attempts(
    inst: np.ndarray,
    exe: np.ndarray,
    kind: np.ndarray,
    name: np.ndarray,
    raw_input: np.ndarray,
    spos: np.ndarray,
    cpos: np.ndarray,
    failed: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Attempt numbers and retried flags for calls in history order (see `calls`)."""
    n = len(spos)
    g = group_codes(inst, exe, kind, name, raw_input)
    call_no = np.arange(n)

    # Events: each call's schedule (type 1) and each failure (type 0), in history order per key.
    f_idx = np.flatnonzero(failed)
    ev = pd.DataFrame(
        {
            "g": np.concatenate([g, g[f_idx]]),
            "pos": np.concatenate([spos, cpos[f_idx]]),
            "call": np.concatenate([call_no, f_idx]),
            "is_fail": np.concatenate([np.zeros(n, dtype=np.int64), np.ones(len(f_idx), np.int64)]),
        }
    ).sort_values(["g", "pos"], kind="stable")
    ev["F"] = ev.groupby("g", sort=False)["is_fail"].cumsum()  # failures before this point
    sch = ev[ev["is_fail"] == 0].copy()
    # R_i (failures taken up by calls 0..i of a key) = min(R_{i-1} + 1, F_i), unrolled:
    # R_i = i + min(1, min_{j<=i}(F_j - j)).
    i = sch.groupby("g", sort=False).cumcount().to_numpy()
    d = sch["F"].to_numpy() - i
    sch["cm"] = d
    cm = sch.groupby("g", sort=False)["cm"].cummin().to_numpy()
    r = i + np.minimum(cm, 1)
    prev_r = np.where(i == 0, 0, np.roll(r, 1))
    sch["take"] = np.where(r > prev_r, r, 0)  # which failure (1-based, per key) this call retries

    fails = ev[ev["is_fail"] == 1].copy()
    fails["take"] = fails.groupby("g", sort=False).cumcount() + 1
    link = sch[sch["take"] > 0][["g", "take", "call"]].merge(
        fails[["g", "take", "call"]], on=["g", "take"], suffixes=("", "_of")
    )
    parent = np.full(n, -1, dtype=np.int64)
    parent[link["call"].to_numpy()] = link["call_of"].to_numpy()
    retried = np.zeros(n, dtype=bool)
    retried[link["call_of"].to_numpy()] = True

    attempt = np.ones(n, dtype=np.int64)
    has_parent = parent >= 0
    for _ in range(n + 1):  # converges in (longest retry chain) steps
        new = np.where(has_parent, attempt[np.where(has_parent, parent, 0)] + 1, 1)
        if np.array_equal(new, attempt):
            break
        attempt = new
    return attempt, retried
