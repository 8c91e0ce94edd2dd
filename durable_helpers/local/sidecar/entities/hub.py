"""Live entities of the local task hub: their inboxes and their work items (kind ``"e"``).

:class:`EntityHub` keeps, per entity, its :class:`~.model.EntityRecord` (loaded from its
Instances row on first use; idle ones are forgotten beyond :data:`MAX_LIVE_ENTITIES`), the
journaled messages that reached it since its last step, and at most **one step in flight**. A
step is planned by :func:`~.model.plan_step`; when it has operations it goes to a worker as an
``EntityRequest`` (the V2 work item; 1.12.0's worker takes it as well as the legacy
``EntityBatchRequest`` and asks for neither, and only V2 says where results go), otherwise
(lock requests, releases, requests that must wait for a lock) the sidecar commits it itself.
Committing is :mod:`~.steps`. The hub is the engine's third
:class:`~durable_helpers.local.sidecar.work_items.WorkSource`: streams, filters (by entity
name), limits (``maxConcurrentEntityWorkItems``) and tokens are the work items part's.

May call: :mod:`~.steps`, the engine's inbox (dropping unreadable messages), work items
(tokens, streams) and the store's row reads. Every method expects the engine's lock held
except ``complete`` (which takes it) and the background loads.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import durabletask.internal.orchestrator_service_pb2 as pb

from durable_helpers.local.sidecar.entities import steps
from durable_helpers.local.sidecar.entities.model import EntityRecord, Incoming, Step, plan_step
from durable_helpers.local.sidecar.entities.rows import record_from_row, request_from_json
from durable_helpers.local.sidecar.state import OMsg
from durable_helpers.schema import entities as es
from durable_helpers.schema import entity_messages as em

if TYPE_CHECKING:
    from durable_helpers.local.sidecar.engine import Engine
    from durable_helpers.local.sidecar.work_items import Stream

log = logging.getLogger("durable_helpers.local.sidecar")

#: Idle entities kept in memory beyond this many are forgotten (their rows are the truth).
MAX_LIVE_ENTITIES = 10_000


@dataclass
class Batch:
    """A step in flight: the inbox messages folded into it, and its work item (if any)."""

    step: Step
    msgs: list[OMsg]
    request: pb.EntityRequest | None  # None: the sidecar commits it itself
    tokens: set[str] = field(default_factory=set)
    redeliver: bool = False
    committing: bool = False


@dataclass
class Live:
    """An entity in memory: its record, the messages that reached it since, its step."""

    record: EntityRecord
    inbox: list[tuple[OMsg, Incoming]] = field(default_factory=list)
    loaded: bool = False
    loading: bool = False
    batch: Batch | None = None


def incoming_of(msg_id: str, event: pb.HistoryEvent) -> Incoming | None:
    """What a journaled ``EventRaised`` means to its entity (None: nothing it can read).

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
    """Entity work items (kind ``"e"``) and the live entities (lock held, except I/O parts)."""

    kind = "e"
    limit_field = "maxConcurrentEntityWorkItems"
    filter_field = "entities"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.live: dict[str, Live] = {}
        self.ready: deque[str] = deque()
        self.ready_set: set[str] = set()
        self._warned: set[str] = set()
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="entities")

    def stop(self) -> None:
        """Stop loading and committing in the background."""
        self.pool.shutdown(wait=False, cancel_futures=True)

    # -- messages ------------------------------------------------------------------------------

    def deliver(self, msg: OMsg) -> None:
        """A journaled message reached entity ``msg.instance_id`` (lock held)."""
        incoming = incoming_of(msg.id, msg.event)
        if incoming is None:
            self.engine.inbox.drop([msg], f"entity {msg.instance_id!r} cannot read it")
            log.warning("entity %r: dropped a message it cannot read", msg.instance_id)
            return
        live = self.live.get(msg.instance_id)
        if live is None:
            live = self.live[msg.instance_id] = Live(EntityRecord(msg.instance_id))
        live.inbox.append((msg, incoming))
        self.kick(live)

    def pending_messages(self) -> list[OMsg]:
        """Every journaled message no committed step consumed yet (journal compaction)."""
        with self.engine.lock:
            return [m for live in self.live.values() for m, _ in live.inbox]

    def kick(self, live: Live) -> None:
        """Plan what the entity does next: a worker's batch, or a step of its own (lock held)."""
        if self.engine.stopping:
            return
        if not live.loaded:
            if not live.loading:
                live.loading = True
                self.pool.submit(self._load, live.record.instance_id)
            return
        if live.batch is not None:
            if live.batch.redeliver:
                self._mark_ready(live)
            return
        step = plan_step(live.record, [inc for _, inc in live.inbox])
        if step.ops:
            self._mark_ready(live)
        elif step.changes_anything:
            batch = live.batch = Batch(step, [m for m, _ in live.inbox], None)
            self.pool.submit(steps.commit_quietly, self, live, batch)

    def forget_idle(self) -> None:
        """Keep memory bounded: drop idle entities (nothing waiting, unlocked) when over the cap."""
        if len(self.live) <= MAX_LIVE_ENTITIES:
            return
        for iid, live in list(self.live.items()):
            rec = live.record
            idle = live.loaded and not live.inbox and live.batch is None
            if idle and not rec.queue and rec.locked_by is None:
                del self.live[iid]
            if len(self.live) <= MAX_LIVE_ENTITIES // 2:
                return

    def kick_locked(self, live: Live) -> None:
        """``kick`` for a caller that does not hold the lock (a retry timer)."""
        with self.engine.lock:
            self.kick(live)

    def _mark_ready(self, live: Live) -> None:
        iid = live.record.instance_id
        if iid not in self.ready_set:
            self.ready_set.add(iid)
            self.ready.append(iid)
        self.engine.cv.notify_all()

    def _load(self, instance_id: str) -> None:
        try:
            row = self.engine.store.get_instance_row(instance_id)
        except Exception:
            log.exception("could not load entity %r; will retry", instance_id)
            threading.Timer(0.5, self._retry_load, args=(instance_id,)).start()
            return
        with self.engine.lock:
            live = self.live.get(instance_id)
            if live is None:
                return
            live.record = record_from_row(instance_id, row)
            live.loaded, live.loading = True, False
            self.kick(live)

    def _retry_load(self, instance_id: str) -> None:
        with self.engine.lock:
            live = self.live.get(instance_id)
            if live is not None:
                live.loading = False
                self.kick(live)

    # -- work items (the WorkSource of kind "e") -------------------------------------------------

    def handles(self, name: str) -> bool:
        """True when a connected worker's filters accept entity ``name``."""
        streams = self.engine.work.streams.values()
        return any(s.accepts(self.kind, name, None) for s in streams if not s.closed)

    def next_item(self, stream: Stream) -> pb.WorkItem | None:
        """The next entity batch ``stream`` accepts, with its token (lock held)."""
        skipped: list[str] = []
        item = None
        while self.ready and item is None:
            iid = self.ready.popleft()
            self.ready_set.discard(iid)
            live = self.live.get(iid)
            if live is None or not live.loaded:
                continue
            name = es.split_entity_id(iid)[0]
            if not stream.accepts(self.kind, name, None):
                skipped.append(iid)
                self._warn_unhandled(name)
                continue
            item = self._item_for(live, stream)
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

    def _item_for(self, live: Live, stream: Stream) -> pb.WorkItem | None:
        batch = live.batch
        if batch is not None:
            if not batch.redeliver or batch.committing or batch.request is None:
                return None
            batch.redeliver = False
        else:
            step = plan_step(live.record, [inc for _, inc in live.inbox])
            if not step.ops:
                self.kick(live)
                return None
            request = steps.entity_request(live.record, step)
            batch = live.batch = Batch(step, [m for m, _ in live.inbox], request)
        token = self.engine.work.issue_token(self.kind, live.record.instance_id, stream)
        batch.tokens.add(token)
        assert batch.request is not None
        return pb.WorkItem(entityRequestV2=batch.request, completionToken=token)

    def in_flight(self, key: str, token: str) -> tuple[Live, Batch] | None:
        """The entity and its uncommitted batch sent with ``token``, else None (lock held)."""
        live = self.live.get(key)
        batch = live.batch if live else None
        if batch is None or token not in batch.tokens or batch.committing:
            return None
        return live, batch

    def stream_lost(self, key: str, token: str) -> bool:
        """The worker's stream broke: its batch goes to the next worker (lock held)."""
        found = self.in_flight(key, token)
        if found is None:
            return False
        found[1].redeliver = True
        self._mark_ready(found[0])
        return True

    def abandon(self, key: str, token: str) -> None:
        """The worker gave the batch back: it is planned again, with what arrived since."""
        found = self.in_flight(key, token)
        if found is None:
            return
        live, batch = found
        self.engine.work.forget_tokens(batch.tokens)
        live.batch = None
        self.kick(live)

    def complete(self, result: pb.EntityBatchResult) -> None:
        """Apply a worker's EntityBatchResult (journal, tables, memory); stale ones are ignored."""
        engine = self.engine
        with engine.lock:
            key = engine.work.key_of(result.completionToken, self.kind)
            found = self.in_flight(key, result.completionToken) if key else None
            if found is None:
                log.info("ignoring a stale entity completion")
                engine.work.forget_tokens([result.completionToken])
                return
            live, batch = found
            if len(result.results) != len(batch.step.ops) and not result.HasField("failureDetails"):
                log.warning(
                    "entity %r: %d results for %d operations; the batch is redelivered",
                    live.record.instance_id,
                    len(result.results),
                    len(batch.step.ops),
                )
                engine.work.forget_tokens(batch.tokens)
                live.batch = None
                self.kick(live)
                return
            batch.committing = True
        steps.commit(self, live, batch, result)
