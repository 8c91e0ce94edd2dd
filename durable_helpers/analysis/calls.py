"""`calls`: one row per activity call, sub-orchestration and durable timer of a history frame."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ._common import KINDS, OUTCOMES, UTC_NS
from ._common import array_of as _values
from ._common import combine as _combine
from ._common import factorize as _factorize

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
    rows_s, rows_c, kind_s, eid_s, exec_s, outcome = _pair(history)
    has_c = rows_c >= 0
    n_s = len(rows_s)

    def from_s(col: str, dtype: str) -> Any:
        return _take(history, col, rows_s, dtype)

    def from_c(col: str, dtype: str) -> Any:
        return _take(history, col, rows_c, dtype)

    sched_t = pd.Series(from_s("Timestamp", UTC_NS))
    comp_t = pd.Series(from_c("Timestamp", UTC_NS))
    out = pd.DataFrame(
        {
            "InstanceId": from_s("InstanceId", "string"),
            "ExecutionId": from_s("ExecutionId", "string"),
            "Kind": pd.Categorical.from_codes(kind_s, dtype=KINDS),
            "Name": from_s("Name", "string"),
            "EventId": pd.arrays.IntegerArray(eid_s.astype(np.int32), eid_s == _NULL_INT),
            "Attempt": pd.array(np.ones(n_s, dtype=np.int32), dtype="Int32"),
            "Retried": np.zeros(n_s, dtype=bool),
            "Outcome": pd.Categorical.from_codes(outcome, dtype=OUTCOMES),
            "ScheduledTime": sched_t,
            "CompletedTime": comp_t,
            "Duration": comp_t - sched_t,
            "FireAt": from_s("FireAt", UTC_NS),
            "TargetInstanceId": from_s("TargetInstanceId", "string"),
            "Input": from_s("Input", "object"),
            "Result": from_c("Result", "object"),
            "FailureType": from_c("FailureType", "string"),
            "FailureMessage": from_c("FailureMessage", "string"),
            "FailureStackTrace": from_c("FailureStackTrace", "string"),
            "FailureDetails": from_c("FailureDetails", "object"),
        },
        copy=False,
    )

    failed = outcome == 1
    if failed.any():
        # Retry chains only exist where something failed: number attempts in those keys only.
        # (first narrowed to executions with a failure, then to keys with a failure)
        xk = exec_s * 3 + kind_s
        sub = np.flatnonzero(np.isin(xk, np.unique(xk[failed])))
        name = _factorize(history, "Name", rows_s[sub])
        raw = _factorize(history, "InputRaw", rows_s[sub])
        g = _combine(_combine(xk[sub], name), raw)
        keep = np.isin(g, np.unique(g[failed[sub]]))
        sub, g = sub[keep], g[keep]
        attempt, retried = _attempts(
            g, rows_s[sub], np.where(has_c[sub], rows_c[sub], 0), failed[sub]
        )
        att = np.ones(n_s, dtype=np.int64)
        att[sub] = attempt
        ret = np.zeros(n_s, dtype=bool)
        ret[sub] = retried
        out["Attempt"] = pd.array(att, dtype="Int32")
        out["Retried"] = ret
    return out[CALL_COLUMNS]


def _pair(history: pd.DataFrame) -> tuple[np.ndarray, ...]:
    """Scheduled rows, their completion rows (-1: none), kind, EventId, execution, outcome code."""
    n = len(history)
    et = history["EventType"] if "EventType" in history else pd.Series([None] * n, dtype=object)
    rel = np.flatnonzero(et.isin(_EVENTS).to_numpy(dtype=bool))  # only these rows matter
    code = _event_codes(et.iloc[rel])
    exec_code = _combine(
        _factorize(history, "InstanceId", rel), _factorize(history, "ExecutionId", rel)
    )

    is_s = code < 3
    is_c = (code >= 3) & (code < 8)
    kind = _KIND_OF[np.maximum(code, 0)]  # 0 activity, 1 sub-orchestration, 2 timer
    eid = _ints(history, "EventId", rel)
    ref = np.where(
        kind == 2, _ints(history, "TimerId", rel), _ints(history, "TaskScheduledId", rel)
    )
    done = _match(exec_code, kind, np.where(is_s, eid, ref), is_s, is_c)
    del ref

    s_rel = np.flatnonzero(is_s)
    c_of_s = done[s_rel]
    has_c = c_of_s >= 0
    n_s = len(s_rel)

    # Outcome: the completion's, else canceled when the execution ended, else pending.
    ended_exec = np.zeros(exec_code.max(initial=-1) + 1, dtype=bool)
    ended_exec[exec_code[code >= 8]] = True
    c_code = code[np.where(has_c, c_of_s, 0)] if n_s else code[:0]
    outcome = np.where(
        has_c,
        np.where((c_code == 4) | (c_code == 6), 1, 0),
        np.where(ended_exec[exec_code[s_rel]], 3, 2),
    )
    rows_s = rel[s_rel]
    rows_c = np.where(has_c, rel[np.where(has_c, c_of_s, 0)] if n_s else 0, -1)
    return rows_s, rows_c, kind[s_rel], eid[s_rel], exec_code[s_rel], outcome


def _match(
    exec_code: np.ndarray, kind: np.ndarray, ident: np.ndarray, is_s: np.ndarray, is_c: np.ndarray
) -> np.ndarray:
    """For each row: the row of its completion if it is a matched scheduled event, else -1."""

    # Pair completions with scheduled events: sort by (execution, kind, id) then position; the
    # latest scheduled event before a completion in that order is its match, if the key agrees.
    key = (exec_code * 3 + kind) * (1 << 32) + (ident + (1 << 31))
    pair = np.flatnonzero(is_s | is_c)
    order = pair[np.lexsort((pair, key[pair]))]  # rel index, sorted by key then position
    marks = np.where(is_s[order], np.arange(len(order)), -1)
    last_s = np.maximum.accumulate(marks) if len(order) else marks
    ok = is_c[order] & (last_s >= 0)
    ok[ok] &= key[order[last_s[ok]]] == key[order[ok]]
    s_of_c = order[last_s[ok]]  # rel index of the scheduled event, per matched completion
    c_rel = order[ok]
    first = np.unique(s_of_c, return_index=True)[1] if len(s_of_c) else np.array([], dtype=int)
    # (several completions for one scheduled event: keep the first in key order = earliest)
    done = np.full(len(is_s), -1, dtype=np.int64)
    done[s_of_c[first]] = c_rel[first]
    return done


_EVENTS = [
    "TaskScheduled",
    "SubOrchestrationInstanceCreated",
    "TimerCreated",
    "TaskCompleted",
    "TaskFailed",
    "SubOrchestrationInstanceCompleted",
    "SubOrchestrationInstanceFailed",
    "TimerFired",
    "ExecutionCompleted",
    "ContinueAsNew",
]
_KIND_OF = np.array([0, 1, 2, 0, 0, 1, 1, 2, 0, 0], dtype=np.int64)
_NULL_INT = -(1 << 31)
#: The string dtype used by durable_helpers.frames (python storage: cheap to build and take).
_DTYPES = {"string": pd.StringDtype("python")}


def _event_codes(event_type: pd.Series) -> np.ndarray:
    """Index of each EventType in ``_EVENTS`` (-1 for other events), via a factorize."""
    codes, uniques = pd.factorize(_values(event_type))
    lut = np.array([_EVENTS.index(u) if u in _EVENTS else -1 for u in uniques] + [-1])
    return lut[np.asarray(codes)]  # code -1 (null) -> the trailing -1


def _ints(frame: pd.DataFrame, col: str, rows: np.ndarray) -> np.ndarray:
    """int64 values of ``frame[col]`` at ``rows``; nulls (and a missing column) -> -2**31."""
    if col not in frame:
        return np.full(len(rows), _NULL_INT, dtype=np.int64)
    values = _values(frame[col]).take(rows)
    return np.asarray(pd.array(values, dtype="Int64").to_numpy(dtype=np.int64, na_value=_NULL_INT))


def _take(frame: pd.DataFrame, col: str, rows: np.ndarray, dtype: str) -> Any:
    """``frame[col]`` at ``rows`` (-1 -> null) as an array of ``dtype``; all null when missing."""
    if col not in frame:
        if dtype == "object":
            return np.full(len(rows), None, dtype=object)
        return pd.array(np.full(len(rows), None, dtype=object), dtype=_DTYPES.get(dtype, dtype))
    arr = _values(frame[col])
    if dtype == "object":
        if not len(arr):
            return np.full(len(rows), None, dtype=object)
        values = np.asarray(arr.take(np.maximum(rows, 0)), dtype=object)
        values[rows < 0] = None
        return values
    taken = pd.api.extensions.take(arr, rows, allow_fill=True)
    if str(getattr(taken, "dtype", "")) != dtype:
        taken = (
            pd.array(taken).astype(dtype)
            if dtype != UTC_NS
            else pd.Series(taken)
            .pipe(lambda s: s.dt.tz_localize("UTC") if s.dt.tz is None else s.dt.tz_convert("UTC"))
            .array
        )
    return taken


def _attempts(
    g: np.ndarray, spos: np.ndarray, cpos: np.ndarray, failed: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Attempt numbers and retried flags for calls of retry keys ``g`` (see `calls`)."""
    n = len(spos)
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
    sch["cm"] = sch["F"].to_numpy() - i
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
