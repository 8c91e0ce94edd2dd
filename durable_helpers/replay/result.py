"""What a replay check found: ``ReplayResult`` and ``Divergence``, and how actions and history
events read in them. No I/O, no SDK execution (the checkers in this package fill these in).

Verdicts:

- ``"ok"``: the code replays the history faithfully; ``next_actions`` is what it does next.
- ``"diverges"``: no error, but the code does something the history does not hold where the
  history is complete (an extra activity, timer or sub-orchestration in a recorded episode, a
  different stored input, a different final result); the real worker goes on, differently.
- ``"breaks"``: replaying fails (the SDK's non-determinism error, an orchestrator that is not
  registered, or the code raising); the real worker fails the instance on its next event.

Example:
    >>> r = ReplayResult(instance_id="i", execution_id="e", name="Hello", sdk="durabletask",
    ...                  verdict="ok", next_actions=("call_activity('Hello', input='Tokyo')",))
    >>> r.replays, r.to_dict()["NextActions"]
    (True, ["call_activity('Hello', input='Tokyo')"])
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from typing import Any, Literal

import durabletask.internal.orchestrator_service_pb2 as pb

Verdict = Literal["ok", "diverges", "breaks"]
VERDICTS: tuple[str, ...] = ("ok", "diverges", "breaks")
_SHORT = 60


def short(text: str | None, limit: int = _SHORT) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis.

    Example:
        >>> short("x" * 70, 10)
        'xxxxxxxxx…'
    """
    if text is None:
        return ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def payload_text(raw: str | None) -> str:
    """A stored JSON payload as a short Python-ish literal (``'"Tokyo"'`` -> ``'Tokyo'``).

    Example:
        >>> payload_text('"Tokyo"'), payload_text('{"id": 1}'), payload_text(None)
        ("'Tokyo'", "{'id': 1}", 'None')
    """
    if raw is None or raw == "":
        return "None"
    try:
        return short(repr(json.loads(raw)))
    except ValueError:
        return short(repr(raw))


def _input_part(message: Any) -> str:
    return f", input={payload_text(message.input.value)}" if message.HasField("input") else ""


#: action / history event oneof name -> the SDK call that makes it
_CALLS = {
    "scheduleTask": "call_activity",
    "taskScheduled": "call_activity",
    "createSubOrchestration": "call_sub_orchestrator",
    "subOrchestrationInstanceCreated": "call_sub_orchestrator",
    "createTimer": "create_timer",
    "timerCreated": "create_timer",
    "sendEvent": "send_event",
    "eventSent": "send_event",
}


def _call(kind: str, message: Any, action_id: int) -> str:
    call = _CALLS[kind]
    if call == "create_timer":
        args = f"fire_at={message.fireAt.ToJsonString()}"
    elif call == "send_event":
        target = message.instance.instanceId if kind == "sendEvent" else message.instanceId
        args = f"{target!r}, {message.name!r}"
    else:
        args = f"{message.name!r}{_input_part(message)}"
    return f"{call}({args}) [id {action_id}]"


def describe_action(action: pb.OrchestratorAction) -> str:
    """One SDK action as the call that made it, e.g. ``call_activity('Reserve', input=...)``.

    Example:
        >>> describe_action(pb.OrchestratorAction(id=2, scheduleTask=pb.ScheduleTaskAction(
        ...     name="Reserve")))
        "call_activity('Reserve') [id 2]"
    """
    kind = action.WhichOneof("orchestratorActionType")
    if kind in _CALLS:
        return _call(kind, getattr(action, kind), action.id)
    if kind == "completeOrchestration":
        return describe_completion(action.completeOrchestration)
    if kind == "sendEntityMessage":
        message = action.sendEntityMessage.WhichOneof("EntityMessageType")
        return f"entity message ({message}) [id {action.id}]"
    return f"{kind} [id {action.id}]"


def describe_completion(c: pb.CompleteOrchestrationAction) -> str:
    """A completion action: ``complete(result=...)``, ``fail(Type: message)``, ...

    Example:
        >>> describe_completion(pb.CompleteOrchestrationAction(
        ...     orchestrationStatus=pb.ORCHESTRATION_STATUS_COMPLETED))
        'complete(result=None)'
    """
    status = c.orchestrationStatus
    if status == pb.ORCHESTRATION_STATUS_FAILED:
        fd = c.failureDetails
        return f"fail({fd.errorType}: {short(fd.errorMessage, 120)})"
    if status == pb.ORCHESTRATION_STATUS_CONTINUED_AS_NEW:
        return f"continue_as_new({payload_text(c.result.value if c.HasField('result') else None)})"
    if status == pb.ORCHESTRATION_STATUS_TERMINATED:
        return "terminated"
    return f"complete(result={payload_text(c.result.value if c.HasField('result') else None)})"


def describe_event(event: pb.HistoryEvent) -> str:
    """One recorded history event in the same words as ``describe_action``.

    Example:
        >>> describe_event(pb.HistoryEvent(eventId=1, taskScheduled=pb.TaskScheduledEvent(
        ...     name="Validate")))
        "call_activity('Validate') [id 1]"
    """
    kind = event.WhichOneof("eventType")
    e = getattr(event, kind) if kind else None
    if kind in _CALLS:
        return _call(kind, e, event.eventId)
    if kind == "eventRaised":
        return f"event {e.name!r} raised"
    if kind == "executionCompleted":
        status = pb.OrchestrationStatus.Name(e.orchestrationStatus)
        result = payload_text(e.result.value if e.HasField("result") else None)
        return f"finished {status.removeprefix('ORCHESTRATION_STATUS_').lower()}, result={result}"
    if kind == "executionStarted":
        return f"started {e.name!r}{_input_part(e)}"
    return str(kind)


@dataclass(frozen=True)
class Divergence:
    """The first point where the code and the history part ways."""

    #: position of the history row (RowKey as a number) and the RowKey itself
    sequence: int | None
    row_key: str | None
    event_type: str
    #: "different name", "different action", "missing action", "extra action", "different
    #: input", "different timer", "different result", "not registered", "orchestrator error"
    kind: str
    #: what the history holds there, and what the code did instead
    history: str
    code: str
    #: the SDK's (or, for Functions apps, the host's) own error text and type, when it fails
    error: str | None = None
    error_type: str | None = None

    def __str__(self) -> str:
        where = f"row {self.sequence} ({self.event_type})" if self.sequence is not None else ""
        text = f"{self.kind} at {where}: history holds {self.history}; the code {self.code}"
        return text + (f"\n  {self.error_type}: {self.error}" if self.error else "")


@dataclass(frozen=True)
class ReplayResult:
    """The outcome of replaying one instance's history through new orchestrator code."""

    instance_id: str
    execution_id: str | None
    name: str | None
    sdk: str
    verdict: Verdict
    divergence: Divergence | None = None
    #: the actions the code schedules now (what the worker would send on the next event)
    next_actions: tuple[str, ...] = ()
    #: external events the code waits for now
    waiting_for: tuple[str, ...] = ()
    custom_status: Any = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def for_execution(cls, rec: Any, sdk: str, verdict: str, **fields: Any) -> ReplayResult:
        """A result for the recorded execution ``rec`` (its instance, execution and name).

        Example:
            >>> from durable_helpers.replay.history_input import RecordedExecution
            >>> rec = RecordedExecution("i", "e", "Hello", [], [])
            >>> ReplayResult.for_execution(rec, "durabletask", "ok").name
            'Hello'
        """
        return cls(rec.instance_id, rec.execution_id, rec.name, sdk, verdict, **fields)  # type: ignore[arg-type]

    @property
    def replays(self) -> bool:
        """True when the code replays the history faithfully (verdict ``"ok"``)."""
        return self.verdict == "ok"

    def to_dict(self) -> dict[str, Any]:
        """One row of ``check_many``'s frame.

        Example:
            >>> ReplayResult("i", None, "x", "durabletask", "ok").to_dict()["Verdict"]
            'ok'
        """
        d = self.divergence
        return {
            "InstanceId": self.instance_id,
            "ExecutionId": self.execution_id,
            "Name": self.name,
            "Verdict": self.verdict,
            "Kind": d.kind if d else None,
            "Sequence": d.sequence if d else None,
            "RowKey": d.row_key if d else None,
            "EventType": d.event_type if d else None,
            "History": d.history if d else None,
            "Code": d.code if d else None,
            "ErrorType": d.error_type if d else None,
            "Error": d.error if d else None,
            "NextActions": list(self.next_actions),
            "WaitingFor": list(self.waiting_for),
            "CustomStatus": self.custom_status,
            "Notes": list(self.notes),
        }

    def _lines(self) -> list[str]:
        head = f"{self.instance_id} ({self.name}, {self.sdk}): {self.verdict.upper()}"
        lines = [head]
        if self.divergence:
            lines.append(f"  {self.divergence}")
        if self.next_actions:
            lines.append("  next: " + "; ".join(self.next_actions))
        if self.waiting_for:
            lines.append("  waiting for event(s): " + ", ".join(self.waiting_for))
        if self.custom_status is not None:
            lines.append(f"  custom status: {self.custom_status!r}")
        lines.extend(f"  note: {n}" for n in self.notes)
        return lines

    def __str__(self) -> str:
        return "\n".join(self._lines())

    def _repr_html_(self) -> str:
        colour = {"ok": "#1a7f37", "diverges": "#9a6700", "breaks": "#cf222e"}[self.verdict]
        body = "<br>".join(html.escape(line) for line in self._lines()[1:])
        title = html.escape(f"{self.instance_id} ({self.name}, {self.sdk})")
        return (
            f"<div><b>{title}</b>: <b style='color:{colour}'>{self.verdict}</b>"
            f"<div style='font-family:monospace;white-space:pre-wrap'>{body}</div></div>"
        )
