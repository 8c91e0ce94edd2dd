"""Pictures of analysis frames with matplotlib (Agg-safe; every function returns the Axes).

Each function draws on ``ax`` when given, else on a new pyplot figure (``ax.figure``); close it
with ``matplotlib.pyplot.close(ax.figure)`` when drawing many in a loop.

Example:
    >>> from durable_helpers import plots
    >>> ax = plots.timeline(hub.history("abc"))                         # doctest: +SKIP
    >>> ax.figure.savefig("timeline.png")                               # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.patches import Patch

from .analysis import calls as _calls
from .analysis import latency as _latency
from .analysis import status_over_time
from .mermaid import MermaidDiagram
from .mermaid import gantt as _gantt
from .mermaid import sequence as _sequence

#: Colours by call outcome and by runtime status.
OUTCOME_COLORS = {
    "completed": "#2ca02c",
    "failed": "#d62728",
    "pending": "#ff7f0e",
    "canceled": "#7f7f7f",
    "run": "#1f77b4",
}
STATUS_COLORS = {
    "Pending": "#ff7f0e",
    "Running": "#1f77b4",
    "Suspended": "#9467bd",
    "Completed": "#2ca02c",
    "Failed": "#d62728",
    "Terminated": "#8c564b",
    "ContinuedAsNew": "#17becf",
    "Canceled": "#7f7f7f",
    "Unknown": "#bcbd22",
}


def _axes(ax: Axes | None, height: float = 4.0) -> Axes:
    if ax is not None:
        return ax
    # pyplot, so notebooks show the figure; matplotlib picks Agg by itself when headless.
    _, new = plt.subplots(figsize=(10, height), layout="constrained")
    return new


def timeline(
    history: pd.DataFrame,
    *,
    max_lanes: int = 40,
    ax: Axes | None = None,
    now: pd.Timestamp | None = None,
) -> Axes:
    """Gantt chart of a history frame: calls as bars coloured by outcome, retries marked.

    With at most ``max_lanes`` lanes, each instance gets a lane for its whole run (ExecutionStarted
    to its end, on top, blue) and one lane per call (activity, sub-orchestration, timer). With
    more, there is one lane per instance and its calls are drawn over each other in it. Bars of
    retried attempts (Attempt > 1) are hatched and labelled ``#n``. Pending calls run to ``now``
    (default: the history's last event). Times are UTC and the axis says so; tick labels are
    matplotlib's concise dates, so sub-second runs get sub-second ticks.

    Example:
        >>> ax = timeline(hub.history("abc"))                           # doctest: +SKIP
        >>> ax.figure.savefig("abc.png")                                # doctest: +SKIP
    """
    c = _calls(history)
    ts = history["Timestamp"] if "Timestamp" in history else pd.Series(dtype="datetime64[ns, UTC]")
    end_default = ts.max() if ts.notna().any() else pd.Timestamp.now(tz="UTC")
    end_at = pd.Timestamp(now) if now is not None else end_default
    runs = _runs(history, end_at)
    per_call = len(c) + len(runs) <= max_lanes

    # Lanes: per instance (in order of appearance) its run lane, then (per_call) one per call.
    order = pd.Series(np.arange(len(runs)), index=runs.index)
    inst_no = order.reindex(c["InstanceId"].astype(object)).to_numpy()
    c = c.assign(_inst=inst_no).sort_values("_inst", kind="stable")
    if per_call:
        n_calls = np.bincount(c["_inst"].to_numpy(dtype=np.int64), minlength=len(runs))
        run_lane = np.concatenate([[0], np.cumsum(1 + n_calls)[:-1]]) if len(runs) else n_calls
        call_lane = run_lane[c["_inst"].to_numpy(dtype=np.int64)] + 1
        call_lane += c.groupby("_inst", sort=False).cumcount().to_numpy()
        labels = [""] * int(len(runs) + len(c))
        for i, (iid, name) in enumerate(zip(runs.index, runs["Name"], strict=True)):
            labels[run_lane[i]] = f"{iid} ({name})"
        for lane, kind, name, eid in zip(
            call_lane, c["Kind"].astype(str), c["Name"].fillna("timer"), c["EventId"], strict=True
        ):
            prefix = "" if kind == "activity" else f"[{kind}] "
            labels[lane] = f"  {prefix}{name} #{eid}"
    else:
        run_lane = np.arange(len(runs))
        call_lane = c["_inst"].to_numpy(dtype=np.int64)
        labels = [str(i) for i in runs.index]

    ax = _axes(ax, height=max(2.5, 0.3 * len(labels) + 1.5) if len(labels) <= 60 else 20)
    _bars(
        ax,
        run_lane,
        runs["Start"],
        runs["End"],
        OUTCOME_COLORS["run"],
        alpha=0.8 if per_call else 0.35,
    )
    colors = c["Outcome"].astype(str).map(OUTCOME_COLORS).to_numpy(dtype=object)
    ends = c["CompletedTime"].fillna(end_at)
    retry = (c["Attempt"] > 1).to_numpy(dtype=bool)
    _bars(ax, call_lane[~retry], c["ScheduledTime"][~retry], ends[~retry], colors[~retry])
    _bars(ax, call_lane[retry], c["ScheduledTime"][retry], ends[retry], colors[retry], hatch="//")
    x_end = _days(ends[retry])
    for lane, x, attempt in zip(call_lane[retry], x_end, c["Attempt"][retry], strict=True):
        if x == x:  # not NaN
            ax.annotate(
                f"#{attempt}",
                (x, lane),
                xytext=(2, 0),
                textcoords="offset points",
                va="center",
                fontsize=7,
            )
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    if labels:
        ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.xaxis_date(tz="UTC")
    # Concise labels: a 0.4 s run reads 27.1, 27.2, ... with "2026-Jan-01 12:00" at the end.
    locator = mdates.AutoDateLocator(tz="UTC", minticks=3, maxticks=7)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz="UTC"))
    ax.set_xlabel("Time (UTC)")
    ax.set_ylabel("Call" if per_call else "Instance")
    ax.set_title("Timeline of calls" + (" per instance" if not per_call else ""))
    handles = [Patch(color=col, label=name) for name, col in OUTCOME_COLORS.items()]
    handles.append(Patch(facecolor="white", edgecolor="black", hatch="//", label="retry"))
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    return ax


def _days(values: pd.Series) -> np.ndarray:
    """UTC datetimes as matplotlib date numbers (days since 1970); NaT -> NaN."""
    stamps = pd.to_datetime(pd.Series(values), utc=True)
    ns = stamps.astype("int64").to_numpy(dtype=float)
    ns[stamps.isna().to_numpy()] = np.nan
    return ns / 86_400e9


def _bars(
    ax: Axes,
    lanes: np.ndarray,
    start: pd.Series,
    end: pd.Series,
    color: Any,
    alpha: float = 0.9,
    hatch: str | None = None,
) -> None:
    """One barh call for many spans; spans without a start time are left out."""
    x0, x1 = _days(start), _days(end)
    ok = ~np.isnan(x0)
    if not ok.any():
        return
    width = np.maximum(np.nan_to_num(x1 - x0, nan=0.0), 1e-9)
    colors = color[ok] if isinstance(color, np.ndarray) else color
    ax.barh(
        np.asarray(lanes)[ok],
        width[ok],
        left=x0[ok],
        height=0.6,
        color=colors,
        alpha=alpha,
        hatch=hatch,
        edgecolor="black",
        linewidth=0.3,
    )


def _runs(history: pd.DataFrame, end_at: pd.Timestamp) -> pd.DataFrame:
    """Per instance: name, first and last event time (in order of first appearance)."""
    if len(history) == 0:
        return pd.DataFrame({"Name": [], "Start": [], "End": []})
    et = history["EventType"].astype("string")
    starts = history[(et == "ExecutionStarted").to_numpy(bool)]
    names = starts.groupby("InstanceId", sort=False)["Name"].first()
    g = history.groupby("InstanceId", sort=False)["Timestamp"]
    ended = history[et.isin(["ExecutionCompleted", "ContinueAsNew"]).to_numpy(bool)]
    last = g.max()
    closed = ended.groupby("InstanceId", sort=False)["Timestamp"].max()
    end = closed.reindex(last.index).fillna(end_at)
    out = pd.DataFrame({"Name": names.reindex(last.index), "Start": g.min(), "End": end})
    out["Name"] = out["Name"].astype("string").fillna("?")
    return out


def status_chart(
    instances: pd.DataFrame, *, freq: str | None = None, ax: Axes | None = None
) -> Axes:
    """Instance counts per runtime status: bars now, or a stacked area over time with ``freq``.

    Example:
        >>> status_chart(hub.instances())                               # doctest: +SKIP
        >>> status_chart(hub.instances(), freq="5min")                  # doctest: +SKIP
    """
    ax = _axes(ax)
    if freq is None:
        counts = instances["RuntimeStatus"].astype("string").value_counts()
        order = [s for s in STATUS_COLORS if s in counts.index]
        order += [s for s in counts.index if s not in order]
        counts = counts.reindex(order)
        bars = ax.bar(
            range(len(counts)),
            counts.to_numpy(),
            color=[STATUS_COLORS.get(s, "#333333") for s in counts.index],
        )
        ax.set_xticks(range(len(counts)), list(counts.index))
        ax.bar_label(bars, fontsize=8)
        ax.set_xlabel("Runtime status")
        ax.set_ylabel("Instances")
        ax.set_title("Instances per runtime status")
        return ax
    wide = status_over_time(instances, freq)
    if not wide.empty:
        x = mdates.date2num(wide.index.to_pydatetime())
        ax.stackplot(
            x,
            *[wide[c].to_numpy() for c in wide.columns],
            labels=list(wide.columns),
            colors=[STATUS_COLORS.get(c, "#333333") for c in wide.columns],
        )
        ax.legend(fontsize=7, loc="upper left")
    ax.xaxis_date(tz="UTC")
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M", tz="UTC"))
    ax.set_xlabel(f"Time (UTC, every {freq})")
    ax.set_ylabel("Instances")
    ax.set_title("Instances per runtime status over time")
    return ax


def latency_chart(
    frame: pd.DataFrame, *, by: str = "Name", top: int = 30, ax: Axes | None = None
) -> Axes:
    """Horizontal bars of p50 per group with p95/p99 markers, from calls or a latency frame.

    ``frame`` is either the output of `analysis.calls` (latency is computed with ``by``) or of
    `analysis.latency`. The ``top`` groups with the largest p95 are shown, slowest on top; the
    failure rate is written next to each bar.

    Example:
        >>> latency_chart(calls(hub.histories(ids)))                    # doctest: +SKIP
    """
    lat = frame if "P50" in frame.columns else _latency(frame, by=by)
    lat = lat.sort_values("P95", ascending=False, na_position="last").head(top)
    ax = _axes(ax, height=max(2.5, 0.35 * len(lat) + 1.5))
    labels = [" / ".join(map(str, k)) if isinstance(k, tuple) else str(k) for k in lat.index]
    y = np.arange(len(lat))

    def secs(col: str) -> np.ndarray:
        return lat[col].dt.total_seconds().to_numpy(dtype=float, na_value=np.nan)

    bars = ax.barh(y, np.nan_to_num(secs("P50")), height=0.6, color="#1f77b4", label="p50")
    ax.scatter(secs("P95"), y, marker="|", s=200, color="#ff7f0e", label="p95", zorder=3)
    ax.scatter(secs("P99"), y, marker="x", color="#d62728", label="p99", zorder=3)
    rates = lat["FailureRate"].to_numpy(dtype=float, na_value=np.nan)
    ax.bar_label(
        bars, labels=[f"  {r:.0%} failed" if r == r and r > 0 else "" for r in rates], fontsize=7
    )
    ax.set_yticks(y, labels, fontsize=8)
    if len(lat):
        ax.set_ylim(len(lat) - 0.5, -0.5)
    ax.set_xlabel("Duration (seconds)")
    ax.set_ylabel(" / ".join(lat.index.names) if any(lat.index.names) else by)
    ax.set_title("Call latency (p50 bar, p95 and p99 markers)")
    ax.legend(fontsize=7, loc="lower right")
    return ax


def sequence(history: pd.DataFrame, **options: Any) -> MermaidDiagram:
    """A Mermaid sequence diagram of one orchestration (shows itself in JupyterLab >= 4.1).

    The orchestration, its activities, sub-orchestrations, timers, external events and entities
    as participants, messages in history order with durations and failures; names and payloads
    escaped; large histories summarised. Options and the rules: `durable_helpers.mermaid`.

    Example:
        >>> d = sequence(hub.history("abc"))                            # doctest: +SKIP
        >>> d.save("abc.md"); d.text                                    # doctest: +SKIP
    """
    return _sequence(history, **options)


def gantt(history: pd.DataFrame, **options: Any) -> MermaidDiagram:
    """A Mermaid Gantt chart of one orchestration: the Mermaid alternative to `timeline`.

    Example:
        >>> gantt(hub.history("abc")).save("abc.mmd")                   # doctest: +SKIP
    """
    return _gantt(history, **options)


__all__ = ["gantt", "latency_chart", "sequence", "status_chart", "timeline"]
