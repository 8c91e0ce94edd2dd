"""Client operations: start, query, wait for, send events to, purge, and read instances.

Owns what the client RPCs do to the hub (the servicer calls them through ``Engine``): starting
an instance (a fast path that inserts the Pending row, and the reuse-policy path that replaces
a finished one), reading an instance's state (memory first, else its Instances row), waiting
for a condition on it, queueing an event for it (raise, terminate, suspend, resume), purging a
finished instance (recursively) and reading its history. Every change is journaled before it is
acknowledged. Rewinding is in :mod:`~.rewind`; the entity client requests (signal, get, query,
clean) are in :mod:`~.entities.client`.

May call: the inbox, work items (tokens of a replaced instance), :mod:`~.checkpoint`, the store
and the journal. Each method takes the lock itself for its in-memory steps, never across I/O.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import durabletask.internal.orchestrator_service_pb2 as pb

from durable_helpers import schema
from durable_helpers.local.sidecar.checkpoint import (
    instance_op,
    instance_row,
)
from durable_helpers.local.sidecar.state import (
    TERMINAL,
    UTC,
    EngineError,
    Inst,
    NewState,
    OMsg,
    Snapshot,
    fill_from_row,
    sv,
    ts,
)
from durable_helpers.local.sidecar.store import wire
from durable_helpers.protocol_rows import STATUS_NAMES, columns_to_event

if TYPE_CHECKING:
    from durable_helpers.local.sidecar.engine import Engine

log = logging.getLogger("durable_helpers.local.sidecar")

#: The longest instance id (as Durable Functions).
MAX_INSTANCE_ID = 256


class Clients:
    """The client operations of the hub (each takes the lock itself)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def instance_state(self, instance_id: str) -> Snapshot | None:
        """The current state of an instance (memory first, else its Instances row)."""
        engine = self.engine
        with engine.lock:
            inst = engine.inbox.active.get(instance_id)
            snap = Snapshot.of(inst) if inst is not None and inst.loaded else None
        if snap is not None:
            return self._in_tables(snap)
        with engine.lock:
            kept = engine.inbox.finished_states.get(instance_id)
            if kept is not None and instance_id not in engine.inbox.active:
                return kept
        row = engine.store.get_instance_row(instance_id)
        if row is None:
            return None
        snap = Inst(instance_id)
        fill_from_row(snap, row)
        return Snapshot.of(snap)

    def wait_for(
        self, instance_id: str, predicate: Callable[[Snapshot], bool], timeout: float | None
    ) -> Snapshot | None:
        """Wait until ``predicate(snapshot)``; None if the instance does not exist.

        Raises TimeoutError when ``timeout`` seconds pass first.
        """
        engine = self.engine
        deadline = time.monotonic() + (timeout if timeout is not None else 3600.0)
        while True:
            with engine.lock:
                inst = engine.inbox.active.get(instance_id)
                live = inst is not None and inst.loaded and not inst.unknown
                if live:
                    snap = Snapshot.of(inst)
                    if not predicate(snap):
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            raise TimeoutError(instance_id)
                        engine.cv.wait(min(remaining, 0.5))
                        continue
            if live:
                return self._in_tables(snap)
            snap = self.instance_state(instance_id)
            if snap is None or predicate(snap):
                return snap
            if time.monotonic() >= deadline:
                raise TimeoutError(instance_id)
            time.sleep(0.05)

    def _in_tables(self, snap: Snapshot) -> Snapshot:
        """``snap``, once the instance's queued table writes are written: a client that saw a
        state finds its rows when it reads the tables next (lock not held)."""
        self.engine.store.writer.flush(schema.escape_partition_key(snap.instance_id))
        return snap

    def start_instance(self, req: pb.CreateInstanceRequest) -> str:
        """Start an instance durably; returns its id (EngineError for a bad or taken id)."""
        engine = self.engine
        instance_id = req.instanceId or uuid.uuid4().hex
        if not instance_id or len(instance_id) > MAX_INSTANCE_ID:
            raise EngineError("INVALID_ARGUMENT", "An instance id must have 1 to 256 characters.")
        if instance_id.startswith("@"):  # as Durable Functions: '@name@key' is an entity's id
            raise EngineError(
                "INVALID_ARGUMENT",
                f"Orchestration instance ids must not start with '@' ({instance_id!r}): that "
                "form is reserved for durable entities. Choose another id.",
            )
        with engine.lock:
            known = instance_id in engine.inbox.active
        if not known and self._start_new(req, instance_id):
            return instance_id
        existing = self.instance_state(instance_id)
        generation = 0
        if existing is not None:
            replaceable = set(req.orchestrationIdReusePolicy.replaceableStatus)
            if existing.status not in replaceable:
                raise EngineError(
                    "ALREADY_EXISTS",
                    f"An orchestration with instance id {instance_id!r} already exists "
                    f"({STATUS_NAMES.get(existing.status)}); pass a reuse policy to replace it.",
                )
            generation = existing.generation + 1
        msg, st, row, blobs = self.start_parts(req, instance_id, generation)
        engine.store.upload_blobs(blobs)
        ops = [instance_op(row)]
        journal = engine.store.journal
        journal.begin()
        try:
            with engine.lock:
                old = engine.inbox.active.get(instance_id)
                if old is not None and old.in_flight is not None and existing is not None:
                    engine.work.forget_tokens(old.in_flight.tokens)
            journal.append(
                {
                    "m": [msg.record()],
                    "ops": ops,
                    **({"a": [m.id for m in old.inbox]} if old else {}),
                }
            )
            engine.store.write(ops, now=True)
            with engine.lock:
                self._activate(st, msg)
                engine.cv.notify_all()
        finally:
            journal.done()
        log.info("started %s %r", req.name, instance_id)
        return instance_id

    def _start_new(self, req: pb.CreateInstanceRequest, instance_id: str) -> bool:
        """Fast path: journal the start while inserting the Pending row (fails if it exists).

        The insert overlaps with the journal append. When the append fails the inserted row is
        deleted again; when the sidecar dies between the two, the row is a start nobody was told
        of, and recovery removes it (:meth:`~.store.Store.remove_unstarted`).
        """
        engine = self.engine
        msg, st, row, blobs = self.start_parts(req, instance_id, 0)
        engine.store.upload_blobs(blobs)
        op = {"t": "i", "pk": row["PartitionKey"], "e": wire(row), "ins": 1}
        inserted: list[bool] = []
        journal = engine.store.journal
        journal.begin()
        try:
            try:
                journal.append(
                    {"m": [msg.record()], "ops": [op]},
                    meanwhile=lambda: inserted.append(engine.store.insert_instance_row(op["e"])),
                )
            except Exception:
                if inserted and inserted[0]:  # not durable: no row for a start never made
                    with contextlib.suppress(Exception):
                        engine.store.delete_instance_row(op["pk"])
                raise
            if not inserted[0]:
                journal.append({"a": [msg.id]}, wait=False)  # cancel: the id is taken
                return False
            with engine.lock:
                self._activate(st, msg)
        finally:
            journal.done()
        log.debug("started %s %r", req.name, instance_id)
        return True

    def _activate(self, st: NewState, msg: OMsg) -> None:
        """A durable start: the instance is live with its ExecutionStarted (lock held)."""
        inbox = self.engine.inbox
        inbox.forget_finished(msg.instance_id)
        inst = Inst(msg.instance_id)
        st.store_into(inst)
        inbox.active[msg.instance_id] = inst
        inbox.deliver(msg)

    def start_parts(self, req: pb.CreateInstanceRequest, instance_id: str, generation: int):
        """A start's ExecutionStarted message, state, Instances row and blobs (nothing written;
        entities starting orchestrations journal these with their step)."""
        engine = self.engine
        now = engine.now()
        start_at = (
            req.scheduledStartTimestamp.ToDatetime(tzinfo=UTC)
            if req.HasField("scheduledStartTimestamp")
            else None
        )
        exec_id = engine.new_id()
        version = req.version.value if req.HasField("version") else None
        started = pb.HistoryEvent(
            eventId=-1,
            timestamp=ts(now),
            executionStarted=pb.ExecutionStartedEvent(
                name=req.name,
                version=sv(version),
                input=req.input if req.HasField("input") else None,
                orchestrationInstance=pb.OrchestrationInstance(
                    instanceId=instance_id, executionId=sv(exec_id)
                ),
                scheduledStartTimestamp=req.scheduledStartTimestamp if start_at else None,
                tags=req.tags,
                parentTraceContext=req.parentTraceContext
                if req.HasField("parentTraceContext")
                else None,
            ),
        )
        visible = start_at.timestamp() if start_at and start_at.timestamp() > time.time() else 0.0
        msg = OMsg(engine.new_id(), instance_id, started, visible_at=visible, start=True)
        st = NewState(
            name=req.name,
            version=version,
            input=req.input.value if req.HasField("input") else None,
            status=pb.ORCHESTRATION_STATUS_PENDING,
            execution_id=exec_id,
            created=now,
            last_updated=now,
            generation=generation,
            tags=dict(req.tags),
            scheduled_start=start_at,
        )
        row, blobs = instance_row(engine.store, instance_id, st, {})
        return msg, st, row, blobs

    def send_event(
        self, instance_id: str, event: pb.HistoryEvent, *, must_exist: bool = True
    ) -> None:
        """Queue an event (raise/terminate/suspend/resume/rewind) durably for an instance."""
        engine = self.engine
        snap = self.instance_state(instance_id)
        if snap is None:
            if must_exist:
                raise EngineError(
                    "NOT_FOUND", f"No orchestration instance with id {instance_id!r}."
                )
            return
        self.send(OMsg(engine.new_id(), instance_id, event))

    def send(self, msg: OMsg) -> None:
        """Journal a message, then deliver it: it is acknowledged once this returns."""
        engine = self.engine
        journal = engine.store.journal
        journal.begin()
        try:
            journal.append({"m": [msg.record()]})
            with engine.lock:
                engine.inbox.deliver(msg)
        finally:
            journal.done()

    def purge(self, instance_id: str, recursive: bool) -> int:
        """Delete a finished instance (and, recursively, its sub-orchestrations)."""
        engine = self.engine
        snap = self.instance_state(instance_id)
        if snap is None or snap.status not in TERMINAL:
            return 0
        count = 0
        if recursive:
            _, rows = engine.store.read_history(instance_id)
            for row in rows:
                if row.get("EventType") == "SubOrchestrationInstanceCreated" and row.get(
                    "InstanceId"
                ):
                    count += self.purge(row["InstanceId"], True)
        pk = schema.escape_partition_key(instance_id)
        journal = engine.store.journal
        journal.begin()
        try:
            ops = [{"t": "purge", "pk": pk}]
            journal.append({"ops": ops})
            engine.store.write(ops, now=True)
            with engine.lock:
                engine.inbox.forget_finished(instance_id)
                inst = engine.inbox.active.get(instance_id)
                if inst is not None and inst.in_flight is None:
                    engine.inbox.active.pop(instance_id, None)
        finally:
            journal.done()
        return count + 1

    def history(self, instance_id: str) -> list[pb.HistoryEvent] | None:
        """An instance's history (None if it does not exist)."""
        engine = self.engine
        with engine.lock:
            inst = engine.inbox.active.get(instance_id)
            if inst is not None and inst.loaded and inst.history and not inst.terminal:
                return list(inst.history)
        if engine.store.get_instance_row(instance_id) is None:
            return None
        _, rows = engine.store.read_history(instance_id)
        return [columns_to_event(r) for r in rows]
