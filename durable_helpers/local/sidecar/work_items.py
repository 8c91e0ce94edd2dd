"""Work items: worker streams, their filters and limits, completion tokens, redelivery.

Owns the connected worker streams (``Stream``: one per ``GetWorkItems`` call, with the worker's
filters and concurrency limits per kind of work) and the completion tokens handed out with each
work item (token -> kind, key, stream). ``next_work`` asks each *source* of work in turn for
an item the stream may take; when a stream closes, or a worker abandons an item, the token's
source makes the work available again. A token stays valid until its work is completed, so a
late completion from a worker whose stream broke is still accepted once.

**Leases** (the visibility timeout of Durable Functions' queue messages): every token carries a
lease of ``lease_seconds`` (default :data:`DEFAULT_LEASE_SECONDS`, or the environment variable
``DURABLE_HELPERS_LEASE_SECONDS``). When it runs out before the work is completed (a worker
that hangs, a completion lost on its way, one that failed on storage for longer than the
store's patience) the work is made available again exactly as if the token's stream had broken;
the old token stays valid, so whichever completion comes first is applied and the other is
ignored. An activity still running when its lease ends may therefore run twice: choose a lease
longer than your longest activity.

Sources (``WorkSource``) are the orchestrator work items
(:class:`~durable_helpers.local.sidecar.orchestrations.Orchestrations`, kind ``"o"``), the
activities (:class:`~durable_helpers.local.sidecar.activities.Activities`, kind ``"a"``) and the
entity batches (:class:`~durable_helpers.local.sidecar.entities.hub.EntityHub`, kind ``"e"``).
Each has a token kind, the ``GetWorkItemsRequest`` field that limits it, the
``workItemFilters`` field that filters it, and the three methods below.

May call: the sources it is given. Every method except ``open_stream``/``close_stream`` expects
the engine's lock held.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import durabletask.internal.orchestrator_service_pb2 as pb

if TYPE_CHECKING:
    from durable_helpers.local.sidecar.engine import Engine

log = logging.getLogger("durable_helpers.local.sidecar")

#: No limit from the worker (a GetWorkItemsRequest limit of 0).
UNLIMITED = 1_000_000
#: Seconds a work item may stay uncompleted on a worker before it is handed out again.
DEFAULT_LEASE_SECONDS = 120.0
LEASE_ENV_VAR = "DURABLE_HELPERS_LEASE_SECONDS"


def lease_seconds_from_env(default: float = DEFAULT_LEASE_SECONDS) -> float:
    """The lease from ``DURABLE_HELPERS_LEASE_SECONDS`` if set, else ``default``.

    Example:
        >>> lease_seconds_from_env()  # without the variable set  # doctest: +SKIP
        120.0
    """
    text = os.environ.get(LEASE_ENV_VAR)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise ValueError(
            f"{LEASE_ENV_VAR}={text!r} is not a number of seconds above 0; unset it for the "
            f"default lease of {default:g} s."
        )
    return value


Filter = dict[str, frozenset[str]]


@dataclass
class Stream:
    """One worker's GetWorkItems stream: filters and limits per token kind, items in flight."""

    id: int
    filters: dict[str, Filter] = field(default_factory=dict)  # kind -> filter (absent: any)
    limits: dict[str, int] = field(default_factory=dict)  # kind -> most items in flight
    counts: dict[str, int] = field(default_factory=dict)  # kind -> items in flight
    tokens: set[str] = field(default_factory=set)
    closed: bool = False

    def has_room(self, kind: str) -> bool:
        return self.counts.get(kind, 0) < self.limits.get(kind, 0)

    def accepts(self, kind: str, name: str, version: str | None) -> bool:
        return matches(name, version, self.filters.get(kind))


def matches(name: str, version: str | None, filt: Filter | None) -> bool:
    """True when a worker's filter (None: no filter) accepts ``name``/``version``.

    Example:
        >>> f = build_filter([pb.OrchestrationFilter(name="Hello", versions=["1"])])
        >>> matches("Hello", "1", f), matches("Hello", "2", f), matches("Other", None, None)
        (True, False, True)
    """
    if filt is None:
        return True
    accepted = filt.get(name)
    if accepted is None:
        return False
    return not accepted or (version or "") in accepted


def build_filter(filters: Iterable[Any]) -> Filter:
    """Name -> accepted versions (empty: any version) from a worker's filter messages.

    Entity filters have no versions (and their names are lower-case, as entity ids).
    """
    result: Filter = {}
    for f in filters:
        result[f.name] = result.get(f.name, frozenset()) | frozenset(getattr(f, "versions", ()))
    return result


class WorkSource(Protocol):
    """One kind of work item handed to workers (see the module docstring)."""

    kind: str  # the token kind
    limit_field: str  # the GetWorkItemsRequest field that limits it
    filter_field: str  # the WorkItemFilters field that filters it

    def next_item(self, stream: Stream) -> pb.WorkItem | None:
        """The next item of this kind ``stream`` may take, with its token (lock held)."""

    def stream_lost(self, key: str, token: str) -> bool:
        """The stream holding ``token`` broke; True when its work was requeued (lock held)."""

    def abandon(self, key: str, token: str) -> None:
        """The worker gave the work item back (lock held)."""


class WorkItems:
    """Streams, tokens and the sources of work (lock held, except open/close)."""

    def __init__(
        self,
        engine: Engine,
        sources: Sequence[WorkSource],
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        self.engine = engine
        self.sources = list(sources)
        self._by_kind = {s.kind: s for s in self.sources}
        self.tokens: dict[str, tuple[str, str, Stream]] = {}  # token -> (kind, key, stream)
        self.lease_seconds = lease_seconds
        self.leases: dict[str, float] = {}  # token -> monotonic time its lease ends
        self.streams: dict[int, Stream] = {}
        self._stream_ids = itertools.count(1)
        self._token_ids = itertools.count(1)
        self._boot = uuid.uuid4().hex[:8]

    def open_stream(self, request: pb.GetWorkItemsRequest) -> Stream:
        """Register a worker's stream with its filters and limits (takes the lock)."""
        stream = Stream(next(self._stream_ids))
        for source in self.sources:
            if request.HasField("workItemFilters"):
                wanted = getattr(request.workItemFilters, source.filter_field)
                stream.filters[source.kind] = build_filter(wanted)
            stream.limits[source.kind] = getattr(request, source.limit_field) or UNLIMITED
        with self.engine.lock:
            self.streams[stream.id] = stream
        log.info("worker stream %d connected", stream.id)
        return stream

    def close_stream(self, stream: Stream) -> None:
        """The worker is gone: make its unfinished work available to other workers."""
        with self.engine.lock:
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
                if self._by_kind[kind].stream_lost(key, token):
                    self.leases.pop(token, None)  # handed out again: this lease is over
                    requeued += 1
            self.engine.cv.notify_all()
        log.info("worker stream %d disconnected; %d work item(s) redelivered", stream.id, requeued)

    def next_work(self, stream: Stream) -> pb.WorkItem | None:
        """The next work item for ``stream`` (lock held by the caller), or None."""
        for source in self.sources:
            if stream.has_room(source.kind):
                item = source.next_item(stream)
                if item is not None:
                    return item
        return None

    def abandon(self, token: str) -> None:
        """A worker gave a work item back: make it available again (lock held)."""
        entry = self.tokens.get(token)
        if entry is None:
            return
        kind, key, _ = entry
        self._by_kind[kind].abandon(key, token)

    def issue_token(self, kind: str, key: str, stream: Stream) -> str:
        """A new completion token for work ``key`` of ``kind`` sent on ``stream`` (lock held)."""
        token = f"{self._boot}-{next(self._token_ids)}"
        self.tokens[token] = (kind, key, stream)
        self.leases[token] = time.monotonic() + self.lease_seconds
        stream.tokens.add(token)
        stream.counts[kind] = stream.counts.get(kind, 0) + 1
        return token

    def key_of(self, token: str, kind: str) -> str | None:
        """The work key a live token of ``kind`` stands for, else None (lock held)."""
        entry = self.tokens.get(token)
        return entry[1] if entry and entry[0] == kind else None

    def forget_tokens(self, tokens: Iterable[str]) -> None:
        """The work is done (or taken back): these tokens are no longer valid (lock held)."""
        for token in tokens:
            self.leases.pop(token, None)
            entry = self.tokens.pop(token, None)
            if entry is not None:
                kind, _, stream = entry
                stream.tokens.discard(token)
                stream.counts[kind] -= 1

    # -- leases ----------------------------------------------------------------------------

    def start_leases(self) -> None:
        """Start the thread that hands out again the work whose lease ran out (once)."""
        threading.Thread(target=self._lease_loop, name="leases", daemon=True).start()

    def expire_leases(self, now: float | None = None) -> int:
        """Make the work of every token whose lease ran out available again (lock held).

        Returns how many work items were handed back. A token's lease ends once; the token
        stays valid until its work is completed.
        """
        now = time.monotonic() if now is None else now
        expired = [t for t, end in self.leases.items() if end <= now]
        requeued = 0
        for token in expired:
            del self.leases[token]
            entry = self.tokens.get(token)
            if entry is None:
                continue
            kind, key, stream = entry
            if self._by_kind[kind].stream_lost(key, token):
                requeued += 1
                log.warning(
                    "work item %s of %r on worker stream %d was not completed within its "
                    "lease of %g s: handed out again",
                    kind,
                    key,
                    stream.id,
                    self.lease_seconds,
                )
        if requeued:
            self.engine.cv.notify_all()
        return requeued

    def _lease_loop(self) -> None:
        engine = self.engine
        period = min(1.0, self.lease_seconds / 4)
        while not engine.stopping:
            time.sleep(period)
            with engine.lock:
                self.expire_leases()
