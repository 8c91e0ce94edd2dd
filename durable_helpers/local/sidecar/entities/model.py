"""The entity scheduler: per-entity state, its request queue, locks, and the next batch (pure).

No I/O and no threads here: :class:`EntityRecord` is what the task hub knows about one entity
(user state, the queue of requests that have arrived but not run, who holds its lock), and
:func:`plan_step` decides, as the Durable Task Framework's entity dispatcher does, what the
entity does next with the messages that arrived since its last step:

* ``release`` messages from the lock holder unlock it (from anyone else: ignored);
* ``op`` requests (calls, signals, lock requests) join the queue in arrival order; while the
  entity is locked, the holder's requests go first and nobody else's may run;
* a batch takes operations from the head of the queue and ends at the first lock request, which
  is granted after the batch: ``lockedBy`` = the orchestration, and the request moves on to the
  next entity of its lock set, or, at the last one, the grant goes back to the orchestration.

May call: nothing (pure data and functions).

Example:
    >>> rec = EntityRecord("@counter@c1")
    >>> step = plan_step(rec, [Incoming("m1", request=Request(id="r1", op="add", signal=True))])
    >>> [r.op for r in step.ops], step.queue
    (['add'], [])
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

#: Most operations one batch hands to a worker (DF uses 5000 outside Consumption plans).
MAX_BATCH_OPERATIONS = 1000


@dataclass(frozen=True)
class Request:
    """One ``op`` request: a call (``parent`` set, not ``signal``), a signal, or a lock request.

    ``raw`` is the request JSON as it arrived; it is written back unchanged into the queue of
    the scheduler state while the request waits.
    """

    id: str
    op: str | None = None
    input: str | None = None
    signal: bool = False
    parent: str | None = None
    parent_execution: str | None = None
    due: datetime | None = None
    lockset: tuple[str, ...] | None = None
    pos: int = 0
    raw: str = ""

    @property
    def is_lock(self) -> bool:
        """A lock request (``op`` is null and a lock set is given)."""
        return self.lockset is not None

    @property
    def is_call(self) -> bool:
        """A call: the caller waits for the result."""
        return not self.signal and not self.is_lock and self.parent is not None


@dataclass(frozen=True)
class Incoming:
    """A journaled message that reached the entity: a request, or a release from ``parent``."""

    msg_id: str
    request: Request | None = None
    release_parent: str | None = None


@dataclass
class EntityRecord:
    """What the task hub knows about one entity (mirrors its Instances row plus its inbox)."""

    instance_id: str
    state: str | None = None
    queue: list[Request] = field(default_factory=list)
    locked_by: str | None = None
    execution_id: str = ""
    modified: datetime | None = None  # CreatedTime of the latest step (DTFx: LastModifiedTime)
    updated: datetime | None = None
    stored: bool = False  # it has an Instances row
    engine: str = "core"


@dataclass
class Step:
    """What an entity does next: ``ops`` for a worker, then (maybe) grant ``lock``.

    ``consumed`` are the inbox messages folded into this step (acknowledged when it is
    committed); ``queue`` and ``locked_by`` are the record's values once it is committed.
    """

    consumed: list[str]
    ops: list[Request]
    lock: Request | None
    queue: list[Request]
    locked_by: str | None
    releases: int = 0

    @property
    def changes_anything(self) -> bool:
        """False when committing it would write the same rows again."""
        return bool(self.consumed or self.ops or self.lock)


def _may_run(req: Request, locked_by: str | None) -> bool:
    return locked_by is None or req.parent == locked_by


def plan_step(record: EntityRecord, inbox: list[Incoming]) -> Step:
    """Fold ``inbox`` into the record's queue and take the next batch (record unchanged).

    Example:
        >>> rec = EntityRecord("@a@1", locked_by="orch1")
        >>> waiting = Request(id="r2", op="get", parent="orch2")
        >>> plan_step(rec, [Incoming("m", request=waiting)]).ops
        []
    """
    locked_by = record.locked_by
    queue = list(record.queue)
    releases = 0
    for msg in inbox:
        if msg.request is not None:
            queue.append(msg.request)
        elif msg.release_parent is not None and msg.release_parent == locked_by:
            locked_by = None
            releases += 1
    if locked_by is not None:  # the lock holder's requests go first
        queue = [r for r in queue if r.parent == locked_by] + [
            r for r in queue if r.parent != locked_by
        ]
    ops: list[Request] = []
    lock: Request | None = None
    while queue and len(ops) < MAX_BATCH_OPERATIONS:
        head = queue[0]
        if not _may_run(head, locked_by):
            break
        if head.is_lock:
            if locked_by is not None:
                break  # a nested lock by the holder: the SDK forbids it; it waits
            lock = queue.pop(0)
            locked_by = lock.parent
            break
        ops.append(queue.pop(0))
    return Step(
        consumed=[m.msg_id for m in inbox],
        ops=ops,
        lock=lock,
        queue=queue,
        locked_by=locked_by,
        releases=releases,
    )


def forwarded_lock(lock: Request) -> tuple[str, Request] | None:
    """Where a granted lock request goes next: (next entity, request), or None at the last one.

    Example:
        >>> r = Request(id="cs", parent="o", lockset=("@a@1", "@b@1"))
        >>> forwarded_lock(r)[0], forwarded_lock(r)[1].pos
        ('@b@1', 1)
        >>> forwarded_lock(replace(r, pos=1)) is None
        True
    """
    assert lock.lockset is not None
    nxt = lock.pos + 1
    if nxt >= len(lock.lockset):
        return None
    return lock.lockset[nxt], replace(lock, pos=nxt, raw="")


def backlog(record: EntityRecord, inbox_size: int = 0) -> int:
    """Requests that have arrived and not run (the status's ``queueSize`` plus the inbox).

    Example:
        >>> backlog(EntityRecord("@a@1", queue=[Request(id="x", op="add")]), 2)
        3
    """
    return len(record.queue) + inbox_size


def as_plain(record: EntityRecord) -> dict[str, Any]:
    """The record as a plain dict (logs, tests).

    Example:
        >>> as_plain(EntityRecord("@a@1"))["instance_id"]
        '@a@1'
    """
    return {
        "instance_id": record.instance_id,
        "state": record.state,
        "queue": [r.id for r in record.queue],
        "locked_by": record.locked_by,
        "execution_id": record.execution_id,
    }
