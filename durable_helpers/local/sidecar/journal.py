"""The sidecar's journal: every acknowledged change, appended and durable before it is answered.

Every acknowledged change is first appended, as one JSON line, to the current segment
(``journal-{n}.log``) of a :mod:`~.journal_segments` store: append blobs in the hub's
``{h}-sidecar`` container, or files in a local folder. One append is atomic, and concurrent
callers share an append (group commit). A record carries the messages it creates (orchestration
events, activity work), the ids of the messages it consumes, and the table writes it implies
(each with an id ``n``; ``w`` records list the ids written). After a ``kill -9`` the journal is
read back (see ``recovery``). Rotation writes the live state into a new segment and deletes the
older ones.

Example:
    >>> journal = Journal(BlobSegments(rest, journal_container("MyHub")))  # doctest: +SKIP
    >>> journal.start(); journal.append({"m": []})  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from durable_helpers import schema
from durable_helpers.local.sidecar.journal_segments import SegmentStore
from durable_helpers.local.sidecar.rest import StorageError

log = logging.getLogger("durable_helpers.local.sidecar")

#: Largest append-blob block (Azure and Azurite: 4 MiB); records above it go to their own blob.
MAX_BLOCK = 4 * 1024 * 1024 - 1024
#: Rotate the journal after this many appends (an append blob takes at most 50,000 blocks).
ROTATE_AFTER_APPENDS = 5_000
ROTATE_AFTER_BYTES = 256 * 1024 * 1024
#: Group commit: when fewer records than this are waiting, and the last append carried more than
#: one (commits are concurrent), linger for more (as long as the segment store's ``linger``); a
#: lone caller is not kept waiting.
GROUP_COMMIT_MIN = 4
#: Seconds a worker's completion keeps retrying while storage does not answer (Azurite stopped
#: or stalled) before it fails; the work item's lease then hands the work out again.
STORAGE_PATIENCE_SECONDS = 60.0


def journal_container(hub: str) -> str:
    """The blob container of the sidecar's journal (our own resource, not part of DTFx).

    Example:
        >>> journal_container("DurableFunctionsHub")
        'durablefunctionshub-sidecar'
    """
    return f"{schema.hub_names(hub).lower}-sidecar"


@dataclass
class _Waiter:
    event: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class Journal:
    """Group-committed, append-only journal in ``segments`` (one writer thread).

    ``append(record)`` returns once the record is durable. Callers call ``begin()`` before
    ``append`` and ``done()`` once the record is applied to memory and tables, so that rotation
    (compaction) only snapshots fully applied state. See ``relocate`` for a journal that moves
    to another store.
    """

    def __init__(self, segments: SegmentStore) -> None:
        self.store = segments
        self._earlier: list[SegmentStore] = []  # stores read first, emptied by ``start``
        self._cv = threading.Condition()
        self._queue: list[tuple[bytes, _Waiter | None]] = []
        self._segment = 0
        self._appends = 0
        self._bytes = 0
        self._outstanding = 0
        self._outstanding_cv = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.snapshot: Callable[[], list[dict[str, Any]]] | None = None
        self.appends_total = 0
        self._last_group = 0  # records waited for in the last append
        self._written: list[Any] = []  # ids of table ops written, for the next append's "w"
        # Ids of table ops (``n``), unique within this process: a restart starts a new segment.
        self._op_ids = itertools.count(time.time_ns())

    def relocate(self, segments: SegmentStore) -> None:
        """Keep new segments in ``segments``; the current store's are read first, then emptied
        by ``start`` (before ``start`` only)."""
        self._earlier.append(self.store)
        self.store = segments

    # -- reading (recovery) ----------------------------------------------------------------

    @staticmethod
    def _segments_of(store: SegmentStore) -> list[str]:
        return sorted(n for n in store.names("journal-") if n.endswith(".log"))

    def segments(self) -> list[str]:
        """Existing segment names in this journal's store, oldest first."""
        return self._segments_of(self.store)

    def _all_segments(self) -> list[tuple[SegmentStore, str]]:
        stores = [*self._earlier, self.store]
        return [(store, name) for store in stores for name in self._segments_of(store)]

    def read_all(self) -> list[dict[str, Any]]:
        """Every record of every segment (earlier stores first), in order."""
        records: list[dict[str, Any]] = []
        for store, name in self._all_segments():
            data = store.read(name) or b""
            for line in data.split(b"\n"):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    log.error("journal %s: skipping an unreadable record", name)
                    continue
                if "ref" in record:
                    blob = store.read(record["ref"])
                    if blob is None:
                        log.error("journal record %s is missing", record["ref"])
                        continue
                    record = json.loads(blob)
                records.append(record)
        return records

    # -- writing ---------------------------------------------------------------------------

    def start(self, first_records: Iterable[dict[str, Any]] = ()) -> None:
        """Open a fresh segment holding ``first_records`` (the compacted state), drop older ones."""
        old = self._all_segments()
        last = max((int(n[len("journal-") : -len(".log")]) for _, n in old), default=0)
        self._open_segment(last + 1, first_records)
        for store, name in old:
            store.delete(name)
        self._earlier = []
        self._thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
        self._thread.start()

    def _open_segment(self, number: int, records: Iterable[dict[str, Any]]) -> None:
        name = f"journal-{number:010d}.log"
        self.store.create(name)
        self._segment = number
        self._appends = 0
        self._bytes = 0
        chunk: list[bytes] = []
        size = 0
        for record in records:
            line = self._encode(record)
            if size + len(line) > MAX_BLOCK and chunk:
                self._append(b"".join(chunk))
                chunk, size = [], 0
            chunk.append(line)
            size += len(line)
        if chunk:
            self._append(b"".join(chunk))

    @property
    def _name(self) -> str:
        return f"journal-{self._segment:010d}.log"

    def _encode(self, record: Mapping[str, Any]) -> bytes:
        line = json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if len(line) + 1 > MAX_BLOCK:
            ref = f"records/{time.time_ns()}-{id(record):x}.json"
            self.store.put(ref, line)
            line = json.dumps({"ref": ref}).encode()
        return line + b"\n"

    def _append(self, data: bytes) -> None:
        self.store.append(self._name, data)
        self._appends += 1
        self._bytes += len(data)
        self.appends_total += 1

    def append(
        self,
        record: Mapping[str, Any],
        *,
        wait: bool = True,
        patience: float = 0.0,
        meanwhile: Callable[[], None] | None = None,
    ) -> None:
        """Make ``record`` durable (group commit); with ``wait=False`` return at once.

        ``meanwhile``: called once while the record is being appended (its exception is raised
        after the record is durable), for work that may overlap with the append.

        ``patience``: seconds to keep trying while storage does not answer, for callers that
        would rather wait for storage to come back than fail (a worker's completion); 0 fails
        after the writer's own few attempts (a client's call: it gets a clear error at once).
        Each table op of the record gets its id ``n`` (in place, so the caller's ops carry it).
        """
        for op in record.get("ops", ()):
            op.setdefault("n", next(self._op_ids))
        line = self._encode(record)
        deadline = time.monotonic() + patience
        failed: BaseException | None = None
        while True:
            waiter = _Waiter() if wait else None
            with self._cv:
                if self._stop:
                    raise RuntimeError("the journal is closed")
                self._queue.append((line, waiter))
                self._cv.notify()
            if waiter is None:
                return
            if meanwhile is not None:
                try:
                    meanwhile()
                except Exception as exc:  # raised once the record's own fate is known
                    failed = exc
                else:
                    failed = None
                meanwhile = None
            waiter.event.wait()
            if waiter.error is None and failed is not None:
                raise failed
            if waiter.error is None:
                return
            left = deadline - time.monotonic()
            if left <= 0 or not isinstance(waiter.error, (StorageError, OSError)):
                raise waiter.error
            log.warning("journal append failed; trying again for up to %.0f s", left)
            time.sleep(min(1.0, left))

    def note_written(self, ids: Iterable[Any]) -> None:
        """Note table ops (by id ``n``) as written to the tables: a ``{"w": [...]}`` record goes
        with the next append (nobody waits for it, so it never costs an append of its own; one
        lost in a crash makes recovery write those partitions again, which is harmless)."""
        with self._cv:
            if self._stop:
                raise RuntimeError("the journal is closed")
            self._written.extend(ids)

    def begin(self) -> None:
        """Note that appended work is being applied (rotation waits for ``done``)."""
        with self._outstanding_cv:
            self._outstanding += 1

    def done(self) -> None:
        """The work noted by ``begin`` is applied to memory and tables."""
        with self._outstanding_cv:
            self._outstanding -= 1
            self._outstanding_cv.notify_all()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._stop:
                    self._cv.wait()
                if not self._queue and self._stop:
                    return
                linger = self.store.linger
                if (
                    linger
                    and len(self._queue) < GROUP_COMMIT_MIN
                    and self._last_group > 1
                    and not self._stop
                ):
                    self._cv.wait(linger)  # let concurrent commits join this append
                if self._written:  # ride along with this append
                    self._queue.insert(0, (self._encode({"w": self._written}), None))
                    self._written = []
                batch: list[tuple[bytes, _Waiter | None]] = []
                size = 0
                while self._queue and (not batch or size + len(self._queue[0][0]) <= MAX_BLOCK):
                    item = self._queue.pop(0)
                    batch.append(item)
                    size += len(item[0])
                self._last_group = sum(1 for _, waiter in batch if waiter is not None)
            data = b"".join(line for line, _ in batch)
            error: BaseException | None = None
            for attempt in range(5):
                try:
                    self._append(data)
                    error = None
                    break
                except (StorageError, OSError) as exc:
                    error = exc
                    log.warning("journal append failed (attempt %d): %s", attempt + 1, exc)
                    time.sleep(0.2 * (attempt + 1))
            for _, waiter in batch:
                if waiter is not None:
                    waiter.error = error
                    waiter.event.set()
            if self._appends >= ROTATE_AFTER_APPENDS or self._bytes >= ROTATE_AFTER_BYTES:
                self._rotate()

    def _rotate(self) -> None:
        """Compact: once all appended work is applied, start a segment with the live state."""
        if self.snapshot is None:
            return
        with self._outstanding_cv:
            # Callers ``begin`` before they queue their record; those still queued go to the new
            # segment, every other one must be fully applied before the snapshot is taken.
            while True:
                with self._cv:
                    queued = sum(1 for _, w in self._queue if w is not None)
                if self._outstanding <= queued:
                    break
                self._outstanding_cv.wait(0.05)
            old = self._name
            try:
                self._open_segment(self._segment + 1, self.snapshot())
            except Exception:  # keep writing to the old segment; try again later
                log.exception("journal rotation failed")
                return
            self.store.delete(old)
        log.info("journal rotated to %s", self._name)

    def close(self) -> None:
        """Flush pending appends (and written ids) and stop the writer."""
        with self._cv:
            self._stop = True
            if self._written and self._thread is not None:
                self._queue.append((self._encode({"w": self._written}), None))
                self._written = []
            self._cv.notify()
        if self._thread is not None:
            self._thread.join(10)
        close = getattr(self.store, "close", None)
        if close is not None:
            close()
