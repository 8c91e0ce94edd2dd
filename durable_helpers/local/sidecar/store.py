"""Storage I/O of the local task hub: the durable journal (inbox) and the task hub tables.

Two kinds of state live in Azurite:

* **The task hub tables and blobs**, in the real Durable Functions layout, built with
  :mod:`durable_helpers.schema`: ``{hub}History`` (rows + sentinel per checkpoint, in
  entity-group transactions of at most 100), ``{hub}Instances``, ``{h}-largemessages``.
  The control queues and the work-item queue are created so the hub looks complete. Their
  writes go through a :class:`~.table_writer.TableWriter` (write-behind, coalesced, lag bounded);
  every read here flushes the partitions it reads first, so the sidecar reads its own writes.
* **The journal**: the sidecar's durable inbox. Every acknowledged change is first appended, as
  one JSON line, to an append blob in ``{h}-sidecar`` (``journal-{n}.log``); one append is
  atomic, and concurrent callers share an append (group commit). A record carries the messages
  it creates (orchestration events, activity work), the ids of the messages it consumes, and the
  table writes it implies (each with an id ``n``; ``w`` records list the ids written). After a
  ``kill -9`` the journal is read back: messages minus acks are the pending work, and every
  partition with an op not known written is re-applied (writes are idempotent upserts with fixed
  keys, coalesced to their final state), which finishes a checkpoint cut in the middle.

Example:
    >>> store = Store(RestStorage.from_connection_string(conn), "MyHub")  # doctest: +SKIP
    >>> store.setup()  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from durable_helpers import schema
from durable_helpers.local.sidecar.rest import RestStorage, StorageError, entity_to_wire
from durable_helpers.local.sidecar.table_writer import DEFAULT_LAG_SECONDS, TableWriter

log = logging.getLogger("durable_helpers.local.sidecar")

#: Largest append-blob block (Azure and Azurite: 4 MiB); records above it go to their own blob.
MAX_BLOCK = 4 * 1024 * 1024 - 1024
#: Rotate the journal after this many appends (an append blob takes at most 50,000 blocks).
ROTATE_AFTER_APPENDS = 5_000
ROTATE_AFTER_BYTES = 256 * 1024 * 1024
#: Group commit: when fewer records than this are waiting, and the last append carried more than
#: one (commits are concurrent), linger this long for more; a lone caller is not kept waiting.
GROUP_COMMIT_MIN = 4
GROUP_COMMIT_LINGER = 0.002
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
    """Group-committed, append-only journal in append blobs (one writer thread).

    ``append(record)`` returns once the record is durable. Callers call ``begin()`` before
    ``append`` and ``done()`` once the record is applied to memory and tables, so that rotation
    (compaction) only snapshots fully applied state.
    """

    def __init__(self, rest: RestStorage, container: str) -> None:
        self._rest = rest
        self._container = container
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
        # Ids of table ops (``n``), unique within this process: a restart starts a new segment.
        self._op_ids = itertools.count(time.time_ns())

    # -- reading (recovery) ----------------------------------------------------------------

    def segments(self) -> list[str]:
        """Existing segment names, oldest first."""
        names = [
            n for n in self._rest.list_blobs(self._container, "journal-") if n.endswith(".log")
        ]
        return sorted(names)

    def read_all(self) -> list[dict[str, Any]]:
        """Every record of every segment, in order."""
        records: list[dict[str, Any]] = []
        for name in self.segments():
            data = self._rest.get_blob(self._container, name) or b""
            for line in data.split(b"\n"):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    log.error("journal %s: skipping an unreadable record", name)
                    continue
                if "ref" in record:
                    blob = self._rest.get_blob(self._container, record["ref"])
                    if blob is None:
                        log.error("journal record blob %s is missing", record["ref"])
                        continue
                    record = json.loads(blob)
                records.append(record)
        return records

    # -- writing ---------------------------------------------------------------------------

    def start(self, first_records: Iterable[dict[str, Any]] = ()) -> None:
        """Open a fresh segment holding ``first_records`` (the compacted state), drop older ones."""
        old = self.segments()
        last = int(old[-1][len("journal-") : -len(".log")]) if old else 0
        self._open_segment(last + 1, first_records)
        for name in old:
            self._rest.delete_blob(self._container, name)
        self._thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
        self._thread.start()

    def _open_segment(self, number: int, records: Iterable[dict[str, Any]]) -> None:
        name = f"journal-{number:010d}.log"
        self._rest.create_append_blob(self._container, name)
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
            self._rest.put_blob(self._container, ref, line)
            line = json.dumps({"ref": ref}).encode()
        return line + b"\n"

    def _append(self, data: bytes) -> None:
        self._rest.append_block(self._container, self._name, data)
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
                if len(self._queue) < GROUP_COMMIT_MIN and self._last_group > 1 and not self._stop:
                    self._cv.wait(GROUP_COMMIT_LINGER)  # let concurrent commits join this append
                batch: list[tuple[bytes, _Waiter | None]] = []
                size = 0
                while self._queue and (not batch or size + len(self._queue[0][0]) <= MAX_BLOCK):
                    item = self._queue.pop(0)
                    batch.append(item)
                    size += len(item[0])
                self._last_group = sum(1 for _, waiter in batch if waiter is not None)
            error: BaseException | None = None
            for attempt in range(5):
                try:
                    self._append(b"".join(line for line, _ in batch))
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
            self._rest.delete_blob(self._container, old)
        log.info("journal rotated to %s", self._name)

    def close(self) -> None:
        """Flush pending appends and stop the writer."""
        with self._cv:
            self._stop = True
            self._cv.notify()
        if self._thread is not None:
            self._thread.join(10)


class Store:
    """The task hub's tables, blobs and journal for one hub (names from :mod:`schema`)."""

    def __init__(
        self, rest: RestStorage, hub: str, *, table_lag: float = DEFAULT_LAG_SECONDS
    ) -> None:
        self.rest = rest
        self.hub = hub
        self.names = schema.hub_names(hub)
        self.journal = Journal(rest, journal_container(hub))
        self.writer = TableWriter(
            self.apply_ops,
            lag=table_lag,
            patience=STORAGE_PATIENCE_SECONDS,
            on_written=self._journal_written,
        )
        blob_ep = rest._endpoints["blob"]
        self.largemessages_url = (
            f"{blob_ep.scheme}://{blob_ep.host}:{blob_ep.port}{blob_ep.base_path}/"
            f"{self.names.largemessages_container}"
        )

    def setup(self) -> None:
        """Create the hub's tables, queues and containers (existing ones are kept)."""
        self.rest.create_table(self.names.history_table)
        self.rest.create_table(self.names.instances_table)
        for queue in [*self.names.control_queues(), self.names.workitems_queue]:
            self.rest.create_queue(queue)
        self.rest.create_container(self.names.largemessages_container)
        self.rest.create_container(journal_container(self.hub))

    # -- writes -----------------------------------------------------------------------------

    def write(
        self,
        ops: Iterable[dict[str, Any]],
        *,
        now: bool = False,
        then: Callable[[], None] | None = None,
    ) -> None:
        """Write journaled table ops behind (``now``: before returning; ``then``: call it once
        they are written, without waiting for the lag; see ``TableWriter.submit``)."""
        self.writer.submit(ops, now=now, then=then)

    def _journal_written(self, ids: list[Any]) -> None:
        # Closing: recovery re-applies those partitions, which is harmless.
        with contextlib.suppress(RuntimeError):
            self.journal.append({"w": ids}, wait=False)

    def upload_blobs(self, blobs: Iterable[tuple[str, bytes]]) -> None:
        """Upload large-payload blobs (before the rows that point at them)."""
        for name, data in blobs:
            self.rest.put_blob(self.names.largemessages_container, name, data)

    def apply_ops(self, ops: Iterable[Mapping[str, Any]]) -> None:
        """Apply journaled table writes: ``h`` history batches, ``i`` instance row, ``purge``."""
        for op in ops:
            kind = op["t"]
            if kind == "h":
                for batch in op["batches"]:
                    self.rest.table_batch(self.names.history_table, [("upsert", e) for e in batch])
            elif kind == "i" and op.get("ins"):
                self.insert_instance_row(op["e"])
            elif kind == "i":
                self.rest.upsert_entity(self.names.instances_table, op["e"])
            elif kind == "purge":
                self.purge_partition(op["pk"])

    def insert_instance_row(self, entity: Mapping[str, Any]) -> bool:
        """Insert an Instances row; False when the instance already exists."""
        self.writer.flush(entity["PartitionKey"])
        return self.rest.insert_entity(self.names.instances_table, entity)

    def delete_instance_row(self, pk: str) -> None:
        """Delete an Instances row (a start that did not become durable)."""
        self.writer.flush(pk)
        self.rest.delete_entity(self.names.instances_table, pk, "")

    def remove_unstarted(self, starting: set[str]) -> int:
        """Delete Pending rows of starts never acknowledged; returns how many (at recovery).

        A start inserts its Pending row while its journal record is appended; a crash between
        the two leaves a row with no journal record, no History and no instance behind it.
        Every Pending instance that did start has its start message in ``starting`` (the
        pending messages' instance ids, from the journal). Entities are never Pending.
        """
        removed = 0
        rows = self.rest.query_all(
            self.names.instances_table,
            "RuntimeStatus eq 'Pending'",
            select=["PartitionKey"],
        )
        for row in list(rows):
            pk = row["PartitionKey"]
            if schema.unescape_partition_key(pk) in starting or pk.startswith("@"):
                continue
            history = self.rest.query_entities(
                self.names.history_table,
                f"PartitionKey eq {schema.odata_string(pk)}",
                top=1,
                select=["RowKey"],
            )[0]
            if history:
                continue
            log.warning("removing the Pending row of %r: its start was never acknowledged", pk)
            self.rest.delete_entity(self.names.instances_table, pk, "")
            removed += 1
        return removed

    def purge_partition(self, pk: str) -> None:
        """Delete an instance's History rows, Instances row and large-payload blobs."""
        keys = list(
            self.rest.query_all(
                self.names.history_table,
                f"PartitionKey eq {schema.odata_string(pk)}",
                select=["PartitionKey", "RowKey"],
            )
        )
        for start in range(0, len(keys), 100):
            chunk = [
                {"PartitionKey": k["PartitionKey"], "RowKey": k["RowKey"]}
                for k in keys[start : start + 100]
            ]
            self.rest.table_batch(self.names.history_table, [("delete", e) for e in chunk])
        self.rest.delete_entity(self.names.instances_table, pk, "")
        for name in self.rest.list_blobs(self.names.largemessages_container, pk + "/"):
            self.rest.delete_blob(self.names.largemessages_container, name)

    # -- reads ------------------------------------------------------------------------------

    def get_instance_row(self, instance_id: str) -> dict[str, Any] | None:
        """The Instances row of an instance (large Input/Output resolved), or None."""
        pk = schema.escape_partition_key(instance_id)
        self.writer.flush(pk)
        row = self.rest.get_entity(self.names.instances_table, pk, "")
        return self.resolve_instance_payloads(row) if row else None

    def resolve_instance_payloads(self, row: dict[str, Any]) -> dict[str, Any]:
        """Replace blob URLs in Input/Output with the payloads they point at."""
        prefix = self.largemessages_url + "/"
        for prop in ("Input", "Output", "CustomStatus"):
            value = row.get(prop)
            if isinstance(value, str) and value.startswith(prefix):
                from urllib.parse import unquote

                data = self.rest.get_blob(
                    self.names.largemessages_container, unquote(value[len(prefix) :])
                )
                if data is not None:
                    row[prop] = schema.decompress_payload(data)
        return row

    def read_history(self, instance_id: str) -> tuple[str | None, list[dict[str, Any]]]:
        """(execution id, rows of the current execution in RowKey order), blobs resolved."""
        pk = schema.escape_partition_key(instance_id)
        self.writer.flush(pk)
        rows = list(
            self.rest.query_all(
                self.names.history_table, f"PartitionKey eq {schema.odata_string(pk)}"
            )
        )
        sentinel = next((r for r in rows if r["RowKey"] == schema.SENTINEL_ROW_KEY), None)
        events = sorted(
            (r for r in rows if r["RowKey"] != schema.SENTINEL_ROW_KEY), key=lambda r: r["RowKey"]
        )
        execution_id = sentinel.get("ExecutionId") if sentinel else None
        if execution_id is None and events:
            execution_id = events[0].get("ExecutionId")
        current: list[dict[str, Any]] = []
        for row in events:
            if row.get("ExecutionId") != execution_id:
                break
            for key in list(row):
                if key.endswith(schema.BLOB_NAME_SUFFIX) and row[key]:
                    data = self.rest.get_blob(self.names.largemessages_container, row[key])
                    if data is not None:
                        row[key[: -len(schema.BLOB_NAME_SUFFIX)]] = schema.decompress_payload(data)
            current.append(row)
        return execution_id, current

    def query_instances(
        self, filter: str | None, top: int | None, token: tuple[str, str] | None
    ) -> tuple[list[dict[str, Any]], tuple[str, str] | None]:
        """One page of Instances rows (every queued write flushed first)."""
        self.writer.flush_all()
        return self.rest.query_entities(
            self.names.instances_table, filter, top=top, continuation=token
        )


def wire(entity: Mapping[str, Any]) -> dict[str, Any]:
    """A schema entity in its JSON wire form (what the journal stores)."""
    return entity_to_wire(entity)
