"""`latency`, `status_over_time`, `sizes`: numbers across many instances."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from durable_helpers.schema import RUNTIME_STATUSES

from ._common import HISTORY_DTYPES, INSTANCE_DTYPES, TERMINAL_STATUSES, conform

LATENCY_COLUMNS = [
    "Count",
    "Completed",
    "Failed",
    "Pending",
    "FailureRate",
    "Mean",
    "P50",
    "P95",
    "P99",
    "Max",
]

#: Offload threshold of the Azure Storage provider: UTF-16 byte count above 60 KiB.
LARGE_PAYLOAD_BYTES = 61_440


def latency(
    calls: pd.DataFrame,
    by: str | Sequence[str] = "Name",
    *,
    kinds: Sequence[str] | None = ("activity", "suborchestration"),
) -> pd.DataFrame:
    """Latency statistics of calls (the output of `calls`) per group.

    Durations are those of finished calls (completed or failed); pending and canceled calls are
    counted but have no duration. ``FailureRate`` = Failed / (Completed + Failed). Timers are left
    out by default (their duration is the wait the code asked for); pass ``kinds=None`` for all.

    Output: one row per group (index = the ``by`` columns), columns Count, Completed, Failed,
    Pending (pending or canceled), FailureRate (float), Mean, P50, P95, P99, Max (timedeltas),
    sorted by P95 descending.

    Example:
        >>> latency(calls(hub.histories(ids)))                           # doctest: +SKIP
        >>> latency(c, by=["Name", "Attempt"])                           # doctest: +SKIP
    """
    keys = [by] if isinstance(by, str) else list(by)
    c = calls[list(dict.fromkeys([*keys, "Outcome", "Duration"]))]
    if kinds is not None and "Kind" in calls:
        c = c[calls["Kind"].isin(list(kinds)).to_numpy(dtype=bool)]
    outcome = c["Outcome"]
    ok = (outcome == "completed").to_numpy(dtype=bool)
    bad = (outcome == "failed").to_numpy(dtype=bool)
    secs = c["Duration"].dt.total_seconds().to_numpy(dtype=float, na_value=np.nan)

    # Group codes (sorted groups; nulls are a group of their own) and the group index.
    if len(keys) == 1:
        codes, index = pd.Index(c[keys[0]]).factorize(sort=True, use_na_sentinel=False)
        index = pd.Index(index, name=keys[0])
    else:
        codes, index = pd.MultiIndex.from_frame(c[keys]).factorize(sort=True, use_na_sentinel=False)
        index = index.set_names(keys)
    k = len(index)
    codes = np.asarray(codes, dtype=np.int64)
    count = np.bincount(codes, minlength=k)
    completed = np.bincount(codes, weights=ok, minlength=k).astype(np.int64)
    failed = np.bincount(codes, weights=bad, minlength=k).astype(np.int64)

    # Quantiles by sorting durations within groups (linear interpolation, as numpy/pandas).
    has = ~np.isnan(secs)
    gc, gv = codes[has], secs[has]
    n_has = np.bincount(gc, minlength=k)
    total = np.bincount(gc, weights=gv, minlength=k)
    gv = gv[np.lexsort((gv, gc))]  # durations sorted within groups, groups in code order
    start = np.concatenate([[0], np.cumsum(n_has)[:-1]]) if k else n_has
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / n_has

    def quantile(q: float) -> np.ndarray:
        out = np.full(k, np.nan)
        m = n_has > 0
        pos = start[m] + q * (n_has[m] - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, start[m] + n_has[m] - 1)
        frac = pos - lo
        out[m] = gv[lo] + (gv[hi] - gv[lo]) * frac
        return out

    quantiles = [quantile(q) for q in (0.5, 0.95, 0.99, 1.0)]
    return latency_table(index, count, completed, failed, mean, quantiles)


def latency_table(
    index: pd.Index,
    count: np.ndarray,
    completed: np.ndarray,
    failed: np.ndarray,
    mean: np.ndarray,
    quantiles: Sequence[np.ndarray],
) -> pd.DataFrame:
    """The output frame of `latency` from per-group numbers (durations in float seconds;
    ``quantiles`` = P50, P95, P99, Max), sorted by P95 descending (ties keep ``index`` order).

    Example:
        >>> one = np.array([1])
        >>> latency_table(pd.Index(["Hello"], name="Name"), one, one, one * 0,
        ...               np.array([2.0]), [np.array([2.0])] * 4).loc["Hello", "P95"]
        Timedelta('0 days 00:00:02')
    """

    def seconds(values: np.ndarray) -> pd.Series:
        return pd.Series(pd.to_timedelta(values, unit="s"), index=index)

    with np.errstate(invalid="ignore", divide="ignore"):
        rate = failed / (completed + failed)
    p50, p95, p99, top = quantiles
    out = pd.DataFrame(
        {
            "Count": pd.Series(count, index=index, dtype="int64"),
            "Completed": completed,
            "Failed": failed,
            "Pending": count - completed - failed,
            "FailureRate": rate.astype(float),
            "Mean": seconds(mean),
            "P50": seconds(p50),
            "P95": seconds(p95),
            "P99": seconds(p99),
            "Max": seconds(top),
        },
        index=index,
    )
    return out[LATENCY_COLUMNS].sort_values(
        "P95", ascending=False, na_position="last", kind="stable"
    )


def status_over_time(
    instances: pd.DataFrame,
    freq: str = "1min",
    *,
    tidy: bool = False,
) -> pd.DataFrame:
    """How many instances were in each runtime status, at the end of each ``freq`` interval.

    The Instances table only holds the current status, so the past is reconstructed: an instance
    counts from ``CreatedTime``; until ``CompletedTime`` it counts as Running (or as its current
    status, if that is Pending/Running/Suspended), from ``CompletedTime`` on as its final status
    (``LastUpdatedTime`` stands in for a missing CompletedTime of a final status).

    Output (wide, default): index ``Time`` (UTC interval starts, every interval from the first
    creation to the last change), one int64 column per status seen. ``tidy=True``: columns Time,
    RuntimeStatus, Count (one row per interval and status, zeros included).

    Example:
        >>> status_over_time(hub.instances(), "5min").plot.area()        # doctest: +SKIP
    """
    inst = conform(
        instances,
        INSTANCE_DTYPES,
        ["RuntimeStatus", "CreatedTime", "LastUpdatedTime", "CompletedTime"],
    )
    status = inst["RuntimeStatus"].astype("string").fillna("Unknown")
    final = status.isin(list(TERMINAL_STATUSES)).to_numpy(dtype=bool)
    created = inst["CreatedTime"]
    done = inst["CompletedTime"].fillna(inst["LastUpdatedTime"])
    done = done.where(pd.Series(final), pd.NaT)
    ok = created.notna().to_numpy(dtype=bool)
    before = np.where(final, "Running", status.to_numpy(dtype=object))

    events = pd.concat(
        [
            pd.DataFrame({"t": created[ok], "s": before[ok], "d": 1}),
            pd.DataFrame({"t": done[ok & final], "s": before[ok & final], "d": -1}),
            pd.DataFrame({"t": done[ok & final], "s": status[ok & final].to_numpy(object), "d": 1}),
        ],
        ignore_index=True,
    ).dropna(subset=["t"])
    if not events.empty:
        events["t"] = events["t"].dt.floor(freq)
    return status_counts(events, freq, tidy=tidy)


def status_counts(events: pd.DataFrame, freq: str, *, tidy: bool = False) -> pd.DataFrame:
    """The output of `status_over_time` from its status changes, already floored to ``freq``.

    ``events`` has columns ``t`` (interval start, UTC), ``s`` (status) and ``d`` (+1 when an
    instance enters that status, -1 when it leaves; rows with the same t and s may be summed
    beforehand, which is how an engine hands them over).

    Example:
        >>> t = pd.Timestamp("2026-01-01", tz="UTC")
        >>> changes = pd.DataFrame({"t": [t], "s": ["Running"], "d": [1]})
        >>> status_counts(changes, "1min").Running.tolist()
        [1]
    """
    if events.empty:
        wide = pd.DataFrame(index=pd.DatetimeIndex([], tz="UTC", name="Time"))
    else:
        steps = events.groupby(["t", "s"])["d"].sum().unstack(fill_value=0)
        full = pd.date_range(steps.index.min(), steps.index.max(), freq=freq, name="Time")
        wide = steps.reindex(full, fill_value=0).cumsum().astype("int64")
        order = [s for s in RUNTIME_STATUSES if s in wide.columns]
        wide = wide[order + [c for c in wide.columns if c not in order]]
        wide.columns.name = "RuntimeStatus"
    if not tidy:
        return wide
    return (
        wide.stack().rename("Count").reset_index().astype({"RuntimeStatus": "string"})
        if not wide.empty
        else pd.DataFrame(
            {
                "Time": pd.Series(dtype="datetime64[ns, UTC]"),
                "RuntimeStatus": pd.Series(dtype="string"),
                "Count": pd.Series(dtype="int64"),
            }
        )
    )


SIZE_COLUMNS = [
    "InstanceId",
    "Name",
    "RuntimeStatus",
    "Events",
    "Executions",
    "Episodes",
    "InstancePayloadBytes",
    "HistoryPayloadBytes",
    "LargestPayloadBytes",
    "LargePayloads",
    "HasLargePayload",
]


def sizes(
    instances: pd.DataFrame, histories: pd.DataFrame, *, detail: bool = False
) -> pd.DataFrame:
    """History sizes and payload sizes per instance; payloads over the offload threshold flagged.

    Payload sizes are measured on the ``*Raw`` text columns (InputRaw, OutputRaw,
    CustomStatusRaw of Instances; InputRaw, ResultRaw of History) in UTF-8 bytes. A payload is
    *large* when its UTF-16 size is above 61,440 bytes (60 KiB): the Azure Storage provider then
    moves it to a blob in ``{hub}-largemessages``.

    Output: one row per instance (instances first, then instances only found in ``histories``):
    InstanceId, Name, RuntimeStatus, Events (history rows), Executions, Episodes
    (OrchestratorStarted count), InstancePayloadBytes, HistoryPayloadBytes, LargestPayloadBytes,
    LargePayloads (count), HasLargePayload. ``detail=True`` returns one row per payload instead:
    InstanceId, Source (Instances/History), ExecutionId, Sequence, EventType, Column, Bytes,
    Utf16Bytes, Large.

    Example:
        >>> s = sizes(hub.instances(), hub.histories(ids))               # doctest: +SKIP
        >>> s.sort_values("Events", ascending=False).head()              # doctest: +SKIP
    """
    inst = conform(
        instances,
        INSTANCE_DTYPES,
        ["InstanceId", "Name", "RuntimeStatus", "InputRaw", "OutputRaw", "CustomStatusRaw"],
    )
    h = conform(
        histories,
        HISTORY_DTYPES,
        ["InstanceId", "ExecutionId", "Sequence", "EventType", "InputRaw", "ResultRaw"],
    )
    payloads = pd.concat(
        [
            _payloads(inst, "Instances", ["InputRaw", "OutputRaw", "CustomStatusRaw"]),
            _payloads(h, "History", ["InputRaw", "ResultRaw"]),
        ],
        ignore_index=True,
    )
    if detail:
        return payloads
    ids = pd.concat([inst["InstanceId"], h["InstanceId"]]).astype("string").dropna()
    ids = pd.Index(ids.drop_duplicates(), dtype="string", name="InstanceId")
    et = h["EventType"].astype("string")
    hg = h.assign(_ep=(et == "OrchestratorStarted").to_numpy(bool)).groupby(
        h["InstanceId"].astype("string")
    )
    out = pd.DataFrame(index=ids)
    out["Events"] = hg.size().reindex(ids).fillna(0).astype("int64")
    out["Executions"] = hg["ExecutionId"].nunique().reindex(ids).fillna(0).astype("int64")
    out["Episodes"] = hg["_ep"].sum().reindex(ids).fillna(0).astype("int64")
    pg = payloads.groupby(["InstanceId", "Source"], observed=True)["Bytes"].sum().unstack()
    pg = pg.reindex(columns=["Instances", "History"]).reindex(ids).fillna(0).astype("int64")
    out["InstancePayloadBytes"] = pg["Instances"]
    out["HistoryPayloadBytes"] = pg["History"]
    pi = payloads.groupby("InstanceId")
    out["LargestPayloadBytes"] = pi["Bytes"].max().reindex(ids).fillna(0).astype("int64")
    out["LargePayloads"] = pi["Large"].sum().reindex(ids).fillna(0).astype("int64")
    out["HasLargePayload"] = out["LargePayloads"] > 0
    meta = inst.drop_duplicates("InstanceId").set_index(
        inst["InstanceId"].astype("string").drop_duplicates()
    )
    out["Name"] = meta["Name"].reindex(ids).astype("string")
    out["RuntimeStatus"] = meta["RuntimeStatus"].reindex(ids)
    return out.reset_index()[SIZE_COLUMNS]


def _payloads(frame: pd.DataFrame, source: str, columns: list[str]) -> pd.DataFrame:
    parts = []
    for col in columns:
        text = frame[col].astype("string")
        present = text.notna().to_numpy(dtype=bool)
        if not present.any():
            continue
        t = text[present]
        part = pd.DataFrame(
            {
                "InstanceId": frame["InstanceId"][present].astype("string"),
                "Source": source,
                "ExecutionId": frame["ExecutionId"][present].astype("string")
                if "ExecutionId" in frame
                else pd.NA,
                "Sequence": frame["Sequence"][present] if "Sequence" in frame else pd.NA,
                "EventType": frame["EventType"][present].astype("string")
                if "EventType" in frame
                else pd.NA,
                "Column": col[:-3],
                "Bytes": t.str.encode("utf-8").str.len().astype("int64"),
                "Utf16Bytes": t.str.encode("utf-16-le").str.len().astype("int64"),
            }
        )
        parts.append(part)
    cols = {
        "InstanceId": "string",
        "Source": "string",
        "ExecutionId": "string",
        "Sequence": "Int64",
        "EventType": "string",
        "Column": "string",
        "Bytes": "int64",
        "Utf16Bytes": "int64",
    }
    if not parts:
        out = pd.DataFrame({c: pd.Series(dtype=d) for c, d in cols.items()})
    else:
        out = pd.concat(parts, ignore_index=True).astype(cols)
    out["Large"] = out["Utf16Bytes"] > LARGE_PAYLOAD_BYTES
    return out
