"""Shared helpers for the analyses: the columns they read, and null-tolerant access to them.

The analyses take frames shaped as in docs/frames.md. Hand-made or partial frames are accepted:
a column the analysis needs but the frame lacks is treated as all null.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

UTC_NS = "datetime64[ns, UTC]"

#: History columns the analyses read, with the dtype a missing one gets.
HISTORY_DTYPES: dict[str, str] = {
    "InstanceId": "string",
    "ExecutionId": "string",
    "Sequence": "Int64",
    "EventType": "string",
    "EventId": "Int32",
    "Timestamp": UTC_NS,
    "Name": "string",
    "TaskScheduledId": "Int32",
    "TimerId": "Int32",
    "FireAt": UTC_NS,
    "TargetInstanceId": "string",
    "OrchestrationStatus": "string",
    "Input": "object",
    "Result": "object",
    "InputRaw": "string",
    "ResultRaw": "string",
    "FailureType": "string",
    "FailureMessage": "string",
    "FailureStackTrace": "string",
    "FailureDetails": "object",
}

#: Instance columns the analyses read, with the dtype a missing one gets.
INSTANCE_DTYPES: dict[str, str] = {
    "InstanceId": "string",
    "Name": "string",
    "RuntimeStatus": "string",
    "CreatedTime": UTC_NS,
    "LastUpdatedTime": UTC_NS,
    "CompletedTime": UTC_NS,
    "ExecutionId": "string",
    "Output": "object",
    "InputRaw": "string",
    "OutputRaw": "string",
    "CustomStatusRaw": "string",
    "ScheduledStartTime": UTC_NS,
}

#: Scheduled events -> call kind.
SCHEDULED_KIND = {
    "TaskScheduled": "activity",
    "SubOrchestrationInstanceCreated": "suborchestration",
    "TimerCreated": "timer",
}
#: Completion events -> (call kind, outcome).
COMPLETION_KIND = {
    "TaskCompleted": ("activity", "completed"),
    "TaskFailed": ("activity", "failed"),
    "SubOrchestrationInstanceCompleted": ("suborchestration", "completed"),
    "SubOrchestrationInstanceFailed": ("suborchestration", "failed"),
    "TimerFired": ("timer", "completed"),
}
#: Events that end an execution.
END_EVENTS = ("ExecutionCompleted", "ContinueAsNew")
#: Runtime statuses that are final (the instance will not change on its own).
TERMINAL_STATUSES = ("Completed", "Failed", "Terminated", "Canceled", "ContinuedAsNew")

KINDS = pd.CategoricalDtype(["activity", "suborchestration", "timer"])
OUTCOMES = pd.CategoricalDtype(["completed", "failed", "pending", "canceled"])


def conform(frame: pd.DataFrame, dtypes: dict[str, str], needed: list[str]) -> pd.DataFrame:
    """``frame[needed]`` with a fresh RangeIndex; missing columns are added as all-null."""
    out = {}
    n = len(frame)
    for col in needed:
        if col in frame.columns:
            out[col] = frame[col].reset_index(drop=True)
            if dtypes[col] == UTC_NS and not _is_utc(out[col]):
                out[col] = as_utc(out[col])
        else:
            out[col] = pd.Series(pd.array([None] * n, dtype=dtypes[col]))
    return pd.DataFrame(out)


def _is_utc(values: pd.Series) -> bool:
    tz = getattr(values.dtype, "tz", None)
    return tz is not None and str(tz) == "UTC"


def as_utc(values: pd.Series) -> pd.Series:
    """A datetime series in UTC (naive values are taken to be UTC)."""
    s = pd.to_datetime(values, utc=values.dtype == object)
    if getattr(s.dt, "tz", None) is None:
        return s.dt.tz_localize("UTC")
    return s.dt.tz_convert("UTC")


def strings(values: pd.Series, fill: str = "") -> np.ndarray:
    """An object array of Python strings, nulls replaced by ``fill`` (for use as keys)."""
    return values.astype("string").fillna(fill).to_numpy(dtype=object)


def ints(values: pd.Series, fill: int = -(2**31)) -> np.ndarray:
    """An int64 array, nulls replaced by ``fill`` (for use as keys)."""
    return pd.array(values, dtype="Int64").fillna(fill).to_numpy(dtype=np.int64)


def group_codes(*keys: np.ndarray | pd.Series) -> np.ndarray:
    """One int64 code per distinct combination of the key arrays (order of first appearance)."""
    frame = pd.DataFrame({f"k{i}": np.asarray(k) for i, k in enumerate(keys)})
    return frame.groupby(list(frame.columns), sort=False, dropna=False).ngroup().to_numpy()


def failure_get(details: Any, key: str) -> Any:
    """``details[key]`` for a FailureDetails dict in PascalCase or camelCase; None if absent."""
    if isinstance(details, str):
        try:
            details = json.loads(details)
        except ValueError:
            return None
    if not isinstance(details, dict):
        return None
    for k in (key, key[:1].lower() + key[1:]):
        if k in details:
            return details[k]
    return None


def innermost(details: Any) -> dict | None:
    """The innermost failure of a FailureDetails chain (following InnerFailure), or None."""
    if isinstance(details, str):
        try:
            details = json.loads(details)
        except ValueError:
            return None
    if not isinstance(details, dict):
        return None
    seen = 0
    while seen < 50:
        inner = failure_get(details, "InnerFailure")
        if isinstance(inner, str):
            try:
                inner = json.loads(inner)
            except ValueError:
                inner = None
        if not isinstance(inner, dict) or not inner:
            return details
        details = inner
        seen += 1
    return details


def array_of(series: pd.Series) -> Any:
    """The column's ExtensionArray, or its numpy array for plain numpy dtypes."""
    values = series.array
    if isinstance(values, pd.arrays.NumpyExtensionArray):
        return values.to_numpy()
    return values


def factorize(frame: pd.DataFrame, col: str, rows: np.ndarray) -> np.ndarray:
    """Integer codes (nulls get their own code) of ``frame[col]`` at ``rows``."""
    if col not in frame:
        return np.zeros(len(rows), dtype=np.int64)
    codes, _ = pd.factorize(array_of(frame[col]).take(rows), use_na_sentinel=True)
    return np.asarray(codes, dtype=np.int64) + 1


def combine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """One dense code per distinct (a, b) pair (both non-negative int64 codes)."""
    if len(a) == 0:
        return a.astype(np.int64)
    return pd.factorize(a * (int(b.max()) + 1) + b)[0].astype(np.int64)


def execution_codes(frame: pd.DataFrame, rows: np.ndarray | None = None) -> np.ndarray:
    """One dense int64 code per (InstanceId, ExecutionId) of ``frame`` (at ``rows``)."""
    rows = np.arange(len(frame)) if rows is None else rows
    return combine(factorize(frame, "InstanceId", rows), factorize(frame, "ExecutionId", rows))


def short_delta(delta: pd.Timedelta) -> str:
    """A timedelta rounded to seconds, for messages (``?`` when unknown)."""
    if pd.isna(delta):
        return "?"
    return str(pd.Timedelta(delta).round("s"))
