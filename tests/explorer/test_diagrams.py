"""Mermaid sequence diagrams and Gantt charts of real histories, checked against the frames.

The histories come from the kit's samples run by the real durabletask SDK worker on the local
task hub (Azurite); every expectation below is read from the same history frame the diagram was
drawn from. Hostile names are checked on hand-made frames: whatever the strings, every line is
one of the statement shapes the builder writes, and the structure equals that of a benign twin.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analysis"))

from analysis_builders import History

from durable_helpers import analysis, mermaid, plots
from durable_helpers.mermaid import format_duration

_CHAR = r"(?:[\w _.()/@+=!?*\[\]~$'·…×]|#\d+;)"
STATEMENTS = {
    "participant": re.compile(rf"^    participant (p\d+) as ({_CHAR}+)$"),
    "message": re.compile(rf"^    (p\d+)(->>|-->>|--x|-\))(p\d+): ({_CHAR}*)$"),
    "note": re.compile(rf"^    Note over (p\d+): ({_CHAR}*)$"),
}
GANTT = {
    "header": re.compile(r"^(gantt|    dateFormat x|    axisFormat [%A-Za-z:. -]+)$"),
    "title": re.compile(rf"^    title ({_CHAR}+)$"),
    "section": re.compile(rf"^    section ({_CHAR}+)$"),
    "bar": re.compile(rf"^    ({_CHAR}+) :((?:crit|done|active), )?b(\d+), (\d+), (\d+)$"),
}


def unescape(text: str) -> str:
    return re.sub(r"#(\d+);", lambda m: chr(int(m.group(1))), text)


def parse(diagram: mermaid.MermaidDiagram) -> list[tuple]:
    """Statements of a sequence diagram: (kind, *groups); fails on any other line."""
    lines = diagram.text.split("\n")
    assert lines[0] == "sequenceDiagram"
    out = []
    for line in lines[1:]:
        found = [(k, p.match(line)) for k, p in STATEMENTS.items() if p.match(line)]
        assert len(found) == 1, f"not a statement the builder writes: {line!r}"
        kind, match = found[0]
        groups = tuple(
            unescape(g) if i == len(match.groups()) - 1 else g for i, g in enumerate(match.groups())
        )
        out.append((kind, *groups))
    return out


def parse_gantt(diagram: mermaid.MermaidDiagram) -> list[tuple]:
    out = []
    for line in diagram.text.split("\n"):
        found = [(k, p.match(line)) for k, p in GANTT.items() if p.match(line)]
        assert len(found) == 1, f"not a Gantt statement the builder writes: {line!r}"
        kind, match = found[0]
        out.append((kind, *[unescape(g) if g else g for g in match.groups()]))
    return out


def participants(statements: list[tuple]) -> dict[str, str]:
    return {s[1]: s[2] for s in statements if s[0] == "participant"}


def messages(statements: list[tuple]) -> list[tuple[str, str, str, str]]:
    """(from label, arrow, to label, text) of every message."""
    names = participants(statements)
    return [(names[s[1]], s[2], names[s[3]], s[4]) for s in statements if s[0] == "message"]


def notes(statements: list[tuple]) -> list[str]:
    return [s[2] for s in statements if s[0] == "note"]


@pytest.fixture(scope="module")
def histories(ran) -> dict[str, pd.DataFrame]:
    hub = ran.table_hub()
    return {short: hub.history(iid) for short, iid in ran.ids.items()}


def rows(history: pd.DataFrame, event_type: str) -> pd.DataFrame:
    return history[history["EventType"] == event_type].reset_index(drop=True)


# ---------------------------------------------------------------------------- known histories


def test_seed_chain(histories) -> None:
    h = histories["hello"]
    s = parse(plots.sequence(h))
    assert list(participants(s).values()) == ["HelloSequence", "Hello"]
    sent = messages(s)
    scheduled, completed = rows(h, "TaskScheduled"), rows(h, "TaskCompleted")
    assert len(scheduled) == len(completed) == 3
    expected = []
    for call, done in zip(scheduled.itertuples(), completed.itertuples(), strict=True):
        expected.append(
            ("HelloSequence", "->>", "Hello", f'Hello [{call.EventId}] · "{call.Input}"')
        )
        took = format_duration(done.Duration)
        expected.append(("Hello", "-->>", "HelloSequence", f'{took} · "{done.Result}"'))
    assert sent == expected
    assert [m[3].split(" · ")[1] for m in sent[::2]] == ['"Tokyo"', '"Seattle"', '"London"']
    assert notes(s)[0].startswith("started ")
    assert notes(s)[-1].startswith("Completed at ")


def test_fan_out_calls_all_go_out_before_results_come_back(histories) -> None:
    h = histories["fan"]
    sent = messages(parse(plots.sequence(h)))
    n = len(rows(h, "TaskScheduled"))
    assert n == 4
    assert [m[1] for m in sent] == ["->>"] * n + ["-->>"] * n  # history order: fan-out, fan-in
    results = rows(h, "TaskCompleted")
    assert [m[3] for m in sent[n:]] == [
        f"{format_duration(r.Duration)} · {r.Result}" for r in results.itertuples()
    ]


def test_retries_are_labelled_with_their_attempt(histories) -> None:
    h = histories["retry"]
    sent = messages(parse(plots.sequence(h)))
    calls = analysis.calls(h)
    flaky = calls[calls["Kind"] == "activity"]
    assert flaky["Attempt"].tolist() == [1, 2, 3]
    to_activity = [m[3] for m in sent if m[2] == "FlakyActivity"]
    assert [("(attempt " in t) for t in to_activity] == [False, True, True]
    assert "(attempt 3)" in to_activity[2]
    failed = [m for m in sent if m[1] == "--x"]
    assert len(failed) == len(rows(h, "TaskFailed")) == 2
    for m, row in zip(failed, rows(h, "TaskFailed").itertuples(), strict=True):
        assert m[3] == f"failed after {format_duration(row.Duration)} · {row.FailureType}: " + (
            row.FailureMessage
        )
    timers = [m for m in sent if "durable timers" in (m[0], m[2])]
    assert len(timers) == 2 * len(rows(h, "TimerCreated")) == 4


def test_a_failure_ends_in_a_cross_and_a_failed_note(histories) -> None:
    h = histories["fail"]
    s = parse(plots.sequence(h))
    sent = messages(s)
    failed = rows(h, "TaskFailed").iloc[0]
    assert sent[-1][:3] == ("ChargeCard", "--x", "FailingOrchestration")
    assert failed["FailureMessage"] in sent[-1][3]
    end = rows(h, "ExecutionCompleted").iloc[0]
    assert end["OrchestrationStatus"] == "Failed"
    assert notes(s)[-1].startswith("Failed at ") and end["FailureMessage"][:40] in notes(s)[-1]


def test_sub_orchestrations_name_their_children(histories) -> None:
    h = histories["parent"]
    sent = messages(parse(plots.sequence(h)))
    created = rows(h, "SubOrchestrationInstanceCreated")
    starts = [m for m in sent if m[1] == "->>"]
    assert [m[2] for m in starts] == ["HelloSequence"] * len(created)
    assert [m[3].split(" · ")[-1] for m in starts] == created["TargetInstanceId"].tolist()
    assert len([m for m in sent if m[1] == "-->>"]) == len(
        rows(h, "SubOrchestrationInstanceCompleted")
    )


def test_timer_and_event(histories) -> None:
    timer = messages(parse(plots.sequence(histories["timer"])))
    fired = rows(histories["timer"], "TimerFired").iloc[0]
    assert timer == [
        ("TimerDemo", "->>", "durable timers", timer[0][3]),
        (
            "durable timers",
            "-->>",
            "TimerDemo",
            f"fired [{fired.TimerId}] after {format_duration(fired.Duration)}",
        ),
    ]
    assert timer[0][3].startswith(f"timer [{fired.TimerId}] until ")
    sent = messages(parse(plots.sequence(histories["approval"])))
    raised = rows(histories["approval"], "EventRaised").iloc[0]
    assert sent[-1][:3] == ("clients and events", "-)", "ApprovalWorkflow")
    assert sent[-1][3] == 'event Approval · {"approved":true}' and raised["Name"] == "Approval"


def test_gantt_bars_match_the_calls(histories) -> None:
    for short in ("hello", "fan", "retry", "fail", "parent", "timer", "approval"):
        h = histories[short]
        bars = [s for s in parse_gantt(plots.gantt(h)) if s[0] == "bar"]
        calls = analysis.calls(h)  # sections: activities, sub-orchestrations, timers
        calls = calls.sort_values("Kind", kind="stable", key=lambda k: k.cat.codes)
        assert len(bars) == 1 + len(calls), short  # the run, then one bar per call
        for bar, call in zip(bars[1:], calls.itertuples(), strict=True):
            assert int(bar[4]) == call.ScheduledTime.value // 1_000_000, short
            tag = {"failed": "crit, ", "completed": "done, "}.get(str(call.Outcome))
            if tag:
                assert bar[2] == tag, (short, bar)
                end = call.CompletedTime.value // 1_000_000
                assert int(bar[5]) == max(end, int(bar[4]) + 1)
    run = next(s for s in parse_gantt(plots.gantt(histories["fail"])) if s[0] == "bar")
    assert run[1] == "FailingOrchestration (Failed)" and run[2] == "crit, "


def test_grpc_reader_gives_the_same_diagram(ran, histories) -> None:
    with ran.grpc_hub() as hub:
        for short in ("hello", "retry", "parent"):
            assert (
                plots.sequence(hub.history(ran.ids[short])).text
                == plots.sequence(histories[short]).text
            ), short


# ---------------------------------------------------------------------------- hostile names

HOSTILE = [
    'a"b',
    "x; participant p9 as evil",
    "A-->>B: forged",
    "line one\nNote over p0: injected",
    "%%{init: {'theme': 'dark'}}%%",
    "<script>alert(1)</script><img src=x onerror=alert(2)>",
    "end",
    "#59; already an entity",
    "``` closes the fence",
    "ﬂ°°60¶ß",
]


def _history(name: str) -> History:
    h = History(f"i-{name}")
    h.episode(0, h.started(f"Orch{name}", input=name), h.task(f"Act{name}", 1, input=name))
    h.episode(
        1,
        h.fail(
            1,
            f"Err{name}",
            f"msg{name}",
            {"ErrorType": name, "ErrorMessage": name, "StackTrace": name},
        ),
        h.task(name, 2),
        h.sub(name, 3, f"child-{name}"),
    )
    h.episode(2, h.done(2, name), h.sub_done(3, name), h.timer(4, 5), h.raised(name, name))
    h.episode(5, h.fired(4, 5), h.complete("Completed", result=name))
    return h


def _shape(statements: list[tuple]) -> list[tuple]:
    """The structure: statement kinds, participants and arrows, without any text."""
    return [s[:-1] for s in statements]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_cannot_change_the_structure(name: str) -> None:
    hostile, benign = _history(name).frame(), _history("plain").frame()
    s = parse(plots.sequence(hostile))
    assert _shape(s) == _shape(parse(plots.sequence(benign)))
    assert len(participants(s)) == 6
    cleaned = re.sub(r"\s+", " ", name).strip()
    assert f"Act{cleaned}" in participants(s).values()  # shown as it is, once unescaped
    # (parse() already checked that no text holds < > " % ` & ; : # other than entity codes)
    g = plots.gantt(hostile)
    assert [x[0] for x in parse_gantt(g)] == [x[0] for x in parse_gantt(plots.gantt(benign))]
    assert "```" not in g.markdown()[3:-3] and "```" not in plots.sequence(hostile).markdown()[3:-3]


def test_escape_keeps_text_readable_and_is_reversible() -> None:
    for value in HOSTILE:
        escaped = mermaid.escape(value)
        assert re.fullmatch(rf"{_CHAR}*", escaped), escaped
        assert unescape(escaped) == re.sub(r"\s+", " ", value).strip()
    assert mermaid.escape("Hello Tokyo") == "Hello Tokyo"


# ---------------------------------------------------------------------------- large histories


def test_a_large_fan_out_is_folded_into_counts() -> None:
    h = History("big")
    n = 400
    h.episode(0, h.started("Big"), *[h.task("Square", i) for i in range(1, n + 1)])
    h.episode(1, *[h.done(i, i * i) if i % 50 else h.fail(i, "E", "m") for i in range(1, n + 1)])
    h.episode(2, h.complete("Completed"))
    frame = h.frame()
    sent = messages(parse(plots.sequence(frame)))
    assert sent == [
        ("Big", "->>", "Square", f"{n} × Square"),
        ("Square", "-->>", "Big", f"{n} results (8 failed) in 1.000 s to 1.000 s"),
    ]
    bars = [s for s in parse_gantt(plots.gantt(frame)) if s[0] == "bar"]
    assert [b[1] for b in bars] == ["Big (Completed)", f"Square × {n} (8 failed)"]


def test_a_long_chain_keeps_its_start_and_end_and_says_what_it_left_out() -> None:
    h = History("long")
    h.episode(0, h.started("Long"), h.task("Step", 1))
    n = 300
    for i in range(1, n):
        h.episode(i, h.done(i, i), h.task("Step", i + 1))
    h.episode(n, h.done(n, n), h.complete("Completed"))
    s = parse(plots.sequence(h.frame(), max_messages=100))
    assert len([x for x in s if x[0] != "participant"]) == 100
    total = 2 * n + 2  # calls, results, start and end notes
    left = [t for t in notes(s) if "left out" in t]
    assert left == [f"{total - 99} more messages left out (analysis.calls or plots.gantt show all)"]
    assert notes(s)[0].startswith("started") and notes(s)[-1].startswith("Completed")


# ---------------------------------------------------------------------------- the object


def test_diagram_displays_as_markdown_and_saves(tmp_path: Path, histories) -> None:
    d = plots.sequence(histories["hello"])
    assert d._repr_markdown_() == f"```mermaid\n{d.text}\n```"
    assert d.kind == "sequenceDiagram" and plots.gantt(histories["hello"]).kind == "gantt"
    assert d.save(tmp_path / "a.md").read_text() == d.markdown() + "\n"
    assert d.save(tmp_path / "a.mmd").read_text() == d.text + "\n"
    with pytest.raises(ValueError, match=r"\.md .* or \.mmd"):
        d.save(tmp_path / "a.txt")


def test_one_instance_at_a_time(histories) -> None:
    both = pd.concat([histories["hello"], histories["fan"]], ignore_index=True)
    with pytest.raises(ValueError, match="pass instance_id="):
        plots.sequence(both)
    one = plots.sequence(both, instance_id=histories["fan"]["InstanceId"].iloc[0])
    assert one.text == plots.sequence(histories["fan"]).text
    empty = parse(plots.sequence(histories["hello"].iloc[0:0]))
    assert notes(empty) == ["no events"]
