"""Instance state and messages of the local task hub: the engine's data, with no behaviour.

Owns the in-memory records every part of the engine passes around: ``OMsg`` (an event for an
orchestration instance) and ``AMsg`` (an activity to run), each with its journal record form;
``Dispatch`` (an orchestrator work item in flight); ``Inst`` (a live instance) and ``NewState``
(its state as a checkpoint plan changes it); ``Snapshot`` (what a client query sees); the
protobuf helpers ``ts``/``sv``; and ``fill_from_row`` (an Instances row into an instance).

May call: protobuf and :mod:`durable_helpers.protocol_rows` only (no storage, no lock).
"""

from __future__ import annotations

import base64
import itertools
import json
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any

import durabletask.internal.orchestrator_service_pb2 as pb
from google.protobuf import timestamp_pb2, wrappers_pb2

from durable_helpers.protocol_rows import STATUS_FROM_NAME, failure_from_json

UTC = timezone.utc  # noqa: UP017

TERMINAL = frozenset(
    {
        pb.ORCHESTRATION_STATUS_COMPLETED,
        pb.ORCHESTRATION_STATUS_FAILED,
        pb.ORCHESTRATION_STATUS_TERMINATED,
    }
)


class EngineError(Exception):
    """A client request cannot be served; ``code`` names the gRPC status to answer with.

    Example:
        >>> EngineError("NOT_FOUND", "No orchestration instance with id 'x'.").code
        'NOT_FOUND'
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def now_utc() -> datetime:
    """The current UTC time, timezone-aware.

    Example:
        >>> now_utc().tzinfo is not None
        True
    """
    return datetime.now(UTC)


def ts(value: datetime) -> timestamp_pb2.Timestamp:
    """A protobuf Timestamp for an aware datetime.

    Example:
        >>> ts(datetime(2024, 1, 1, tzinfo=UTC)).seconds
        1704067200
    """
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(value.astimezone(UTC).replace(tzinfo=None))
    return out


def sv(value: str | None) -> wrappers_pb2.StringValue | None:
    """A protobuf StringValue, or None for None.

    Example:
        >>> sv("a").value, sv(None)
        ('a', None)
    """
    return wrappers_pb2.StringValue(value=value) if value is not None else None


def present(message: Any, *names: str) -> tuple[Any, ...]:
    """Each named field of a protobuf message, or None where it is not set.

    Example:
        >>> action = pb.ScheduleTaskAction(name="Hello", input=sv("1"))
        >>> task_input, version = present(action, "input", "version")
        >>> task_input.value, version
        ('1', None)
    """
    return tuple(getattr(message, name) if message.HasField(name) else None for name in names)


def _b64(message: Any) -> str:
    return base64.b64encode(message.SerializeToString()).decode("ascii")


# ------------------------------------------------------------------------------------------
# messages
# ------------------------------------------------------------------------------------------

_seq = itertools.count()


@dataclass
class OMsg:
    """A pending event for an orchestration instance."""

    id: str
    instance_id: str
    event: pb.HistoryEvent
    visible_at: float = 0.0
    start: bool = False  # a client's StartInstance (see Inbox.load)
    seq: int = field(default_factory=lambda: next(_seq))

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "i": self.instance_id, "e": _b64(self.event)}
        if self.visible_at:
            out["v"] = self.visible_at
        if self.start:
            out["s"] = 1
        return out

    @property
    def kind(self) -> str:
        return self.event.WhichOneof("eventType") or ""


@dataclass
class AMsg:
    """A pending activity work item."""

    id: str
    request: pb.ActivityRequest
    tokens: set[str] = field(default_factory=set)
    dispatched: bool = False
    completing: bool = False

    def record(self) -> dict[str, Any]:
        return {"id": self.id, "a": _b64(self.request)}


def message_from_record(m: dict[str, Any]) -> OMsg | AMsg:
    """The message a journal record (``OMsg.record()``/``AMsg.record()``) describes.

    Example:
        >>> msg = OMsg("m1", "i1", pb.HistoryEvent(eventId=-1), visible_at=5.0)
        >>> back = message_from_record(msg.record())
        >>> (back.id, back.instance_id, back.visible_at, back.start)
        ('m1', 'i1', 5.0, False)
    """
    if "a" in m:
        return AMsg(m["id"], pb.ActivityRequest.FromString(base64.b64decode(m["a"])))
    event = pb.HistoryEvent.FromString(base64.b64decode(m["e"]))
    return OMsg(m["id"], m["i"], event, m.get("v", 0.0), bool(m.get("s")))


def exec_of(msg: OMsg) -> str:
    """The execution id an ExecutionStarted message starts."""
    return msg.event.executionStarted.orchestrationInstance.executionId.value


# ------------------------------------------------------------------------------------------
# instances
# ------------------------------------------------------------------------------------------


@dataclass
class Dispatch:
    """An orchestrator work item in flight."""

    msgs: list[OMsg]
    request: pb.OrchestratorRequest
    tokens: set[str] = field(default_factory=set)
    redeliver: bool = False
    committing: bool = False
    lost: int = 0  # deliveries in a row whose worker stream broke before it completed


@dataclass(kw_only=True)
class InstanceState:
    """What an instance's Instances row says about it, and what a checkpoint changes."""

    name: str = ""
    version: str | None = None
    input: str | None = None
    status: int = pb.ORCHESTRATION_STATUS_PENDING
    execution_id: str = ""
    created: datetime = field(default_factory=now_utc)
    last_updated: datetime = field(default_factory=now_utc)
    completed: datetime | None = None
    output: str | None = None
    custom_status: str | None = None
    failure: pb.TaskFailureDetails | None = None
    generation: int = 0
    tags: dict[str, str] = field(default_factory=dict)
    parent: pb.ParentInstanceInfo | None = None
    scheduled_start: datetime | None = None
    row_blobs: dict[str, str] = field(default_factory=dict)
    row_sig: str = ""


#: The fields a checkpoint plan copies from an instance and back (see NewState).
_STATE_FIELDS = tuple(f.name for f in fields(InstanceState))


@dataclass
class Inst(InstanceState):
    """A live (not finished) orchestration instance."""

    instance_id: str
    history: list[pb.HistoryEvent] = field(default_factory=list)
    loaded: bool = True
    loading: bool = False
    inbox: list[OMsg] = field(default_factory=list)
    in_flight: Dispatch | None = None
    kick: bool = False  # dispatch even without messages (after a rewind)
    unknown: bool = False  # loaded, and no such instance exists in the tables
    rewinding: bool = False  # a rewind was requested and is not yet applied

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


@dataclass(kw_only=True)
class NewState(InstanceState):
    """An instance's state as a checkpoint plan changes it, before it is durable."""

    new_execution: bool = False
    continued: bool = False
    kick: bool = False

    @classmethod
    def from_inst(cls, inst: Inst) -> NewState:
        state = cls(**{name: getattr(inst, name) for name in _STATE_FIELDS})
        state.tags, state.row_blobs = dict(inst.tags), dict(inst.row_blobs)
        return state

    def store_into(self, inst: Inst) -> None:
        for name in _STATE_FIELDS:
            setattr(inst, name, getattr(self, name))
        if self.continued:
            inst.status = pb.ORCHESTRATION_STATUS_RUNNING
        inst.kick = inst.kick or self.kick


def fill_from_row(inst: Inst, row: dict[str, Any]) -> None:
    """Set an instance's state from its Instances row (as read by the store).

    Example:
        >>> inst = Inst("i1")
        >>> fill_from_row(inst, {"Name": "Hello", "RuntimeStatus": "Completed", "Output": "1"})
        >>> (inst.name, inst.terminal, inst.output)
        ('Hello', True, '1')
    """
    inst.name = row.get("Name") or ""
    inst.version = row.get("Version") or None
    inst.input = _nullable(row.get("Input"))
    inst.status = STATUS_FROM_NAME.get(
        row.get("RuntimeStatus", "Pending"), pb.ORCHESTRATION_STATUS_PENDING
    )
    if inst.status == pb.ORCHESTRATION_STATUS_CONTINUED_AS_NEW:
        inst.status = pb.ORCHESTRATION_STATUS_RUNNING
    inst.execution_id = row.get("ExecutionId") or ""
    inst.created = row.get("CreatedTime") or now_utc()
    inst.last_updated = row.get("LastUpdatedTime") or inst.created
    inst.completed = row.get("CompletedTime")
    inst.failure = failure_from_json(row.get("FailureDetails"))
    # A failed instance's Output is the provider's "<ErrorType>: <ErrorMessage>" text.
    inst.output = None if inst.failure is not None else _nullable(row.get("Output"))
    inst.custom_status = _nullable(row.get("CustomStatus"))
    inst.generation = int(row.get("Generation") or 0)
    inst.tags = _json_dict(row.get("Tags"))
    inst.scheduled_start = row.get("ScheduledStartTime")


def row_running(row: dict[str, Any] | None) -> bool:
    """True when an Instances row exists and its instance has not finished.

    Example:
        >>> row_running({"RuntimeStatus": "Running"}), row_running({"RuntimeStatus": "Failed"})
        (True, False)
    """
    return row is not None and row.get("RuntimeStatus") not in (
        "Completed",
        "Failed",
        "Terminated",
    )


def _nullable(value: Any) -> str | None:
    return None if value is None or value == "null" else str(value)


def _json_dict(value: Any) -> dict[str, str]:
    if not value or value == "null":
        return {}
    try:
        data = json.loads(value)
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


# ------------------------------------------------------------------------------------------
# what clients see
# ------------------------------------------------------------------------------------------


@dataclass
class Snapshot:
    """An instance's state at one moment, as client queries answer it."""

    instance_id: str
    name: str
    version: str | None
    status: int
    input: str | None
    output: str | None
    custom_status: str | None
    failure: pb.TaskFailureDetails | None
    created: datetime
    last_updated: datetime
    completed: datetime | None
    execution_id: str
    generation: int
    tags: dict[str, str]
    parent_id: str | None

    @classmethod
    def of(cls, inst: Inst) -> Snapshot:
        return cls(
            inst.instance_id,
            inst.name,
            inst.version,
            inst.status,
            inst.input,
            inst.output,
            inst.custom_status,
            inst.failure,
            inst.created,
            inst.last_updated,
            inst.completed,
            inst.execution_id,
            inst.generation,
            dict(inst.tags),
            inst.parent.orchestrationInstance.instanceId if inst.parent else None,
        )

    def to_pb(self, payloads: bool) -> pb.OrchestrationState:
        return pb.OrchestrationState(
            instanceId=self.instance_id,
            name=self.name,
            version=sv(self.version),
            orchestrationStatus=self.status,
            createdTimestamp=ts(self.created),
            lastUpdatedTimestamp=ts(self.last_updated),
            completedTimestamp=ts(self.completed) if self.completed else None,
            input=sv(self.input) if payloads else None,
            output=sv(self.output) if payloads else None,
            customStatus=sv(self.custom_status),
            failureDetails=self.failure,
            executionId=sv(self.execution_id),
            parentInstanceId=sv(self.parent_id),
            tags=self.tags,
        )
