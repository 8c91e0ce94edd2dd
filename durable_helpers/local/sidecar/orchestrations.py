"""Orchestrator work items: handing an instance's next episode to a worker, and completing it.

Owns the orchestrator side of dispatch (a :class:`~.work_items.WorkSource` of kind ``"o"``):
taking ready instances in turn, skipping those the stream's filters refuse, building the
``OrchestratorRequest`` (past events + OrchestratorStarted + the selected messages), redelivering
a work item whose stream broke (failing the instance after ``LOST_DELIVERIES_LIMIT`` broken
streams in a row), and taking it back when a worker abandons it. ``complete`` commits a worker's
``OrchestratorResponse``: plan it (:func:`~.planner.plan_response`), upload its blobs, journal
it, hand its rows to the store's write-behind (at once when the instance finishes), then apply it
to memory.

May call: the inbox, work items (tokens), activities (queue planned activities), the planner,
the checkpoint helpers, the fallbacks, the store and the journal. ``complete`` takes the lock
itself and does its I/O outside it; every other method expects the lock held.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

import durabletask.internal.orchestrator_service_pb2 as pb

from durable_helpers.local.sidecar import fallbacks
from durable_helpers.local.sidecar.checkpoint import Plan
from durable_helpers.local.sidecar.inbox import pending_name, select_batch
from durable_helpers.local.sidecar.planner import plan_response
from durable_helpers.local.sidecar.state import TERMINAL, Dispatch, Inst, Snapshot, sv
from durable_helpers.local.sidecar.store import STORAGE_PATIENCE_SECONDS
from durable_helpers.local.sidecar.work_items import Stream

if TYPE_CHECKING:
    from durable_helpers.local.sidecar.engine import Engine

log = logging.getLogger("durable_helpers.local.sidecar")

#: After this many worker streams broke in a row while an orchestrator work item was in flight on
#: them, the sidecar fails the instance (with the reason) instead of redelivering it for ever.
LOST_DELIVERIES_LIMIT = 3


class Orchestrations:
    """Orchestrator work items (kind ``"o"``; lock held, except ``complete``)."""

    kind = "o"
    limit_field = "maxConcurrentOrchestrationWorkItems"
    filter_field = "orchestrations"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._unhandled_warned: set[str] = set()

    # -- handing out ---------------------------------------------------------------------------

    def next_item(self, stream: Stream) -> pb.WorkItem | None:
        """The next ready instance's work item that ``stream`` accepts (lock held)."""
        inbox = self.engine.inbox
        skipped: list[str] = []
        item = None
        while inbox.ready:
            iid = inbox.ready.popleft()
            inbox.ready_set.discard(iid)
            inst = inbox.active.get(iid)
            if inst is None:
                continue
            name = inst.name or pending_name(inst)
            if inst.loaded and not stream.accepts(self.kind, name, inst.version):
                skipped.append(iid)
                self._warn_if_no_worker_handles(name, inst.version)
                continue
            item = self.item_for(inst, stream)
            if item is not None:
                break
        for iid in skipped:
            if iid not in inbox.ready_set:
                inbox.ready_set.add(iid)
                inbox.ready.append(iid)
        return item

    def item_for(self, inst: Inst, stream: Stream) -> pb.WorkItem | None:
        """The instance's work item (a redelivery, or its next episode), if it has one."""
        engine = self.engine
        if inst.in_flight is not None:
            d = inst.in_flight
            if not d.redeliver or d.committing:
                return None
            d.redeliver = False
            token = engine.work.issue_token(self.kind, inst.instance_id, stream)
            d.tokens.add(token)
            return pb.WorkItem(orchestratorRequest=d.request, completionToken=token)
        if not inst.loaded:
            engine.inbox.start_loading(inst)
            return None
        batch, dropped = select_batch(inst)
        if dropped:
            dropped_ids = {m.id for m in dropped}
            inst.inbox = [m for m in inst.inbox if m.id not in dropped_ids]
            engine.inbox.drop(dropped, f"not deliverable to {inst.instance_id!r}")
        if not batch and not inst.kick:
            if not inst.inbox and inst.terminal and inst.in_flight is None and not inst.rewinding:
                engine.inbox.active.pop(inst.instance_id, None)
            return None
        taken = {m.id for m in batch}
        inst.inbox = [m for m in inst.inbox if m.id not in taken]
        inst.kick = False
        started = engine.new_event(
            orchestratorStarted=pb.OrchestratorStartedEvent(),
        )
        new_events = [started] + [m.event for m in batch]
        request = pb.OrchestratorRequest(
            instanceId=inst.instance_id,
            executionId=sv(inst.execution_id),
            pastEvents=inst.history,
            newEvents=new_events,
        )
        d = Dispatch(batch, request)
        inst.in_flight = d
        token = engine.work.issue_token(self.kind, inst.instance_id, stream)
        d.tokens.add(token)
        return pb.WorkItem(orchestratorRequest=request, completionToken=token)

    def _in_flight_on(self, key: str, token: str) -> tuple[Inst, Dispatch] | None:
        """The instance and its uncommitted work item sent with ``token``, else None."""
        inst = self.engine.inbox.active.get(key)
        d = inst.in_flight if inst else None
        if d is None or token not in d.tokens or d.committing:
            return None
        return inst, d

    def stream_lost(self, key: str, token: str) -> bool:
        """Redeliver the instance's work item, or fail it after too many broken streams."""
        found = self._in_flight_on(key, token)
        if found is None:
            return False
        inst, d = found
        d.lost += 1
        if d.lost >= LOST_DELIVERIES_LIMIT:
            self.engine.loader.submit(fallbacks.fail_undeliverable, self.engine, key, token)
            return False
        d.redeliver = True
        self.engine.inbox.mark_ready(inst)
        return True

    def abandon(self, key: str, token: str) -> None:
        """Put the work item's messages back at the front of the instance's inbox."""
        found = self._in_flight_on(key, token)
        if found is None:
            return
        inst, d = found
        self.engine.work.forget_tokens(d.tokens)
        inst.in_flight = None
        inst.inbox = d.msgs + inst.inbox
        self.engine.inbox.mark_ready(inst)

    def handles(self, inst: Inst) -> bool:
        """True when a connected worker's filters accept the instance's orchestrator."""
        name = inst.name or pending_name(inst)
        return any(
            s.accepts(self.kind, name, inst.version)
            for s in self.engine.work.streams.values()
            if not s.closed
        )

    def _warn_if_no_worker_handles(self, name: str, version: str | None) -> None:
        """Say once per name when no connected worker's filters accept an orchestration.

        Such an instance stays Pending (as in Durable Functions) until a worker that registers
        it connects; without this line nothing would tell why.
        """
        if name in self._unhandled_warned:
            return
        if any(s.accepts(self.kind, name, version) for s in self.engine.work.streams.values()):
            return
        self._unhandled_warned.add(name)
        log.warning(
            "No connected worker handles orchestrator %r: its instances stay Pending until a "
            "worker that registers it connects (terminating one ends it).",
            name,
        )

    # -- completing ----------------------------------------------------------------------------

    def complete(self, resp: pb.OrchestratorResponse) -> None:
        """Apply a worker's OrchestratorResponse: checkpoint, send messages, acknowledge."""
        engine = self.engine
        with engine.lock:
            inst = engine.inbox.active.get(resp.instanceId)
            d = inst.in_flight if inst else None
            if inst is None or d is None or resp.completionToken not in d.tokens or d.committing:
                log.info("ignoring a stale orchestrator completion for %r", resp.instanceId)
                engine.work.forget_tokens([resp.completionToken])
                return
            d.committing = True
        journal = engine.store.journal
        journal.begin()
        deferred = False
        try:
            try:
                plan = plan_response(engine, inst, d, resp)
                engine.store.upload_blobs(plan.blobs)
                journal.append(plan.record(), patience=STORAGE_PATIENCE_SECONDS)
            except Exception:
                log.exception(
                    "checkpoint of %r failed; the work item is redelivered in 1 s", inst.instance_id
                )
                with engine.lock:
                    d.committing = False
                    d.redeliver = True
                threading.Timer(1.0, engine.inbox.mark_ready_locked, args=(inst,)).start()
                raise
            if plan.state.status in TERMINAL and not plan.state.continued:
                # Durable now, so the worker is answered; the rows go to the tables at once
                # and only then is the completion visible (waiters read the tables next).
                engine.store.write(plan.ops, then=lambda: self._finish(inst, d, plan))
                deferred = True
            else:  # written behind, coalesced with the instance's next checkpoints
                engine.store.write(plan.ops)
                with engine.lock:
                    self._apply_plan(inst, d, plan)
        finally:
            if not deferred:
                journal.done()

    def _finish(self, inst: Inst, d: Dispatch, plan: Plan) -> None:
        """A finished instance's rows are in the tables: make its completion visible."""
        try:
            with self.engine.lock:
                self._apply_plan(inst, d, plan)
        finally:
            self.engine.store.journal.done()

    def _apply_plan(self, inst: Inst, d: Dispatch, plan: Plan) -> None:
        """In-memory effects of a durable checkpoint (lock held)."""
        engine = self.engine
        inbox = engine.inbox
        st = plan.state
        engine.work.forget_tokens(d.tokens)
        inst.in_flight = None
        inst.rewinding = False
        if st.new_execution:
            inst.history = list(plan.history_events)
        else:
            inst.history.extend(plan.history_events)
        st.store_into(inst)
        for child_id, child_state in plan.children:
            inbox.forget_finished(child_id)
            child = inbox.active.get(child_id)
            if child is None or child.terminal or not child.loaded:
                child = Inst(child_id)
                inbox.active[child_id] = child
            child_state.store_into(child)
            child.history = []
            child.loaded = True
        engine.activities.add(plan.amsgs)
        for msg in plan.omsgs:
            inbox.deliver(msg)
        if st.continued:
            inst.history = []
        if inst.terminal:
            inst.history = []  # finished: history lives in the table only
            inbox.remember_finished(inst.instance_id, Snapshot.of(inst))
            if not inst.inbox:
                inbox.active.pop(inst.instance_id, None)
        elif inst.inbox or inst.kick:
            inbox.mark_ready(inst)
        engine.cv.notify_all()
