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


def compare(
    history_a: pd.DataFrame, history_b: pd.DataFrame, *, markers: bool = False
) -> pd.DataFrame:
    """Align two instances' event sequences (EventType + Name) and mark where they differ.

    Each history is reduced to its sequence of (EventType, Name) tokens, in history order;
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
    matcher = difflib.SequenceMatcher(a=list(a["tok"]), b=list(b["tok"]), autojunk=False)
    ia: list[int] = []
    ib: list[int] = []
    ops: list[str] = []
    names = {"equal": "same", "replace": "changed", "delete": "only_a", "insert": "only_b"}
    for tag, a0, a1, b0, b1 in matcher.get_opcodes():
        n = max(a1 - a0, b1 - b0)
        ra = list(range(a0, a1)) + [-1] * (n - (a1 - a0))
        rb = list(range(b0, b1)) + [-1] * (n - (b1 - b0))
        if tag == "replace":  # unequal lengths: the surplus is only on one side
            kinds = [
                "changed" if x >= 0 and y >= 0 else ("only_a" if x >= 0 else "only_b")
                for x, y in zip(ra, rb, strict=True)
            ]
        else:
            kinds = [names[tag]] * n
        ia += ra
        ib += rb
        ops += kinds
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
        ["EventType", "Name", "Timestamp", "Duration"],
    )
    h["Pos"] = np.arange(len(h), dtype=np.int64)
    et = h["EventType"].astype("string").fillna("")
    if not markers:
        h = h[~et.isin(list(_MARKERS)).to_numpy(dtype=bool)].reset_index(drop=True)
        et = h["EventType"].astype("string").fillna("")
    name = h["Name"].astype("string").fillna("")
    h["tok"] = (et + "\x1f" + name).to_numpy(dtype=object)
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
