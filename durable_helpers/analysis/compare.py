"""`compare`: two instances' histories aligned event by event, differences marked."""

from __future__ import annotations

import difflib

import numpy as np
import pandas as pd

from ._common import HISTORY_DTYPES, conform

COMPARE_COLUMNS = [
    "Step",
    "Op",
    "Differs",
    "PosA",
    "PosB",
    "EventTypeA",
    "NameA",
    "EventTypeB",
    "NameB",
    "ElapsedA",
    "ElapsedB",
    "DurationA",
    "DurationB",
    "DurationDelta",
]

_MARKERS = ("OrchestratorStarted", "OrchestratorCompleted")
#: Event types that answer the same question (paired as "changed" when they differ).
_FAMILY = {
    "TaskFailed": "TaskCompleted",
    "SubOrchestrationInstanceFailed": "SubOrchestrationInstanceCompleted",
    "ContinueAsNew": "ExecutionCompleted",
    "ExecutionTerminated": "ExecutionCompleted",
}


def compare(
    history_a: pd.DataFrame, history_b: pd.DataFrame, *, markers: bool = False
) -> pd.DataFrame:
    """Align two instances' event sequences (EventType + Name) and mark where they differ.

    Each history is reduced to its sequence of (EventType, Name) tokens, in history order (for
    ExecutionCompleted and ContinueAsNew the OrchestrationStatus stands in for the Name);
    episode markers (OrchestratorStarted/Completed) are left out unless ``markers=True``, since
    how events batch into episodes depends on timing rather than on the code path. The two
    sequences are aligned with :class:`difflib.SequenceMatcher` (no junk heuristic).

    Output: one row per aligned step: Step, Op (``same``, ``changed``, ``only_a``, ``only_b``),
    Differs (bool), PosA/PosB (row number in each history, Int64, null when absent),
    EventTypeA/NameA, EventTypeB/NameB, ElapsedA/ElapsedB (time since that history's first
    event), DurationA/DurationB (the ``Duration`` of completion events) and DurationDelta (B - A).
    ``frame.attrs["first_divergence"]`` holds the Step of the first differing row (None when
    the sequences match); `first_divergence` reads it.

    Example:
        >>> d = compare(hub.history("good"), hub.history("bad"))         # doctest: +SKIP
        >>> d[d.Differs].head(1)                  # the first divergence  # doctest: +SKIP
    """
    a = _tokens(history_a, markers)
    b = _tokens(history_b, markers)
    ia, ib, ops = _align(list(a["tok"]), list(b["tok"]), list(a["fam"]), list(b["fam"]))
    ia_arr, ib_arr = np.asarray(ia, dtype=np.int64), np.asarray(ib, dtype=np.int64)
    side_a, side_b = _side(a, ia_arr, "A"), _side(b, ib_arr, "B")
    out = pd.concat([side_a, side_b], axis=1)
    out.insert(0, "Step", np.arange(len(out), dtype=np.int64))
    out.insert(1, "Op", pd.Categorical(ops, categories=["same", "changed", "only_a", "only_b"]))
    out.insert(2, "Differs", np.asarray(ops, dtype=object) != "same")
    out["DurationDelta"] = out["DurationB"] - out["DurationA"]
    out = out[COMPARE_COLUMNS]
    diffs = np.flatnonzero(out["Differs"].to_numpy(dtype=bool))
    out.attrs["first_divergence"] = int(diffs[0]) if len(diffs) else None
    return out


def _align(
    tok_a: list[str], tok_b: list[str], fam_a: list[str], fam_b: list[str]
) -> tuple[list[int], list[int], list[str]]:
    """Row pairs (index in a or -1, index in b or -1, op) aligning two token lists.

    Exact tokens first; inside a replaced block, a second pass pairs events of the same family
    (TaskCompleted with TaskFailed, ExecutionCompleted with ExecutionCompleted, ...) in order,
    earliest first, as ``changed``; the rest are events only one side has.
    """
    ia: list[int] = []
    ib: list[int] = []
    ops: list[str] = []

    def emit(ra: range | list[int], rb: range | list[int], op: str) -> None:
        ra, rb = list(ra), list(rb)
        n = max(len(ra), len(rb))
        ra += [-1] * (n - len(ra))
        rb += [-1] * (n - len(rb))
        ia.extend(ra)
        ib.extend(rb)
        ops.extend(
            op if x >= 0 and y >= 0 else ("only_a" if x >= 0 else "only_b")
            for x, y in zip(ra, rb, strict=True)
        )

    names = {"equal": "same", "delete": "only_a", "insert": "only_b"}
    outer = difflib.SequenceMatcher(a=tok_a, b=tok_b, autojunk=False)
    for tag, a0, a1, b0, b1 in outer.get_opcodes():
        if tag != "replace":
            emit(range(a0, a1), range(b0, b1), names[tag])
            continue
        i = a0  # greedy, in order: the earliest pairing is the one a reader expects
        for j in range(b0, b1):
            k = next((k for k in range(i, a1) if fam_a[k] == fam_b[j]), None)
            if k is None:
                emit([], [j], "only_b")
                continue
            emit(range(i, k), [], "only_a")
            emit([k], [j], "changed")
            i = k + 1
        emit(range(i, a1), [], "only_a")
    return ia, ib, ops


def first_divergence(comparison: pd.DataFrame) -> int | None:
    """The Step of the first differing row of a `compare` result, or None.

    Example:
        >>> step = first_divergence(compare(good, bad))                 # doctest: +SKIP
    """
    step = comparison.attrs.get("first_divergence")
    if step is not None:
        return step
    diffs = comparison.loc[comparison["Differs"].to_numpy(dtype=bool), "Step"]
    return int(diffs.iloc[0]) if len(diffs) else None


def _tokens(history: pd.DataFrame, markers: bool) -> pd.DataFrame:
    h = conform(
        history,
        HISTORY_DTYPES | {"Duration": "timedelta64[ns]"},
        ["EventType", "Name", "OrchestrationStatus", "Timestamp", "Duration"],
    )
    h["Pos"] = np.arange(len(h), dtype=np.int64)
    et = h["EventType"].astype("string").fillna("")
    if not markers:
        h = h[~et.isin(list(_MARKERS)).to_numpy(dtype=bool)].reset_index(drop=True)
        et = h["EventType"].astype("string").fillna("")
    # ExecutionCompleted has no Name: its status (Completed/Failed/...) is what tells runs apart.
    name = h["Name"].astype("string").fillna(h["OrchestrationStatus"].astype("string")).fillna("")
    h["tok"] = (et + "\x1f" + name).to_numpy(dtype=object)
    h["fam"] = et.replace(_FAMILY).to_numpy(dtype=object)
    first = history["Timestamp"].min() if "Timestamp" in history and len(history) else pd.NaT
    h["Elapsed"] = h["Timestamp"] - first
    return h


def _side(tok: pd.DataFrame, idx: np.ndarray, suffix: str) -> pd.DataFrame:
    present = idx >= 0
    take = np.where(present, idx, 0)
    mask = pd.Series(present)
    rows = tok["Pos"].to_numpy()[take] if len(tok) else take

    def pick(col: str) -> pd.Series:
        if len(tok) == 0:
            return pd.Series([None] * len(idx), dtype=object)
        return tok[col].iloc[take].reset_index(drop=True).where(mask)

    return pd.DataFrame(
        {
            f"Pos{suffix}": pd.array(
                [int(p) if ok else None for p, ok in zip(rows, present, strict=True)], dtype="Int64"
            ),
            f"EventType{suffix}": pick("EventType").astype("string"),
            f"Name{suffix}": pick("Name").astype("string"),
            f"Elapsed{suffix}": pd.to_timedelta(pick("Elapsed")),
            f"Duration{suffix}": pd.to_timedelta(pick("Duration")),
        }
    )
