"""Storage I/O of the local task hub: the durable journal (inbox) and the task hub tables.

Two kinds of state live in Azurite:

* **The task hub tables and blobs**, in the real Durable Functions layout, built with
  :mod:`durable_helpers.schema`: ``{hub}History`` (rows + sentinel per checkpoint, in
  entity-group transactions of at most 100), ``{hub}Instances``, ``{h}-largemessages``.
  The control queues and the work-item queue are created so the hub looks complete. Their
  writes go through a :class:`~.table_writer.TableWriter` (write-behind, coalesced, lag bounded),
  whose requests (and a start's Instances insert) are made by helper processes
  (:mod:`~.row_writes`, ``table_writes="process"``, the default) or in this process
  (``"thread"``); every read here flushes the partitions it reads first, so the sidecar reads
  its own writes.
* **The journal** (:mod:`~.journal`): the sidecar's durable inbox, in append blobs of
  ``{h}-sidecar``, or with ``journal_dir`` in files of ``{journal_dir}/{h}`` (synced; much
  faster, see :mod:`~.journal_segments`). After a ``kill -9`` the journal is read back:
  messages minus acks are the pending work, and every partition with an op not known written is
  re-applied (writes are idempotent upserts with fixed keys, coalesced to their final state),
  which finishes a checkpoint cut in the middle.

Example:
    >>> store = Store(RestStorage.from_connection_string(conn), "MyHub")  # doctest: +SKIP
    >>> store.setup()  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from durable_helpers import schema
from durable_helpers.local.sidecar.journal import (
    STORAGE_PATIENCE_SECONDS,
    Journal,
    journal_container,
)
from durable_helpers.local.sidecar.journal_segments import (
    BlobSegments,
    check_no_file_journal,
    file_segments,
)
from durable_helpers.local.sidecar.rest import RestStorage, entity_to_wire
from durable_helpers.local.sidecar.row_writes import (
    RowWriterProcesses,
    is_row_op,
    table_writes_from_env,
    write_rows,
)
from durable_helpers.local.sidecar.table_writer import DEFAULT_LAG_SECONDS, TableWriter

__all__ = ["STORAGE_PATIENCE_SECONDS", "Journal", "Store", "journal_container"]

log = logging.getLogger("durable_helpers.local.sidecar")


class Store:
    """The task hub's tables, blobs and journal for one hub (names from :mod:`schema`)."""

    def __init__(
        self,
        rest: RestStorage,
        hub: str,
        *,
        table_lag: float = DEFAULT_LAG_SECONDS,
        journal_dir: Path | None = None,
        table_writes: str | None = None,
    ) -> None:
        self.rest = rest
        self.hub = hub
        self.names = schema.hub_names(hub)
        self.journal_dir = Path(journal_dir) if journal_dir is not None else None
        if table_writes is None:
            table_writes = table_writes_from_env()
        #: The write-behind's row writes in helper processes (``table_writes="process"``).
        self.row_processes = (
            RowWriterProcesses(rest, self.hub) if table_writes == "process" else None
        )
        self.journal = Journal(BlobSegments(rest, journal_container(hub)))
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
        container = journal_container(self.hub)
        self.rest.create_container(container)
        if self.journal_dir is None:
            check_no_file_journal(self.rest, container)
        elif isinstance(self.journal.store, BlobSegments):  # once, when setup runs twice
            folder = self.journal_dir / self.names.lower
            self.journal.relocate(file_segments(folder, self.rest, container))

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
            self.journal.note_written(ids)

    def upload_blobs(self, blobs: Iterable[tuple[str, bytes]]) -> None:
        """Upload large-payload blobs (before the rows that point at them)."""
        for name, data in blobs:
            self.rest.put_blob(self.names.largemessages_container, name, data)

    def apply_ops(self, ops: Iterable[Mapping[str, Any]]) -> None:
        """Apply journaled table writes: ``h`` history batches, ``i`` instance row, ``purge``
        (rows by the helper processes when there are, see :mod:`~.row_writes`)."""
        ops = list(ops)
        if self.row_processes is not None and all(is_row_op(op) for op in ops):
            self.row_processes(ops)
            return
        for op in ops:
            kind = op["t"]
            if is_row_op(op):
                write_rows(self.rest, self.names, [op])
            elif kind == "i":
                self.insert_instance_row(op["e"])
            elif kind == "purge":
                self.purge_partition(op["pk"])

    def insert_instance_row(self, entity: Mapping[str, Any]) -> bool:
        """Insert an Instances row; False when the instance already exists."""
        self.writer.flush(entity["PartitionKey"])
        if self.row_processes is not None:
            return self.row_processes.insert(entity)
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
