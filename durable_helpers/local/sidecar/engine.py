"""The local task hub's engine: the one entry point the servicer calls, over its parts.

The engine keeps, in memory, the instances that are not finished (their current execution's
history, their inbox of pending messages, the work item in flight) plus pending activity work
and timers; finished instances live only in the tables. Every change is made durable through
the :class:`~durable_helpers.local.sidecar.store.Journal` *before* it is applied in memory and
acknowledged; its History/Instances rows are written behind by the store's
:class:`~.table_writer.TableWriter` (coalesced, within a bounded lag; a finished instance's before
its completion is visible), and recovery re-applies what the journal does not say was written.

``Engine`` is a thin coordinator: it builds the parts, recovers at ``start``, and forwards each
RPC to the part that owns it. The parts (each module's docstring says what it owns and calls):

* :mod:`~.state`: messages (``OMsg``, ``AMsg``) and instance state (``Inst``, ``Snapshot``);
* :mod:`~.inbox`: live instances, their pending messages, loading them from the tables;
* :mod:`~.timers`: messages visible later (durable timers, scheduled starts);
* :mod:`~.recovery`: replaying the journal at start, the records of a compacted journal;
* :mod:`~.work_items`: worker streams, filters, limits, tokens, leases, redelivery, over the sources
  :mod:`~.orchestrations` (orchestrator work items, and committing their responses) and
  :mod:`~.activities` (activity work items and their results);
* :mod:`~.planner`: an orchestrator response into a :mod:`~.checkpoint` ``Plan`` (rows,
  messages, timers), with :mod:`~.sub_orchestrations`, :mod:`~.completion` (and
  continue-as-new) and :mod:`~.rewind` in their own modules;
* :mod:`~.clients`: the client operations (start, query, wait, events, purge, history);
* :mod:`~.fallbacks`: work items the sidecar answers itself.

Around it: :mod:`~.servicer` maps each RPC onto one ``Engine`` method, :mod:`~.dispatcher` runs
a worker's GetWorkItems stream (waiting on ``Engine.cv`` for ``next_work``), and
:mod:`~.store` holds the journal and the tables (with :mod:`~.row_writes`, the processes that
write the rows).

**The lock.** One re-entrant lock, ``Engine.lock`` (with the condition ``Engine.cv`` on it),
guards every part's in-memory state. Code that reads or changes that state holds it; code that
does storage I/O (journal appends, table and blob writes, row reads) never holds it. The entry
points below and the background functions (loading, timers, fallbacks) take it themselves; the
methods of the parts expect it held unless their docstring says they take it.

* :mod:`~.entities`: durable entities (``@name@key``): their messages (the inbox routes them
  there), their batches (a third :class:`~.work_items.WorkSource`), their steps and rows, the
  EventSent rows of orchestrations that talk to them (a branch of the planner), and the entity
  client RPCs.

May call: its parts and the store. Messages and work items carry completion tokens; a token
stays valid until its work is completed, so a late completion from a worker whose stream broke
is still accepted, and redelivered work is not applied twice.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import durabletask.internal.orchestrator_service_pb2 as pb

from durable_helpers.local.sidecar import recovery, rewind
from durable_helpers.local.sidecar.activities import Activities
from durable_helpers.local.sidecar.clients import Clients
from durable_helpers.local.sidecar.entities import client as entity_client
from durable_helpers.local.sidecar.entities.hub import EntityHub
from durable_helpers.local.sidecar.fallbacks import sidecar_stream
from durable_helpers.local.sidecar.inbox import Inbox
from durable_helpers.local.sidecar.orchestrations import Orchestrations
from durable_helpers.local.sidecar.state import UTC, EngineError, Snapshot, ts
from durable_helpers.local.sidecar.store import Store
from durable_helpers.local.sidecar.timers import Timers
from durable_helpers.local.sidecar.work_items import DEFAULT_LEASE_SECONDS, Stream, WorkItems

__all__ = ["Engine", "EngineError"]

log = logging.getLogger("durable_helpers.local.sidecar")


class Engine:
    """All state transitions of the hub; thread-safe (one lock, I/O outside it).

    Example:
        >>> engine = Engine(Store(rest, "MyHub"))  # doctest: +SKIP
        >>> engine.start()  # recover from the journal  # doctest: +SKIP
    """

    def __init__(self, store: Store, *, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> None:
        self.store = store
        self.hub = store.hub
        self.lock = threading.RLock()
        self.cv = threading.Condition(self.lock)  # work available / state changed
        self.stopping = False
        self.loader = ThreadPoolExecutor(max_workers=4, thread_name_prefix="loader")
        self._last_ts = 0.0
        self.inbox = Inbox(self)
        self.timers = Timers(self)
        self.orchestrations = Orchestrations(self)
        self.activities = Activities(self)
        self.entities = EntityHub(self)
        # The kinds of work handed to workers, in the order a stream is offered them.
        self.work = WorkItems(
            self, [self.orchestrations, self.activities, self.entities], lease_seconds
        )
        self.clients = Clients(self)
        # Work items the sidecar answers itself (see fallbacks); never a worker's.
        self.sidecar_stream = sidecar_stream()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Recover from the journal, compact it, and start the timer thread."""
        self.store.setup()
        records = self.store.journal.read_all()
        pending = recovery.replay(records)
        if records:
            log.info(
                "recovering: %d journal records, %d pending orchestration messages, "
                "%d pending activities; re-applying %d checkpoints",
                len(records),
                len(pending.omsgs),
                len(pending.amsgs),
                len(pending.ops),
            )
            self.store.apply_ops(pending.ops)
            self.store.remove_unstarted({m.instance_id for m in pending.omsgs})
        with self.lock:
            self.activities.add(pending.amsgs)
            for m in pending.omsgs:
                self.inbox.deliver(m)
        self.store.journal.snapshot = self._snapshot
        self.store.journal.start(self._snapshot())
        self.store.writer.start()
        if self.store.row_processes is not None:
            self.store.row_processes.warm()
        self.timers.start()
        self.work.start_leases()

    def stop(self) -> None:
        """Stop dispatching, write queued table writes and close the journal (flushed)."""
        with self.lock:
            self.stopping = True
            self.cv.notify_all()
            self.timers.cv.notify_all()
        self.store.writer.close()
        if self.store.row_processes is not None:
            self.store.row_processes.close()
        self.store.journal.close()
        self.loader.shutdown(wait=False, cancel_futures=True)
        self.entities.stop()

    def _snapshot(self) -> list[dict[str, Any]]:
        # A compacted journal holds no table writes: write every queued one first (raises, and
        # so keeps the old segment, when storage does not take them).
        self.store.writer.flush_all()
        with self.lock:
            return recovery.pending_records(self)

    # -- clock and ids -------------------------------------------------------------------------

    def now(self) -> datetime:
        """A strictly increasing UTC clock (event timestamps are unique per process)."""
        t = time.time()
        with self.lock:
            if t <= self._last_ts:
                t = self._last_ts + 1e-6
            self._last_ts = t
        return datetime.fromtimestamp(t, UTC)

    def new_id(self) -> str:
        """A new message or execution id."""
        return uuid.uuid4().hex

    def new_event(self, **event: Any) -> pb.HistoryEvent:
        """A new history event (``eventId`` -1) stamped with the engine's clock."""
        return pb.HistoryEvent(eventId=-1, timestamp=ts(self.now()), **event)

    @property
    def tokens(self) -> dict[str, tuple[str, str, Stream]]:
        """The live completion tokens (token -> kind, key, stream)."""
        return self.work.tokens

    # -- worker RPCs ---------------------------------------------------------------------------

    def open_stream(self, request: pb.GetWorkItemsRequest) -> Stream:
        """A worker's GetWorkItems stream starts."""
        return self.work.open_stream(request)

    def close_stream(self, stream: Stream) -> None:
        """A worker's stream ended: its unfinished work goes to the other workers."""
        self.work.close_stream(stream)

    def next_work(self, stream: Stream) -> pb.WorkItem | None:
        """The next work item for ``stream`` (lock held by the caller), or None."""
        return self.work.next_work(stream)

    def complete_orchestration(self, resp: pb.OrchestratorResponse) -> None:
        """Apply a worker's OrchestratorResponse: checkpoint, send messages, acknowledge."""
        self.orchestrations.complete(resp)

    def complete_activity(self, resp: pb.ActivityResponse) -> None:
        """Turn an activity result into a TaskCompleted/TaskFailed message (durably)."""
        self.activities.complete(resp)

    def complete_entity(self, result: pb.EntityBatchResult) -> None:
        """Apply a worker's EntityBatchResult: the entity's step, its answers and signals."""
        self.entities.complete(result)

    def abandon(self, token: str) -> None:
        """A worker gave a work item back: make it available again."""
        with self.lock:
            self.work.abandon(token)

    # -- client RPCs ---------------------------------------------------------------------------

    def instance_state(self, instance_id: str) -> Snapshot | None:
        """The current state of an instance (memory first, else its Instances row)."""
        return self.clients.instance_state(instance_id)

    def wait_for(
        self, instance_id: str, predicate: Callable[[Snapshot], bool], timeout: float | None
    ) -> Snapshot | None:
        """Wait until ``predicate(snapshot)``; None if the instance does not exist."""
        return self.clients.wait_for(instance_id, predicate, timeout)

    def start_instance(self, req: pb.CreateInstanceRequest) -> str:
        """Start an instance durably; returns its id."""
        return self.clients.start_instance(req)

    def send_event(
        self, instance_id: str, event: pb.HistoryEvent, *, must_exist: bool = True
    ) -> None:
        """Queue an event (raise/terminate/suspend/resume) durably for an instance."""
        self.clients.send_event(instance_id, event, must_exist=must_exist)

    def rewind(self, instance_id: str, reason: str | None) -> None:
        """Rewind a failed instance."""
        rewind.request_rewind(self, instance_id, reason)

    def purge(self, instance_id: str, recursive: bool) -> int:
        """Delete a finished instance (and, recursively, its sub-orchestrations)."""
        return self.clients.purge(instance_id, recursive)

    def history(self, instance_id: str) -> list[pb.HistoryEvent] | None:
        """An instance's history (None if it does not exist)."""
        return self.clients.history(instance_id)

    # -- entity client RPCs (EntityArgumentError for a malformed id or token) ----------------

    def signal_entity(self, request: pb.SignalEntityRequest) -> None:
        """Queue an operation for an entity durably (held back until its scheduled time)."""
        entity_client.signal(self.entities, request)

    def get_entity(self, request: pb.GetEntityRequest) -> pb.GetEntityResponse:
        """An entity's metadata (and state); ``exists`` false when it has no state."""
        return entity_client.get(self.entities, request)

    def query_entities(self, request: pb.QueryEntitiesRequest) -> pb.QueryEntitiesResponse:
        """One page of entities by id prefix and last-modified window."""
        return entity_client.query(self.entities, request)

    def clean_entity_storage(
        self, request: pb.CleanEntityStorageRequest
    ) -> pb.CleanEntityStorageResponse:
        """Release orphaned locks and remove empty entities; returns the counts."""
        return entity_client.clean(self.entities, request)
