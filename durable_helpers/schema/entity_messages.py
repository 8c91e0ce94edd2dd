"""Entity messages, both directions: the bodies and names of the events entities exchange.

Owns the JSON of the three message bodies that travel in the ``Input`` of ``EventRaised`` queue
messages and of ``EventSent`` / ``EventRaised`` History rows (``reference/durable-entities.md``
§1.11-§1.14): RequestMessage (``op``: call, signal, lock request), ResponseMessage (a result,
a failure, or a lock grant) and ReleaseMessage (``release``), plus the event names (``op``,
``op@{due:o}``, ``release``, ``continue``) and the two .NET datetime spellings they use.
Writers produce the DurableTask.Core shape; parsers accept the classic DF 2.x shape as well
(a leading ``$type``, no ``IsLockRequest``/``createTrace``) and ignore keys they do not know.
Calls ``values`` and ``entities`` (entity ids).

Choices where the reference is [unsure] (the parsers accept both ways):

- ``IsLockRequest`` and ``createTrace`` are written, as in the reference's Core example: a
  getter-only ``[DataMember]`` is serialized by Newtonsoft, and every reader (DTFx, DF classic,
  the Python SDK) ignores members it does not use, so writing them costs nothing.
- ``lockset`` elements are written as ``{"name": ..., "key": ...}`` without ``$type``; parsed
  elements may carry ``$type``, capitalised ``Name``/``Key``, or be ``@name@key`` strings (the gRPC
  form).
- Datetimes inside bodies are Newtonsoft's ISO form (UTC ``Z``, fraction without trailing zeros;
  unset is ``0001-01-01T00:00:00``); the delayed-signal event name uses .NET's ``o`` form
  (always 7 fraction digits). Python datetimes hold microseconds, so the 7th digit is 0.

Example:
    >>> from datetime import datetime, timezone
    >>> t = datetime(2025, 1, 10, 8, 1, 0, 123456, tzinfo=timezone.utc)
    >>> request_message_json(op="add", id="r1", input="5", signal=True, timestamp=t)
    '{"op":"add","signal":true,"input":"5","id":"r1","Timestamp":"2025-01-10T08:01:00.123456Z",\
"Predecessor":"0001-01-01T00:00:00","IsLockRequest":false,"createTrace":false}'
    >>> parse_request_message(request_message_json(op="add", id="r1", timestamp=t)).op
    'add'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from durable_helpers.schema.entities import entity_instance_id, json_object, split_entity_id
from durable_helpers.schema.values import to_datetime, to_json, to_utc

#: Event name of a request (call, signal, lock request) to an entity.
OPERATION_EVENT = "op"
#: Event name of a lock release sent to an entity.
RELEASE_EVENT = "release"
#: Event name an entity sends itself to resume a batch cut short (body null).
CONTINUE_EVENT = "continue"
#: The ``result`` of the response that grants a lock.
LOCK_GRANTED_RESULT = "Lock Acquisition Completed"
#: The ``id`` CleanEntityStorage puts in the release it sends for an orphaned lock.
ORPHANED_LOCK_RELEASE_ID = "fix-orphaned-lock"
#: How far ahead the Azure Storage provider schedules a delayed signal's queue message.
MAX_SIGNAL_DELAY = timedelta(days=6)
#: How .NET writes an unset ``DateTime`` (``Timestamp``/``Predecessor`` of a client signal).
UNSET_DATETIME = "0001-01-01T00:00:00"

#: Leading keys that may stand ahead of ``id`` in a RequestMessage (DTFx's out-of-order check
#: skips exactly these to find the request id, so ``id`` must come right after them).
REQUEST_KEYS_BEFORE_ID = ("$type", "op", "signal", "input")


def _clock(utc: datetime) -> str:
    return f"{utc.year:04d}-" + utc.strftime("%m-%dT%H:%M:%S")


def dotnet_json_datetime(value: datetime | None) -> str:
    """A datetime as Newtonsoft writes a UTC ``DateTime`` in JSON; None -> the unset value.

    Example:
        >>> from datetime import datetime, timezone
        >>> dotnet_json_datetime(datetime(2025, 1, 10, 8, 1, 0, 500000, tzinfo=timezone.utc))
        '2025-01-10T08:01:00.5Z'
        >>> dotnet_json_datetime(None)
        '0001-01-01T00:00:00'
    """
    if value is None:
        return UNSET_DATETIME
    utc = to_utc(value)
    fraction = f"{utc.microsecond:06d}".rstrip("0")
    return _clock(utc) + (f".{fraction}" if fraction else "") + "Z"


def dotnet_o_datetime(value: datetime) -> str:
    """A datetime in .NET's round-trip ``o`` format for a UTC ``DateTime`` (7 fraction digits).

    Example:
        >>> from datetime import datetime, timezone
        >>> dotnet_o_datetime(datetime(2025, 1, 10, 8, 0, tzinfo=timezone.utc))
        '2025-01-10T08:00:00.0000000Z'
    """
    utc = to_utc(value)
    return _clock(utc) + f".{utc.microsecond:06d}0Z"


def _message_datetime(value: Any) -> datetime | None:
    """A body datetime read back; the unset .NET value (year 1) and junk are None."""
    parsed = to_datetime(value)
    return None if parsed is None or parsed.year == 1 else parsed


# ---------------------------------------------------------------------------- event names


def delayed_operation_event(due: datetime, *, now: datetime | None = None) -> str:
    """The event name of a signal due at ``due``: ``op@{due:o}``, capped at ``now`` + 6 days.

    The cap is what the Azure Storage provider does (its queues hold a message back at most that
    long); the true time stays in the body's ``due``. Without ``now`` nothing is capped.

    Example:
        >>> from datetime import datetime, timezone
        >>> delayed_operation_event(datetime(2025, 1, 10, 8, tzinfo=timezone.utc))
        'op@2025-01-10T08:00:00.0000000Z'
    """
    when = to_utc(due)
    if now is not None:
        when = min(when, to_utc(now) + MAX_SIGNAL_DELAY)
    return f"{OPERATION_EVENT}@{dotnet_o_datetime(when)}"


@dataclass(frozen=True)
class EntityEvent:
    """What an event name sent to an entity means: its ``kind`` and, if delayed, when it is due.

    Example:
        >>> classify_entity_event("op@2025-01-10T08:00:00.0000000Z").due.hour
        8
    """

    kind: Literal["request", "release", "continue"]
    due: datetime | None = None


def classify_entity_event(name: str) -> EntityEvent:
    """Classify an event name as the entity does: ``op...`` a request, ``release``, else continue.

    Example:
        >>> classify_entity_event("op").kind, classify_entity_event("release").kind
        ('request', 'release')
        >>> classify_entity_event("anything else").kind
        'continue'
    """
    if name.startswith(OPERATION_EVENT):
        due = None
        if len(name) > len(OPERATION_EVENT) and name[len(OPERATION_EVENT)] == "@":
            due = _message_datetime(name[len(OPERATION_EVENT) + 1 :])
        return EntityEvent("request", due)
    if name == RELEASE_EVENT:
        return EntityEvent("release")
    return EntityEvent("continue")


# ---------------------------------------------------------------------------- bodies


def _object(text: str | None, what: str) -> dict[str, Any]:
    body = json_object(text, f"an entity {what}") if isinstance(text, str) else None
    if body is None:
        raise ValueError(f"an entity {what} is JSON text of an object, not {text!r}")
    return body


def _json_text(value: Any) -> str | None:
    """A body member that holds serialized JSON as a string (tolerates an inlined value)."""
    if value is None or isinstance(value, str):
        return value
    return to_json(value)


def _lock_member(element: Any) -> tuple[str, str]:
    if isinstance(element, str):
        return split_entity_id(element)
    if isinstance(element, Mapping):
        name = element.get("name", element.get("Name"))
        key = element.get("key", element.get("Key"))
        if isinstance(name, str) and isinstance(key, str):
            return name, key
    raise ValueError(f"a lockset element is {{'name': ..., 'key': ...}}, not {element!r}")


@dataclass(frozen=True)
class RequestMessage:
    """A parsed RequestMessage (``op`` body): a call, a signal or a lock request.

    Example:
        >>> m = parse_request_message('{"op":null,"id":"cs","lockset":[{"name":"a","key":"1"}]}')
        >>> m.is_lock_request, m.lockset
        (True, [('a', '1')])
    """

    op: str | None
    id: str
    input: str | None = None
    signal: bool = False
    parent: str | None = None
    parent_execution: str | None = None
    due: datetime | None = None
    timestamp: datetime | None = None
    predecessor: datetime | None = None
    lockset: list[tuple[str, str]] | None = None
    pos: int = 0
    type_name: str | None = None

    @property
    def is_lock_request(self) -> bool:
        """True when the message asks for locks (it has a lock set)."""
        return self.lockset is not None


def request_message_json(
    *,
    op: str | None,
    id: str,
    input: str | None = None,
    signal: bool = False,
    parent: str | None = None,
    parent_execution: str | None = None,
    due: datetime | None = None,
    timestamp: datetime | None,
    predecessor: datetime | None = None,
    lockset: Sequence[tuple[str, str]] | None = None,
    pos: int = 0,
) -> str:
    """A RequestMessage as compact JSON text: DurableTask.Core's keys and order, defaults left out.

    ``id`` stands right after ``op``/``signal``/``input`` (where DTFx's out-of-order check looks
    for it). ``input`` is the operation input already serialized (JSON text); ``lockset`` pairs are
    (name, key) in sorted order. ``timestamp`` and ``predecessor`` are the sender's sorter labels;
    None writes .NET's unset value (what a client signal carries). A scheduler state's ``queue``
    holds these messages decoded (``json.loads``).

    Example:
        >>> from datetime import datetime, timezone
        >>> request_message_json(op="get", id="r2", parent="orch1", parent_execution="x1",
        ...     timestamp=datetime(2025, 1, 10, 8, 1, tzinfo=timezone.utc))[:57]
        '{"op":"get","id":"r2","parent":"orch1","parentExecution":'
    """
    if not isinstance(id, str) or not id:
        raise ValueError(f"a request id is a non-empty str (a GUID), not {id!r}")
    if op is not None and not isinstance(op, str):
        raise ValueError(f"op is an operation name (str), or None for a lock request: {op!r}")
    if input is not None and not isinstance(input, str):
        raise ValueError("input is the operation input serialized as JSON text (a str)")
    message: dict[str, Any] = {"op": op}
    if signal:
        message["signal"] = True
    if input is not None:
        message["input"] = input
    message["id"] = id
    if parent is not None:
        message["parent"] = parent
    if parent_execution is not None:
        message["parentExecution"] = parent_execution
    if due is not None:
        message["due"] = dotnet_json_datetime(due)
    message["Timestamp"] = dotnet_json_datetime(timestamp)
    message["Predecessor"] = dotnet_json_datetime(predecessor)
    if lockset is not None:
        message["lockset"] = [_lockset_element(pair) for pair in lockset]
    if pos:
        message["pos"] = int(pos)
    message["IsLockRequest"] = lockset is not None
    message["createTrace"] = False
    return to_json(message)


def _lockset_element(pair: Any) -> dict[str, str]:
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
        raise ValueError(f"a lockset holds (name, key) pairs, not {pair!r}")
    name, key = pair
    entity_instance_id(name, key)  # the rules of an entity id: a name without '@', a str key
    return {"name": name, "key": key}


def parse_request_message(text: str | Mapping[str, Any]) -> RequestMessage:
    """A RequestMessage of either generation (``$type`` kept as ``type_name``, others ignored).

    Accepts the JSON text or an already decoded dict (an element of a scheduler state's queue).

    Example:
        >>> m = parse_request_message('{"$type":"Microsoft.Azure.WebJobs.Extensions.DurableTask.'
        ...     'RequestMessage, Microsoft.Azure.WebJobs.Extensions.DurableTask","op":"add",'
        ...     '"signal":true,"input":"5","id":"r1","Timestamp":"0001-01-01T00:00:00"}')
        >>> m.op, m.signal, m.input, m.timestamp, m.type_name.split(",")[0].rsplit(".", 1)[1]
        ('add', True, '5', None, 'RequestMessage')
    """
    body = dict(text) if isinstance(text, Mapping) else _object(text, "request message")
    request_id = body.get("id")
    if not isinstance(request_id, str) or not request_id:
        raise ValueError(f"an entity request message has a string id: {to_json(body)[:200]}")
    op = body.get("op")
    lockset = body.get("lockset")
    if lockset is not None and not isinstance(lockset, list):
        raise ValueError(f"an entity request's lockset is a list, not {to_json(lockset)[:200]}")
    return RequestMessage(
        op=op if isinstance(op, str) else None,
        id=request_id,
        input=_json_text(body.get("input")),
        signal=body.get("signal") is True,
        parent=body.get("parent") if isinstance(body.get("parent"), str) else None,
        parent_execution=body.get("parentExecution")
        if isinstance(body.get("parentExecution"), str)
        else None,
        due=_message_datetime(body.get("due")),
        timestamp=_message_datetime(body.get("Timestamp")),
        predecessor=_message_datetime(body.get("Predecessor")),
        lockset=None if lockset is None else [_lock_member(e) for e in lockset],
        pos=pos if isinstance(pos := body.get("pos"), int) and not isinstance(pos, bool) else 0,
        type_name=body.get("$type") if isinstance(body.get("$type"), str) else None,
    )


@dataclass(frozen=True)
class ResponseMessage:
    """A parsed ResponseMessage: a result, a failure (``is_error``) or a lock grant.

    Example:
        >>> parse_response_message('{"result":"5"}').result
        '5'
    """

    result: str | None
    exception_type: str | None = None
    failure_details: dict[str, Any] | None = None

    @property
    def is_error(self) -> bool:
        """True when the operation failed (``exceptionType`` or ``failureDetails`` present)."""
        return self.exception_type is not None or self.failure_details is not None

    @property
    def is_lock_granted(self) -> bool:
        """True for the response that grants a lock set."""
        return not self.is_error and self.result == LOCK_GRANTED_RESULT


def response_message_json(
    *,
    result: str | None,
    exception_type: str | None = None,
    failure_details: Mapping[str, Any] | None = None,
) -> str:
    """A ResponseMessage as JSON text: ``result`` always written, the failure parts when given.

    Example:
        >>> response_message_json(result="5")
        '{"result":"5"}'
        >>> response_message_json(result=None, failure_details={"ErrorType": "ValueError"})
        '{"result":null,"failureDetails":{"ErrorType":"ValueError"}}'
    """
    if result is not None and not isinstance(result, str):
        raise ValueError("result is the operation output serialized as JSON text (a str)")
    message: dict[str, Any] = {"result": result}
    if exception_type is not None:
        message["exceptionType"] = exception_type
    if failure_details is not None:
        message["failureDetails"] = dict(failure_details)
    return to_json(message)


def parse_response_message(text: str) -> ResponseMessage:
    """A ResponseMessage of either generation (``$type`` and unknown keys ignored).

    Example:
        >>> r = parse_response_message('{"result":"boom","exceptionType":"System.Exception"}')
        >>> r.is_error, r.exception_type
        (True, 'System.Exception')
    """
    body = _object(text, "response message")
    details = body.get("failureDetails")
    kind = body.get("exceptionType")
    return ResponseMessage(
        result=_json_text(body.get("result")),
        exception_type=kind if isinstance(kind, str) else None,
        failure_details=dict(details) if isinstance(details, Mapping) else None,
    )


@dataclass(frozen=True)
class ReleaseMessage:
    """A parsed ReleaseMessage: the lock holder ``parent`` and the critical section ``id``.

    Example:
        >>> parse_release_message('{"parent":"orch1","id":"cs"}').parent
        'orch1'
    """

    parent: str
    id: str | None


def release_message_json(*, parent: str, id: str) -> str:
    """A ReleaseMessage as JSON text (the entity unlocks only if its lock holder is ``parent``).

    Example:
        >>> release_message_json(parent="orch1", id=ORPHANED_LOCK_RELEASE_ID)
        '{"parent":"orch1","id":"fix-orphaned-lock"}'
    """
    if not isinstance(parent, str) or not parent:
        raise ValueError(f"a release names the lock holder (an instance id), not {parent!r}")
    return to_json({"parent": parent, "id": id})


def parse_release_message(text: str) -> ReleaseMessage:
    """A ReleaseMessage of either generation (``$type`` ignored).

    Example:
        >>> parse_release_message('{"$type":"x","parent":"o","id":"cs"}').id
        'cs'
    """
    body = _object(text, "release message")
    parent = body.get("parent")
    if not isinstance(parent, str):
        raise ValueError(f"an entity release message names its parent: {text[:200]!r}")
    release_id = body.get("id")
    return ReleaseMessage(parent=parent, id=release_id if isinstance(release_id, str) else None)
