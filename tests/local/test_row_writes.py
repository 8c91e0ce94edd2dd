"""The write-behind's row writes in helper processes: the rows land, a dead child is replaced and
the rows written again, errors come back, the key stays off command lines, children end with
the sidecar."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from durable_helpers import schema
from durable_helpers.local.sidecar.rest import RestStorage, StorageError
from durable_helpers.local.sidecar.row_writes import (
    TABLE_WRITES_ENV,
    RowWriteFailed,
    RowWriterProcesses,
    table_writes_from_env,
)
from durable_helpers.local.sidecar.store import wire
from durable_helpers.local.sidecar.table_writer import TableWriter
from durable_helpers.storage import AZURITE_KEY

ROOT = Path(__file__).resolve().parents[2]
WHEN = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def hub(rest: RestStorage) -> str:
    name = "W" + uuid.uuid4().hex[:10]
    names = schema.hub_names(name)
    rest.create_table(names.history_table)
    rest.create_table(names.instances_table)
    return name


def _ops(pk: str, events: int = 3) -> list[dict]:
    execution = uuid.uuid4().hex
    rows = [
        wire(
            schema.history_entity(
                pk, execution, n, "TaskCompleted", event_id=n, is_played=True, timestamp=WHEN
            )
        )
        for n in range(events)
    ]
    sentinel = wire(schema.sentinel_entity(pk, execution, checkpoint_completed=WHEN))
    batches = [[*rows[n : n + 99], sentinel] for n in range(0, len(rows), 99)]
    row = wire(schema.instance_entity(pk, Name="Chain", RuntimeStatus="Completed"))
    return [{"t": "h", "pk": pk, "batches": batches}, {"t": "i", "pk": pk, "e": row}]


def _rows(rest: RestStorage, table: str, pk: str) -> list[dict]:
    return list(rest.query_all(table, f"PartitionKey eq {schema.odata_string(pk)}"))


def _gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # a zombie (not reaped yet) is gone too
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_rows_land_in_the_tables(rest: RestStorage, hub: str) -> None:
    names = schema.hub_names(hub)
    write = RowWriterProcesses(rest, hub)
    try:
        write(_ops("a"))
        write(_ops("b", events=150))  # two transactions
        assert len(_rows(rest, names.history_table, "a")) == 4
        assert len(_rows(rest, names.history_table, "b")) == 151
        assert [r["RuntimeStatus"] for r in _rows(rest, names.instances_table, "b")] == [
            "Completed"
        ]
    finally:
        write.close()


def test_a_start_insert_says_whether_the_row_was_new(rest: RestStorage, hub: str) -> None:
    write = RowWriterProcesses(rest, hub)
    row = wire(schema.instance_entity("s1", Name="Chain", RuntimeStatus="Pending"))
    try:
        assert write.insert(row) is True
        assert write.insert(row) is False
        os.kill(write.pids()[0], signal.SIGKILL)  # a child dying under a start: asked again
        assert write.insert({**row, "PartitionKey": "s2"}) is True
    finally:
        write.close()
    pks = [r["PartitionKey"] for r in rest.query_all(schema.hub_names(hub).instances_table)]
    assert sorted(pks) == ["s1", "s2"]


def test_warm_starts_every_child_in_the_background(rest: RestStorage, hub: str) -> None:
    write = RowWriterProcesses(rest, hub, size=2)
    try:
        write.warm()
        deadline = time.monotonic() + 20
        while len(write.pids()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(write.pids()) == 2 and write.spawned == 2
        write(_ops("warm"))  # an idle child takes it: none more is started
        assert write.spawned == 2
        assert len(_rows(rest, schema.hub_names(hub).history_table, "warm")) == 4
    finally:
        write.close()


def test_the_key_is_not_on_the_childs_command_line_or_environment(rest, hub) -> None:
    write = RowWriterProcesses(rest, hub)
    try:
        write(_ops("a"))
        (pid,) = write.pids()
        for part in ("cmdline", "environ"):
            assert AZURITE_KEY.encode() not in Path(f"/proc/{pid}/{part}").read_bytes()
    finally:
        write.close()


def test_a_killed_child_is_replaced_and_the_rows_written_again(rest, hub) -> None:
    names = schema.hub_names(hub)
    write = RowWriterProcesses(rest, hub, size=1)
    writer = TableWriter(write, lag=0, patience=30)
    try:
        write(_ops("first"))
        (pid,) = write.pids()
        os.kill(pid, signal.SIGKILL)
        assert _gone(pid, 10)
        with pytest.raises(RowWriteFailed, match="ended"):
            write(_ops("lost"))
        writer.submit(_ops("second"))  # the write-behind: a new child writes it
        assert writer.flush("second")
        assert len(_rows(rest, names.history_table, "second")) == 4
        assert write.spawned == 2 and write.pids() != [pid]
        os.kill(write.pids()[0], signal.SIGKILL)  # and once more, inside the write-behind
        writer.submit(_ops("third"))
        assert writer.flush("third")
        assert len(_rows(rest, names.history_table, "third")) == 4
        assert write.spawned == 3
    finally:
        writer.close()
        write.close()


def test_a_storage_error_comes_back_with_its_message(rest: RestStorage) -> None:
    write = RowWriterProcesses(rest, "W" + uuid.uuid4().hex[:10])  # its tables do not exist
    try:
        with pytest.raises(StorageError, match="TableNotFound") as raised:
            write(_ops("a"))
        assert raised.value.status == 404  # the child's error, raised here whole
        write.close()
        with pytest.raises(RowWriteFailed, match="closed"):
            write(_ops("a"))
    finally:
        write.close()


def test_children_end_when_the_sidecar_is_killed(connection_string: str, hub: str) -> None:
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, threading
                from durable_helpers.local.sidecar.rest import RestStorage, StorageError
                from durable_helpers.local.sidecar.row_writes import RowWriterProcesses
                write = RowWriterProcesses(RestStorage.from_connection_string(sys.argv[1]), {hub!r})
                write([{{"t": "i", "pk": "k", "e": {{"PartitionKey": "k", "RowKey": ""}}}}])
                print(write.pids()[0], flush=True)
                threading.Event().wait()
                """
            ),
            connection_string,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        parent.kill()
        parent.wait(10)
        assert _gone(child, 10), "the row writer process outlived the sidecar"
    finally:
        parent.kill()
        parent.wait(10)


def test_the_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TABLE_WRITES_ENV, "thread")
    assert table_writes_from_env() == "thread"
    monkeypatch.setenv(TABLE_WRITES_ENV, "fork")
    with pytest.raises(ValueError, match="'process' or 'thread'"):
        table_writes_from_env()
