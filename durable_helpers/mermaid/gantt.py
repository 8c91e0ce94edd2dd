"""`gantt`: a Mermaid Gantt chart of one orchestration's calls (rules: the package)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from durable_helpers.analysis import calls as _calls
from durable_helpers.mermaid.text import MermaidDiagram, _one_instance, _text, escape


def _ms(value: Any) -> int | None:
    if value is None or pd.isna(value):
        return None
    return int(pd.Timestamp(value).value // 1_000_000)


def _execution_end(history: pd.DataFrame, call: Any) -> Any:
    """When the execution of a canceled call ended (its bar stops there)."""
    rows = history[
        (history["ExecutionId"] == call.ExecutionId)
        & history["EventType"].isin(["ExecutionCompleted", "ContinueAsNew"])
    ]
    return rows["Timestamp"].iloc[-1] if len(rows) else None


def gantt(
    history: pd.DataFrame,
    *,
    instance_id: str | None = None,
    max_bars: int = 60,
    now: Any = None,
) -> MermaidDiagram:
    """A Mermaid Gantt chart of one orchestration: its run and one bar per call, by kind.

    The Mermaid alternative to `plots.timeline`: a section for the orchestration (one bar per
    execution), then sections for activities, sub-orchestrations and timers. Failed calls are
    ``crit`` (red), pending ones ``active`` and run to ``now`` (default: the last event);
    retried attempts are labelled ``(attempt n)``. Over ``max_bars`` calls, each call name gets
    one bar from its first call to its last result, labelled with the count.

    Example:
        >>> plots.gantt(hub.history("abc"))                             # doctest: +SKIP
    """
    one = _one_instance(history, instance_id)
    c = _calls(one)
    ts = one["Timestamp"] if "Timestamp" in one else pd.Series(dtype="datetime64[ns, UTC]")
    end_at = pd.Timestamp(now) if now is not None else (ts.max() if ts.notna().any() else None)
    started = one[one["EventType"] == "ExecutionStarted"] if len(one) else one
    name = _text(started["Name"].iloc[0]) if len(started) else None
    iid = _text(one["InstanceId"].iloc[0]) if len(one) else ""
    span = (ts.max() - ts.min()).total_seconds() if ts.notna().any() else 0
    title = f"{name or 'orchestration'} {iid}"
    axis = "%H:%M:%S.%L" if span < 120 else "%H:%M:%S" if span < 6 * 3600 else "%m-%d %H:%M"
    lines = [
        "gantt",
        f"    title {escape(title, 100)}",
        "    dateFormat x",
        f"    axisFormat {axis}",
        f"    section {escape('orchestration')}",
    ]
    bar = 0

    def add(label: str, tags: list[str], start: Any, end: Any) -> None:
        nonlocal bar
        s = _ms(start)
        e = _ms(end) if end is not None and not pd.isna(end) else _ms(end_at)
        if s is None:
            return
        e = max(e if e is not None else s, s + 1)  # a zero-length bar is not drawn
        bar += 1
        lines.append(f"    {escape(label, 80)} :{', '.join([*tags, f'b{bar}'])}, {s}, {e}")

    if len(one):
        exec_rows = one.groupby("ExecutionId", sort=False) if "ExecutionId" in one else []
        for _, rows in exec_rows:
            et = rows["EventType"].astype(object)
            ended = rows[et.isin(["ExecutionCompleted", "ContinueAsNew"])]
            status = _text(ended["OrchestrationStatus"].iloc[-1]) if len(ended) else None
            tags = ["crit"] if status == "Failed" else ["done"] if status else ["active"]
            end = ended["Timestamp"].iloc[-1] if len(ended) else None
            add(f"{name or 'run'} ({status or 'running'})", tags, rows["Timestamp"].min(), end)
    sections = {
        "activity": "activities",
        "suborchestration": "sub-orchestrations",
        "timer": "timers",
    }
    grouped = len(c) > max_bars
    for kind, heading in sections.items():
        part = c[c["Kind"] == kind]
        if not len(part):
            continue
        lines.append(f"    section {escape(heading)}")
        if grouped:
            for call_name, g in part.groupby(part["Name"].fillna("timer"), sort=False):
                failed = int((g["Outcome"] == "failed").sum())
                label = f"{call_name} × {len(g)}" + (f" ({failed} failed)" if failed else "")
                tags = ["crit"] if failed else ["done"]
                last = g["CompletedTime"].max() if g["CompletedTime"].notna().any() else None
                add(label, tags, g["ScheduledTime"].min(), last)
            continue
        for row in part.itertuples(index=False):
            label = str(row.Name) if kind != "timer" else "timer"
            label += f" [{row.EventId}]"
            if row.Attempt and row.Attempt > 1:
                label += f" (attempt {row.Attempt})"
            outcome = str(row.Outcome)
            if outcome in ("pending", "canceled"):
                label += f" ({outcome})"
            tags = {"failed": ["crit"], "pending": ["active"], "canceled": []}.get(
                outcome, ["done"]
            )
            end = row.CompletedTime if outcome != "canceled" else _execution_end(one, row)
            add(label, tags, row.ScheduledTime, end)
    return MermaidDiagram("\n".join(lines))
