"""Activities: the queue of activity work items, handing them to workers, and their results.

Owns the pending activities (``AMsg`` by id, in a queue; a :class:`~.work_items.WorkSource` of
kind ``"a"``): handing the next one a stream's filters accept to it (an activity of an instance
that has finished is dropped instead), putting it back when its stream breaks or its worker
abandons it, and ``complete``: turning a worker's result into the TaskCompleted/TaskFailed
message for its orchestration, journaled before it is acknowledged (waiting up to the store's
patience for storage that does not answer; past it the work item's lease hands it out again).

May call: the inbox (deliver the result, drop stale work), work items (tokens), the journal.
``complete`` takes the lock itself and journals outside it; every other method expects it held.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import durabletask.internal.orchestrator_service_pb2 as pb

from durable_helpers.local.sidecar.state import AMsg, OMsg
from durable_helpers.local.sidecar.store import STORAGE_PATIENCE_SECONDS
from durable_helpers.local.sidecar.work_items import Stream

if TYPE_CHECKING:
    from durable_helpers.local.sidecar.engine import Engine

log = logging.getLogger("durable_helpers.local.sidecar")


class Activities:
    """Activity work items (kind ``"a"``; lock held, except ``complete``)."""

    kind = "a"
    limit_field = "maxConcurrentActivityWorkItems"
    filter_field = "activities"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.pending: dict[str, AMsg] = {}
        self.queue: deque[str] = deque()

    def add(self, amsgs: Iterable[AMsg]) -> None:
        """Queue durable activity work items (lock held)."""
        for amsg in amsgs:
            self.pending[amsg.id] = amsg
            self.queue.append(amsg.id)

    def messages(self) -> Iterator[AMsg]:
        """The pending activities (lock held)."""
        return iter(self.pending.values())

    def next_item(self, stream: Stream) -> pb.WorkItem | None:
        """The next queued activity ``stream`` accepts, with its token (lock held)."""
        inbox = self.engine.inbox
        skipped: list[str] = []
        item = None
        while self.queue:
            aid = self.queue.popleft()
            amsg = self.pending.get(aid)
            if amsg is None or amsg.dispatched:
                continue
            if not stream.accepts(self.kind, amsg.request.name, amsg.request.version.value or None):
                skipped.append(aid)
                continue
            owner_id = amsg.request.orchestrationInstance.instanceId
            owner = inbox.active.get(owner_id)
            if (owner is None and owner_id in inbox.finished) or (
                owner is not None and owner.loaded and owner.terminal
            ):
                del self.pending[aid]
                inbox.drop([amsg], "activity of a finished instance")
                continue
            amsg.dispatched = True
            token = self.engine.work.issue_token(self.kind, aid, stream)
            amsg.tokens.add(token)
            item = pb.WorkItem(activityRequest=amsg.request, completionToken=token)
            break
        self.queue.extendleft(reversed(skipped))
        return item

    def stream_lost(self, key: str, token: str) -> bool:
        """Put the activity back at the front of the queue (not while its result is committed)."""
        amsg = self.pending.get(key)
        if amsg is None or not amsg.dispatched or amsg.completing:
            return False
        amsg.dispatched = False
        self.queue.appendleft(amsg.id)
        return True

    def abandon(self, key: str, token: str) -> None:
        """Put the activity back at the end of the queue."""
        amsg = self.pending.get(key)
        self.engine.work.forget_tokens([token])
        if amsg is not None and amsg.dispatched:
            amsg.dispatched = False
            amsg.tokens.discard(token)
            self.queue.append(amsg.id)
            self.engine.cv.notify_all()

    def complete(self, resp: pb.ActivityResponse) -> None:
        """Turn an activity result into a TaskCompleted/TaskFailed message (durably)."""
        engine = self.engine
        with engine.lock:
            key = engine.work.key_of(resp.completionToken, self.kind)
            amsg = self.pending.get(key) if key is not None else None
            if amsg is None or amsg.completing:
                log.info(
                    "ignoring a stale activity completion for %r task %d",
                    resp.instanceId,
                    resp.taskId,
                )
                engine.work.forget_tokens([resp.completionToken])
                return
            amsg.completing = True
        req = amsg.request
        if resp.HasField("failureDetails"):
            ev = engine.new_event(
                taskFailed=pb.TaskFailedEvent(
                    taskScheduledId=req.taskId, failureDetails=resp.failureDetails
                ),
            )
        else:
            ev = engine.new_event(
                taskCompleted=pb.TaskCompletedEvent(
                    taskScheduledId=req.taskId,
                    result=resp.result if resp.HasField("result") else None,
                ),
            )
        msg = OMsg(engine.new_id(), req.orchestrationInstance.instanceId, ev)
        journal = engine.store.journal
        journal.begin()
        try:
            try:
                journal.append(
                    {"m": [msg.record()], "a": [amsg.id]}, patience=STORAGE_PATIENCE_SECONDS
                )
            except Exception:
                with engine.lock:
                    amsg.completing = False
                raise
            with engine.lock:
                self.pending.pop(amsg.id, None)
                engine.work.forget_tokens(amsg.tokens)
                engine.inbox.deliver(msg)
        finally:
            journal.done()
