"""Recovery from the journal: what a restart replays, and what a compacted journal keeps.

``replay`` reads the journal's records in order: every message written (``"m"``) that no later
record acknowledged (``"a"``) is still pending, and the last table write per partition
(``"ops"``: History ``h``, Instances ``i``, ``purge``) is re-applied, since the crash may have
come between the journal append and the table write. ``pending_records`` is the other half:
the records of every message still pending in memory, which is all a compacted journal needs.

May call: :mod:`~.state` (message records) only; the engine applies what ``replay`` returns.
``pending_records`` expects the engine's lock held.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from durable_helpers.local.sidecar.state import AMsg, OMsg, message_from_record

if TYPE_CHECKING:
    from durable_helpers.local.sidecar.engine import Engine

#: Messages per record in a compacted journal.
RECORD_MESSAGES = 500


@dataclass
class Replayed:
    """What the journal says is pending: messages, and the table writes to redo."""

    omsgs: list[OMsg] = field(default_factory=list)  # in the order they were written
    amsgs: list[AMsg] = field(default_factory=list)
    ops: list[dict[str, Any]] = field(default_factory=list)


def replay(records: Iterable[dict[str, Any]]) -> Replayed:
    """The pending messages and table writes of a journal's records.

    Example:
        >>> from durable_helpers.local.sidecar.state import OMsg
        >>> import durabletask.internal.orchestrator_service_pb2 as pb
        >>> a, b = (OMsg(i, "inst", pb.HistoryEvent(eventId=-1)) for i in ("m1", "m2"))
        >>> out = replay([{"m": [a.record(), b.record()]}, {"a": ["m1"]}])
        >>> [m.id for m in out.omsgs]
        ['m2']
    """
    omsgs: dict[str, OMsg] = {}
    amsgs: dict[str, AMsg] = {}
    last_h: dict[str, dict[str, Any]] = {}
    last_i: dict[str, dict[str, Any]] = {}
    for record in records:
        for m in record.get("m", ()):
            msg = message_from_record(m)
            if isinstance(msg, AMsg):
                amsgs[msg.id] = msg
            else:
                omsgs[msg.id] = msg
        for ack in record.get("a", ()):
            omsgs.pop(ack, None)
            amsgs.pop(ack, None)
        for op in record.get("ops", ()):
            if op["t"] == "h":
                last_h[op["pk"]] = op
            elif op["t"] == "i":
                last_i[op["pk"]] = op
            elif op["t"] == "purge":
                last_h[op["pk"]] = op
                last_i.pop(op["pk"], None)
    return Replayed(
        omsgs=sorted(omsgs.values(), key=lambda m: m.seq),
        amsgs=list(amsgs.values()),
        ops=list(last_h.values()) + list(last_i.values()),
    )


def pending_records(engine: Engine) -> list[dict[str, Any]]:
    """Journal records holding every pending message (lock held: the journal's snapshot)."""
    msgs: list[dict[str, Any]] = [a.record() for a in engine.activities.messages()]
    for inst in engine.inbox.active.values():
        msgs.extend(m.record() for m in inst.inbox)
        if inst.in_flight is not None:
            msgs.extend(m.record() for m in inst.in_flight.msgs)
    msgs.extend(m.record() for m in engine.timers.messages())
    return [{"m": msgs[i : i + RECORD_MESSAGES]} for i in range(0, len(msgs), RECORD_MESSAGES)]
