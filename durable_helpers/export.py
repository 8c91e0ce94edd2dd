"""Export a task hub to Hive-partitioned Parquet, in chunks, resumably; and read it back.

``TaskHub.export(path, ...)`` delegates here. The folder it writes::

    path/_export.json                                   what was asked, and how far it got
    path/instances/created_date=2026-11-26/r07-c000003.parquet
    path/history/created_date=2026-11-26/r07-c000003.parquet

Instances are read as PartitionKey ranges (``durable_helpers.scan.key_ranges``), several at
once. Each range is cut into chunks of at most ``chunk_size`` instances or ``chunk_rows``
history rows; a chunk's instances and their histories are written as one file per created date
(``created_date=YYYY-MM-DD``, the instance's CreatedTime in UTC; history rows go with their
instance), then recorded in ``_export.json``. Files are written under a temporary name and
renamed, so a file is either whole or absent.

**Memory bound**: at most ``streams`` chunks are held at once (``streams`` = ranges read at the
same time), so about ``streams x chunk_rows`` history rows with their instances, plus one page
(1,000 rows) per stream. With the defaults (8 streams when histories are read as range scans,
2 with point reads; ``chunk_rows=5,000``) that is at most 40,000 rows in flight, about 3 KB
each as entities and frames (measured), so about 120 MB over the interpreter's own;
bench/bench_big_hubs.py measures the peak.

**Resuming**: an export that was interrupted (Ctrl-C, kill -9) and is started again with the same
arguments continues after the last recorded chunk of every range: recorded chunks are not read
again, files of unrecorded chunks are deleted first, so no instance is written twice. Other
arguments on an existing export folder are an error (pass a new folder, or ``overwrite=True``).

**Dtypes**: each file keeps the frames' dtypes (docs/frames.md) in its metadata, as
``durable_helpers.snapshot`` does; :func:`load_export` returns the same frames as
``hub.instances(...)`` and ``hub.histories(...)`` would (same rows, same order). Object columns
(decoded JSON) are stored as JSON text, which DuckDB and Dask read as strings.

Example:
    >>> hub.export("exports/week-48", created_from="2026-11-23")  # doctest: +SKIP
    >>> snap = load_export("exports/week-48")                     # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow.parquet as pq

from durable_helpers import frames, scan, schema
from durable_helpers.instance_filters import InstanceFilter
from durable_helpers.snapshot import Snapshot, frame_from_arrow, frame_to_arrow

log = logging.getLogger(__name__)

STATE_FILE = "_export.json"
INSTANCES_DIR = "instances"
HISTORY_DIR = "history"
PARTITION = "created_date"
#: Hive's name for the partition of rows whose key is null (no CreatedTime).
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
FORMAT = 1
DEFAULT_CHUNK_SIZE = 1000
DEFAULT_CHUNK_ROWS = 5_000
#: Ranges read at the same time when histories are read as range scans.
SCAN_STREAMS = 8


class ExportFolderError(ValueError):
    """The folder holds something else than this export; the message says what to do."""


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_hub` did: the folder, counts written in this run, and in all."""

    path: Path
    instances: int
    history_rows: int
    total_instances: int
    total_history_rows: int
    files: int
    resumed: bool


# ------------------------------------------------------------------------------------ state


class _State:
    """``_export.json``: the arguments, the ranges and each range's progress (thread-safe)."""

    def __init__(self, folder: Path, data: dict[str, Any]) -> None:
        self.folder = folder
        self.data = data
        self._lock = threading.Lock()

    @classmethod
    def open(
        cls, folder: Path, params: dict[str, Any], ranges: list[scan.KeyRange], overwrite: bool
    ) -> tuple[_State, bool]:
        file = folder / STATE_FILE
        fresh = {
            "format": FORMAT,
            "params": params,
            "ranges": [[r.low, r.high] for r in ranges],
            "progress": {},
            "complete": False,
        }
        if file.is_file() and not overwrite:
            try:
                data = json.loads(file.read_text())
            except ValueError:
                raise ExportFolderError(
                    f"{file} is damaged; pass overwrite=True to export again from the start"
                ) from None
            if data.get("params") != params or data.get("ranges") != fresh["ranges"]:
                raise ExportFolderError(
                    f"{folder} holds an export with other arguments ({data.get('params')}); "
                    "pass another folder, the same arguments to resume it, or overwrite=True"
                )
            return cls(folder, data), True
        if overwrite:
            _remove_export(folder)
        elif folder.exists() and any(folder.iterdir()):
            raise ExportFolderError(
                f"{folder} is not empty and holds no export ({STATE_FILE} is missing); "
                "pass an empty or new folder, or overwrite=True to replace its export files"
            )
        state = cls(folder, fresh)
        state.save()
        return state, False

    def progress(self, index: int) -> dict[str, Any]:
        return self.data["progress"].get(str(index), {"chunks": 0, "last_key": None, "done": False})

    def record(self, index: int, last_key: str | None, instances: int, rows: int, done: bool):
        with self._lock:
            p = dict(self.progress(index))
            if last_key is not None:
                p["chunks"] = p["chunks"] + 1
                p["last_key"] = last_key
                p["instances"] = p.get("instances", 0) + instances
                p["rows"] = p.get("rows", 0) + rows
            p["done"] = done
            self.data["progress"][str(index)] = p
            self.save()

    def finish(self) -> None:
        with self._lock:
            self.data["complete"] = True
            self.save()

    def totals(self) -> tuple[int, int]:
        values = self.data["progress"].values()
        return sum(p.get("instances", 0) for p in values), sum(p.get("rows", 0) for p in values)

    def save(self) -> None:
        file = self.folder / STATE_FILE
        tmp = file.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=str))
        os.replace(tmp, file)


def _remove_export(folder: Path) -> None:
    for sub in (INSTANCES_DIR, HISTORY_DIR):
        for file in sorted((folder / sub).glob("*/*.parquet*")):
            file.unlink()
    (folder / STATE_FILE).unlink(missing_ok=True)


def _chunk_name(index: int, chunk: int) -> str:
    return f"r{index:02d}-c{chunk:06d}.parquet"


def _clean_unrecorded(folder: Path, state: _State, count: int) -> None:
    """Delete files of chunks a killed run wrote but did not record (and temporary files)."""
    for sub in (INSTANCES_DIR, HISTORY_DIR):
        for file in (folder / sub).glob("*/*"):
            if file.name.endswith(".tmp"):
                file.unlink()
                continue
            try:
                index, chunk = int(file.name[1:3]), int(file.name[5:11])
            except ValueError:
                continue
            if index < count and chunk >= state.progress(index)["chunks"]:
                file.unlink()


# ------------------------------------------------------------------------------------ writing


def _date_of(stamps: pd.Series) -> pd.Series:
    days = stamps.dt.strftime("%Y-%m-%d")
    return days.astype(object).where(stamps.notna(), NULL_PARTITION)


def _write_chunk(
    folder: Path, index: int, chunk: int, instances: pd.DataFrame, history: pd.DataFrame
) -> int:
    """One file per created date for each frame; returns the number of files written."""
    days = _date_of(instances["CreatedTime"])
    day_of = dict(zip(instances["InstanceId"], days, strict=True))
    history_days = history["InstanceId"].map(day_of).astype(object)
    written = 0
    for sub, frame, keys in (
        (INSTANCES_DIR, instances, days),
        (HISTORY_DIR, history, history_days),
    ):
        for day in sorted(set(keys)):
            part = frame[(keys == day).to_numpy(dtype=bool)]
            target = folder / sub / f"{PARTITION}={day}" / _chunk_name(index, chunk)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".tmp")
            pq.write_table(frame_to_arrow(part), tmp)
            os.replace(tmp, target)
            written += 1
    return written


# ------------------------------------------------------------------------------------ export


def _filter_of(wanted: InstanceFilter, include_entities: bool) -> str:
    conditions: list[str] = []
    if wanted.statuses:
        conditions.append(
            " or ".join(f"RuntimeStatus eq {schema.odata_string(s)}" for s in wanted.statuses)
        )
    if wanted.names:
        conditions.append(" or ".join(f"Name eq {schema.odata_string(n)}" for n in wanted.names))
    if wanted.created_from is not None:
        conditions.append(f"CreatedTime ge {schema.odata_datetime(wanted.created_from)}")
    if wanted.created_to is not None:
        conditions.append(f"CreatedTime le {schema.odata_datetime(wanted.created_to)}")
    if not include_entities:
        conditions.append("PartitionKey lt '@' or PartitionKey ge 'A'")
    return " and ".join(f"({c})" for c in conditions)


def export_hub(
    hub: Any,
    path: str | Path,
    *,
    status: Any = None,
    name: Any = None,
    created_from: Any = None,
    created_to: Any = None,
    instance_id_prefix: str | None = None,
    execution: Literal["current", "all"] | str = "current",
    history_reads: Literal["auto", "scan", "point"] = "auto",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    max_workers: int = scan.DEFAULT_MAX_WORKERS,
    progress: bool = True,
    overwrite: bool = False,
) -> ExportResult:
    """Write the matching instances of ``hub`` and their histories to ``path`` (see module doc).

    Filters are those of ``TaskHub.instances``. ``history_reads``: ``"scan"`` reads the History
    table range by range next to Instances (few requests: best for a whole hub), ``"point"``
    one query per instance (best for a small window of a big hub), ``"auto"`` scans when no
    status/name/created filter is given. ``progress`` shows a tqdm bar.

    Example:
        >>> export_hub(hub, "exports/all")  # doctest: +SKIP
        ExportResult(path=PosixPath('exports/all'), instances=50000, ...)
    """
    wanted = InstanceFilter.of(status, name, created_from, created_to, instance_id_prefix)
    workers = scan.check_workers(max_workers)
    for label, value in (("chunk_size", chunk_size), ("chunk_rows", chunk_rows)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} is a whole number of 1 or more, not {value!r}")
    if history_reads not in ("auto", "scan", "point"):
        raise ValueError(f"history_reads is 'auto', 'scan' or 'point', not {history_reads!r}")
    if history_reads == "auto":
        filtered = wanted.statuses or wanted.names or wanted.created_from or wanted.created_to
        history_reads = "point" if filtered else "scan"
    folder = Path(path).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    bounds = schema.prefix_range(wanted.id_prefix)
    low, high = bounds or (None, None)
    ranges = scan.key_ranges(low, high)
    params = {
        "hub": hub.hub,
        "status": wanted.statuses,
        "name": wanted.names,
        "created_from": None if wanted.created_from is None else wanted.created_from.isoformat(),
        "created_to": None if wanted.created_to is None else wanted.created_to.isoformat(),
        "instance_id_prefix": wanted.id_prefix,
        "execution": execution,
    }
    state, resumed = _State.open(folder, params, ranges, overwrite)
    _clean_unrecorded(folder, state, len(ranges))
    run = _Run(hub, folder, state, ranges, wanted, execution, chunk_size, chunk_rows)
    streams = min(SCAN_STREAMS, workers) if history_reads == "scan" else min(2, workers)
    run.point_workers = max(1, workers // streams)
    todo = [i for i in range(len(ranges)) if not state.progress(i)["done"]]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        done_instances, _ = state.totals()
        bar = tqdm(desc=f"export {hub.hub}", unit="inst", initial=done_instances)
        run.bar = bar
    read = run.scan_range if history_reads == "scan" else run.point_range
    try:
        for _ in scan.bounded_map(read, todo, max_workers=streams):
            pass
    finally:
        if bar is not None:
            bar.close()
    state.finish()
    total_instances, total_rows = state.totals()
    return ExportResult(
        folder,
        run.instances,
        run.rows,
        total_instances,
        total_rows,
        run.files,
        resumed,
    )


class _Run:
    """One export run: reads ranges, cuts them into chunks, writes and records the chunks."""

    def __init__(
        self,
        hub: Any,
        folder: Path,
        state: _State,
        ranges: list[scan.KeyRange],
        wanted: InstanceFilter,
        execution: str,
        chunk_size: int,
        chunk_rows: int,
    ) -> None:
        self.hub, self.folder, self.state, self.ranges = hub, folder, state, ranges
        self.wanted, self.execution = wanted, execution
        self.chunk_size, self.chunk_rows = chunk_size, chunk_rows
        self.query = _filter_of(wanted, include_entities=False)
        self.point_workers = 1
        self.bar: Any = None
        self.instances = self.rows = self.files = 0
        self._lock = threading.Lock()

    def _remaining(self, index: int) -> scan.KeyRange:
        last = self.state.progress(index)["last_key"]
        whole = self.ranges[index]
        return whole if last is None else scan.KeyRange(last, whole.high, exclusive=True)

    def _instances(self, index: int) -> Iterator[Any]:
        """The range's instance entities after the last recorded chunk, in key order."""
        pages = scan.range_pages(self.hub._instances, self.query, self._remaining(index))
        for page, _ in pages:
            for entity in page:
                if self.wanted.id_prefix and not (schema.instance_id_of(entity) or "").startswith(
                    self.wanted.id_prefix
                ):
                    continue
                yield entity

    def _history_by_instance(self, index: int) -> Iterator[tuple[str, list[Any]]]:
        """(PartitionKey, rows) of the range's History table in key order (scan reads)."""
        key, rows = None, []
        for page, _ in scan.range_pages(self.hub._history, None, self._remaining(index)):
            for entity in page:
                pk = entity["PartitionKey"]
                if pk != key:
                    if key is not None:
                        yield key, rows
                    key, rows = pk, []
                rows.append(entity)
        if key is not None:
            yield key, rows

    def _history_rows(self, entities: list[Any]) -> list[Any]:
        if not entities:
            return []
        from durable_helpers.executions import select_execution

        return [self.hub._inline(e) for e in select_execution(entities, self.execution)]

    def scan_range(self, index: int) -> None:
        history = self._history_by_instance(index)
        pending: tuple[str, list[Any]] | None = next(history, None)

        def rows_of(key: str) -> list[Any]:
            nonlocal pending
            while pending is not None and pending[0] < key:
                pending = next(history, None)
            if pending is not None and pending[0] == key:
                found = pending[1]
                pending = next(history, None)
                return self._history_rows(found)
            return []

        pairs = ((e, rows_of(e["PartitionKey"])) for e in self._instances(index))
        self._chunks(index, pairs)

    def point_range(self, index: int) -> None:
        def read(entity: Any) -> tuple[Any, list[Any]]:
            instance_id = schema.instance_id_of(entity) or ""
            try:
                return entity, self.hub._history_entities(instance_id, self.execution)
            except LookupError:  # purged between the two reads
                return entity, []

        pairs = scan.bounded_map(read, self._instances(index), max_workers=self.point_workers)
        self._chunks(index, pairs)

    def _chunks(self, index: int, pairs: Iterable[tuple[Any, list[Any]]]) -> None:
        chunk: list[tuple[Any, list[Any]]] = []
        rows = 0
        for pair in pairs:
            chunk.append(pair)
            rows += len(pair[1])
            if len(chunk) >= self.chunk_size or rows >= self.chunk_rows:
                self._flush(index, chunk, done=False)
                chunk, rows = [], 0
        self._flush(index, chunk, done=True)

    def _flush(self, index: int, chunk: list[tuple[Any, list[Any]]], *, done: bool) -> None:
        if not chunk:
            self.state.record(index, None, 0, 0, done)
            return
        container = self.hub.names.largemessages_container
        instances = frames.instances_frame(self.hub._inline(e, container) for e, _ in chunk)
        history = frames.history_frame(row for _, rows in chunk for row in rows)
        number = self.state.progress(index)["chunks"]
        files = _write_chunk(self.folder, index, number, instances, history)
        self.state.record(index, chunk[-1][0]["PartitionKey"], len(instances), len(history), done)
        with self._lock:
            self.instances += len(instances)
            self.rows += len(history)
            self.files += files
            if self.bar is not None:
                self.bar.update(len(instances))
                self.bar.set_postfix(rows=self.rows, refresh=False)


# ------------------------------------------------------------------------------------ reading


def export_files(path: str | Path, kind: Literal["instances", "history"]) -> list[Path]:
    """The Parquet files of one frame of an export, in write order (range, chunk, date).

    Example:
        >>> export_files("exports/all", "history")[:1]  # doctest: +SKIP
        [PosixPath('exports/all/history/created_date=2026-11-26/r00-c000000.parquet')]
    """
    folder = Path(path).expanduser()
    if not (folder / STATE_FILE).is_file():
        raise FileNotFoundError(
            f"{folder} is not a durable_helpers export (no {STATE_FILE}); "
            "write one with TaskHub.export(path, ...)"
        )
    files = (folder / (INSTANCES_DIR if kind == "instances" else HISTORY_DIR)).glob("*/*.parquet")
    return sorted(files, key=lambda f: (f.name, f.parent.name))


def export_complete(path: str | Path) -> bool:
    """True when the export in ``path`` ran to its end (False: interrupted, resume it).

    Example:
        >>> export_complete("exports/all")  # doctest: +SKIP
        True
    """
    file = Path(path).expanduser() / STATE_FILE
    return file.is_file() and bool(json.loads(file.read_text()).get("complete"))


def table_order(instance_ids: pd.Series) -> pd.Series:
    """Sort key putting instances in table order (their escaped PartitionKey), as the reader.

    Example:
        >>> table_order(pd.Series(["b", "a/"])).tolist()
        ['b', 'a^0']
    """
    return instance_ids.map(lambda i: schema.escape_partition_key(i) if isinstance(i, str) else "")


def in_table_order(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` sorted (stably) by its InstanceId's PartitionKey, with a fresh index.

    Example:
        >>> in_table_order(pd.DataFrame({"InstanceId": ["b", "a"]})).InstanceId.tolist()
        ['a', 'b']
    """
    if frame.empty:
        return frame.reset_index(drop=True)
    order = table_order(frame["InstanceId"].astype(object)).argsort(kind="stable")
    return frame.iloc[order.to_numpy()].reset_index(drop=True)


def _concat(parts: list[pd.DataFrame], empty: pd.DataFrame) -> pd.DataFrame:
    if not parts:
        return empty
    frame = pd.concat(parts, ignore_index=True)
    if "RuntimeStatus" in frame and not isinstance(
        frame["RuntimeStatus"].dtype, pd.CategoricalDtype
    ):
        extra = sorted(
            s for s in frame["RuntimeStatus"].dropna().unique() if s not in schema.RUNTIME_STATUSES
        )
        frame["RuntimeStatus"] = pd.Categorical(
            frame["RuntimeStatus"], categories=[*schema.RUNTIME_STATUSES, *extra]
        )
    return frame


def load_export(path: str | Path) -> Snapshot:
    """The instances and history frames of an export (docs/frames.md), in table order.

    Only for exports that fit in memory; query bigger ones with
    ``durable_helpers.engines.duckdb`` (or Dask, ``durable_helpers.engines.dask``).

    Example:
        >>> snap = load_export("exports/week-48")  # doctest: +SKIP
        >>> snap.instances.RuntimeStatus.value_counts()  # doctest: +SKIP
    """
    parts = {
        kind: [frame_from_arrow(pq.read_table(f)) for f in export_files(path, kind)]
        for kind in ("instances", "history")
    }
    instances = _concat(parts["instances"], frames.instances_frame([]))
    history = _concat(parts["history"], frames.history_frame([]))
    return Snapshot(in_table_order(instances), in_table_order(history))
