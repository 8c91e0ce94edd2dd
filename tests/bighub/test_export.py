"""TaskHub.export: Hive-partitioned Parquet with the frames' dtypes, resumable after a kill."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from durable_helpers.export import (
    STATE_FILE,
    ExportFolderError,
    export_complete,
    export_files,
    load_export,
)


def _direct(hub, execution: str = "current", **filters):
    instances = hub.instances(**filters)
    history = hub.histories(instances.InstanceId, execution=execution, progress=False)
    return instances, history


def test_whole_hub_export_reads_back_as_the_same_frames(big_hub, whole_export):
    hub = big_hub.taskhub()
    instances, history = _direct(hub)
    snap = load_export(whole_export.path)
    pd.testing.assert_frame_equal(snap.instances, instances)
    pd.testing.assert_frame_equal(snap.history, history)
    assert whole_export.instances == len(instances) and whole_export.history_rows == len(history)
    assert export_complete(whole_export.path) and not whole_export.resumed
    days = {f.parent.name for f in export_files(whole_export.path, "instances")}
    assert days == {"created_date=2026-11-23", "created_date=2026-11-24", "created_date=2026-11-25"}
    # history rows live in the folder of their instance's created date
    for file in export_files(whole_export.path, "history")[:5]:
        ids = set(pq.read_table(file, columns=["InstanceId"]).column(0).to_pylist())
        own = snap.instances[snap.instances.InstanceId.isin(ids)]
        assert set(own.CreatedTime.dt.strftime("created_date=%Y-%m-%d")) == {file.parent.name}


def test_filtered_export_reads_histories_per_instance(big_hub, tmp_path):
    hub = big_hub.taskhub()
    window = {"created_from": "2026-11-24T06:00", "created_to": "2026-11-24T18:00"}
    result = hub.export(tmp_path / "window", status=["Failed", "Running"], progress=False, **window)
    instances, history = _direct(hub, status=["Failed", "Running"], **window)
    assert 0 < result.instances == len(instances) < 200
    snap = load_export(tmp_path / "window")
    pd.testing.assert_frame_equal(snap.instances, instances)
    pd.testing.assert_frame_equal(snap.history, history)


def test_execution_all_and_an_empty_export(big_hub, tmp_path):
    hub = big_hub.taskhub()
    hub.export(tmp_path / "all", instance_id_prefix="Z#", execution="all", progress=False)
    instances, history = _direct(hub, execution="all", instance_id_prefix="Z#")
    snap = load_export(tmp_path / "all")
    pd.testing.assert_frame_equal(snap.instances, instances)
    pd.testing.assert_frame_equal(snap.history, history)

    empty = hub.export(tmp_path / "none", created_from="2030-01-01", progress=False)
    assert empty.instances == 0
    snap = load_export(tmp_path / "none")
    pd.testing.assert_frame_equal(snap.instances, hub.instances(created_from="2030-01-01"))
    assert snap.history.empty and list(snap.history.columns)[:2] == ["InstanceId", "ExecutionId"]


def test_folder_mistakes_are_clear_errors(big_hub, tmp_path):
    hub = big_hub.taskhub()
    hub.export(tmp_path / "p", instance_id_prefix="Order/", progress=False)
    with pytest.raises(ExportFolderError, match="other arguments"):
        hub.export(tmp_path / "p", instance_id_prefix="Z#", progress=False)
    again = hub.export(tmp_path / "p", instance_id_prefix="Order/", progress=False)
    assert again.resumed and again.instances == 0 and again.total_instances == 12
    replaced = hub.export(tmp_path / "p", instance_id_prefix="Z#", overwrite=True, progress=False)
    assert replaced.total_instances == 12
    assert set(load_export(tmp_path / "p").instances.InstanceId.str[:2]) == {"Z#"}
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ExportFolderError, match="not empty"):
        hub.export(tmp_path / "other", progress=False)
    with pytest.raises(ValueError, match="chunk_size"):
        hub.export(tmp_path / "x", chunk_size=0, progress=False)
    with pytest.raises(FileNotFoundError, match="not a durable_helpers export"):
        load_export(tmp_path / "other")


def _recorded_chunks(path: Path) -> int:
    try:
        state = json.loads((path / STATE_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return 0
    return sum(p.get("chunks", 0) for p in state["progress"].values())


def test_killed_export_resumes_without_duplicates(big_hub, tmp_path):
    """kill -9 of a real export process in the middle, then the same call again."""
    path = tmp_path / "killed"
    code = (
        "import sys\n"
        "from durable_helpers import TaskHub\n"
        "TaskHub(sys.argv[1], hub=sys.argv[2]).export(sys.argv[3], chunk_size=25,"
        " history_reads='point', max_workers=1, progress=False)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, big_hub.connection_string, big_hub.hub, str(path)], env=env
    )
    try:
        deadline = time.monotonic() + 120
        while _recorded_chunks(path) < 4:
            assert proc.poll() is None, "the export ended before it could be killed"
            assert time.monotonic() < deadline, "the export wrote no chunks within 120 s"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert not export_complete(path)
    done_before = json.loads((path / STATE_FILE).read_text())["progress"]
    # A chunk written but not recorded when the process died (a later number than any the
    # resumed run writes, so only the clean-up can remove it): resuming must drop it.
    recorded = next(f for f in export_files(path, "instances"))
    assert int(recorded.name[5:11]) < done_before[recorded.name[1:3].lstrip("0") or "0"]["chunks"]
    shutil.copy(recorded, recorded.with_name(recorded.name[:5] + "999999.parquet"))

    hub = big_hub.taskhub()
    result = hub.export(path, progress=False)  # other concurrency and reads: same arguments
    assert result.resumed and export_complete(path)
    instances, history = _direct(hub)
    assert 0 < result.instances < len(instances)  # only what the killed run had not written
    assert result.total_instances == len(instances)
    snap = load_export(path)
    assert not snap.instances.InstanceId.duplicated().any()
    pd.testing.assert_frame_equal(snap.instances, instances)
    pd.testing.assert_frame_equal(snap.history, history)
