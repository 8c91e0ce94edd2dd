"""Pictures rendered to PNG: lanes, bars, labels and markers checked, not pixels."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
from analysis_builders import History, histories, instance, instances
from test_analyses import nested_failure
from test_calls import hello_chain

from durable_helpers import analysis as da
from durable_helpers import plots

PNG = b"\x89PNG\r\n\x1a\n"


def render(ax, path: Path) -> None:
    ax.figure.savefig(path)
    assert path.read_bytes()[:8] == PNG


def retried() -> History:
    h = History("retry")
    h.episode(0, h.started("Retry"), h.task("Flaky", 1))
    h.episode(1, h.fail(1, "E", "x"), h.timer(2, 2))
    h.episode(2, h.fired(2, 2), h.task("Flaky", 3))
    h.episode(3, h.done(3, "ok"), h.task("Slow", 4))
    return h


def test_timeline_one_lane_per_call_with_a_run_lane_on_top(tmp_path):
    ax = plots.timeline(retried().frame())
    render(ax, tmp_path / "timeline.png")
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0] == "retry (Retry)"
    assert len(labels) == 1 + 4  # the run + Flaky, timer, Flaky (retry), Slow (pending)
    assert any("Flaky #3" in lab for lab in labels) and any("timer" in lab for lab in labels)
    assert len(ax.patches) == 5
    assert [t.get_text() for t in ax.texts] == ["#2"]  # the retry is marked with its attempt
    hatched = [p for p in ax.patches if p.get_hatch()]
    assert len(hatched) == 1
    assert ax.get_xlabel() == "Time (UTC)"
    colors = {p.get_facecolor()[:3] for p in ax.patches}
    assert len(colors) == 4  # run, completed, failed, pending


def test_timeline_time_axis_is_readable_for_a_sub_second_run(tmp_path):
    history = hello_chain().frame()  # the whole chain takes 0.6 s (27.280 to 27.873)
    span = history.Timestamp.max() - history.Timestamp.min()
    assert span < pd.Timedelta(seconds=1)
    ax = plots.timeline(history)
    render(ax, tmp_path / "short.png")  # draws, so the ticks are final
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert len(labels) >= 3
    assert len(set(labels)) == len(labels), labels  # every tick says something different
    assert all(re.fullmatch(r"2[78]\.\d+", lab) for lab in labels), labels  # seconds.fraction
    assert ax.xaxis.get_major_formatter().get_offset().endswith("00:00")  # the date and minute
    assert ax.get_xlabel() == "Time (UTC)"


def test_timeline_switches_to_one_lane_per_instance_when_crowded(tmp_path):
    _, hist = nested_failure()
    many = histories(hello_chain(), retried()).pipe(lambda f: f)
    ax = plots.timeline(hist, max_lanes=4)
    render(ax, tmp_path / "per-instance.png")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["parent", "child", "grand"]
    assert ax.get_ylabel() == "Instance"
    calls = da.calls(hist)
    assert len(ax.patches) == 3 + len(calls)
    assert len(many) > 0


def test_status_chart_bars_and_over_time(tmp_path):
    inst = instances(
        instance("a", "Completed", 0, completed=100),
        instance("b", "Completed", 10, completed=20),
        instance("c", "Failed", 30, completed=70),
        instance("d", "Running", 90),
    )
    ax = plots.status_chart(inst)
    render(ax, tmp_path / "status.png")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Running", "Completed", "Failed"]
    assert [p.get_height() for p in ax.patches] == [1, 2, 1]
    assert ax.get_ylabel() == "Instances" and ax.get_xlabel() == "Runtime status"
    ax = plots.status_chart(inst, freq="30s")
    render(ax, tmp_path / "status-time.png")
    assert "UTC" in ax.get_xlabel()
    assert len(ax.collections) == 3  # one stacked area per status


def test_latency_chart_from_calls_or_latency(tmp_path):
    _, hist = nested_failure()
    c = da.calls(hist)
    ax = plots.latency_chart(c)
    render(ax, tmp_path / "latency.png")
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["Child", "Grand", "Boom", "Prep"]  # slowest (p95) on top
    assert len(ax.patches) == 4
    assert ax.get_xlabel() == "Duration (seconds)" and ax.get_ylabel() == "Name"
    assert any("100% failed" in t.get_text() for t in ax.texts)
    ax2 = plots.latency_chart(da.latency(c, by=["Kind", "Name"]), top=2)
    assert len(ax2.patches) == 2
    assert ax2.get_ylabel() == "Kind / Name"
