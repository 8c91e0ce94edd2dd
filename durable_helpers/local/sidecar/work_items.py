"""Work items: worker streams, their filters and limits, completion tokens, redelivery.

Owns the connected worker streams (``Stream``: one per ``GetWorkItems`` call, with the worker's
filters and concurrency limits per kind of work) and the completion tokens handed out with each
work item (token -> kind, key, stream). ``next_work`` asks each *source* of work in turn for
an item the stream may take; when a stream closes, or a worker abandons an item, the token's
source makes the work available again. A token stays valid until its work is completed, so a
late completion from a worker whose stream broke is still accepted once.

Sources (``WorkSource``) are the orchestrator work items
(:class:`~durable_helpers.local.sidecar.orchestrations.Orchestrations`, kind ``"o"``) and the
activities (:class:`~durable_helpers.local.sidecar.activities.Activities`, kind ``"a"``). A new
kind of work item (durable entities) is one more source in ``Engine.__init__``'s list: a token
kind, the ``GetWorkItemsRequest`` field that limits it and the ``workItemFilters`` field that
filters it, and the three methods below.

May call: the sources it is given. Every method except ``open_stream``/``close_stream`` expects
the engine's lock held.
"""

from __future__ import annotations

import itertools
import logging
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
    """Name -> accepted versions (empty: any version) from a worker's filter messages."""
    result: Filter = {}
    for f in filters:
        result[f.name] = result.get(f.name, frozenset()) | frozenset(f.versions)
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

    def __init__(self, engine: Engine, sources: Sequence[WorkSource]) -> None:
        self.engine = engine
        self.sources = list(sources)
        self._by_kind = {s.kind: s for s in self.sources}
        self.tokens: dict[str, tuple[str, str, Stream]] = {}  # token -> (kind, key, stream)
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
            entry = self.tokens.pop(token, None)
            if entry is not None:
                kind, _, stream = entry
                stream.tokens.discard(token)
                stream.counts[kind] -= 1
