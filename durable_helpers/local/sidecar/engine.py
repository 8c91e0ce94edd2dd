"""Orchestration state transitions of the local task hub (the semantics of the protocol §5).

The engine keeps, in memory, the instances that are not finished (their current execution's
history, their inbox of pending messages, the work item in flight) plus pending activity work
and timers; finished instances live only in the tables. Every change is made durable through
the :class:`~durable_helpers.local.sidecar.store.Journal` *before* it is applied in memory and
acknowledged, and every checkpoint is written to the History/Instances tables before the RPC
returns (the last write per partition is replayed from the journal after a crash).

Messages:
  * ``OMsg``: an event for an orchestration instance (ExecutionStarted, TaskCompleted,
    TimerFired with a visibility time, EventRaised, ExecutionTerminated, ...).
  * ``AMsg``: an activity to run (an ``ActivityRequest``).

Work items carry completion tokens; a token stays valid until its work is completed, so a late
completion from a worker whose stream broke is still accepted, and redelivered work is not
applied twice.
"""

from __future__ import annotations

import base64
import contextlib
import heapq
import itertools
import logging
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any

import durabletask.internal.orchestrator_service_pb2 as pb
from google.protobuf import timestamp_pb2, wrappers_pb2

from durable_helpers import schema
from durable_helpers.local.limits import SDK_DEFAULT_RECEIVE_BYTES
from durable_helpers.local.sidecar.store import Store, wire
from durable_helpers.protocol_rows import (
    STATUS_FROM_NAME,
    STATUS_NAMES,
    columns_to_event,
    event_to_columns,
    failure_from_json,
    failure_to_json,
)

log = logging.getLogger("durable_helpers.local.sidecar")
UTC = timezone.utc  # noqa: UP017

TERMINAL = frozenset(
    {
        pb.ORCHESTRATION_STATUS_COMPLETED,
        pb.ORCHESTRATION_STATUS_FAILED,
        pb.ORCHESTRATION_STATUS_TERMINATED,
    }
)
#: History entities per entity-group transaction (99 events + the sentinel).
BATCH_EVENTS = 99
#: After this many worker streams broke in a row while an orchestrator work item was in flight on
#: them, the sidecar fails the instance (with the reason) instead of redelivering it for ever.
LOST_DELIVERIES_LIMIT = 3


class EngineError(Exception):
    """A client request cannot be served; ``code`` names the gRPC status to answer with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def now_utc() -> datetime:
    return datetime.now(UTC)


def ts(value: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(value.astimezone(UTC).replace(tzinfo=None))
    return out


def sv(value: str | None) -> wrappers_pb2.StringValue | None:
    return wrappers_pb2.StringValue(value=value) if value is not None else None


def _b64(message: Any) -> str:
    return base64.b64encode(message.SerializeToString()).decode("ascii")


def _event(data: str) -> pb.HistoryEvent:
    return pb.HistoryEvent.FromString(base64.b64decode(data))


# ------------------------------------------------------------------------------------------
# in-memory state
# ------------------------------------------------------------------------------------------

_seq = itertools.count()


@dataclass
class OMsg:
    """A pending event for an orchestration instance."""

    id: str
    instance_id: str
    event: pb.HistoryEvent
    visible_at: float = 0.0
    start: bool = False  # a client's StartInstance (see Engine._load)
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
class _InstanceState:
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


#: The fields a checkpoint plan copies from an instance and back (see _NewState).
_STATE_FIELDS = tuple(f.name for f in fields(_InstanceState))


@dataclass
class Inst(_InstanceState):
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


@dataclass
class Stream:
    """One worker's GetWorkItems stream."""

    id: int
    orch_filter: dict[str, frozenset[str]] | None
    act_filter: dict[str, frozenset[str]] | None
    max_orch: int
    max_act: int
    tokens: set[str] = field(default_factory=set)
    orch_count: int = 0
    act_count: int = 0
    closed: bool = False


def _matches(name: str, version: str | None, filt: dict[str, frozenset[str]] | None) -> bool:
    if filt is None:
        return True
    accepted = filt.get(name)
    if accepted is None:
        return False
    return not accepted or (version or "") in accepted


# ------------------------------------------------------------------------------------------
# the engine
# ------------------------------------------------------------------------------------------


class Engine:
    """All orchestration state transitions; thread-safe (one lock, I/O outside it)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.hub = store.hub
        self.lock = threading.RLock()
        self.cv = threading.Condition(self.lock)  # work available / state changed
        self.active: dict[str, Inst] = {}
        self.activities: dict[str, AMsg] = {}
        self.act_queue: deque[str] = deque()
        self.ready: deque[str] = deque()
        self.ready_set: set[str] = set()
        self.timers: list[tuple[float, int, OMsg]] = []
        self.tokens: dict[str, tuple[str, str, Stream]] = {}  # token -> (kind, key, stream)
        self.streams: dict[int, Stream] = {}
        self._unhandled_warned: set[str] = set()
        self._stream_ids = itertools.count(1)
        self._token_ids = itertools.count(1)
        self._boot = uuid.uuid4().hex[:8]
        self.stopping = False
        # Recently finished instances: their late messages and activities are dropped at once.
        self.finished: OrderedDict[str, None] = OrderedDict()
        self._loader = ThreadPoolExecutor(max_workers=4, thread_name_prefix="loader")
        # Work items the sidecar answers itself (see _terminate_unhandled); never a worker's.
        self._sidecar_stream = Stream(-1, None, None, max_orch=2**31, max_act=0)
        self._timer_thread = threading.Thread(target=self._timer_loop, name="timers", daemon=True)
        self._last_ts = 0.0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Recover from the journal, compact it, and start the timer thread."""
        self.store.setup()
        records = self.store.journal.read_all()
        omsgs: dict[str, OMsg] = {}
        amsgs: dict[str, AMsg] = {}
        last_h: dict[str, dict[str, Any]] = {}
        last_i: dict[str, dict[str, Any]] = {}
        for record in records:
            for m in record.get("m", ()):
                if "a" in m:
                    amsgs[m["id"]] = AMsg(
                        m["id"], pb.ActivityRequest.FromString(base64.b64decode(m["a"]))
                    )
                else:
                    omsgs[m["id"]] = OMsg(
                        m["id"], m["i"], _event(m["e"]), m.get("v", 0.0), bool(m.get("s"))
                    )
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
        if records:
            log.info(
                "recovering: %d journal records, %d pending orchestration messages, "
                "%d pending activities; re-applying %d checkpoints",
                len(records),
                len(omsgs),
                len(amsgs),
                len(last_h) + len(last_i),
            )
            self.store.apply_ops(list(last_h.values()) + list(last_i.values()))
        with self.lock:
            for a in amsgs.values():
                self.activities[a.id] = a
                self.act_queue.append(a.id)
            for m in sorted(omsgs.values(), key=lambda m: m.seq):
                self._deliver(m)
        self.store.journal.snapshot = self._snapshot
        self.store.journal.start(self._snapshot())
        self._timer_thread.start()

    def stop(self) -> None:
        """Stop dispatching and close the journal (pending appends are flushed)."""
        with self.lock:
            self.stopping = True
            self.cv.notify_all()
        self.store.journal.close()
        self._loader.shutdown(wait=False, cancel_futures=True)

    def _snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            msgs: list[dict[str, Any]] = [a.record() for a in self.activities.values()]
            for inst in self.active.values():
                msgs.extend(m.record() for m in inst.inbox)
                if inst.in_flight is not None:
                    msgs.extend(m.record() for m in inst.in_flight.msgs)
            msgs.extend(m.record() for _, _, m in self.timers)
        return [{"m": msgs[i : i + 500]} for i in range(0, len(msgs), 500)]

    # -- helpers -----------------------------------------------------------------------------

    def _now(self) -> datetime:
        """A strictly increasing UTC clock (event timestamps are unique per process)."""
        t = time.time()
        with self.lock:
            if t <= self._last_ts:
                t = self._last_ts + 1e-6
            self._last_ts = t
        return datetime.fromtimestamp(t, UTC)

    def _new_id(self) -> str:
        return uuid.uuid4().hex

    def _mark_ready(self, inst: Inst) -> None:
        if inst.instance_id not in self.ready_set:
            self.ready_set.add(inst.instance_id)
            self.ready.append(inst.instance_id)
            self.cv.notify_all()
        if (
            inst.in_flight is None
            and not inst.rewinding
            and not self.stopping
            and any(m.kind == "executionTerminated" for m in inst.inbox)
            and not self._handled(inst)
        ):
            self._loader.submit(self._terminate_unhandled, inst.instance_id)

    def _handled(self, inst: Inst) -> bool:
        """True when a connected worker's filters accept the instance's orchestrator."""
        name = inst.name or self._pending_name(inst)
        return any(
            _matches(name, inst.version, s.orch_filter)
            for s in self.streams.values()
            if not s.closed
        )

    def _terminate_unhandled(self, instance_id: str) -> None:
        """Terminate an instance that no connected worker handles, answering as a worker would.

        Ending an instance runs no user code (the SDK answers a terminate with a TERMINATED
        completion whose output is the reason). Without this, an instance of an orchestrator
        that no worker registers (a typo in the name) could never be terminated, nor purged.
        """
        with self.lock:
            inst = self.active.get(instance_id)
            if inst is None or inst.in_flight is not None or inst.rewinding or self._handled(inst):
                return
            if not inst.loaded:
                if not inst.loading:
                    inst.loading = True
                    self._loader.submit(self._load, instance_id)  # marks it ready: back here
                return
            item = self._orchestration_item(inst, self._sidecar_stream)
        if item is None:
            return
        request = item.orchestratorRequest
        ends = [e for e in request.newEvents if e.HasField("executionTerminated")]
        if not ends:  # not expected (rewinds are excluded above); let a worker have it
            self.abandon(item.completionToken)
            return
        reason = ends[-1].executionTerminated
        terminated = pb.CompleteOrchestrationAction(
            orchestrationStatus=pb.ORCHESTRATION_STATUS_TERMINATED,
            result=reason.input if reason.HasField("input") else None,
        )
        log.info("terminating %r in the sidecar: no connected worker handles it", instance_id)
        response = pb.OrchestratorResponse(
            instanceId=instance_id,
            completionToken=item.completionToken,
            actions=[pb.OrchestratorAction(id=-1, completeOrchestration=terminated)],
        )
        with contextlib.suppress(Exception):  # a failed checkpoint is redelivered as usual
            self.complete_orchestration(response)

    def _finished(self, instance_id: str) -> None:
        self.finished[instance_id] = None
        self.finished.move_to_end(instance_id)
        while len(self.finished) > 10_000:
            self.finished.popitem(last=False)

    def _mark_ready_locked(self, inst: Inst) -> None:
        with self.lock:
            self._mark_ready(inst)

    def _deliver(self, msg: OMsg) -> None:
        """Route a durable message to its instance (lock held)."""
        if msg.visible_at and msg.visible_at > time.time():
            heapq.heappush(self.timers, (msg.visible_at, msg.seq, msg))
            self.cv.notify_all()
            return
        inst = self.active.get(msg.instance_id)
        if (
            inst is None
            and msg.instance_id in self.finished
            and msg.kind not in ("executionStarted", "executionRewound")
        ):
            self._drop([msg], f"{msg.instance_id!r} has finished")
            return
        if inst is None:
            inst = Inst(msg.instance_id, loaded=False)
            self.active[msg.instance_id] = inst
        if msg.kind == "executionStarted":
            inst.inbox.insert(sum(1 for m in inst.inbox if m.kind == "executionStarted"), msg)
        else:
            inst.inbox.append(msg)
        if msg.kind == "executionTerminated" and not inst.history:
            self._release_delayed_start(inst.instance_id)
        self._mark_ready(inst)

    def _release_delayed_start(self, instance_id: str) -> None:
        """Terminating an instance whose start is scheduled later: start it now."""
        found = [
            t
            for t in self.timers
            if t[2].instance_id == instance_id and t[2].kind == "executionStarted"
        ]
        if not found:
            return
        self.timers = [t for t in self.timers if t not in found]
        heapq.heapify(self.timers)
        for _, _, m in found:
            m.visible_at = 0.0
            self._deliver(m)

    def _timer_loop(self) -> None:
        with self.lock:
            while not self.stopping:
                now = time.time()
                while self.timers and self.timers[0][0] <= now:
                    _, _, msg = heapq.heappop(self.timers)
                    msg.visible_at = 0.0
                    self._deliver(msg)
                timeout = min(self.timers[0][0] - now, 1.0) if self.timers else 1.0
                self.cv.wait(max(timeout, 0.001))

    def _drop(self, msgs: Iterable[OMsg | AMsg], why: str) -> None:
        ids = [m.id for m in msgs]
        if ids:
            log.debug("dropping %d message(s): %s", len(ids), why)
            self.store.journal.append({"a": ids}, wait=False)

    # -- loading (after a restart, or for messages to instances not in memory) ---------------

    def _load(self, instance_id: str) -> None:
        try:
            row = self.store.get_instance_row(instance_id)
            execution_id, rows = self.store.read_history(instance_id) if row else (None, [])
        except Exception:
            log.exception("could not load instance %r; will retry", instance_id)
            time.sleep(0.5)
            with self.lock:
                inst = self.active.get(instance_id)
                if inst is not None:
                    inst.loading = False
                    self._mark_ready(inst)
            return
        with self.lock:
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
                and (row is None or row.get("ExecutionId") != _exec_of(m))
            ]
            if unacked:
                inst.inbox = [m for m in inst.inbox if m not in unacked]
                self._drop(unacked, "start never acknowledged")
            if row is not None:
                self._fill_from_row(inst, row)
                history = [columns_to_event(r) for r in rows]
                if execution_id == inst.execution_id:
                    inst.history = history
                    if any(e.HasField("continueAsNew") for e in history):
                        inst.history = []  # the next execution starts from its ExecutionStarted
            self._mark_ready(inst)

    def _fill_from_row(self, inst: Inst, row: dict[str, Any]) -> None:
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

    # -- dispatch ------------------------------------------------------------------------------

    def open_stream(self, request: pb.GetWorkItemsRequest) -> Stream:
        orch_f = act_f = None
        if request.HasField("workItemFilters"):
            wf = request.workItemFilters
            orch_f = _build_filter(wf.orchestrations)
            act_f = _build_filter(wf.activities)
        stream = Stream(
            next(self._stream_ids),
            orch_f,
            act_f,
            request.maxConcurrentOrchestrationWorkItems or 1_000_000,
            request.maxConcurrentActivityWorkItems or 1_000_000,
        )
        with self.lock:
            self.streams[stream.id] = stream
        log.info("worker stream %d connected", stream.id)
        return stream

    def close_stream(self, stream: Stream) -> None:
        """The worker is gone: make its unfinished work available to other workers."""
        with self.lock:
            if stream.closed:
                return
            stream.closed = True
            self.streams.pop(stream.id, None)
            requeued = 0
            for token in list(stream.tokens):
                entry = self.tokens.get(token)
                if entry is None:
                    continue
                kind, key, _ = entry
                if kind == "o":
                    inst = self.active.get(key)
                    if (
                        inst
                        and inst.in_flight
                        and token in inst.in_flight.tokens
                        and not inst.in_flight.committing
                    ):
                        inst.in_flight.lost += 1
                        if inst.in_flight.lost >= LOST_DELIVERIES_LIMIT:
                            self._loader.submit(self._fail_undeliverable, key, token)
                            continue
                        inst.in_flight.redeliver = True
                        self._mark_ready(inst)
                        requeued += 1
                else:
                    amsg = self.activities.get(key)
                    if amsg is not None and amsg.dispatched:
                        amsg.dispatched = False
                        self.act_queue.appendleft(amsg.id)
                        requeued += 1
            self.cv.notify_all()
        log.info("worker stream %d disconnected; %d work item(s) redelivered", stream.id, requeued)

    def _fail_undeliverable(self, instance_id: str, token: str) -> None:
        """Fail an instance whose work item broke every worker stream it was sent on.

        A worker drops its stream when a message exceeds what it receives (4 MiB by default in
        the SDK), so redelivering would loop for ever while the status said Running.
        """
        with self.lock:
            inst = self.active.get(instance_id)
            d = inst.in_flight if inst else None
            if d is None or token not in d.tokens:
                return
            size = d.request.ByteSize()
            lost = d.lost
        message = (
            f"The sidecar stopped delivering this orchestration's work item ({size / 2**20:.1f} "
            f"MiB): the worker's connection broke {lost} times in a row while receiving it. "
        )
        if size > SDK_DEFAULT_RECEIVE_BYTES:
            message += (
                "SDK workers receive at most 4 MiB per message by default: pass "
                "channel_options=GrpcChannelOptions(max_receive_message_length=...) to "
                "TaskHubGrpcWorker, or keep inputs and results small (store large data "
                "elsewhere and pass its address)."
            )
        else:
            message += "The worker's log says why it disconnected."
        log.error("failing %r: %s", instance_id, message)
        failed = pb.CompleteOrchestrationAction(
            orchestrationStatus=pb.ORCHESTRATION_STATUS_FAILED,
            failureDetails=pb.TaskFailureDetails(
                errorType="WorkItemUndeliverable", errorMessage=message
            ),
        )
        response = pb.OrchestratorResponse(
            instanceId=instance_id,
            completionToken=token,
            actions=[pb.OrchestratorAction(id=-1, completeOrchestration=failed)],
        )
        with contextlib.suppress(Exception):  # a failed checkpoint is redelivered as usual
            self.complete_orchestration(response)

    def _token(self, kind: str, key: str, stream: Stream) -> str:
        token = f"{self._boot}-{next(self._token_ids)}"
        self.tokens[token] = (kind, key, stream)
        stream.tokens.add(token)
        if kind == "o":
            stream.orch_count += 1
        else:
            stream.act_count += 1
        return token

    def _forget_tokens(self, tokens: Iterable[str]) -> None:
        for token in tokens:
            entry = self.tokens.pop(token, None)
            if entry is not None:
                kind, _, stream = entry
                stream.tokens.discard(token)
                if kind == "o":
                    stream.orch_count -= 1
                else:
                    stream.act_count -= 1

    def _warn_if_no_worker_handles(self, name: str, version: str | None) -> None:
        """Say once per name when no connected worker's filters accept an orchestration.

        Such an instance stays Pending (as in Durable Functions) until a worker that registers
        it connects; without this line nothing would tell why.
        """
        if name in self._unhandled_warned:
            return
        if any(_matches(name, version, s.orch_filter) for s in self.streams.values()):
            return
        self._unhandled_warned.add(name)
        log.warning(
            "No connected worker handles orchestrator %r: its instances stay Pending until a "
            "worker that registers it connects (terminating one ends it).",
            name,
        )

    def next_work(self, stream: Stream) -> pb.WorkItem | None:
        """The next work item for ``stream`` (lock held by the caller), or None."""
        if stream.orch_count < stream.max_orch:
            skipped: list[str] = []
            item = None
            while self.ready:
                iid = self.ready.popleft()
                self.ready_set.discard(iid)
                inst = self.active.get(iid)
                if inst is None:
                    continue
                name = inst.name or self._pending_name(inst)
                if inst.loaded and not _matches(name, inst.version, stream.orch_filter):
                    skipped.append(iid)
                    self._warn_if_no_worker_handles(name, inst.version)
                    continue
                item = self._orchestration_item(inst, stream)
                if item is not None:
                    break
            for iid in skipped:
                if iid not in self.ready_set:
                    self.ready_set.add(iid)
                    self.ready.append(iid)
            if item is not None:
                return item
        if stream.act_count < stream.max_act:
            skipped_a: list[str] = []
            item = None
            while self.act_queue:
                aid = self.act_queue.popleft()
                amsg = self.activities.get(aid)
                if amsg is None or amsg.dispatched:
                    continue
                if not _matches(
                    amsg.request.name, amsg.request.version.value or None, stream.act_filter
                ):
                    skipped_a.append(aid)
                    continue
                owner_id = amsg.request.orchestrationInstance.instanceId
                owner = self.active.get(owner_id)
                if (owner is None and owner_id in self.finished) or (
                    owner is not None and owner.loaded and owner.terminal
                ):
                    del self.activities[aid]
                    self._drop([amsg], "activity of a finished instance")
                    continue
                amsg.dispatched = True
                token = self._token("a", aid, stream)
                amsg.tokens.add(token)
                item = pb.WorkItem(activityRequest=amsg.request, completionToken=token)
                break
            self.act_queue.extendleft(reversed(skipped_a))
            return item
        return None

    @staticmethod
    def _pending_name(inst: Inst) -> str:
        for m in inst.inbox:
            if m.kind == "executionStarted":
                return m.event.executionStarted.name
        return ""

    def _orchestration_item(self, inst: Inst, stream: Stream) -> pb.WorkItem | None:
        if inst.in_flight is not None:
            d = inst.in_flight
            if not d.redeliver or d.committing:
                return None
            d.redeliver = False
            token = self._token("o", inst.instance_id, stream)
            d.tokens.add(token)
            return pb.WorkItem(orchestratorRequest=d.request, completionToken=token)
        if not inst.loaded:
            if not inst.loading:
                inst.loading = True
                self._loader.submit(self._load, inst.instance_id)
            return None
        batch, dropped = self._select_batch(inst)
        if dropped:
            dropped_ids = {m.id for m in dropped}
            inst.inbox = [m for m in inst.inbox if m.id not in dropped_ids]
            self._drop(dropped, f"not deliverable to {inst.instance_id!r}")
        if not batch and not inst.kick:
            if not inst.inbox and inst.terminal and inst.in_flight is None and not inst.rewinding:
                self.active.pop(inst.instance_id, None)
            return None
        taken = {m.id for m in batch}
        inst.inbox = [m for m in inst.inbox if m.id not in taken]
        inst.kick = False
        started = pb.HistoryEvent(
            eventId=-1, timestamp=ts(self._now()), orchestratorStarted=pb.OrchestratorStartedEvent()
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
        token = self._token("o", inst.instance_id, stream)
        d.tokens.add(token)
        return pb.WorkItem(orchestratorRequest=request, completionToken=token)

    def _select_batch(self, inst: Inst) -> tuple[list[OMsg], list[OMsg]]:
        """Which inbox messages go into the next episode, and which are dropped."""
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
            inst.execution_id = (
                new_exec.event.executionStarted.orchestrationInstance.executionId.value
            )
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

    # -- completing orchestrator work ----------------------------------------------------------

    def complete_orchestration(self, resp: pb.OrchestratorResponse) -> None:
        """Apply a worker's OrchestratorResponse: checkpoint, send messages, acknowledge."""
        with self.lock:
            inst = self.active.get(resp.instanceId)
            d = inst.in_flight if inst else None
            if inst is None or d is None or resp.completionToken not in d.tokens or d.committing:
                log.info("ignoring a stale orchestrator completion for %r", resp.instanceId)
                self._forget_tokens([resp.completionToken])
                return
            d.committing = True
        journal = self.store.journal
        journal.begin()
        try:
            try:
                plan = self._plan(inst, d, resp)
                self.store.upload_blobs(plan.blobs)
                journal.append(plan.record())
            except Exception:
                log.exception(
                    "checkpoint of %r failed; the work item is redelivered in 1 s", inst.instance_id
                )
                with self.lock:
                    d.committing = False
                    d.redeliver = True
                threading.Timer(1.0, self._mark_ready_locked, args=(inst,)).start()
                raise
            self._materialize(plan.ops)
            with self.lock:
                self._apply_plan(inst, d, plan)
        finally:
            journal.done()

    def _materialize(self, ops: list[dict[str, Any]]) -> None:
        for attempt in range(5):
            try:
                self.store.apply_ops(ops)
                return
            except Exception as exc:  # durable in the journal: retry, recovery redoes it anyway
                log.warning("table write failed (attempt %d): %s", attempt + 1, exc)
                time.sleep(0.2 * (attempt + 1))
        log.error("giving up on a table write; it will be re-applied from the journal at restart")

    def _plan(self, inst: Inst, d: Dispatch, resp: pb.OrchestratorResponse) -> _Plan:
        plan = _Plan(consumed=[m.id for m in d.msgs])
        now = self._now()
        st = _NewState.from_inst(inst)
        inbound = list(d.request.newEvents)
        history_new: list[tuple[pb.HistoryEvent, bool]] = [(inbound[0], False)]
        history_new += [(e, True) for e in inbound[1:]]
        if resp.HasField("customStatus"):
            st.custom_status = resp.customStatus.value
        terminate_recurse = False
        for e in inbound[1:]:
            kind = e.WhichOneof("eventType")
            if kind == "executionStarted":
                es = e.executionStarted
                st.name = es.name
                st.version = es.version.value if es.HasField("version") else None
                st.input = es.input.value if es.HasField("input") else None
                st.parent = es.parentInstance if es.HasField("parentInstance") else None
                st.tags = dict(es.tags)
                st.status = pb.ORCHESTRATION_STATUS_RUNNING
                st.created = e.timestamp.ToDatetime(tzinfo=UTC) if e.HasField("timestamp") else now
                st.new_execution = True
            elif kind == "executionSuspended":
                st.status = pb.ORCHESTRATION_STATUS_SUSPENDED
            elif kind == "executionResumed":
                st.status = pb.ORCHESTRATION_STATUS_RUNNING
            elif kind == "executionTerminated" and e.executionTerminated.recurse:
                terminate_recurse = True
            elif kind == "executionRewound":
                st.status = pb.ORCHESTRATION_STATUS_RUNNING
        if st.status == pb.ORCHESTRATION_STATUS_PENDING:
            st.status = pb.ORCHESTRATION_STATUS_RUNNING
        completion: pb.HistoryEvent | None = None
        for action in resp.actions:
            kind = action.WhichOneof("orchestratorActionType")
            if kind == "scheduleTask":
                a = action.scheduleTask
                ev = pb.HistoryEvent(
                    eventId=action.id,
                    timestamp=ts(now),
                    taskScheduled=pb.TaskScheduledEvent(
                        name=a.name,
                        version=a.version if a.HasField("version") else None,
                        input=a.input if a.HasField("input") else None,
                        tags=a.tags,
                        parentTraceContext=a.parentTraceContext
                        if a.HasField("parentTraceContext")
                        else None,
                    ),
                )
                history_new.append((ev, False))
                req = pb.ActivityRequest(
                    name=a.name,
                    version=a.version if a.HasField("version") else None,
                    input=a.input if a.HasField("input") else None,
                    orchestrationInstance=pb.OrchestrationInstance(
                        instanceId=inst.instance_id, executionId=sv(inst.execution_id)
                    ),
                    taskId=action.id,
                    tags=a.tags,
                    parentTraceContext=a.parentTraceContext
                    if a.HasField("parentTraceContext")
                    else None,
                )
                plan.amsgs.append(AMsg(self._new_id(), req))
            elif kind == "createTimer":
                fire_at = action.createTimer.fireAt
                history_new.append(
                    (
                        pb.HistoryEvent(
                            eventId=action.id,
                            timestamp=ts(now),
                            timerCreated=pb.TimerCreatedEvent(fireAt=fire_at),
                        ),
                        False,
                    )
                )
                fired = pb.HistoryEvent(
                    eventId=-1,
                    timestamp=fire_at,
                    timerFired=pb.TimerFiredEvent(fireAt=fire_at, timerId=action.id),
                )
                plan.omsgs.append(
                    OMsg(
                        self._new_id(),
                        inst.instance_id,
                        fired,
                        visible_at=fire_at.ToNanoseconds() / 1e9,
                    )
                )
            elif kind == "createSubOrchestration":
                self._plan_sub_orchestration(inst, st, action, now, plan, history_new)
            elif kind == "sendEvent":
                a = action.sendEvent
                target = a.instance.instanceId
                history_new.append(
                    (
                        pb.HistoryEvent(
                            eventId=action.id,
                            timestamp=ts(now),
                            eventSent=pb.EventSentEvent(
                                instanceId=target,
                                name=a.name,
                                input=a.data if a.HasField("data") else None,
                            ),
                        ),
                        False,
                    )
                )
                if target and self._deliverable(target):
                    raised = pb.HistoryEvent(
                        eventId=-1,
                        timestamp=ts(self._now()),
                        eventRaised=pb.EventRaisedEvent(
                            name=a.name, input=a.data if a.HasField("data") else None
                        ),
                    )
                    plan.omsgs.append(OMsg(self._new_id(), target, raised))
                else:
                    log.info(
                        "event %r from %r to %r dropped: no such running instance",
                        a.name,
                        inst.instance_id,
                        target,
                    )
            elif kind == "terminateOrchestration":
                a = action.terminateOrchestration
                ev = pb.HistoryEvent(
                    eventId=-1,
                    timestamp=ts(self._now()),
                    executionTerminated=pb.ExecutionTerminatedEvent(
                        input=a.reason if a.HasField("reason") else None, recurse=a.recurse
                    ),
                )
                plan.omsgs.append(OMsg(self._new_id(), a.instanceId, ev))
            elif kind == "completeOrchestration":
                completion = self._plan_completion(inst, st, action, now, plan, history_new)
            elif kind == "rewindOrchestration":
                self._plan_rewind(inst, st, action.rewindOrchestration, now, plan)
                return plan
            else:
                log.warning(
                    "orchestration %r: action %r is not supported by the local task hub "
                    "(entities are not implemented); ignored",
                    inst.instance_id,
                    kind,
                )
        if (
            completion is not None
            and terminate_recurse
            and st.status == pb.ORCHESTRATION_STATUS_TERMINATED
        ):
            for child in _open_children(inst.history + [e for e, _ in history_new]):
                ev = pb.HistoryEvent(
                    eventId=-1,
                    timestamp=ts(self._now()),
                    executionTerminated=pb.ExecutionTerminatedEvent(
                        input=completion.executionCompleted.result
                        if completion.executionCompleted.HasField("result")
                        else None,
                        recurse=True,
                    ),
                )
                plan.omsgs.append(OMsg(self._new_id(), child, ev))
        history_new.append(
            (
                pb.HistoryEvent(
                    eventId=-1,
                    timestamp=ts(self._now()),
                    orchestratorCompleted=pb.OrchestratorCompletedEvent(),
                ),
                False,
            )
        )
        st.last_updated = now
        plan.history_events = [e for e, _ in history_new]
        first_row = 0 if st.new_execution else len(inst.history)
        self._plan_rows(inst, st, history_new, first_row, plan)
        plan.state = st
        return plan

    def _deliverable(self, target: str) -> bool:
        with self.lock:
            inst = self.active.get(target)
            if inst is not None and inst.loaded:
                return not inst.terminal
        row = self.store.get_instance_row(target)
        return row is not None and row.get("RuntimeStatus") not in (
            "Completed",
            "Failed",
            "Terminated",
        )

    def _plan_sub_orchestration(
        self,
        inst: Inst,
        st: _NewState,
        action: pb.OrchestratorAction,
        now: datetime,
        plan: _Plan,
        history_new: list,
    ) -> None:
        a = action.createSubOrchestration
        child_id = a.instanceId or f"{inst.instance_id}:{action.id:04x}"
        history_new.append(
            (
                pb.HistoryEvent(
                    eventId=action.id,
                    timestamp=ts(now),
                    subOrchestrationInstanceCreated=pb.SubOrchestrationInstanceCreatedEvent(
                        instanceId=child_id,
                        name=a.name,
                        version=a.version if a.HasField("version") else None,
                        input=a.input if a.HasField("input") else None,
                        tags=a.tags,
                        parentTraceContext=a.parentTraceContext
                        if a.HasField("parentTraceContext")
                        else None,
                    ),
                ),
                False,
            )
        )
        generation = 0
        running = False
        with self.lock:
            child = self.active.get(child_id)
            if child is not None and child.loaded:
                running = not child.terminal
                generation = child.generation + 1
        if child is None or not child.loaded:
            row = self.store.get_instance_row(child_id)
            if row is not None:
                running = row.get("RuntimeStatus") not in ("Completed", "Failed", "Terminated")
                generation = int(row.get("Generation") or 0) + 1
        if running:
            failed = pb.HistoryEvent(
                eventId=-1,
                timestamp=ts(self._now()),
                subOrchestrationInstanceFailed=pb.SubOrchestrationInstanceFailedEvent(
                    taskScheduledId=action.id,
                    failureDetails=pb.TaskFailureDetails(
                        errorType="OrchestrationAlreadyExistsException",
                        errorMessage=f"An orchestration with id {child_id!r} is already running.",
                    ),
                ),
            )
            plan.omsgs.append(OMsg(self._new_id(), inst.instance_id, failed))
            return
        child_exec = self._new_id()
        parent = pb.ParentInstanceInfo(
            taskScheduledId=action.id,
            name=sv(st.name or inst.name),
            version=sv(st.version) if st.version else None,
            orchestrationInstance=pb.OrchestrationInstance(
                instanceId=inst.instance_id, executionId=sv(inst.execution_id)
            ),
        )
        started = pb.HistoryEvent(
            eventId=-1,
            timestamp=ts(self._now()),
            executionStarted=pb.ExecutionStartedEvent(
                name=a.name,
                version=a.version if a.HasField("version") else None,
                input=a.input if a.HasField("input") else None,
                orchestrationInstance=pb.OrchestrationInstance(
                    instanceId=child_id, executionId=sv(child_exec)
                ),
                parentInstance=parent,
                tags=a.tags,
                parentTraceContext=a.parentTraceContext
                if a.HasField("parentTraceContext")
                else None,
            ),
        )
        plan.omsgs.append(OMsg(self._new_id(), child_id, started))
        child_state = _NewState(
            name=a.name,
            version=a.version.value if a.HasField("version") else None,
            input=a.input.value if a.HasField("input") else None,
            status=pb.ORCHESTRATION_STATUS_PENDING,
            execution_id=child_exec,
            created=now,
            last_updated=now,
            generation=generation,
            tags=dict(a.tags),
        )
        plan.children.append((child_id, child_state))
        row, blobs = self._instance_row(child_id, child_state, {})
        plan.blobs.extend(blobs)
        plan.ops.append({"t": "i", "pk": row["PartitionKey"], "e": wire(row)})

    def _plan_completion(
        self,
        inst: Inst,
        st: _NewState,
        action: pb.OrchestratorAction,
        now: datetime,
        plan: _Plan,
        history_new: list,
    ) -> pb.HistoryEvent:
        a = action.completeOrchestration
        status = a.orchestrationStatus
        result = a.result.value if a.HasField("result") else None
        if status == pb.ORCHESTRATION_STATUS_CONTINUED_AS_NEW:
            ev = pb.HistoryEvent(
                eventId=action.id,
                timestamp=ts(now),
                continueAsNew=pb.ContinueAsNewEvent(input=sv(result)),
            )
            history_new.append((ev, False))
            new_exec = self._new_id()
            version = a.newVersion.value if a.HasField("newVersion") else st.version
            started = pb.HistoryEvent(
                eventId=-1,
                timestamp=ts(self._now()),
                executionStarted=pb.ExecutionStartedEvent(
                    name=st.name,
                    version=sv(version),
                    input=sv(result),
                    orchestrationInstance=pb.OrchestrationInstance(
                        instanceId=inst.instance_id, executionId=sv(new_exec)
                    ),
                    parentInstance=st.parent,
                    tags=st.tags,
                ),
            )
            plan.omsgs.append(OMsg(self._new_id(), inst.instance_id, started))
            for carried in a.carryoverEvents:
                plan.omsgs.append(OMsg(self._new_id(), inst.instance_id, carried))
            st.continued = True
            return ev
        ev = pb.HistoryEvent(
            eventId=action.id,
            timestamp=ts(now),
            executionCompleted=pb.ExecutionCompletedEvent(
                orchestrationStatus=status,
                result=sv(result),
                failureDetails=a.failureDetails if a.HasField("failureDetails") else None,
            ),
        )
        history_new.append((ev, False))
        st.status = status
        st.output = result
        st.failure = a.failureDetails if a.HasField("failureDetails") else None
        st.completed = now
        if st.parent is not None and st.parent.orchestrationInstance.instanceId:
            pid = st.parent.orchestrationInstance.instanceId
            if status == pb.ORCHESTRATION_STATUS_COMPLETED:
                note = pb.HistoryEvent(
                    eventId=-1,
                    timestamp=ts(self._now()),
                    subOrchestrationInstanceCompleted=pb.SubOrchestrationInstanceCompletedEvent(
                        taskScheduledId=st.parent.taskScheduledId, result=sv(result)
                    ),
                )
            else:
                failure = st.failure or pb.TaskFailureDetails(
                    errorType="OrchestrationTerminatedException"
                    if status == pb.ORCHESTRATION_STATUS_TERMINATED
                    else "OrchestrationFailedException",
                    errorMessage=f"Sub-orchestration {inst.instance_id!r} was "
                    f"{STATUS_NAMES.get(status, '?').lower()}" + (f": {result}" if result else "."),
                )
                note = pb.HistoryEvent(
                    eventId=-1,
                    timestamp=ts(self._now()),
                    subOrchestrationInstanceFailed=pb.SubOrchestrationInstanceFailedEvent(
                        taskScheduledId=st.parent.taskScheduledId, failureDetails=failure
                    ),
                )
            plan.omsgs.append(OMsg(self._new_id(), pid, note))
        return ev

    def _plan_rewind(
        self,
        inst: Inst,
        st: _NewState,
        action: pb.RewindOrchestrationAction,
        now: datetime,
        plan: _Plan,
    ) -> None:
        new_history = list(action.newHistory)
        exec_id = inst.execution_id
        for e in new_history:
            if e.HasField("executionStarted") and e.executionStarted.orchestrationInstance.HasField(
                "executionId"
            ):
                exec_id = e.executionStarted.orchestrationInstance.executionId.value
        st.execution_id = exec_id
        st.status = pb.ORCHESTRATION_STATUS_RUNNING
        st.output = None
        st.failure = None
        st.completed = None
        st.last_updated = now
        st.new_execution = True
        st.kick = True
        reason = None
        for e in reversed(new_history):
            if e.HasField("executionRewound"):
                reason = (
                    e.executionRewound.reason.value
                    if e.executionRewound.HasField("reason")
                    else None
                )
                break
        completed_ids = {
            e.subOrchestrationInstanceCompleted.taskScheduledId
            for e in new_history
            if e.HasField("subOrchestrationInstanceCompleted")
        }
        for e in new_history:
            if e.HasField("subOrchestrationInstanceCreated") and e.eventId not in completed_ids:
                child = e.subOrchestrationInstanceCreated.instanceId
                ev = pb.HistoryEvent(
                    eventId=-1,
                    timestamp=ts(self._now()),
                    executionRewound=pb.ExecutionRewoundEvent(reason=sv(reason)),
                )
                plan.omsgs.append(OMsg(self._new_id(), child, ev))
        plan.history_events = new_history
        self._plan_rows(inst, st, [(e, True) for e in new_history], 0, plan)
        plan.state = st

    def _plan_rows(
        self,
        inst: Inst,
        st: _NewState,
        events: list[tuple[pb.HistoryEvent, bool]],
        first_row: int,
        plan: _Plan,
    ) -> None:
        entities = []
        for offset, (event, played) in enumerate(events):
            event_type, cols = event_to_columns(event)
            when = (
                event.timestamp.ToDatetime(tzinfo=UTC) if event.HasField("timestamp") else now_utc()
            )
            if event.timestamp.seconds <= 0:
                when = now_utc()
            entity = schema.history_entity(
                inst.instance_id,
                st.execution_id,
                first_row + offset,
                event_type,
                event_id=event.eventId,
                is_played=played,
                timestamp=when,
                **cols,
            )
            entity, blobs = schema.offload_history_payloads(entity)
            plan.blobs.extend(blobs)
            if event_type == "ExecutionStarted" and entity.get("InputBlobName"):
                st.row_blobs["Input"] = entity["InputBlobName"]
            entities.append(entity)
        batches: list[list[dict[str, Any]]] = []
        for start in range(0, len(entities), BATCH_EVENTS):
            chunk = entities[start : start + BATCH_EVENTS]
            final = start + BATCH_EVENTS >= len(entities)
            sentinel = schema.sentinel_entity(
                inst.instance_id, st.execution_id, checkpoint_completed=now_utc() if final else None
            )
            batches.append([wire(e) for e in chunk] + [wire(sentinel)])
        pk = schema.escape_partition_key(inst.instance_id)
        plan.ops.append({"t": "h", "pk": pk, "batches": batches})
        row, blobs = self._instance_row(inst.instance_id, st, st.row_blobs)
        row_wire = wire(row)
        # Like a checkpoint, but skip the Instances write when only LastUpdatedTime would change
        # (the engine answers status queries for live instances from memory).
        signature = repr(
            sorted((k, v) for k, v in row_wire.items() if not k.startswith("LastUpdatedTime"))
        )
        if signature != st.row_sig or st.kick or st.new_execution:
            plan.blobs.extend(blobs)
            plan.ops.append({"t": "i", "pk": pk, "e": row_wire})
            st.row_sig = signature

    def _instance_row(
        self, instance_id: str, st: _NewState, blob_names: dict[str, str]
    ) -> tuple[dict[str, Any], list]:
        status = st.status
        if st.continued:
            status = pb.ORCHESTRATION_STATUS_RUNNING
        row = schema.instance_entity(
            instance_id,
            Name=st.name,
            Version=st.version or "",
            Input=st.input,
            Output=schema.failed_output(st.failure.errorType, st.failure.errorMessage)
            if st.failure is not None
            else st.output,
            CustomStatus=st.custom_status if st.custom_status is not None else "null",
            RuntimeStatus=STATUS_NAMES[status],
            CreatedTime=st.created,
            LastUpdatedTime=st.last_updated,
            CompletedTime=st.completed,
            ExecutionId=st.execution_id,
            TaskHubName=self.hub,
            Generation=st.generation,
            Tags=schema.to_json(st.tags) if st.tags else "null",
            ScheduledStartTime=st.scheduled_start,
            FailureDetails=schema.to_json(failure_to_json(st.failure))
            if st.failure is not None
            else None,
        )
        row, blobs = schema.offload_instance_payloads(
            row, self.store.largemessages_url, blob_names=blob_names
        )
        return row, blobs

    def _apply_plan(self, inst: Inst, d: Dispatch, plan: _Plan) -> None:
        """In-memory effects of a durable checkpoint (lock held)."""
        st = plan.state
        self._forget_tokens(d.tokens)
        inst.in_flight = None
        inst.rewinding = False
        if st.new_execution:
            inst.history = list(plan.history_events)
        else:
            inst.history.extend(plan.history_events)
        st.store_into(inst)
        for child_id, child_state in plan.children:
            self.finished.pop(child_id, None)
            child = self.active.get(child_id)
            if child is None or child.terminal or not child.loaded:
                child = Inst(child_id)
                self.active[child_id] = child
            child_state.store_into(child)
            child.history = []
            child.loaded = True
        for amsg in plan.amsgs:
            self.activities[amsg.id] = amsg
            self.act_queue.append(amsg.id)
        for msg in plan.omsgs:
            self._deliver(msg)
        if st.continued:
            inst.history = []
        if inst.terminal:
            inst.history = []  # finished: history lives in the table only
            self._finished(inst.instance_id)
            if not inst.inbox:
                self.active.pop(inst.instance_id, None)
        elif inst.inbox or inst.kick:
            self._mark_ready(inst)
        self.cv.notify_all()

    # -- activities ----------------------------------------------------------------------------

    def complete_activity(self, resp: pb.ActivityResponse) -> None:
        """Turn an activity result into a TaskCompleted/TaskFailed message (durably)."""
        with self.lock:
            entry = self.tokens.get(resp.completionToken)
            amsg = self.activities.get(entry[1]) if entry and entry[0] == "a" else None
            if amsg is None or amsg.completing:
                log.info(
                    "ignoring a stale activity completion for %r task %d",
                    resp.instanceId,
                    resp.taskId,
                )
                self._forget_tokens([resp.completionToken])
                return
            amsg.completing = True
        req = amsg.request
        if resp.HasField("failureDetails"):
            ev = pb.HistoryEvent(
                eventId=-1,
                timestamp=ts(self._now()),
                taskFailed=pb.TaskFailedEvent(
                    taskScheduledId=req.taskId, failureDetails=resp.failureDetails
                ),
            )
        else:
            ev = pb.HistoryEvent(
                eventId=-1,
                timestamp=ts(self._now()),
                taskCompleted=pb.TaskCompletedEvent(
                    taskScheduledId=req.taskId,
                    result=resp.result if resp.HasField("result") else None,
                ),
            )
        msg = OMsg(self._new_id(), req.orchestrationInstance.instanceId, ev)
        journal = self.store.journal
        journal.begin()
        try:
            try:
                journal.append({"m": [msg.record()], "a": [amsg.id]})
            except Exception:
                with self.lock:
                    amsg.completing = False
                raise
            with self.lock:
                self.activities.pop(amsg.id, None)
                self._forget_tokens(amsg.tokens)
                self._deliver(msg)
        finally:
            journal.done()

    def abandon(self, token: str) -> None:
        """A worker gave a work item back: make it available again."""
        with self.lock:
            entry = self.tokens.get(token)
            if entry is None:
                return
            kind, key, _ = entry
            if kind == "o":
                inst = self.active.get(key)
                if (
                    inst
                    and inst.in_flight
                    and token in inst.in_flight.tokens
                    and not inst.in_flight.committing
                ):
                    d = inst.in_flight
                    self._forget_tokens(d.tokens)
                    inst.in_flight = None
                    inst.inbox = d.msgs + inst.inbox
                    self._mark_ready(inst)
            else:
                amsg = self.activities.get(key)
                self._forget_tokens([token])
                if amsg is not None and amsg.dispatched:
                    amsg.dispatched = False
                    amsg.tokens.discard(token)
                    self.act_queue.append(amsg.id)
                    self.cv.notify_all()

    # -- client operations -----------------------------------------------------------------------

    def instance_state(self, instance_id: str) -> _Snapshot | None:
        """The current state of an instance (memory first, else its Instances row)."""
        with self.lock:
            inst = self.active.get(instance_id)
            if inst is not None and inst.loaded:
                return _Snapshot.of(inst)
        row = self.store.get_instance_row(instance_id)
        if row is None:
            return None
        snap = Inst(instance_id)
        self._fill_from_row(snap, row)
        return _Snapshot.of(snap)

    def wait_for(self, instance_id: str, predicate, timeout: float | None) -> _Snapshot | None:
        """Wait until ``predicate(snapshot)``; None if the instance does not exist.

        Raises TimeoutError when ``timeout`` seconds pass first.
        """
        deadline = time.monotonic() + (timeout if timeout is not None else 3600.0)
        while True:
            with self.lock:
                inst = self.active.get(instance_id)
                if inst is not None and inst.loaded and not inst.unknown:
                    snap = _Snapshot.of(inst)
                    if predicate(snap):
                        return snap
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError(instance_id)
                    self.cv.wait(min(remaining, 0.5))
                    continue
            snap = self.instance_state(instance_id)
            if snap is None or predicate(snap):
                return snap
            if time.monotonic() >= deadline:
                raise TimeoutError(instance_id)
            time.sleep(0.05)

    def start_instance(self, req: pb.CreateInstanceRequest) -> str:
        instance_id = req.instanceId or uuid.uuid4().hex
        if not instance_id or len(instance_id) > 256:
            raise EngineError("INVALID_ARGUMENT", "An instance id must have 1 to 256 characters.")
        if instance_id.startswith("@"):  # as Durable Functions: '@name@key' is an entity's id
            raise EngineError(
                "INVALID_ARGUMENT",
                f"Orchestration instance ids must not start with '@' ({instance_id!r}): that "
                "form is reserved for durable entities. Choose another id.",
            )
        with self.lock:
            known = instance_id in self.active
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
        msg, st, row, blobs = self._start_parts(req, instance_id, generation)
        self.store.upload_blobs(blobs)
        ops = [{"t": "i", "pk": row["PartitionKey"], "e": wire(row)}]
        journal = self.store.journal
        journal.begin()
        try:
            with self.lock:
                old = self.active.get(instance_id)
                if old is not None and old.in_flight is not None and existing is not None:
                    self._forget_tokens(old.in_flight.tokens)
            journal.append(
                {
                    "m": [msg.record()],
                    "ops": ops,
                    **({"a": [m.id for m in old.inbox]} if old else {}),
                }
            )
            self._materialize(ops)
            with self.lock:
                self.finished.pop(instance_id, None)
                inst = Inst(instance_id)
                st.store_into(inst)
                self.active[instance_id] = inst
                self._deliver(msg)
                self.cv.notify_all()
        finally:
            journal.done()
        log.info("started %s %r", req.name, instance_id)
        return instance_id

    def _start_new(self, req: pb.CreateInstanceRequest, instance_id: str) -> bool:
        """Fast path: journal the start, then insert the Pending row (fails if it exists)."""
        msg, st, row, blobs = self._start_parts(req, instance_id, 0)
        self.store.upload_blobs(blobs)
        op = {"t": "i", "pk": row["PartitionKey"], "e": wire(row), "ins": 1}
        journal = self.store.journal
        journal.begin()
        try:
            journal.append({"m": [msg.record()], "ops": [op]})
            created = self.store.insert_instance_row(op["e"])
            if not created:
                journal.append({"a": [msg.id]}, wait=False)  # cancel: the id is taken
                return False
            with self.lock:
                self.finished.pop(instance_id, None)
                inst = Inst(instance_id)
                st.store_into(inst)
                self.active[instance_id] = inst
                self._deliver(msg)
        finally:
            journal.done()
        log.debug("started %s %r", req.name, instance_id)
        return True

    def _start_parts(self, req: pb.CreateInstanceRequest, instance_id: str, generation: int):
        now = self._now()
        start_at = (
            req.scheduledStartTimestamp.ToDatetime(tzinfo=UTC)
            if req.HasField("scheduledStartTimestamp")
            else None
        )
        exec_id = self._new_id()
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
        msg = OMsg(self._new_id(), instance_id, started, visible_at=visible, start=True)
        st = _NewState(
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
        row, blobs = self._instance_row(instance_id, st, {})
        return msg, st, row, blobs

    def send_event(
        self, instance_id: str, event: pb.HistoryEvent, *, must_exist: bool = True
    ) -> None:
        """Queue an event (raise/terminate/suspend/resume/rewind) durably for an instance."""
        snap = self.instance_state(instance_id)
        if snap is None:
            if must_exist:
                raise EngineError(
                    "NOT_FOUND", f"No orchestration instance with id {instance_id!r}."
                )
            return
        msg = OMsg(self._new_id(), instance_id, event)
        journal = self.store.journal
        journal.begin()
        try:
            journal.append({"m": [msg.record()]})
            with self.lock:
                self._deliver(msg)
        finally:
            journal.done()

    def rewind(self, instance_id: str, reason: str | None) -> None:
        snap = self.instance_state(instance_id)
        if snap is None:
            raise EngineError("NOT_FOUND", f"No orchestration instance with id {instance_id!r}.")
        if snap.status != pb.ORCHESTRATION_STATUS_FAILED:
            raise EngineError(
                "FAILED_PRECONDITION",
                f"Only a failed orchestration can be rewound; {instance_id!r} is "
                f"{STATUS_NAMES.get(snap.status)}.",
            )
        with self.lock:
            inst = self.active.get(instance_id)
            if inst is None:
                inst = self.active[instance_id] = Inst(instance_id, loaded=False)
            if inst.in_flight is not None or inst.rewinding:
                raise EngineError(
                    "FAILED_PRECONDITION", f"{instance_id!r} is already being rewound."
                )
            inst.loaded = False  # reload the full history (the tables keep finished ones)
            inst.loading = True
            inst.rewinding = True  # keeps it in memory, and holds dispatch until the event is in
            self.finished.pop(instance_id, None)
        try:
            self._load(instance_id)
        except Exception:
            with self.lock:
                inst.rewinding = False
            raise
        ev = pb.HistoryEvent(
            eventId=-1,
            timestamp=ts(self._now()),
            executionRewound=pb.ExecutionRewoundEvent(reason=sv(reason)),
        )
        msg = OMsg(self._new_id(), instance_id, ev)
        with self.lock:
            st = _NewState.from_inst(inst)
        st.status = pb.ORCHESTRATION_STATUS_RUNNING
        st.output = st.failure = st.completed = None
        st.last_updated = self._now()
        row, blobs = self._instance_row(instance_id, st, st.row_blobs)
        self.store.upload_blobs(blobs)
        ops = [{"t": "i", "pk": row["PartitionKey"], "e": wire(row)}]
        journal = self.store.journal
        journal.begin()
        try:
            journal.append({"m": [msg.record()], "ops": ops})
            self._materialize(ops)
            with self.lock:
                st.store_into(inst)
                self._deliver(msg)
        finally:
            journal.done()

    def purge(self, instance_id: str, recursive: bool) -> int:
        """Delete a finished instance (and, recursively, its sub-orchestrations)."""
        snap = self.instance_state(instance_id)
        if snap is None or snap.status not in TERMINAL:
            return 0
        count = 0
        if recursive:
            _, rows = self.store.read_history(instance_id)
            for row in rows:
                if row.get("EventType") == "SubOrchestrationInstanceCreated" and row.get(
                    "InstanceId"
                ):
                    count += self.purge(row["InstanceId"], True)
        pk = schema.escape_partition_key(instance_id)
        journal = self.store.journal
        journal.begin()
        try:
            journal.append({"ops": [{"t": "purge", "pk": pk}]})
            self.store.purge_partition(pk)
            with self.lock:
                inst = self.active.get(instance_id)
                if inst is not None and inst.in_flight is None:
                    self.active.pop(instance_id, None)
        finally:
            journal.done()
        return count + 1

    def history(self, instance_id: str) -> list[pb.HistoryEvent] | None:
        with self.lock:
            inst = self.active.get(instance_id)
            if inst is not None and inst.loaded and inst.history and not inst.terminal:
                return list(inst.history)
        if self.store.get_instance_row(instance_id) is None:
            return None
        _, rows = self.store.read_history(instance_id)
        return [columns_to_event(r) for r in rows]


# ------------------------------------------------------------------------------------------
# plan / state helpers
# ------------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class _NewState(_InstanceState):
    """An instance's state as a checkpoint plan changes it, before it is durable."""

    new_execution: bool = False
    continued: bool = False
    kick: bool = False

    @classmethod
    def from_inst(cls, inst: Inst) -> _NewState:
        state = cls(**{name: getattr(inst, name) for name in _STATE_FIELDS})
        state.tags, state.row_blobs = dict(inst.tags), dict(inst.row_blobs)
        return state

    def store_into(self, inst: Inst) -> None:
        for name in _STATE_FIELDS:
            setattr(inst, name, getattr(self, name))
        if self.continued:
            inst.status = pb.ORCHESTRATION_STATUS_RUNNING
        inst.kick = inst.kick or self.kick


@dataclass
class _Plan:
    consumed: list[str]
    omsgs: list[OMsg] = field(default_factory=list)
    amsgs: list[AMsg] = field(default_factory=list)
    ops: list[dict[str, Any]] = field(default_factory=list)
    blobs: list[tuple[str, bytes]] = field(default_factory=list)
    children: list[tuple[str, _NewState]] = field(default_factory=list)
    history_events: list[pb.HistoryEvent] = field(default_factory=list)
    state: _NewState = field(default_factory=_NewState)

    def record(self) -> dict[str, Any]:
        return {
            "m": [m.record() for m in self.omsgs] + [a.record() for a in self.amsgs],
            "a": self.consumed,
            "ops": self.ops,
        }


@dataclass
class _Snapshot:
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
    def of(cls, inst: Inst) -> _Snapshot:
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


def _exec_of(msg: OMsg) -> str:
    return msg.event.executionStarted.orchestrationInstance.executionId.value


def _open_children(history: list[pb.HistoryEvent]) -> list[str]:
    created = {
        e.eventId: e.subOrchestrationInstanceCreated.instanceId
        for e in history
        if e.HasField("subOrchestrationInstanceCreated")
    }
    for e in history:
        if e.HasField("subOrchestrationInstanceCompleted"):
            created.pop(e.subOrchestrationInstanceCompleted.taskScheduledId, None)
        elif e.HasField("subOrchestrationInstanceFailed"):
            created.pop(e.subOrchestrationInstanceFailed.taskScheduledId, None)
    return list(dict.fromkeys(created.values()))


def _build_filter(filters: Iterable[Any]) -> dict[str, frozenset[str]]:
    result: dict[str, frozenset[str]] = {}
    for f in filters:
        result[f.name] = result.get(f.name, frozenset()) | frozenset(f.versions)
    return result


def _nullable(value: Any) -> str | None:
    return None if value is None or value == "null" else str(value)


def _json_dict(value: Any) -> dict[str, str]:
    import json

    if not value or value == "null":
        return {}
    try:
        data = json.loads(value)
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
