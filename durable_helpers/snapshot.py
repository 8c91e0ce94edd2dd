"""Save instance and history frames to Parquet and load them back, dtypes and payloads intact.

A snapshot is a directory holding ``instances.parquet`` and ``history.parquet``. Object columns
(decoded JSON payloads: dicts, lists, numbers, strings, None) are stored as JSON text and decoded
on load; every column's dtype is recorded in the file's metadata and restored exactly (UTC
datetimes, ``Int32``, ``string``, categories with their full category list).

Example:
    >>> path = save_snapshot("incident-42", instances=hub.instances(),
    ...                      histories=hub.histories(ids))              # doctest: +SKIP
    >>> snap = load_snapshot(path)                                      # doctest: +SKIP
    >>> snap.instances.RuntimeStatus.value_counts()                     # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

_META_KEY = b"durable_helpers"
_FORMAT = 1
INSTANCES_FILE = "instances.parquet"
HISTORY_FILE = "history.parquet"


class Snapshot(NamedTuple):
    """What `load_snapshot` returns: the two frames."""

    instances: pd.DataFrame
    history: pd.DataFrame


def save_snapshot(path: str | Path, *, instances: pd.DataFrame, histories: pd.DataFrame) -> Path:
    """Write ``instances`` and ``histories`` to the directory ``path`` (created if needed).

    Existing snapshot files in the directory are replaced. Returns the directory.

    Example:
        >>> save_snapshot("snap", instances=inst, histories=hist)       # doctest: +SKIP
        PosixPath('snap')
    """
    folder = Path(path).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    _write(instances, folder / INSTANCES_FILE)
    _write(histories, folder / HISTORY_FILE)
    return folder


def load_snapshot(path: str | Path) -> Snapshot:
    """Read a snapshot written by `save_snapshot` (or ``TaskHub.snapshot``).

    Example:
        >>> snap = load_snapshot("snap")                                # doctest: +SKIP
        >>> snap.history.EventType.value_counts()                       # doctest: +SKIP
    """
    folder = Path(path).expanduser()
    missing = [n for n in (INSTANCES_FILE, HISTORY_FILE) if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{folder} is not a durable_helpers snapshot (missing {', '.join(missing)}); "
            "write one with save_snapshot(path, instances=..., histories=...)"
        )
    return Snapshot(_read(folder / INSTANCES_FILE), _read(folder / HISTORY_FILE))


def _write(frame: pd.DataFrame, file: Path) -> None:
    pq.write_table(frame_to_arrow(frame), file)


def frame_to_arrow(frame: pd.DataFrame) -> pa.Table:
    """A frame as an Arrow table that :func:`frame_from_arrow` turns back into the same frame.

    Object columns become JSON text; each column's dtype goes into the schema's metadata.

    Example:
        >>> frame = pd.DataFrame({"a": pd.array([1, None], dtype="Int32")})
        >>> frame_from_arrow(frame_to_arrow(frame)).dtypes.to_dict()
        {'a': Int32Dtype()}
    """
    frame = frame.reset_index(drop=True)
    columns: list[dict[str, Any]] = []
    data: dict[str, Any] = {}
    for name in frame.columns:
        s = frame[name]
        if not isinstance(name, str):
            raise TypeError(f"snapshot columns must be strings, got {name!r}")
        spec: dict[str, Any] = {"name": name, "dtype": str(s.dtype)}
        if isinstance(s.dtype, pd.StringDtype) and spec["dtype"] == "string":
            spec["storage"] = s.dtype.storage  # "python" or "pyarrow"
        if isinstance(s.dtype, pd.CategoricalDtype):
            spec["categories"] = [_jsonable(c) for c in s.dtype.categories]
            spec["ordered"] = bool(s.dtype.ordered)
            data[name] = pa.array(
                s.astype(object).where(s.notna(), None).tolist(), type=_category_type(s.dtype)
            )
        elif s.dtype == object:
            spec["json"] = True
            data[name] = pa.array(
                [None if _isnull(v) else json.dumps(v, default=str) for v in s.tolist()],
                type=pa.string(),
            )
        else:
            data[name] = pa.Array.from_pandas(s)
        columns.append(spec)
    table = pa.table(data) if data else pa.table({})
    meta = {
        "format": _FORMAT,
        "columns": columns,
        "rows": len(frame),
        "columns_dtype": str(frame.columns.dtype),
    }
    return table.replace_schema_metadata({_META_KEY: json.dumps(meta).encode()})


def _read(file: Path) -> pd.DataFrame:
    table = pq.read_table(file)
    if column_specs(table.schema) is None:
        raise ValueError(f"{file} was not written by durable_helpers.save_snapshot")
    return frame_from_arrow(table)


def column_specs(schema: pa.Schema) -> dict[str, Any] | None:
    """The dtype record :func:`frame_to_arrow` put in ``schema`` (None if there is none).

    Example:
        >>> column_specs(frame_to_arrow(pd.DataFrame({"a": [1]})).schema)["columns"]
        [{'name': 'a', 'dtype': 'int64'}]
    """
    raw = (schema.metadata or {}).get(_META_KEY)
    return None if raw is None else json.loads(raw)


def frame_from_arrow(table: pa.Table, specs: dict[str, Any] | None = None) -> pd.DataFrame:
    """The frame :func:`frame_to_arrow` wrote, dtypes restored from ``specs`` (default: the
    table's own metadata). Columns without a spec are converted as Arrow converts them.

    Example:
        >>> frame_from_arrow(frame_to_arrow(pd.DataFrame({"a": ["x"]}))).a.tolist()
        ['x']
    """
    meta = specs if specs is not None else column_specs(table.schema)
    if meta is None:
        return table.to_pandas()
    known = {spec["name"]: spec for spec in meta["columns"]}
    ordered = [known.get(n, {"name": n}) for n in table.column_names]
    out: dict[str, pd.Series] = {}
    for spec in ordered:
        name = spec["name"]
        col = table.column(name)
        if "dtype" not in spec:
            out[name] = col.to_pandas()
            continue
        if spec.get("json"):
            values = [None if v is None else json.loads(v) for v in col.to_pylist()]
            out[name] = pd.Series(values, dtype=object)
        elif "categories" in spec:
            dtype = pd.CategoricalDtype(spec["categories"], ordered=spec["ordered"])
            out[name] = pd.Series(col.to_pylist(), dtype=object).astype(dtype)
        else:
            dtype = pd.StringDtype(spec["storage"]) if "storage" in spec else spec["dtype"]
            out[name] = col.to_pandas().astype(dtype)
    frame = pd.DataFrame(out)
    if not table.column_names:
        frame = pd.DataFrame(index=pd.RangeIndex(table.num_rows))
    if "columns_dtype" in meta:  # object vs str column labels (pandas 3 infers str)
        frame.columns = pd.Index(list(frame.columns), dtype=meta["columns_dtype"])
    return frame


def _category_type(dtype: pd.CategoricalDtype) -> pa.DataType:
    cats = dtype.categories
    if cats.dtype.kind in "iu":
        return pa.int64()
    if cats.dtype.kind == "f":
        return pa.float64()
    return pa.string()


def _isnull(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and value != value


def _jsonable(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
