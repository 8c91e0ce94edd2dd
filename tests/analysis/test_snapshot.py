"""save_snapshot / load_snapshot: values and dtypes survive the Parquet round trip."""

from __future__ import annotations

import pandas as pd
import pytest
from analysis_builders import instance, instances
from test_analyses import nested_failure

from durable_helpers import load_snapshot
from durable_helpers.snapshot import save_snapshot


def test_round_trip_preserves_values_and_dtypes(tmp_path):
    inst, hist = nested_failure()
    inst = pd.concat(
        [inst, instances(instance("odd", "Running", 3, input={"a": [1, 2.5, None], "b": "x"}))],
        ignore_index=True,
    )
    inst["Output"] = pd.Series([{"k": {"n": 1}}, "plain text", 3, None, [1, "two"]], dtype=object)
    hist["Extra"] = pd.Series(range(len(hist)), dtype="Int64")  # an unknown column is kept
    hist["InstanceId"] = hist["InstanceId"].astype(pd.StringDtype("python"))  # as frames.py
    hist.columns = pd.Index(list(hist.columns), dtype=object)
    path = save_snapshot(tmp_path / "snap", instances=inst, histories=hist)
    assert path == tmp_path / "snap"
    snap = load_snapshot(path)
    pd.testing.assert_frame_equal(snap.instances, inst)
    pd.testing.assert_frame_equal(snap.history, hist)
    assert snap.instances["RuntimeStatus"].dtype == inst["RuntimeStatus"].dtype  # all categories
    assert snap.instances["RuntimeStatus"].cat.categories[0] == "Pending"
    assert str(snap.history["Timestamp"].dtype) == "datetime64[ns, UTC]"
    assert str(snap.history["EventId"].dtype) == "Int32"
    assert str(snap.history["Name"].dtype) == "string"
    assert snap.instances.loc[4, "Input"] == {"a": [1, 2.5, None], "b": "x"}
    nested = snap.history["FailureDetails"].dropna().tolist()
    assert nested == hist["FailureDetails"].dropna().tolist()
    assert any(
        d["InnerFailure"] and d["InnerFailure"]["ErrorMessage"] == "disk full" for d in nested
    )


def test_round_trip_of_empty_frames_and_a_clear_error_for_a_wrong_path(tmp_path):
    inst, hist = nested_failure()
    snap = load_snapshot(
        save_snapshot(tmp_path, instances=inst.iloc[0:0], histories=hist.iloc[0:0])
    )
    assert snap.instances.empty and list(snap.history.columns) == list(hist.columns)
    assert snap.history.dtypes.astype(str).tolist() == hist.dtypes.astype(str).tolist()
    with pytest.raises(FileNotFoundError, match="save_snapshot"):
        load_snapshot(tmp_path / "nowhere")
