"""The inbox: live instances, their pending messages, and loading them from the tables.

Owns ``active`` (the instances that are not finished, by id), the ready queue (instances with
something to dispatch), the recently finished ids (their late messages are dropped at once),
routing a durable message to its instance (``deliver``: a new execution's ExecutionStarted and
the events continue-as-new carried over go before the events raised meanwhile), dropping
messages that can never be delivered, loading an instance's row and history after a restart,
and choosing which pending messages make up an instance's next episode (``select_batch``).

May call: the engine's timers (a message not yet visible), its entities (a message to an
``@name@key`` id), work items (is the instance handled)
and fallbacks (terminate an instance no worker handles), the store's reads and the journal.
Every method except ``load`` expects the engine's lock held.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from typing import TYPE_CHECKING

import durabletask.internal.orchestrator_service_pb2 as pb

from durable_helpers.local.sidecar import fallbacks
from durable_helpers.local.sidecar.state import (
    AMsg,
    Inst,
    OMsg,
    Snapshot,
    exec_of,
    fill_from_row,
    parent_of,
)
from durable_helpers.protocol_rows import columns_to_event

if TYPE_CHECKING:
    from durable_helpers.local.sidecar.engine import Engine

log = logging.getLogger("durable_helpers.local.sidecar")

#: How many finished instance ids are remembered (their late messages are dropped).
FINISHED_REMEMBERED = 10_000
#: How many of them keep their final state, so that a status query needs no table read, and
#: how many payload characters (inputs + outputs) those states may hold in all.
FINISHED_STATES_KEPT = 10_000
FINISHED_STATES_CHARS = 4_000_000


class Inbox:
    """Live instances and their messages (lock held, except ``load``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.active: dict[str, Inst] = {}
        self.ready: deque[str] = deque()
        self.ready_set: set[str] = set()
        # Recently finished instances: their late messages and activities are dropped at once.
        self.finished: OrderedDict[str, None] = OrderedDict()
        # The newest finished instances' final states (what a status query answers).
        self.finished_states: OrderedDict[str, Snapshot] = OrderedDict()
        self._state_chars = 0

    def deliver(self, msg: OMsg) -> None:
        """Route a durable message to its instance (lock held)."""
        if msg.visible_at and msg.visible_at > time.time():
            self.engine.timers.add(msg)
            return
        if msg.kind == "eventRaised" and msg.instance_id.startswith("@"):
            self.engine.entities.deliver(msg)  # '@name@key': an entity's message
            return
        inst = self.active.get(msg.instance_id)
        if (
            inst is None
            and msg.instance_id in self.finished
            and msg.kind not in ("executionStarted", "executionRewound")
        ):
            self.drop([msg], f"{msg.instance_id!r} has finished")
            return
        if inst is None:
            inst = Inst(msg.instance_id, loaded=False)
            self.active[msg.instance_id] = inst
        if msg.kind == "executionStarted":
            inst.inbox.insert(sum(1 for m in inst.inbox if m.kind == "executionStarted"), msg)
        elif msg.carried:  # raised before the events that arrived while the episode ran
            ahead = sum(1 for m in inst.inbox if m.kind == "executionStarted" or m.carried)
            inst.inbox.insert(ahead, msg)
        else:
            inst.inbox.append(msg)
        if msg.kind == "executionTerminated" and not inst.history:
            self.engine.timers.release_delayed_start(inst.instance_id)
        self.mark_ready(inst)

    def mark_ready(self, inst: Inst) -> None:
        """Queue an instance for dispatch and wake the streams (lock held)."""
        if inst.instance_id not in self.ready_set:
            self.ready_set.add(inst.instance_id)
            self.ready.append(inst.instance_id)
            self.engine.cv.notify_all()
        if (
            inst.in_flight is None
            and not inst.rewinding
            and not self.engine.stopping
            and any(m.kind == "executionTerminated" for m in inst.inbox)
            and not self.engine.orchestrations.handles(inst)
        ):
            self.engine.loader.submit(fallbacks.terminate_unhandled, self.engine, inst.instance_id)

    def mark_ready_locked(self, inst: Inst) -> None:
        """``mark_ready`` for a caller that does not hold the lock (a timer thread)."""
        with self.engine.lock:
            self.mark_ready(inst)

    def remember_finished(self, instance_id: str, state: Snapshot | None = None) -> None:
        """Note that an instance finished, with its final state if it is small (lock held)."""
        self.finished[instance_id] = None
        self.finished.move_to_end(instance_id)
        while len(self.finished) > FINISHED_REMEMBERED:
            self.finished.popitem(last=False)
        self._forget_state(instance_id)
        size = _chars(state) if state is not None else 0
        if state is not None and size <= FINISHED_STATES_CHARS // 100:
            self.finished_states[instance_id] = state
            self._state_chars += size
            while (
                len(self.finished_states) > FINISHED_STATES_KEPT
                or self._state_chars > FINISHED_STATES_CHARS
            ):
                self._forget_state(next(iter(self.finished_states)))

    def _forget_state(self, instance_id: str) -> None:
        state = self.finished_states.pop(instance_id, None)
        if state is not None:
            self._state_chars -= _chars(state)

    def forget_finished(self, instance_id: str) -> None:
        """The instance starts again, is rewound or purged: it is no longer finished (lock held)."""
        self.finished.pop(instance_id, None)
        self._forget_state(instance_id)

    def drop(self, msgs: Iterable[OMsg | AMsg], why: str) -> None:
        """Acknowledge messages that will never be delivered (journaled, not awaited)."""
        ids = [m.id for m in msgs]
        if ids:
            log.debug("dropping %d message(s): %s", len(ids), why)
            self.engine.store.journal.append({"a": ids}, wait=False)

    def start_loading(self, inst: Inst) -> None:
        """Load an instance in the background unless it is already loading (lock held)."""
        if not inst.loading:
            inst.loading = True
            self.engine.loader.submit(self.load, inst.instance_id)

    def load(self, instance_id: str) -> None:
        """Read an instance's row and current history from the tables (takes the lock)."""
        engine = self.engine
        try:
            row = engine.store.get_instance_row(instance_id)
            execution_id, rows = engine.store.read_history(instance_id) if row else (None, [])
        except Exception:
            log.exception("could not load instance %r; will retry", instance_id)
            time.sleep(0.5)
            with engine.lock:
                inst = self.active.get(instance_id)
                if inst is not None:
                    inst.loading = False
                    self.mark_ready(inst)
            return
        with engine.lock:
            inst = self.active.get(instance_id)
            if inst is None:
                return
            inst.loading = False
            inst.loaded = True
            inst.unknown = row is None
            # A client start whose Instances row never got written (or was written by another
            # start) was never acknowledged: its ExecutionStarted is dropped.
            unacked = [
                m
                for m in inst.inbox
                if m.start
                and m.kind == "executionStarted"
                and (row is None or row.get("ExecutionId") != exec_of(m))
            ]
            if unacked:
                inst.inbox = [m for m in inst.inbox if m not in unacked]
                self.drop(unacked, "start never acknowledged")
            if row is not None:
                fill_from_row(inst, row)
                history = [columns_to_event(r) for r in rows]
                if execution_id == inst.execution_id:
                    inst.history = history
                    inst.parent = parent_of(history) or inst.parent
                    if any(e.HasField("continueAsNew") for e in history):
                        inst.history = []  # the next execution starts from its ExecutionStarted
            self.mark_ready(inst)


def pending_name(inst: Inst) -> str:
    """The orchestrator name of an instance's pending ExecutionStarted ("" if none).

    Example:
        >>> pending_name(Inst("i1"))
        ''
    """
    for m in inst.inbox:
        if m.kind == "executionStarted":
            return m.event.executionStarted.name
    return ""


def select_batch(inst: Inst) -> tuple[list[OMsg], list[OMsg]]:
    """Which inbox messages go into the next episode, and which are dropped (lock held).

    Starting a new execution resets the instance's history and status here.
    """
    batch: list[OMsg] = []
    dropped: list[OMsg] = []
    msgs = list(inst.inbox)
    if inst.rewinding:  # exactly [OrchestratorStarted, ExecutionRewound], as the SDK requires
        rewinds = [m for m in msgs if m.kind == "executionRewound"]
        return rewinds[:1], []
    # A new execution (first start, continue-as-new, re-creation) begins with its
    # ExecutionStarted; everything before it that belongs to the old one is dropped.
    starts = [m for m in msgs if m.kind == "executionStarted"]
    new_exec = None
    for m in starts:
        exec_id = m.event.executionStarted.orchestrationInstance.executionId.value
        if new_exec is None and not (
            inst.history and not inst.terminal and exec_id == inst.execution_id
        ):
            new_exec = m
        else:
            dropped.append(m)  # a duplicate start of the running execution
    rest = [m for m in msgs if m.kind != "executionStarted"]
    if new_exec is not None:
        inst.history = []
        inst.execution_id = new_exec.event.executionStarted.orchestrationInstance.executionId.value
        inst.status = pb.ORCHESTRATION_STATUS_PENDING
        inst.failure = None
        inst.output = None
        inst.completed = None
        inst.unknown = False
        batch.append(new_exec)
    else:
        if inst.terminal:
            rewinds = [m for m in rest if m.kind == "executionRewound"]
            if rewinds and inst.status == pb.ORCHESTRATION_STATUS_FAILED:
                return [rewinds[0]], []
            return [], dropped + rest
        if not inst.history:
            if inst.unknown:
                return [], dropped + rest  # events for an instance that does not exist
            return [], dropped  # wait for the (scheduled) ExecutionStarted
    suspended = inst.status == pb.ORCHESTRATION_STATUS_SUSPENDED
    for m in rest:
        if m.kind == "executionSuspended":
            if suspended:
                dropped.append(m)
                continue
            suspended = True
        elif m.kind == "executionResumed":
            if not suspended:
                dropped.append(m)
                continue
            suspended = False
        elif m.kind == "executionRewound":
            dropped.append(m)  # only a failed instance can be rewound
            continue
        batch.append(m)
    return batch, dropped


def _chars(state: Snapshot) -> int:
    return len(state.input or "") + len(state.output or "") + len(state.custom_status or "")
