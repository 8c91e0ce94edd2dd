"""Write-behind of the journaled table writes: per partition, in order, coalesced, lag bounded.

A checkpoint's table writes (History batches, the Instances row; ``ops`` in the journal's
``{"t": ...}`` form) are durable in the journal before anything is acknowledged, so they need
not reach the tables before the RPC returns. ``TableWriter.submit`` queues them per partition
(one instance's ops stay in order) and a flusher thread writes each partition's queue at most
``lag`` seconds after its oldest op was queued, as few requests as the ops allow
(:func:`coalesce`: the History rows of several checkpoints in one entity-group transaction, only
the newest Instances row). An instance that finishes is written at once (``now=True``), before
its completion is visible, and every read of the tables the sidecar makes flushes the partitions
it reads first (``flush``/``flush_all``), so the sidecar always reads its own writes; other
readers of the tables see each partition complete (a batch carries its sentinel, RowKeys have no
gaps) and at most ``lag`` seconds (plus the time to write a backlog) behind.

After a successful write the writer journals the ids of the ops it wrote (a ``{"w": [...]}``
record, not waited for), so that recovery re-applies only partitions with unwritten ops
(:func:`~.recovery.replay`).

May call: the store's ``apply_ops`` (through the ``write`` callable) and the journal (``w``
records); it holds none of the engine's locks.

Example:
    >>> writes = []
    >>> writer = TableWriter(writes.append, lag=60)
    >>> writer.start()
    >>> writer.submit([{"t": "i", "pk": "a", "e": {"RowKey": "", "V": 1}, "n": 1}])
    >>> writer.submit([{"t": "i", "pk": "a", "e": {"RowKey": "", "V": 2}, "n": 2}])
    >>> writer.flush("a")
    True
    >>> [op["e"]["V"] for ops in writes for op in ops]
    [2]
    >>> writer.close()
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from durable_helpers import schema

log = logging.getLogger("durable_helpers.local.sidecar")

#: Default seconds a partition's writes may wait to be coalesced (``DURABLE_HELPERS_TABLE_LAG``).
DEFAULT_LAG_SECONDS = 1.0
#: History rows per entity-group transaction besides the sentinel (Azure: 100 entities at most).
BATCH_ROWS = 99
#: Flusher threads (partitions are written concurrently, each partition's ops in order).
FLUSHERS = 2

Op = dict[str, Any]


def lag_from_env(default: float = DEFAULT_LAG_SECONDS) -> float:
    """The write-behind lag: ``DURABLE_HELPERS_TABLE_LAG`` seconds (0: write at once).

    Example:
        >>> lag_from_env(1.0) >= 0
        True
    """
    raw = os.environ.get("DURABLE_HELPERS_TABLE_LAG")
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(
            f"DURABLE_HELPERS_TABLE_LAG must be a number of seconds (0 or more), not {raw!r}"
        ) from None
    if value < 0:
        raise ValueError(f"DURABLE_HELPERS_TABLE_LAG must be 0 or more seconds, not {value}")
    return value


def coalesce(ops: Iterable[Op]) -> list[Op]:
    """One partition's ops, in order, as the fewest writes that leave the same tables.

    History batches of one execution merge (rows by RowKey, the newest sentinel, re-cut into
    transactions of ``BATCH_ROWS`` rows + sentinel, lowest RowKeys first); of the Instances rows
    only the newest is kept, written after the History rows. Any other op (``purge``, an insert)
    is a barrier that keeps its place.

    Example:
        >>> def h(rk, ex="e1"):
        ...     rows = [{"RowKey": rk}, {"RowKey": schema.SENTINEL_ROW_KEY, "ExecutionId": ex}]
        ...     return {"t": "h", "pk": "p", "batches": [rows]}
        >>> out = coalesce([h("01"), {"t": "i", "pk": "p", "e": {"V": 1}}, h("02"),
        ...                 {"t": "i", "pk": "p", "e": {"V": 2}}])
        >>> [op["t"] for op in out], [len(b) for b in out[0]["batches"]], out[1]["e"]
        (['h', 'i'], [3], {'V': 2})
    """
    out: list[Op] = []
    run: list[Op] = []  # History ops of one execution since the last barrier
    newest_row: Op | None = None

    def close_group() -> None:
        nonlocal newest_row
        if run:
            out.append(_merge_history(run))
            run.clear()
        if newest_row is not None:
            out.append(newest_row)
            newest_row = None

    for op in ops:
        kind = op["t"]
        if kind == "h":
            if run and _execution_of(run[-1]) != _execution_of(op):
                out.append(_merge_history(run))
                run.clear()
            run.append(op)
        elif kind == "i" and not op.get("ins"):
            newest_row = op
        else:
            close_group()
            out.append(op)
    close_group()
    return out


def _execution_of(op: Op) -> Any:
    sentinel = op["batches"][-1][-1]
    return sentinel.get("ExecutionId")


def _merge_history(run: list[Op]) -> Op:
    if len(run) == 1:
        return run[0]
    rows: dict[str, dict[str, Any]] = {}
    for op in run:
        for batch in op["batches"]:
            for entity in batch:
                if entity["RowKey"] != schema.SENTINEL_ROW_KEY:
                    rows[entity["RowKey"]] = entity
    final = run[-1]["batches"][-1][-1]
    ordered = [rows[key] for key in sorted(rows)]
    batches = []
    for start in range(0, len(ordered), BATCH_ROWS):
        last = start + BATCH_ROWS >= len(ordered)
        batches.append([*ordered[start : start + BATCH_ROWS], final if last else _open(final)])
    return {"t": "h", "pk": run[-1]["pk"], "batches": batches or [[final]]}


def _open(sentinel: dict[str, Any]) -> dict[str, Any]:
    """The sentinel of a transaction that is not a checkpoint's last."""
    opened = {k: v for k, v in sentinel.items() if not k.startswith("CheckpointCompleted")}
    opened["IsCheckpointComplete"] = False
    return opened


class TableWriter:
    """Queues journaled table ops per partition and writes them behind (see the module)."""

    def __init__(
        self,
        write: Callable[[list[Op]], None],
        *,
        lag: float = DEFAULT_LAG_SECONDS,
        patience: float = 60.0,
        on_written: Callable[[list[Any]], None] | None = None,
    ) -> None:
        self._write = write
        self.lag = lag
        self.patience = patience
        self._on_written = on_written
        self._cv = threading.Condition()
        self._pending: dict[str, list[Op]] = {}
        self._since: OrderedDict[str, float] = OrderedDict()  # oldest queued op per partition
        self._busy: set[str] = set()
        self._waiters = 0  # flushes waiting for a partition another thread is writing
        self._stop = False
        self._threads: list[threading.Thread] = []
        #: Largest seconds an op waited between ``submit`` and its write (the lag readers see).
        self.max_lag = 0.0
        self.requests_saved = 0

    def start(self) -> None:
        """Start the flusher threads (without them, ops are written at once, and a write that
        failed only by the next flush of its partition)."""
        if not self._threads:
            for n in range(FLUSHERS):
                thread = threading.Thread(target=self._run, name=f"table-writer-{n}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def submit(
        self, ops: Iterable[Op], *, now: bool = False, then: Callable[[], None] | None = None
    ) -> None:
        """Queue journaled ops; with ``now`` (or no lag) write their partitions before returning.

        ``then``: write the ops' partitions as soon as a flusher is free (not after the lag),
        and call ``then()`` once they are written (on the thread that wrote them).
        """
        touched: list[str] = []
        queued: Op | None = None
        with self._cv:
            stamp = time.monotonic()
            wake = not self._since  # a flusher sleeps until the oldest partition is due
            for op in ops:
                pk = op["pk"]
                if pk not in self._pending:
                    self._pending[pk] = []
                    self._since[pk] = stamp
                if pk not in touched:
                    touched.append(pk)
                queued = {**op, "_queued": stamp}
                self._pending[pk].append(queued)
            if then is not None:
                if queued is None:  # nothing to write
                    now = True
                else:
                    queued["_then"] = then
                    for pk in touched:  # due at once, ahead of the lagging ones
                        self._since[pk] = stamp - self.lag
                        self._since.move_to_end(pk, last=False)
                    wake = True
            if wake:
                self._cv.notify()
        if now or self.lag <= 0 or not self._threads:
            for pk in touched:
                self.flush(pk)
            if then is not None and queued is None:
                then()

    def pending(self) -> int:
        """Partitions with ops not yet written."""
        with self._cv:
            return len(self._pending) + len(self._busy)

    def flush(self, pk: str) -> bool:
        """Write the partition's queued ops (waiting for a write of it already under way).

        Returns False when storage did not take them within the patience (they stay queued).
        """
        with self._cv:
            while pk in self._busy:
                self._waiters += 1
                try:
                    self._cv.wait()
                finally:
                    self._waiters -= 1
            ops = self._take(pk)
        return self._write_taken(pk, ops) if ops else True

    def flush_all(self) -> None:
        """Write every op queued so far; raises if storage does not take them in the patience."""
        with self._cv:
            keys = list(self._pending) + list(self._busy)
        failed = sum(1 for pk in keys if not self.flush(pk))
        if failed:
            raise RuntimeError(f"{failed} partition(s) could not be written to the tables")

    def close(self, timeout: float = 10.0) -> None:
        """Stop the flusher and write what is queued (what cannot be is redone from the journal)."""
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        for thread in self._threads:
            thread.join(timeout)
        try:
            self.flush_all()
        except Exception as exc:  # durable in the journal; recovery writes it at the next start
            log.warning("some table writes wait for the next start: %s", exc)

    # -- internals -------------------------------------------------------------------------

    def _take(self, pk: str) -> list[Op]:
        """Take a partition's queue and mark it busy (the condition held)."""
        ops = self._pending.pop(pk, None)
        self._since.pop(pk, None)
        if ops:
            self._busy.add(pk)
        return ops or []

    def _write_taken(self, pk: str, ops: list[Op]) -> bool:
        written = False
        try:
            clean = [{k: v for k, v in op.items() if not k.startswith("_")} for op in ops]
            merged = coalesce(clean)
            deadline = time.monotonic() + self.patience
            attempt = 0
            while True:
                attempt += 1
                try:
                    self._write(merged)
                    written = True
                    break
                except Exception as exc:  # durable in the journal: retry, then re-queue
                    if time.monotonic() >= deadline or self._stop:
                        log.error("table write of %r failed, queued again: %s", pk, exc)
                        break
                    log.warning("table write failed (attempt %d): %s", attempt, exc)
                    time.sleep(min(0.2 * attempt, 2.0))
        finally:
            with self._cv:
                self._busy.discard(pk)
                if written:
                    waited = time.monotonic() - min(op["_queued"] for op in ops)
                    self.max_lag = max(self.max_lag, waited)
                    self.requests_saved += _requests(clean) - _requests(merged)
                else:  # back to the front of the partition's queue, still the oldest
                    self._pending[pk] = ops + self._pending.get(pk, [])
                    self._since[pk] = min(op["_queued"] for op in ops)
                    self._since.move_to_end(pk, last=False)
                if self._waiters or not written:
                    self._cv.notify_all()
        if not written:
            return False
        if self._on_written is not None:
            ids = [op["n"] for op in clean if "n" in op]
            if ids:
                self._on_written(ids)
        for op in ops:
            if "_then" in op:
                try:
                    op["_then"]()
                except Exception:  # the caller's; log it, keep writing
                    log.exception("a callback after a table write failed")
        return True

    def _run(self) -> None:
        while True:
            with self._cv:
                while True:
                    if self._stop:
                        return
                    due = next(iter(self._since.items()), None)
                    if due is not None and due[1] + self.lag <= time.monotonic():
                        pk = due[0]
                        if pk in self._busy:  # a flush of it is under way; it re-queues or ends
                            self._cv.wait(0.05)
                            continue
                        ops = self._take(pk)
                        break
                    self._cv.wait(None if due is None else due[1] + self.lag - time.monotonic())
            self._write_taken(pk, ops)


def _requests(ops: list[Op]) -> int:
    return sum(len(op["batches"]) if op["t"] == "h" else 1 for op in ops)
