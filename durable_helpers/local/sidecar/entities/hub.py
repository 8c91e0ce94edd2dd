"""Live entities of the local task hub: their inboxes, work items and durable steps.

:class:`EntityHub` keeps, per entity, its :class:`~.model.EntityRecord` (loaded from its
Instances row on first use), the journaled messages that reached it since its last step, and at
most **one step in flight**. A step is planned by :func:`~.model.plan_step`; when it has
operations it goes to a worker as an ``EntityRequest`` (the V2 work item, which 1.12.0's worker
accepts alongside the legacy batch form), otherwise (lock requests, releases, requests that
must wait for a lock) the sidecar commits it itself. Committing a step is one journal record
(the messages it sends, the acknowledgement of the messages it consumed, and its table writes),
then the tables, then memory: so an operation is applied exactly once across a ``kill -9``.

It reaches the rest of the engine only through the narrow :class:`EntityHost` interface (the
lock, the store and journal, message delivery, orchestration starts).
"""

from __future__ import annotations

import itertools
import logging
import threading
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

import durabletask.internal.orchestrator_service_pb2 as pb

from durable_helpers.local.sidecar.entities.model import (
    EntityRecord,
    Incoming,
    Step,
    forwarded_lock,
    plan_step,
)
from durable_helpers.local.sidecar.entities.orchestration import (
    EntityMessage,
    event_raised,
    response_event,
    signal_message,
)
from durable_helpers.local.sidecar.entities.rows import (
    record_from_row,
    request_from_json,
    request_json,
    step_ops,
)
from durable_helpers.local.sidecar.store import Store
from durable_helpers.protocol_rows import failure_to_json
from durable_helpers.schema import entities as es
from durable_helpers.schema import entity_messages as em

log = logging.getLogger("durable_helpers.local.sidecar")


class EntityHost(Protocol):
    """What the entity part needs from the engine (all of it; nothing else is touched)."""

    lock: threading.RLock
    cv: threading.Condition
    store: Store
    hub: str

    def now(self) -> datetime: ...
    def new_id(self) -> str: ...
    def message(self, instance_id: str, event: pb.HistoryEvent, visible_at: float = 0.0) -> Any:
        """A new durable message (the engine's message type, with ``id`` and ``record()``)."""

    def deliver(self, msg: Any) -> None:
        """Route a durable message (lock held): timers, orchestrations, entities."""

    def materialize(self, ops: list[dict[str, Any]]) -> None: ...
    def start_parts(self, req: pb.CreateInstanceRequest) -> tuple[Any, list, list] | None:
        """(ExecutionStarted message, journal ops, blobs) of a new orchestration, or None when
        an instance with that id is running."""


@dataclass
class _Batch:
    step: Step
    msgs: list[Any]  # the inbox messages folded into the step
    request: pb.EntityRequest | None  # None: committed by the sidecar
    tokens: set[str] = field(default_factory=set)
    redeliver: bool = False
    committing: bool = False


@dataclass
class _Live:
    record: EntityRecord
    inbox: list[tuple[Any, Incoming]] = field(default_factory=list)
    loaded: bool = False
    loading: bool = False
    batch: _Batch | None = None


@dataclass
class _StreamInfo:
    filter: frozenset[str] | None
    limit: int
    tokens: set[str] = field(default_factory=set)


def incoming_of(msg_id: str, event: pb.HistoryEvent) -> Incoming | None:
    """What a journaled ``EventRaised`` means to its entity (None: nothing it understands).

    Example:
        >>> ev = pb.HistoryEvent(eventRaised=pb.EventRaisedEvent(name="release"))
        >>> ev.eventRaised.input.value = '{"parent":"o1","id":"cs"}'
        >>> incoming_of("m1", ev).release_parent
        'o1'
    """
    if not event.HasField("eventRaised"):
        return None
    name, body = event.eventRaised.name, event.eventRaised.input.value
    kind = em.classify_entity_event(name).kind
    try:
        if kind == "request":
            return Incoming(msg_id, request=request_from_json(body))
        if kind == "release":
            return Incoming(msg_id, release_parent=em.parse_release_message(body).parent)
    except (ValueError, KeyError, TypeError):
        return None
    return Incoming(msg_id)  # "continue" and anything else: nothing to do


class EntityHub:
    """All entity state transitions (thread-safe under the host's lock, I/O outside it)."""

    def __init__(self, host: EntityHost) -> None:
        self.host = host
        self.live: dict[str, _Live] = {}
        self.ready: deque[str] = deque()
        self.ready_set: set[str] = set()
        self.tokens: dict[str, tuple[str, int]] = {}
        self.streams: dict[int, _StreamInfo] = {}
        self._warned: set[str] = set()
        self._ids = itertools.count(1)
        self._boot = uuid.uuid4().hex[:8]
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="entities")

    def stop(self) -> None:
        """Stop loading and committing in the background."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- messages ------------------------------------------------------------------------------

    def deliver(self, msg: Any) -> None:
        """A journaled message reached entity ``msg.instance_id`` (host lock held)."""
        incoming = incoming_of(msg.id, msg.event)
        if incoming is None:
            log.warning("entity %r: dropping a message it cannot read", msg.instance_id)
            self.host.store.journal.append({"a": [msg.id]}, wait=False)
            return
        live = self.live.get(msg.instance_id)
        if live is None:
            live = self.live[msg.instance_id] = _Live(EntityRecord(msg.instance_id))
        live.inbox.append((msg, incoming))
        self._kick(live)

    def pending_messages(self) -> list[Any]:
        """Every journaled message not yet consumed by a committed step (journal compaction)."""
        with self.host.lock:
            return [m for live in self.live.values() for m, _ in live.inbox]

    def _kick(self, live: _Live) -> None:
        """Plan what the entity does next (host lock held)."""
        if self.host.stopping if hasattr(self.host, "stopping") else False:
            return
        if not live.loaded:
            if not live.loading:
                live.loading = True
                self._pool.submit(self._load, live.record.instance_id)
            return
        if live.batch is not None:
            if live.batch.redeliver:
                self._mark_ready(live)
            return
        step = plan_step(live.record, [inc for _, inc in live.inbox])
        if step.ops:
            self._mark_ready(live)
        elif step.changes_anything:
            batch = live.batch = _Batch(step, [m for m, _ in live.inbox], None)
            self._pool.submit(self._commit_quietly, live, batch)

    def _mark_ready(self, live: _Live) -> None:
        iid = live.record.instance_id
        if iid not in self.ready_set:
            self.ready_set.add(iid)
            self.ready.append(iid)
        self.host.cv.notify_all()

    def _load(self, instance_id: str) -> None:
        try:
            row = self.host.store.get_instance_row(instance_id)
        except Exception:
            log.exception("could not load entity %r; will retry", instance_id)
            threading.Timer(0.5, self._retry_load, args=(instance_id,)).start()
            return
        with self.host.lock:
            live = self.live.get(instance_id)
            if live is None:
                return
            live.record = record_from_row(instance_id, row)
            live.loaded, live.loading = True, False
            self._kick(live)

    def _retry_load(self, instance_id: str) -> None:
        with self.host.lock:
            live = self.live.get(instance_id)
            if live is not None:
                live.loading = False
                self._kick(live)

    # -- workers -------------------------------------------------------------------------------

    def open_stream(self, stream_id: int, request: pb.GetWorkItemsRequest) -> None:
        """Note a worker's entity filter and concurrency limit."""
        names = None
        if request.HasField("workItemFilters"):
            names = frozenset(f.name.lower() for f in request.workItemFilters.entities)
        info = _StreamInfo(names, request.maxConcurrentEntityWorkItems or 1_000_000)
        with self.host.lock:
            self.streams[stream_id] = info

    def close_stream(self, stream_id: int) -> int:
        """The worker is gone: its unfinished entity batches go to others (host lock held)."""
        info = self.streams.pop(stream_id, None)
        if info is None:
            return 0
        count = 0
        for token in list(info.tokens):
            entry = self.tokens.pop(token, None)
            live = self.live.get(entry[0]) if entry else None
            if live and live.batch and token in live.batch.tokens and not live.batch.committing:
                live.batch.redeliver = True
                self._mark_ready(live)
                count += 1
        return count

    def handles(self, name: str) -> bool:
        """True when a connected worker's filters accept entity ``name``."""
        return any(i.filter is None or name in i.filter for i in self.streams.values())

    def next_work(self, stream_id: int) -> pb.WorkItem | None:
        """The next entity work item for a worker's stream (host lock held), or None."""
        info = self.streams.get(stream_id)
        if info is None or len(info.tokens) >= info.limit:
            return None
        skipped: list[str] = []
        item = None
        while self.ready and item is None:
            iid = self.ready.popleft()
            self.ready_set.discard(iid)
            live = self.live.get(iid)
            if live is None or not live.loaded:
                continue
            name = es.split_entity_id(iid)[0]
            if info.filter is not None and name not in info.filter:
                skipped.append(iid)
                self._warn_unhandled(name)
                continue
            item = self._work_item(live, stream_id, info)
        for iid in skipped:
            if iid not in self.ready_set:
                self.ready_set.add(iid)
                self.ready.append(iid)
        return item

    def _warn_unhandled(self, name: str) -> None:
        if name in self._warned or self.handles(name):
            return
        self._warned.add(name)
        log.warning(
            "No connected worker handles entity %r: its operations wait until a worker that "
            "registers it connects.",
            name,
        )

    def _work_item(self, live: _Live, stream_id: int, info: _StreamInfo) -> pb.WorkItem | None:
        batch = live.batch
        if batch is not None:
            if not batch.redeliver or batch.committing or batch.request is None:
                return None
            batch.redeliver = False
        else:
            step = plan_step(live.record, [inc for _, inc in live.inbox])
            if not step.ops:
                self._kick(live)
                return None
            batch = live.batch = _Batch(
                step, [m for m, _ in live.inbox], _entity_request(live.record, step)
            )
        token = f"{self._boot}-e{next(self._ids)}"
        self.tokens[token] = (live.record.instance_id, stream_id)
        info.tokens.add(token)
        batch.tokens.add(token)
        assert batch.request is not None
        return pb.WorkItem(entityRequestV2=batch.request, completionToken=token)

    def _forget(self, tokens: set[str]) -> None:
        for token in tokens:
            entry = self.tokens.pop(token, None)
            info = self.streams.get(entry[1]) if entry else None
            if info is not None:
                info.tokens.discard(token)

    def _batch_of(self, token: str) -> tuple[_Live, _Batch] | None:
        entry = self.tokens.get(token)
        live = self.live.get(entry[0]) if entry else None
        if live is None or live.batch is None or token not in live.batch.tokens:
            return None
        return live, live.batch

    def abandon(self, token: str) -> None:
        """A worker gave an entity batch back: it is planned again and redelivered."""
        with self.host.lock:
            found = self._batch_of(token)
            if found is None or found[1].committing:
                self._forget({token})
                return
            live, batch = found
            self._forget(batch.tokens)
            live.batch = None
            self._kick(live)

    def complete(self, result: pb.EntityBatchResult) -> None:
        """Apply a worker's EntityBatchResult (journal, tables, memory); stale ones are ignored."""
        with self.host.lock:
            found = self._batch_of(result.completionToken)
            if found is None or found[1].committing:
                log.info("ignoring a stale entity completion")
                self._forget({result.completionToken})
                return
            live, batch = found
            if len(result.results) != len(batch.step.ops) and not result.HasField("failureDetails"):
                log.warning(
                    "entity %r: %d results for %d operations; the batch is redelivered",
                    live.record.instance_id,
                    len(result.results),
                    len(batch.step.ops),
                )
                self._forget(batch.tokens)
                live.batch = None
                self._kick(live)
                return
            batch.committing = True
        self._commit(live, batch, result)

    # -- committing a step -----------------------------------------------------------------------

    def _commit_quietly(self, live: _Live, batch: _Batch) -> None:
        batch.committing = True
        try:
            self._commit(live, batch, None)
        except Exception:
            log.exception("entity %r: step failed; retrying in 1 s", live.record.instance_id)

    def _commit(self, live: _Live, batch: _Batch, result: pb.EntityBatchResult | None) -> None:
        host = self.host
        now = host.now()
        old = live.record
        step = batch.step
        new = replace(
            old,
            queue=list(step.queue),
            locked_by=step.locked_by,
            execution_id=host.new_id(),
            modified=now,
            updated=now,
            stored=True,
        )
        out: list[Any] = []
        ops: list[dict[str, Any]] = []
        blobs: list[tuple[str, bytes]] = []
        if result is not None:
            self._results(old, step, result, new, out, ops, blobs, now)
        if step.lock is not None:
            out.append(self._lock_message(step.lock, now))
        entity_ops, entity_blobs = step_ops(new, host.hub, host.store.largemessages_url, now)
        ops += entity_ops
        blobs += entity_blobs
        journal = host.store.journal
        journal.begin()
        try:
            try:
                host.store.upload_blobs(blobs)
                journal.append(
                    {"m": [m.record() for m in out], "a": [m.id for m in batch.msgs], "ops": ops}
                )
            except Exception:
                with host.lock:
                    batch.committing = False
                    if batch.request is None:
                        live.batch = None
                    else:
                        batch.redeliver = True
                threading.Timer(1.0, self._rekick, args=(live,)).start()
                raise
            host.materialize(ops)
            with host.lock:
                taken = {m.id for m in batch.msgs}
                live.record = new
                live.inbox = [(m, i) for m, i in live.inbox if m.id not in taken]
                live.batch = None
                self._forget(batch.tokens)
                for msg in out:
                    host.deliver(msg)
                self._kick(live)
                host.cv.notify_all()
        finally:
            journal.done()

    def _rekick(self, live: _Live) -> None:
        with self.host.lock:
            self._kick(live)

    def _lock_message(self, lock: Any, now: datetime) -> Any:
        nxt = forwarded_lock(lock)
        if nxt is not None:
            target, request = nxt
            body = request_json(request, timestamp=now)
            message = EntityMessage(target, em.OPERATION_EVENT, body)
            return self.host.message(target, event_raised(message))
        body = em.response_message_json(result=em.LOCK_GRANTED_RESULT)
        return self.host.message(lock.parent, response_event(lock.id, body))

    def _results(self, old, step, result, new, out, ops, blobs, now) -> None:
        """Responses to callers, signals and orchestration starts of a worker's batch."""
        host = self.host
        if result.HasField("failureDetails"):  # the whole batch failed: state unchanged
            failure = failure_to_json(result.failureDetails)
            bodies = [em.response_message_json(result=None, failure_details=failure)] * len(
                step.ops
            )
        else:
            new.state = result.entityState.value if result.HasField("entityState") else None
            bodies = [_response_body(r) for r in result.results]
        for req, body in zip(step.ops, bodies, strict=True):
            if req.is_call:
                out.append(host.message(req.parent, response_event(req.id, body)))
        if result.HasField("failureDetails"):
            return
        me = old.instance_id
        for action in result.actions:
            kind = action.WhichOneof("operationActionType")
            if kind == "sendSignal":
                a = action.sendSignal
                due = (
                    a.scheduledTime.ToDatetime(tzinfo=now.tzinfo)
                    if a.HasField("scheduledTime")
                    else None
                )
                target = _normalized(a.instanceId)
                if target is None:
                    log.warning("entity %r signalled %r: not an entity id", me, a.instanceId)
                    continue
                m = signal_message(
                    target,
                    a.name,
                    a.input.value if a.HasField("input") else None,
                    str(uuid.uuid4()),
                    parent=me,
                    due=due,
                    now=now,
                )
                visible = m.due.timestamp() if m.due is not None else 0.0
                out.append(host.message(target, event_raised(m), visible))
            elif kind == "startNewOrchestration":
                a = action.startNewOrchestration
                req = pb.CreateInstanceRequest(
                    instanceId=a.instanceId or uuid.uuid4().hex,
                    name=a.name,
                    version=a.version if a.HasField("version") else None,
                    input=a.input if a.HasField("input") else None,
                    scheduledStartTimestamp=a.scheduledTime
                    if a.HasField("scheduledTime")
                    else None,
                )
                parts = host.start_parts(req)
                if parts is None:
                    log.warning(
                        "entity %r: orchestration %r not started: an instance with that id is "
                        "running",
                        me,
                        req.instanceId,
                    )
                    continue
                msg, start_ops, start_blobs = parts
                out.append(msg)
                ops.extend(start_ops)
                blobs.extend(start_blobs)


def _response_body(result: pb.OperationResult) -> str:
    if result.HasField("failure"):
        fd = result.failure.failureDetails
        return em.response_message_json(result=None, failure_details=failure_to_json(fd))
    value = result.success.result.value if result.success.HasField("result") else ""
    return em.response_message_json(result=value or None)


def _normalized(instance_id: str) -> str | None:
    try:
        name, key = es.split_entity_id(instance_id)
    except ValueError:
        return None
    return es.entity_instance_id(name, key)


def _entity_request(record: EntityRecord, step: Step) -> pb.EntityRequest:
    """The V2 work item of a step: state plus one history event per operation."""
    events = []
    for req in step.ops:
        ev = pb.HistoryEvent(eventId=-1)
        if req.is_call:
            ev.entityOperationCalled.requestId = req.id
            ev.entityOperationCalled.operation = req.op or ""
            if req.input is not None:
                ev.entityOperationCalled.input.value = req.input
            ev.entityOperationCalled.parentInstanceId.value = req.parent or ""
            if req.parent_execution:
                ev.entityOperationCalled.parentExecutionId.value = req.parent_execution
            ev.entityOperationCalled.targetInstanceId.value = record.instance_id
        else:
            ev.entityOperationSignaled.requestId = req.id
            ev.entityOperationSignaled.operation = req.op or ""
            if req.input is not None:
                ev.entityOperationSignaled.input.value = req.input
            ev.entityOperationSignaled.targetInstanceId.value = record.instance_id
        events.append(ev)
    request = pb.EntityRequest(
        instanceId=record.instance_id, executionId=record.execution_id, operationRequests=events
    )
    if record.state is not None:
        request.entityState.value = record.state
    return request
