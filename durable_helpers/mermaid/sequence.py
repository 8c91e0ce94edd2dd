"""`sequence`: a Mermaid sequence diagram of one orchestration (rules: the package docstring)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from durable_helpers.analysis import calls as _calls
from durable_helpers.mermaid.text import (
    MermaidDiagram,
    _clock,
    _one_instance,
    _payload,
    _text,
    escape,
    format_duration,
)


@dataclass
class _Message:
    kind: str  # "call", "result", "failed", "event", "note", ...
    src: str
    dst: str
    arrow: str
    label: str
    duration: Any = None
    failed: bool = False


class _Participants:
    """Stable ids (p0, p1, ...) for participants, declared in order of first use."""

    def __init__(self) -> None:
        self.ids: dict[tuple[str, str], str] = {}
        self.labels: list[tuple[str, str]] = []

    def get(self, role: str, label: str) -> str:
        key = (role, label)
        if key not in self.ids:
            pid = f"p{len(self.ids)}"
            self.ids[key] = pid
            self.labels.append((pid, label))
        return self.ids[key]


class _SequenceBuilder:
    def __init__(self, history: pd.DataFrame, payload_chars: int) -> None:
        self.h = history
        self.n = payload_chars
        self.parts = _Participants()
        self.messages: list[_Message] = []
        started = history[history["EventType"] == "ExecutionStarted"] if len(history) else history
        name = _text(started["Name"].iloc[0]) if len(started) else None
        self.name = name or "orchestration"
        self.instance_id = (
            _text(history["InstanceId"].iloc[0]) if len(history) and "InstanceId" in history else ""
        )
        self.orch = self.parts.get("orchestration", self.name)
        self.attempts = self._attempts()

    def _attempts(self) -> dict[int, int]:
        """Row position of each scheduled event -> its attempt number (from analysis.calls)."""
        c = _calls(self.h)
        kinds = {"TaskScheduled", "SubOrchestrationInstanceCreated", "TimerCreated"}
        rows = [i for i, et in enumerate(self.h["EventType"].astype(object)) if et in kinds]
        if len(rows) != len(c):  # calls() keeps scheduled events in order; be safe otherwise
            return {}
        return dict(zip(rows, c["Attempt"].fillna(1).astype(int).tolist(), strict=True))

    def col(self, row: pd.Series, name: str) -> Any:
        return row[name] if name in row.index else None

    def add(self, kind: str, src: str, dst: str, arrow: str, label: str, **extra: Any) -> None:
        self.messages.append(_Message(kind, src, dst, arrow, label, **extra))

    def note(self, label: str, over: str | None = None) -> None:
        self.add("note", over or self.orch, over or self.orch, "note", label)

    def build(self) -> None:
        executions = 0
        for pos, row in self.h.iterrows():
            et = str(self.col(row, "EventType"))
            handler = getattr(self, f"_on_{et}", None)
            if et == "ExecutionStarted":
                executions += 1
                self._started(row, executions)
            elif handler is not None:
                handler(row, pos)
            elif et not in ("OrchestratorStarted", "OrchestratorCompleted", "nan", "None"):
                self.note(et)

    def _started(self, row: pd.Series, execution: int) -> None:
        parent = self.col(row, "ParentInstance")
        when = _clock(self.col(row, "Timestamp"))
        text = f"started {when}" if execution == 1 else f"execution {execution} started {when}"
        if isinstance(parent, dict):
            inner = parent.get("OrchestrationInstance") or {}
            pid = inner.get("InstanceId") if isinstance(inner, dict) else None
            if pid:
                text += f" by parent {pid}"
        data = _payload(self.col(row, "Input"), self.n)
        self.note(text + (f" · input {data}" if data else ""))

    def _call_label(self, row: pd.Series, pos: int, what: str) -> str:
        eid = self.col(row, "EventId")
        label = f"{what} [{eid}]" if eid is not None and not pd.isna(eid) else what
        attempt = self.attempts.get(pos, 1)
        if attempt > 1:
            label += f" (attempt {attempt})"
        return label

    def _on_TaskScheduled(self, row: pd.Series, pos: int) -> None:
        name = _text(self.col(row, "Name")) or "activity"
        dst = self.parts.get("activity", name)
        label = self._call_label(row, pos, name)
        data = _payload(self.col(row, "Input"), self.n)
        self.add("call", self.orch, dst, "->>", label + (f" · {data}" if data else ""))

    def _result(self, row: pd.Series, role: str, failed: bool) -> None:
        name = _text(self.col(row, "Name")) or role
        src = self.parts.get(role, name)
        duration = self.col(row, "Duration")
        took = format_duration(duration)
        if failed:
            error = ": ".join(
                t
                for t in (
                    _text(self.col(row, "FailureType")),
                    _text(self.col(row, "FailureMessage")),
                )
                if t
            )
            label = "failed" + (f" after {took}" if took else "") + (f" · {error}" if error else "")
            self.add("failed", src, self.orch, "--x", label, duration=duration, failed=True)
        else:
            data = _payload(self.col(row, "Result"), self.n)
            label = (took or "done") + (f" · {data}" if data else "")
            self.add("result", src, self.orch, "-->>", label, duration=duration)

    def _on_TaskCompleted(self, row: pd.Series, pos: int) -> None:
        self._result(row, "activity", failed=False)

    def _on_TaskFailed(self, row: pd.Series, pos: int) -> None:
        self._result(row, "activity", failed=True)

    def _on_SubOrchestrationInstanceCreated(self, row: pd.Series, pos: int) -> None:
        name = _text(self.col(row, "Name")) or "sub-orchestration"
        dst = self.parts.get("suborchestration", name)
        label = self._call_label(row, pos, f"start {name}")
        child = _text(self.col(row, "TargetInstanceId"))
        self.add("call", self.orch, dst, "->>", label + (f" · {child}" if child else ""))

    def _on_SubOrchestrationInstanceCompleted(self, row: pd.Series, pos: int) -> None:
        self._result(row, "suborchestration", failed=False)

    def _on_SubOrchestrationInstanceFailed(self, row: pd.Series, pos: int) -> None:
        self._result(row, "suborchestration", failed=True)

    def _on_TimerCreated(self, row: pd.Series, pos: int) -> None:
        dst = self.parts.get("timer", "durable timers")
        label = self._call_label(row, pos, "timer")
        self.add("call", self.orch, dst, "->>", f"{label} until {_clock(self.col(row, 'FireAt'))}")

    def _on_TimerFired(self, row: pd.Series, pos: int) -> None:
        src = self.parts.get("timer", "durable timers")
        tid = self.col(row, "TimerId")
        took = format_duration(self.col(row, "Duration"))
        label = "fired" + (f" [{tid}]" if tid is not None and not pd.isna(tid) else "")
        self.add(
            "result",
            src,
            self.orch,
            "-->>",
            label + (f" after {took}" if took else ""),
            duration=self.col(row, "Duration"),
        )

    def _on_EventRaised(self, row: pd.Series, pos: int) -> None:
        src = self.parts.get("outside", "clients and events")
        data = _payload(self.col(row, "Input"), self.n)
        name = _text(self.col(row, "Name")) or "?"
        self.add("event", src, self.orch, "-)", f"event {name}" + (f" · {data}" if data else ""))

    def _on_EventSent(self, row: pd.Series, pos: int) -> None:
        target = _text(self.col(row, "TargetInstanceId")) or "?"
        name = _text(self.col(row, "Name")) or "?"
        if target.startswith("@"):  # a durable entity: @name@key
            dst = self.parts.get("entity", target)
            self.add("send", self.orch, dst, "-)", f"operation {name}")
        else:
            dst = self.parts.get("outside", "clients and events")
            self.add("send", self.orch, dst, "-)", f"send event {name} to {target}")

    def _outside(self, label: str, row: pd.Series) -> None:
        reason = _text(self.col(row, "Reason")) or _payload(self.col(row, "Input"), self.n)
        src = self.parts.get("outside", "clients and events")
        self.add("event", src, self.orch, "-)", label + (f" · {reason}" if reason else ""))

    def _on_ExecutionSuspended(self, row: pd.Series, pos: int) -> None:
        self._outside("suspend", row)

    def _on_ExecutionResumed(self, row: pd.Series, pos: int) -> None:
        self._outside("resume", row)

    def _on_ExecutionTerminated(self, row: pd.Series, pos: int) -> None:
        self._outside("terminate", row)

    def _on_ExecutionCompleted(self, row: pd.Series, pos: int) -> None:
        status = _text(self.col(row, "OrchestrationStatus")) or "Completed"
        when = _clock(self.col(row, "Timestamp"))
        if status == "Failed":
            error = ": ".join(
                t
                for t in (
                    _text(self.col(row, "FailureType")),
                    _text(self.col(row, "FailureMessage")),
                )
                if t
            )
            self.note(f"Failed at {when}" + (f" · {error}" if error else ""))
            return
        data = _payload(self.col(row, "Result"), self.n)
        self.note(f"{status} at {when}" + (f" · output {data}" if data else ""))

    def _on_ContinueAsNew(self, row: pd.Series, pos: int) -> None:
        data = _payload(self.col(row, "Result"), self.n)
        self.note("continued as new" + (f" · input {data}" if data else ""))


def _fold(messages: list[_Message]) -> list[_Message]:
    """Runs of same-kind messages between the same participants as one message with a count."""
    out: list[_Message] = []
    run: list[_Message] = []

    def flush() -> None:
        if len(run) == 1:
            out.append(run[0])
        elif run:
            first = run[0]
            n = len(run)
            if first.kind in ("result", "failed"):
                failed = sum(m.failed for m in run)
                durations = pd.Series([m.duration for m in run], dtype="timedelta64[ns]")
                label = f"{n} results"
                if failed:
                    label += f" ({failed} failed)"
                if durations.notna().any():
                    low, high = durations.min(), durations.max()
                    label += f" in {format_duration(low)} to {format_duration(high)}"
                arrow = "--x" if failed == n else "-->>"
            else:
                label = f"{n} × {first.label.split(' [')[0]}"
                arrow = first.arrow
            out.append(_Message(first.kind, first.src, first.dst, arrow, label))
        run.clear()

    for m in messages:
        kind = "result" if m.kind == "failed" else m.kind
        same = run and run[0].src == m.src and run[0].dst == m.dst
        if same and ("result" if run[0].kind == "failed" else run[0].kind) == kind:
            run.append(m)
            continue
        flush()
        run.append(m)
    flush()
    return out


def sequence(
    history: pd.DataFrame,
    *,
    instance_id: str | None = None,
    max_messages: int = 150,
    payload_chars: int = 40,
    autonumber: bool = False,
) -> MermaidDiagram:
    """A Mermaid sequence diagram of one orchestration's history, in history order.

    Participants: the orchestration, each activity and sub-orchestration name, ``durable
    timers``, ``clients and events`` (external events, suspend/resume/terminate) and durable
    entities (events sent to ``@name@key``), declared in order of first use. Calls are solid
    arrows labelled ``Name #EventId`` (with the attempt when retried) and the input; results are
    dashed arrows with the duration and the result, failures end in a cross with the error;
    notes mark the start, the end (status, output or error) and continue-as-new. Payloads are
    cut to ``payload_chars``; everything is escaped (see the module docstring), and more than
    ``max_messages`` messages are summarised by the module's rule.

    Example:
        >>> d = sequence(hub.history("abc"))                            # doctest: +SKIP
        >>> d                                                           # doctest: +SKIP
        >>> d.save("abc.mmd")                                           # doctest: +SKIP
    """
    one = _one_instance(history, instance_id)
    builder = _SequenceBuilder(one, payload_chars)
    if len(one) and "EventType" in one:
        builder.build()
    messages = builder.messages
    if len(messages) > max_messages:
        messages = _fold(messages)
    left_out = 0
    if len(messages) > max_messages:
        tail = min(10, max_messages // 2)
        left_out = len(messages) - max_messages + 1
        head = messages[: max_messages - tail - 1]
        messages = [*head, None, *messages[len(messages) - tail :]]  # type: ignore[list-item]
    lines = ["sequenceDiagram"]
    if autonumber:
        lines.append("    autonumber")
    used = {builder.orch} | {x for m in messages if m is not None for x in (m.src, m.dst)}
    for pid, label in builder.parts.labels:
        if pid in used:
            lines.append(f"    participant {pid} as {escape(label, 60)}")
    for m in messages:
        if m is None:
            text = f"{left_out} more messages left out (analysis.calls or plots.gantt show all)"
            lines.append(f"    Note over {builder.orch}: {escape(text)}")
        elif m.arrow == "note":
            lines.append(f"    Note over {m.src}: {escape(m.label, 160)}")
        else:
            lines.append(f"    {m.src}{m.arrow}{m.dst}: {escape(m.label, 160)}")
    if not messages:
        lines.append(f"    Note over {builder.orch}: {escape('no events')}")
    return MermaidDiagram("\n".join(lines))
