"""Recovery from the journal: what a restart replays, and what a compacted journal keeps.

``replay`` reads the journal's records in order: every message written (``"m"``) that no later
record acknowledged (``"a"``) is still pending, and every partition with a table write
(``"ops"``: History ``h``, Instances ``i``, ``purge``) that no ``"w"`` record says was written
is re-applied, all its ops since its last purge coalesced to their final state (the table writer
writes behind, so the crash may have come before any of them reached the tables; re-applying
written ones is harmless, and ``w`` records lost in the crash only cost a rewrite).
``pending_records`` is the other half: the records of every message still pending in memory,
which is all a compacted journal needs.

May call: :mod:`~.state` (message records), and the parts' pending messages for
``pending_records``; the engine applies what ``replay`` returns.
``pending_records`` expects the engine's lock held.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from durable_helpers.local.sidecar.state import AMsg, OMsg, message_from_record
from durable_helpers.local.sidecar.table_writer import coalesce

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
    ops_of: dict[str, list[dict[str, Any]]] = {}  # per partition, since its last purge
    unwritten: dict[str, set[Any]] = {}  # per partition, ids of ops no "w" record lists
    partition_of: dict[Any, str] = {}
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
            pk = op["pk"]
            if op["t"] == "purge":
                ops_of[pk] = []
                unwritten[pk] = set()
            ops_of.setdefault(pk, []).append(op)
            unwritten.setdefault(pk, set()).add(op.get("n", id(op)))
            partition_of[op.get("n", id(op))] = pk
        for n in record.get("w", ()):
            pk = partition_of.get(n)
            if pk is not None:
                unwritten[pk].discard(n)
    redo: list[dict[str, Any]] = []
    for pk, ops in ops_of.items():
        if unwritten.get(pk):
            redo.extend(coalesce(ops))
    return Replayed(
        omsgs=sorted(omsgs.values(), key=lambda m: m.seq),
        amsgs=list(amsgs.values()),
        ops=redo,
    )


def pending_records(engine: Engine) -> list[dict[str, Any]]:
    """Journal records holding every pending message (lock held: the journal's snapshot)."""
    msgs: list[dict[str, Any]] = [a.record() for a in engine.activities.messages()]
    for inst in engine.inbox.active.values():
        msgs.extend(m.record() for m in inst.inbox)
        if inst.in_flight is not None:
            msgs.extend(m.record() for m in inst.in_flight.msgs)
    msgs.extend(m.record() for m in engine.timers.messages())
    msgs.extend(m.record() for m in engine.entities.pending_messages())
    return [{"m": msgs[i : i + RECORD_MESSAGES]} for i in range(0, len(msgs), RECORD_MESSAGES)]
