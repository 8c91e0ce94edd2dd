"""DuckDB over an export folder: the analyses that matter at scale, answered by the engine.

``ExportDB(path)`` opens an export written by ``TaskHub.export`` (Hive-partitioned Parquet) in an
embedded DuckDB, with two views, ``instances`` and ``history`` (columns as in docs/frames.md,
decoded payloads as JSON text, times as ``TIMESTAMPTZ_NS``: subtract them as
``epoch_ns(a) - epoch_ns(b)``; plus ``created_date``), so any SQL works on it. Its methods give
the same answers as the pandas analyses on the same rows, with the heavy part (scanning and
grouping every history row) done by DuckDB and only small results in pandas:

- :meth:`ExportDB.latency` = ``analysis.latency(analysis.calls(history))`` (grouped by Name);
- :meth:`ExportDB.failures` = ``analysis.failures(instances, history)``: DuckDB selects the
  failed executions, pandas follows their (few) rows into sub-orchestrations;
- :meth:`ExportDB.stuck` = ``analysis.stuck(instances, history)``: DuckDB reduces each history
  to what the checks read and keeps the candidate instances;
- :meth:`ExportDB.status_over_time` = ``analysis.status_over_time(instances)``: DuckDB counts
  the status changes per interval.

Durations agree to the microsecond (the engine sums and interpolates in its own order).
DuckDB spills to disk beyond ``memory_limit``, so the folder may be far bigger than memory.

Example:
    >>> db = ExportDB("exports/week-48")                                # doctest: +SKIP
    >>> db.latency().head()                                             # doctest: +SKIP
    >>> db.sql("SELECT RuntimeStatus, count(*) FROM instances GROUP BY 1").df()  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from durable_helpers import analysis, frames
from durable_helpers.analysis._common import COMPLETION_KIND, SCHEDULED_KIND, TERMINAL_STATUSES
from durable_helpers.analysis.stats import latency_table, status_counts
from durable_helpers.export import export_files, in_table_order
from durable_helpers.snapshot import column_specs, frame_from_arrow, frame_to_arrow

#: Scheduled and completion events per call kind, as ``analysis.calls`` pairs them.
_SCHEDULED = {kind: event for event, kind in SCHEDULED_KIND.items()}
_COMPLETED = {
    kind: [event for event, (k, _) in COMPLETION_KIND.items() if k == kind] for kind in _SCHEDULED
}
_FAILED_EVENTS = ("TaskFailed", "SubOrchestrationInstanceFailed")


def _list(values: Sequence[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


class ExportDB:
    """An export folder opened in DuckDB (see the module docstring).

    ``memory_limit`` (e.g. ``"2GB"``) and ``threads`` go to DuckDB; ``connection`` reuses an
    existing DuckDB connection (the views are created in it).

    Example:
        >>> db = ExportDB("exports/week-48")                            # doctest: +SKIP
        >>> db.sql("SELECT count(*) FROM history").fetchall()           # doctest: +SKIP
        [(800000,)]
    """

    def __init__(
        self,
        path: str | Path,
        *,
        memory_limit: str | None = None,
        threads: int | None = None,
        connection: Any = None,
    ) -> None:
        self.path = Path(path).expanduser()
        self._files = {kind: export_files(self.path, kind) for kind in ("instances", "history")}
        self.con = connection if connection is not None else duckdb.connect()
        self.con.execute("SET TimeZone = 'UTC'")
        if memory_limit is not None:
            self.con.execute(f"SET memory_limit = '{memory_limit}'")
        if threads is not None:
            self.con.execute(f"SET threads = {int(threads)}")
        self._specs: dict[str, dict[str, Any]] = {}
        empty = {"instances": frames.instances_frame([]), "history": frames.history_frame([])}
        for kind, files in self._files.items():
            specs: dict[str, Any] = {"columns": []}
            seen: set[str] = set()
            for file in files:  # footers only: the dtypes of every column of every file
                for spec in (column_specs(pq.read_schema(file)) or {"columns": []})["columns"]:
                    if spec["name"] not in seen:
                        seen.add(spec["name"])
                        specs["columns"].append(spec)
            self._specs[kind] = specs if files else column_specs(frame_to_arrow(empty[kind]).schema)
            if files:
                source = self._source(kind, ordered=False)
                self.con.execute(f"CREATE OR REPLACE VIEW {kind} AS SELECT * FROM {source}")
            else:  # an empty export: empty views with the frame's columns
                self.con.register(f"_{kind}_empty", frame_to_arrow(empty[kind]))
                self.con.execute(f"CREATE OR REPLACE VIEW {kind} AS SELECT * FROM _{kind}_empty")
            self.con.execute(
                f"CREATE OR REPLACE VIEW _{kind}_ordered AS SELECT * FROM "
                + (
                    self._source(kind, ordered=True)
                    if files
                    else f"(SELECT *, '' AS filename, 0::BIGINT AS file_row_number FROM {kind})"
                )
            )

    def _source(self, kind: str, *, ordered: bool) -> str:
        glob = str(self.path / ("instances" if kind == "instances" else "history") / "*/*.parquet")
        extra = ", filename=true, file_row_number=true" if ordered else ""
        quoted = glob.replace("'", "''")
        return f"read_parquet('{quoted}', hive_partitioning=true, union_by_name=true{extra})"

    def __repr__(self) -> str:
        counts = {k: len(v) for k, v in self._files.items()}
        return f"ExportDB({str(self.path)!r}, files={counts})"

    def sql(self, query: str) -> Any:
        """Run SQL over the views ``instances`` and ``history``; ``.df()`` makes it a frame.

        Example:
            >>> db.sql("SELECT EventType, count(*) FROM history GROUP BY 1").df()  # doctest: +SKIP
        """
        return self.con.sql(query)

    def _frame(self, kind: str, query: str) -> pd.DataFrame:
        """The rows of ``query`` (columns of the ``kind`` view) with the frames' dtypes."""
        relation = self.con.sql(query)
        fetch = getattr(relation, "to_arrow_table", None) or relation.arrow  # DuckDB 2 / 1.x
        table = fetch()
        drop = [
            c for c in ("created_date", "filename", "file_row_number") if c in table.column_names
        ]
        return frame_from_arrow(table.drop_columns(drop), self._specs[kind])

    def history_of(self, instance_ids: str | Sequence[str]) -> pd.DataFrame:
        """The history rows of a few instances as a frame (docs/frames.md), in table order,
        for the pandas analyses and plots (``analysis.compare``, ``plots.timeline``).

        Example:
            >>> analysis.compare(db.history_of("a"), db.history_of("b"))  # doctest: +SKIP
        """
        ids = [instance_ids] if isinstance(instance_ids, str) else list(instance_ids)
        if not ids:
            return frames.history_frame([])
        query = f"""SELECT * FROM _history_ordered WHERE InstanceId IN ({_list(ids)})
                    ORDER BY filename, file_row_number"""
        return in_table_order(self._frame("history", query))

    # -------------------------------------------------------------------------- analyses

    def latency(
        self, *, kinds: Sequence[str] | None = ("activity", "suborchestration")
    ) -> pd.DataFrame:
        """``analysis.latency(analysis.calls(history))`` per call Name, computed by DuckDB.

        Calls are the scheduled events; each is paired with its first completion (the
        completion's ScheduledTime, set by the reader, names the scheduled event it answers).
        Output as ``analysis.latency``: Count, Completed, Failed, Pending, FailureRate, Mean,
        P50, P95, P99, Max, sorted by P95 descending.

        Example:
            >>> db.latency()                                                # doctest: +SKIP
        """
        chosen = list(_SCHEDULED) if kinds is None else list(kinds)
        unknown = [k for k in chosen if k not in _SCHEDULED]
        if unknown:
            raise ValueError(
                f"kinds are any of {list(_SCHEDULED)} (or None for all), not {unknown}"
            )
        scheduled = [_SCHEDULED[k] for k in chosen]
        completions = [e for k in chosen for e in _COMPLETED[k] if e]
        if not scheduled:
            return analysis.latency(analysis.calls(frames.history_frame([])))
        ref = "CASE WHEN EventType = 'TimerFired' THEN TimerId ELSE TaskScheduledId END"
        query = f"""
            WITH calls AS (
                SELECT Name, count(*) AS n FROM history
                WHERE EventType IN ({_list(scheduled)}) GROUP BY Name
            ),
            done AS (
                SELECT Name, EventType IN ({_list(_FAILED_EVENTS)}) AS failed,
                       (epoch_ns(Timestamp) - epoch_ns(ScheduledTime)) / 1e9 AS secs,
                       row_number() OVER (
                           PARTITION BY InstanceId, ExecutionId,
                                        EventType = 'TimerFired', {ref}, ScheduledTime
                           ORDER BY filename, file_row_number) AS nth
                FROM _history_ordered
                WHERE EventType IN ({_list(completions) or "''"}) AND ScheduledTime IS NOT NULL
            ),
            stats AS (
                SELECT Name, count(*) FILTER (WHERE NOT failed) AS completed,
                       count(*) FILTER (WHERE failed) AS failed, avg(secs) AS mean,
                       quantile_cont(secs, [0.5, 0.95, 0.99, 1.0]) AS q
                FROM done WHERE nth = 1 GROUP BY Name
            )
            SELECT calls.Name, n, coalesce(completed, 0) AS completed,
                   coalesce(failed, 0) AS failed, mean, q
            FROM calls LEFT JOIN stats ON calls.Name IS NOT DISTINCT FROM stats.Name
            ORDER BY calls.Name NULLS LAST
        """
        raw = self.con.sql(query).df()
        index = pd.Index(pd.array(raw["Name"], dtype="string"), name="Name")
        count = raw["n"].to_numpy(dtype=np.int64)
        completed = raw["completed"].to_numpy(dtype=np.int64)
        failed = raw["failed"].to_numpy(dtype=np.int64)
        q = np.array(
            [list(v) if v is not None and not _isna(v) else [np.nan] * 4 for v in raw["q"]],
            dtype=float,
        ).reshape(len(raw), 4)
        mean = pd.to_numeric(raw["mean"], errors="coerce").to_numpy(dtype=float)
        return latency_table(index, count, completed, failed, mean, [q[:, i] for i in range(4)])

    def failures(self) -> pd.DataFrame:
        """``analysis.failures(instances, history)``: DuckDB picks the failed instances and the
        rows of failed executions (all that the analysis reads), pandas finds the root causes.

        Example:
            >>> db.failures().groupby("ErrorType").size()                   # doctest: +SKIP
        """
        instances = in_table_order(
            self._frame("instances", "SELECT * FROM instances WHERE RuntimeStatus = 'Failed'")
        )
        history = in_table_order(
            self._frame(
                "history",
                """SELECT h.* FROM _history_ordered h
                   SEMI JOIN (SELECT DISTINCT InstanceId, ExecutionId FROM history
                              WHERE EventType = 'ExecutionCompleted'
                                AND OrchestrationStatus = 'Failed') f
                   ON h.InstanceId = f.InstanceId AND h.ExecutionId = f.ExecutionId
                   ORDER BY filename, file_row_number""",
            )
        )
        return analysis.failures(instances, history)

    def failure_counts(self, by: Sequence[str] = ("ErrorType",)) -> pd.Series:
        """How many failed instances per root-cause group (``failures()`` grouped by ``by``).

        Example:
            >>> db.failure_counts(["FailedCallName", "ErrorType"])          # doctest: +SKIP
        """
        return self.failures().groupby(list(by), dropna=False).size().rename("Instances")

    def stuck(
        self, *, older_than: pd.Timedelta | str = "1h", now: pd.Timestamp | str | None = None
    ) -> pd.DataFrame:
        """``analysis.stuck(instances, history, older_than=..., now=...)``.

        DuckDB reduces each instance's current-execution history to what the checks read (its
        last event, its latest time, whether it holds ExecutionStarted / ExecutionCompleted /
        ContinueAsNew / ExecutionTerminated) and keeps only the instances a check can flag
        (Running or Pending, or finished without a completion in History).

        Example:
            >>> db.stuck(older_than="30min")                                # doctest: +SKIP
        """
        final = [s for s in TERMINAL_STATUSES if s != "ContinuedAsNew"]
        summary = """
            WITH cur AS (SELECT InstanceId, ExecutionId AS cur FROM instances),
            h AS (
                SELECT h.InstanceId, h.EventType, h.Timestamp, h.filename, h.file_row_number
                FROM _history_ordered h LEFT JOIN cur ON h.InstanceId = cur.InstanceId
                WHERE cur.cur IS NULL OR h.ExecutionId IS NULL OR h.ExecutionId = cur.cur
            )
            SELECT InstanceId, max(Timestamp) AS last_time,
                   arg_max(EventType, (filename, file_row_number))
                       FILTER (WHERE EventType IS NOT NULL) AS last_type,
                   bool_or(EventType = 'ExecutionStarted') AS started,
                   bool_or(EventType = 'ExecutionCompleted') AS completed,
                   bool_or(EventType = 'ContinueAsNew') AS continued,
                   bool_or(EventType = 'ExecutionTerminated') AS terminated
            FROM h GROUP BY InstanceId
        """
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE _stuck_summary AS {summary}")
        candidates = f"""
            SELECT i.* FROM instances i LEFT JOIN _stuck_summary s USING (InstanceId)
            WHERE RuntimeStatus IN ('Running', 'Pending')
               OR (s.InstanceId IS NOT NULL AND (
                    (RuntimeStatus IN ({_list(final)}) AND NOT coalesce(s.completed, false)
                     AND NOT (RuntimeStatus = 'Terminated' AND coalesce(s.terminated, false)))
                    OR (RuntimeStatus = 'ContinuedAsNew' AND NOT coalesce(s.continued, false))))
        """
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE _stuck_candidates AS {candidates}")
        instances = in_table_order(self._frame("instances", "SELECT * FROM _stuck_candidates"))
        rows = self.con.sql(
            """SELECT s.* FROM _stuck_summary s
               SEMI JOIN _stuck_candidates c ON s.InstanceId = c.InstanceId"""
        ).df()
        current = dict(zip(instances["InstanceId"], instances["ExecutionId"], strict=True))
        history = _reduced_history(rows, current)
        return analysis.stuck(instances, history, older_than=older_than, now=now)

    def status_over_time(self, freq: str = "1min", *, tidy: bool = False) -> pd.DataFrame:
        """``analysis.status_over_time(instances, freq)``: DuckDB counts the status changes per
        interval of ``freq`` (a fixed length: ``"30s"``, ``"5min"``, ``"1h"``, ``"1D"``).

        Example:
            >>> db.status_over_time("1h").plot.area()                       # doctest: +SKIP
        """
        try:
            step = pd.Timedelta(freq).value
        except ValueError:
            raise ValueError(
                f"freq is a fixed interval such as '30s', '5min', '1h' or '1D', not {freq!r}"
            ) from None
        if step <= 0:
            raise ValueError(f"freq is a positive interval, not {freq!r}")
        final = _list(TERMINAL_STATUSES)
        query = f"""
            WITH i AS (
                SELECT coalesce(CAST(RuntimeStatus AS VARCHAR), 'Unknown') AS status,
                       CreatedTime AS created,
                       coalesce(CAST(RuntimeStatus AS VARCHAR), 'Unknown') IN ({final}) AS final,
                       coalesce(CompletedTime, LastUpdatedTime) AS done
                FROM instances WHERE CreatedTime IS NOT NULL
            ),
            e AS (
                SELECT created AS t, CASE WHEN final THEN 'Running' ELSE status END AS s, 1 AS d
                FROM i
                UNION ALL SELECT done, 'Running', -1 FROM i WHERE final
                UNION ALL SELECT done, status, 1 FROM i WHERE final
            ),
            n AS (SELECT epoch_ns(t) AS ns, s, d FROM e WHERE t IS NOT NULL)
            SELECT ns - (((ns % {step}) + {step}) % {step}) AS t, s, sum(d)::BIGINT AS d
            FROM n GROUP BY ALL ORDER BY t, s
        """
        raw = self.con.sql(query).df()
        events = pd.DataFrame(
            {
                "t": pd.to_datetime(raw["t"].to_numpy(dtype=np.int64), unit="ns", utc=True),
                "s": raw["s"].to_numpy(dtype=object),
                "d": raw["d"].to_numpy(dtype=np.int64),
            }
        )
        return status_counts(events, freq, tidy=tidy)


def _isna(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _reduced_history(summary: pd.DataFrame, current: dict[Any, Any]) -> pd.DataFrame:
    """History rows that give ``analysis.stuck`` the same per-instance facts as the full history:
    one row per event type the checks look for, then the last event (carrying the latest time)."""
    flags = {
        "started": "ExecutionStarted",
        "completed": "ExecutionCompleted",
        "continued": "ContinueAsNew",
        "terminated": "ExecutionTerminated",
    }
    ids, types, times = [], [], []
    for row in summary.itertuples(index=False):
        for column, event_type in flags.items():
            if getattr(row, column) is True:
                ids.append(row.InstanceId)
                types.append(event_type)
                times.append(pd.NaT)
        ids.append(row.InstanceId)
        types.append(None if _isna(row.last_type) else row.last_type)
        times.append(row.last_time)
    return pd.DataFrame(
        {
            "InstanceId": pd.array(ids, dtype="string"),
            "ExecutionId": pd.array([current.get(i) for i in ids], dtype="string"),
            "EventType": pd.array(types, dtype="string"),
            "Timestamp": pd.to_datetime(pd.Series(times, dtype=object), utc=True),
        }
    )
