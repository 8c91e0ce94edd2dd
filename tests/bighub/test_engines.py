"""DuckDB and Dask over an export give the answers of the pandas analyses on the same rows."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from durable_helpers import analysis
from durable_helpers.engines.dask import call_durations, read_export
from durable_helpers.engines.duckdb import ExportDB
from durable_helpers.export import in_table_order, load_export

TIMES = ["Mean", "P50", "P95", "P99", "Max"]


@pytest.fixture(scope="module")
def loaded(whole_export):
    return load_export(whole_export.path)


@pytest.fixture(scope="module")
def db(whole_export):
    return ExportDB(whole_export.path)


@pytest.mark.parametrize("kinds", [("activity", "suborchestration"), ("activity",), None])
def test_latency(db, loaded, kinds):
    engine = db.latency(kinds=kinds)
    pandas = analysis.latency(analysis.calls(loaded.history), kinds=kinds)
    assert len(engine) >= 3
    pd.testing.assert_frame_equal(engine.drop(columns=TIMES), pandas.drop(columns=TIMES))
    for column in TIMES:  # the engine sums and interpolates in its own order
        gap = (engine[column] - pandas[column]).abs().max()
        assert gap <= pd.Timedelta("1us"), (column, gap)
        assert engine[column].dtype == pandas[column].dtype


def test_failures_by_error_type(db, loaded):
    engine = db.failures()
    pandas = analysis.failures(loaded.instances, loaded.history)
    assert set(pandas.ErrorType) == {"ConnectionError", "ValueError"}
    pd.testing.assert_frame_equal(engine, pandas)
    pd.testing.assert_series_equal(
        db.failure_counts(["FailedCallName", "ErrorType"]),
        pandas.groupby(["FailedCallName", "ErrorType"], dropna=False).size().rename("Instances"),
    )


@pytest.mark.parametrize("older_than", ["1h", "400D"])
def test_stuck(db, loaded, older_than):
    now = pd.Timestamp("2026-11-27", tz="UTC")
    engine = db.stuck(older_than=older_than, now=now)
    pandas = analysis.stuck(loaded.instances, loaded.history, older_than=older_than, now=now)
    if older_than == "1h":
        assert set(pandas.Reason) == {"no-progress", "never-started"}
    pd.testing.assert_frame_equal(engine, pandas)


def test_stuck_sees_a_disagreement_between_the_tables(loaded, tmp_path, whole_export):
    """A Completed instance whose ExecutionCompleted row is missing from History."""
    import shutil

    from durable_helpers.export import export_files
    from durable_helpers.snapshot import frame_from_arrow, frame_to_arrow

    copy = tmp_path / "copy"
    shutil.copytree(whole_export.path, copy)
    file = export_files(copy, "history")[0]
    import pyarrow.parquet as pq

    frame = frame_from_arrow(pq.read_table(file))
    victim = frame[frame.EventType == "ExecutionCompleted"].InstanceId.iloc[0]
    frame = frame[~((frame.InstanceId == victim) & (frame.EventType == "ExecutionCompleted"))]
    pq.write_table(frame_to_arrow(frame), file)
    snap = load_export(copy)
    now = pd.Timestamp("2026-11-27", tz="UTC")
    engine = ExportDB(copy).stuck(now=now)
    pandas = analysis.stuck(snap.instances, snap.history, now=now)
    assert victim in set(pandas[pandas.Reason == "finished-without-completion"].InstanceId)
    pd.testing.assert_frame_equal(engine, pandas)


@pytest.mark.parametrize(("freq", "tidy"), [("1h", False), ("10min", True), ("1D", False)])
def test_status_over_time(db, loaded, freq, tidy):
    engine = db.status_over_time(freq, tidy=tidy)
    pandas = analysis.status_over_time(loaded.instances, freq, tidy=tidy)
    assert len(engine) > 2
    pd.testing.assert_frame_equal(engine, pandas)
    with pytest.raises(ValueError, match="fixed interval"):
        db.status_over_time("MS")


def test_sql_reads_the_folder_directly(db, loaded):
    counts = db.sql(
        "SELECT created_date::VARCHAR AS day, count(*) AS n FROM instances GROUP BY 1 ORDER BY 1"
    ).df()
    expected = loaded.instances.CreatedTime.dt.strftime("%Y-%m-%d").value_counts().sort_index()
    assert counts.set_index("day").n.to_dict() == expected.to_dict()
    assert db.sql("SELECT count(*) FROM history").fetchall() == [(len(loaded.history),)]


def test_dask_reads_the_same_frames(whole_export, loaded):
    instances, history = read_export(whole_export.path)
    assert history.npartitions == len(list((whole_export.path / "history").glob("*/*.parquet")))
    got = in_table_order(history.compute())
    expected = loaded.history[list(history.columns)].copy()  # the contract columns
    for column in [c for c in expected.columns if expected[c].dtype == object]:  # JSON text
        expected[column] = pd.array(
            [None if v is None else json.dumps(v, default=str) for v in expected[column]],
            dtype="string",
        )
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, check_column_type=False)
    assert {str(t) for t in got.dtypes} <= {str(t) for t in loaded.history.dtypes} | {"string"}
    got_instances = in_table_order(instances.compute())
    assert got_instances.InstanceId.tolist() == loaded.instances.InstanceId.tolist()
    assert got_instances.RuntimeStatus.dtype == loaded.instances.RuntimeStatus.dtype

    durations = call_durations(history).groupby("Name").Seconds.mean().compute().sort_index()
    c = analysis.calls(loaded.history)
    c = c[c.Outcome.isin(["completed", "failed"]) & (c.Kind != "timer")]
    means = c.groupby(c.Name.astype(str)).Duration.mean().dt.total_seconds().sort_index()
    pd.testing.assert_series_equal(
        durations, means, check_names=False, check_index_type=False, rtol=1e-9
    )
