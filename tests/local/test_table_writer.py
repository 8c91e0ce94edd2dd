"""The sidecar's write-behind of History/Instances rows: coalesced, lag bounded, nothing lost."""

from __future__ import annotations

import os
import signal
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import local_orchestrations as o
import pytest
from azure.data.tables import TableServiceClient
from durabletask import task
from durabletask.client import OrchestrationStatus, TaskHubGrpcClient
from durabletask.worker import TaskHubGrpcWorker
from sidecar_process import start_sidecar

from durable_helpers import schema
from durable_helpers.local.ports import free_ports
from durable_helpers.local.sidecar import LocalTaskHub
from durable_helpers.local.sidecar.rest import RestStorage
from durable_helpers.local.sidecar.store import Store, wire
from durable_helpers.local.sidecar.table_writer import BATCH_ROWS, TableWriter, coalesce

ROOT = Path(__file__).resolve().parents[2]
WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def _history(pk: str, first: int, count: int, execution: str = "e1", final: bool = True) -> dict:
    rows = [
        wire(
            schema.history_entity(
                pk, execution, n, "TaskCompleted", event_id=n, is_played=False, timestamp=WHEN
            )
        )
        for n in range(first, first + count)
    ]
    sentinel = schema.sentinel_entity(pk, execution, checkpoint_completed=WHEN if final else None)
    return {"t": "h", "pk": pk, "batches": [[*rows, wire(sentinel)]]}


def _keys(op: dict) -> list[list[str]]:
    return [[e["RowKey"] for e in batch] for batch in op["batches"]]


def _pk_rows(rest: RestStorage, table: str, pk: str) -> list[dict]:
    return list(rest.query_all(table, f"PartitionKey eq {schema.odata_string(pk)}"))


# -- coalesce (a pure function) ---------------------------------------------------------------


def test_checkpoints_of_one_execution_merge_and_only_the_newest_instances_row_is_kept() -> None:
    ops = [
        _history("p", 0, 2),
        {"t": "i", "pk": "p", "e": {"V": 1}},
        _history("p", 2, 1),
        {"t": "i", "pk": "p", "e": {"V": 2}},
    ]
    out = coalesce(ops)
    assert [op["t"] for op in out] == ["h", "i"]
    assert _keys(out[0]) == [[schema.row_key(0), schema.row_key(1), schema.row_key(2), "sentinel"]]
    assert out[1]["e"] == {"V": 2}


def test_a_new_execution_and_a_purge_are_not_merged_across() -> None:
    ops = [
        _history("p", 0, 2, execution="e1"),
        _history("p", 0, 1, execution="e2"),  # continue-as-new: the rows start again
        {"t": "purge", "pk": "p"},
        _history("p", 0, 1, execution="e3"),
    ]
    out = coalesce(ops)
    assert [(op["t"], op.get("batches", [[{}]])[-1][-1].get("ExecutionId")) for op in out] == [
        ("h", "e1"),
        ("h", "e2"),
        ("purge", None),
        ("h", "e3"),
    ]


def test_many_rows_are_cut_into_transactions_with_an_open_sentinel_until_the_last() -> None:
    ops = [_history("p", 0, 80), _history("p", 80, 80)]
    (merged,) = coalesce(ops)
    sizes = [len(batch) for batch in merged["batches"]]
    assert sizes == [BATCH_ROWS + 1, 160 - BATCH_ROWS + 1]  # each with its sentinel
    first, last = (batch[-1] for batch in merged["batches"])
    assert first["IsCheckpointComplete"] is False and "CheckpointCompletedTimestamp" not in first
    assert last["IsCheckpointComplete"] is True and "CheckpointCompletedTimestamp" in last
    keys = [e["RowKey"] for batch in merged["batches"] for e in batch[:-1]]
    assert keys == [schema.row_key(n) for n in range(160)]  # lowest first, no gap


# -- the writer against Azurite ---------------------------------------------------------------


@pytest.fixture
def store(connection_string: str, hub_name: str):
    store = Store(RestStorage.from_connection_string(connection_string), hub_name, table_lag=0.5)
    store.setup()
    store.writer.start()
    try:
        yield store
    finally:
        store.writer.close()


def test_queued_rows_reach_the_table_within_the_lag_and_a_read_flushes_first(store) -> None:
    table = store.names.history_table
    store.write([_history("lagging", 0, 3)])
    queued = time.monotonic()
    while not _pk_rows(store.rest, table, "lagging"):
        assert time.monotonic() - queued < store.writer.lag + 5, "not written within the lag"
        time.sleep(0.02)
    assert len(_pk_rows(store.rest, table, "lagging")) == 4  # 3 rows and the sentinel at once

    store.write([_history("read", 0, 2)])
    _, rows = store.read_history("read")  # the sidecar reads its own writes
    assert [r["RowKey"] for r in rows] == [schema.row_key(0), schema.row_key(1)]


def test_a_write_that_fails_is_kept_and_written_once_storage_takes_it(
    store, connection_string
) -> None:
    tables = TableServiceClient.from_connection_string(connection_string)
    writer = TableWriter(store.apply_ops, lag=0.1, patience=0.3)
    writer.start()
    try:
        tables.delete_table(store.names.history_table)  # storage refuses the write
        writer.submit([_history("kept", 0, 2)])
        time.sleep(1.0)  # due after 0.1 s, refused for 0.3 s, queued again: more than once
        assert writer.pending() == 1
        store.rest.create_table(store.names.history_table)
        deadline = time.monotonic() + 15
        while writer.pending():
            assert time.monotonic() < deadline, "the refused write was not written again"
            time.sleep(0.05)
        assert len(_pk_rows(store.rest, store.names.history_table, "kept")) == 3
    finally:
        writer.close()


# -- the sidecar ------------------------------------------------------------------------------


def test_a_finished_instance_is_in_the_tables_when_its_completion_is_visible(
    connection_string, hub_name, rest
) -> None:
    # A lag far longer than the test: only an instance's last checkpoint is written at once.
    with LocalTaskHub(connection=connection_string, hub=hub_name, port=0, table_lag=600) as hub:
        worker = o.register(TaskHubGrpcWorker(host_address=hub.address))
        worker.start()
        client = TaskHubGrpcClient(host_address=hub.address)
        try:
            iid = client.schedule_new_orchestration(o.HelloSequence)
            state = client.wait_for_orchestration_completion(iid, timeout=60)
            assert state.runtime_status == OrchestrationStatus.COMPLETED
            pk = schema.escape_partition_key(iid)
            rows = sorted(_pk_rows(rest, f"{hub_name}History", pk), key=lambda r: r["RowKey"])
            events = [r for r in rows if r["RowKey"] != "sentinel"]
            assert [r["RowKey"] for r in events] == [schema.row_key(n) for n in range(len(events))]
            assert "ExecutionCompleted" in [r["EventType"] for r in events[-2:]]
            assert rows[-1]["RowKey"] == "sentinel" and rows[-1]["IsCheckpointComplete"] is True
            (row,) = _pk_rows(rest, f"{hub_name}Instances", pk)
            assert row["RuntimeStatus"] == "Completed"
            assert hub.engine.store.writer.requests_saved > 0  # its checkpoints went as one
        finally:
            client.close()
            worker.stop()


def touch(ctx, path: str) -> str:
    Path(path).write_text("ran")
    return path


def touch_then_wait(ctx: task.OrchestrationContext, path: str):
    yield ctx.call_activity(touch, input=path)
    yield ctx.wait_for_external_event("go")
    return "done"


@pytest.mark.slow
def test_kill_9_with_rows_still_queued_loses_none_of_them(
    connection_string, hub_name, rest, tmp_path
) -> None:
    port = free_ports(1)[0]
    log = tmp_path / "sidecar.log"
    server = start_sidecar(hub_name, port, connection_string, log, "--table-lag", "600")
    worker = TaskHubGrpcWorker(host_address=f"127.0.0.1:{port}")
    worker.add_orchestrator(touch_then_wait)
    worker.add_activity(touch)
    worker.start()
    client = TaskHubGrpcClient(host_address=f"127.0.0.1:{port}")
    marker = tmp_path / f"ran-{uuid.uuid4().hex[:6]}"
    try:
        iid = client.schedule_new_orchestration(touch_then_wait, input=str(marker))
        deadline = time.monotonic() + 30
        while not marker.exists():  # the first checkpoint is durable: the activity ran
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.05)
        time.sleep(0.5)  # and, likely, the activity's result and the next checkpoint
        pk = schema.escape_partition_key(iid)
        assert _pk_rows(rest, f"{hub_name}History", pk) == []  # still queued: the lag is long
        os.kill(server.pid, signal.SIGKILL)
        server.wait(10)

        server = start_sidecar(hub_name, port, connection_string, log)
        rows = _pk_rows(rest, f"{hub_name}History", pk)  # recovery wrote them before serving
        types = [r.get("EventType") for r in sorted(rows, key=lambda r: r["RowKey"])]
        assert types[:3] == ["OrchestratorStarted", "ExecutionStarted", "TaskScheduled"], types
        client.raise_orchestration_event(iid, "go")
        state = client.wait_for_orchestration_completion(iid, timeout=60)
        assert state.runtime_status == OrchestrationStatus.COMPLETED, log.read_text()[-3000:]
        events = sorted(
            (r for r in _pk_rows(rest, f"{hub_name}History", pk) if r["RowKey"] != "sentinel"),
            key=lambda r: r["RowKey"],
        )
        assert [r["RowKey"] for r in events] == [schema.row_key(n) for n in range(len(events))]
        kinds = [r["EventType"] for r in events]
        assert kinds.count("TaskScheduled") == kinds.count("TaskCompleted") == 1
        assert kinds.count("ExecutionStarted") == kinds.count("EventRaised") == 1
    finally:
        client.close()
        worker.stop()
        server.terminate()
        server.wait(10)
