"""Dask over an export folder: the documented path for task hubs that outgrow one machine.

**Why Dask, not Spark.** A Dask DataFrame *is* many pandas DataFrames: every partition here is
a frame of docs/frames.md (same columns, same dtypes), so the kit's pandas analyses run
unchanged on a partition (``map_partitions``) and the same groupbys scale out. It installs from
PyPI with no JVM (``pip install 'durable-helpers[distributed]'``), runs in-process on a laptop,
and on a cluster through ``dask.distributed`` (Kubernetes, Azure ML, Coiled, ...). Spark would
read the same Parquet files (``spark.read.parquet(path + "/history")``; the created_date
folders become a partition column), but its frames are not pandas frames: every analysis
would be written twice.

Partitions are files: one chunk of the export per created date. An export is self-describing,
so the folder can be copied to storage every worker reads (an ADLS container through adlfs,
a shared disk) and opened there.

Example:
    >>> instances, history = read_export("exports/week-48")            # doctest: +SKIP
    >>> history.EventType.value_counts().compute()                     # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from durable_helpers import frames
from durable_helpers.export import export_files
from durable_helpers.snapshot import column_specs, frame_from_arrow


def _text_payloads(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its object (decoded JSON) columns as ``string`` (their JSON text)."""
    objects = [c for c in frame.columns if frame[c].dtype == object]
    return frame.astype(dict.fromkeys(objects, "string"))


def _read(file: str, columns: list[str], empty: pd.DataFrame) -> pd.DataFrame:
    """One file as a frame with exactly ``columns`` (the contract's; others are dropped)."""
    table = pq.read_table(file)
    specs = column_specs(table.schema) or {"columns": []}
    as_text = [
        {**spec, "json": False, "dtype": "string"} if spec.get("json") else spec
        for spec in specs["columns"]
    ]
    frame = frame_from_arrow(table, {**specs, "columns": as_text})
    out = {}
    for name in columns:
        out[name] = frame[name] if name in frame else empty[name].reindex(frame.index)
    result = pd.DataFrame(out, index=frame.index)
    if "RuntimeStatus" in result:  # the contract's categories, whatever the file held
        result["RuntimeStatus"] = result["RuntimeStatus"].astype(empty["RuntimeStatus"].dtype)
    return result


def read_export(path: str | Path) -> tuple[Any, Any]:
    """``(instances, history)`` of an export as Dask DataFrames, one partition per file.

    Columns and dtypes are those of docs/frames.md, except that the decoded payloads (Input,
    Output, Result, FailureDetails, ...) stay JSON text (``string``), as in DuckDB: Dask keeps
    no Python objects in its columns. Columns outside the contract are left out (read them
    with DuckDB). Rows are not in table order across partitions.

    Example:
        >>> instances, history = read_export("exports/week-48")        # doctest: +SKIP
        >>> instances.groupby("RuntimeStatus", observed=True).size().compute()  # doctest: +SKIP
    """
    import dask.dataframe as dd

    out = []
    for kind, empty in (
        ("instances", _text_payloads(frames.instances_frame([]))),
        ("history", _text_payloads(frames.history_frame([]))),
    ):
        files = [str(f) for f in export_files(path, kind)]
        columns = list(empty.columns)
        if not files:
            out.append(dd.from_pandas(empty, npartitions=1))
            continue
        out.append(
            dd.from_map(
                _read, files, columns=columns, empty=empty, meta=empty, enforce_metadata=False
            )
        )
    return out[0], out[1]


def call_durations(history: Any) -> Any:
    """Completed and failed calls (activities, sub-orchestrations) with their duration in
    seconds: columns Name, Failed (bool), Seconds; a Dask frame to group as you need.

    Example:
        >>> calls = call_durations(history)                             # doctest: +SKIP
        >>> calls.groupby("Name").Seconds.mean().compute()              # doctest: +SKIP
    """
    done = history[
        history.EventType.isin(
            [
                "TaskCompleted",
                "TaskFailed",
                "SubOrchestrationInstanceCompleted",
                "SubOrchestrationInstanceFailed",
            ]
        )
        & ~history.ScheduledTime.isna()
    ]
    return done.assign(
        Failed=done.EventType.isin(["TaskFailed", "SubOrchestrationInstanceFailed"]),
        Seconds=done.Duration.dt.total_seconds(),
    )[["Name", "Failed", "Seconds"]]
