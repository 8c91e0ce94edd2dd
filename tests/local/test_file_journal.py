"""The journal kept in a local folder (``journal_dir``): durable, tied to its storage account."""

from __future__ import annotations

import os
import signal
import time
import uuid

import local_orchestrations as o
import pytest
from durabletask.client import OrchestrationStatus, TaskHubGrpcClient
from durabletask.worker import TaskHubGrpcWorker
from local_orchestrations import register
from sidecar_process import start_sidecar

from durable_helpers import schema
from durable_helpers.local.ports import free_ports
from durable_helpers.local.sidecar import LocalTaskHub
from durable_helpers.local.sidecar.journal import Journal
from durable_helpers.local.sidecar.journal_segments import (
    HOME_BLOB,
    KEEP_STALE,
    FileSegments,
    file_segments,
)
from durable_helpers.local.sidecar.rest import RestStorage
from durable_helpers.local.sidecar.store import journal_container


@pytest.fixture
def rest(connection_string) -> RestStorage:
    return RestStorage.from_connection_string(connection_string)


def _blob_segments(rest: RestStorage, hub: str) -> list[str]:
    return [n for n in rest.list_blobs(journal_container(hub), "journal-") if n.endswith(".log")]


def _folder(journal_dir, hub: str):
    return journal_dir / schema.hub_names(hub).lower


def test_segments_in_a_folder_append_read_put_and_delete(tmp_path) -> None:
    store = FileSegments(tmp_path / "j")
    store.create("journal-0000000001.log")
    store.append("journal-0000000001.log", b'{"a":1}\n')
    store.append("journal-0000000001.log", b'{"a":2}\n')
    store.put("records/big.json", b"{}")
    assert store.read("journal-0000000001.log") == b'{"a":1}\n{"a":2}\n'
    assert store.read("records/big.json") == b"{}" and store.read("nothing") is None
    assert store.names("journal-") == ["journal-0000000001.log"]
    store.delete("journal-0000000001.log")
    store.delete("journal-0000000001.log")  # a missing one is fine
    assert store.names("journal-") == []
    store.close()


def test_written_ids_ride_with_the_next_append_and_are_kept_at_close(tmp_path) -> None:
    journal = Journal(FileSegments(tmp_path / "j"))
    journal.start()
    journal.append({"m": [], "ops": [{"t": "i", "pk": "a", "e": {}}]})
    appends = journal.appends_total
    journal.note_written([1, 2])
    time.sleep(0.2)
    assert journal.appends_total == appends  # no append (no fsync) for the ids alone
    journal.append({"m": []})
    assert journal.appends_total == appends + 1
    assert {"w": [1, 2]} in journal.read_all()
    journal.note_written([3])
    journal.close()
    assert journal.read_all()[-1] == {"w": [3]}
    with pytest.raises(RuntimeError, match="closed"):
        journal.note_written([4])


def test_kill_9_loses_nothing_acknowledged_with_the_journal_in_a_folder(
    connection_string, hub_name, rest, tmp_path
) -> None:
    port = free_ports(1)[0]
    log = tmp_path / "sidecar.log"
    journal_dir = tmp_path / "journal"
    options = ("--journal-dir", str(journal_dir))
    server = start_sidecar(hub_name, port, connection_string, log, *options)
    worker = register(TaskHubGrpcWorker(host_address=f"127.0.0.1:{port}"))
    worker.start()
    client = TaskHubGrpcClient(host_address=f"127.0.0.1:{port}")
    try:
        client.schedule_new_orchestration(o.waiter, instance_id="waits")
        client.wait_for_orchestration_start("waits", timeout=30)
        chains = [client.schedule_new_orchestration(o.HelloSequence) for _ in range(5)]
        os.kill(server.pid, signal.SIGKILL)  # chains in flight, "waits" waiting
        server.wait(10)
        assert _blob_segments(rest, hub_name) == []  # the journal is not in the container
        assert FileSegments(_folder(journal_dir, hub_name)).names("journal-")

        server = start_sidecar(hub_name, port, connection_string, log, *options)
        client.raise_orchestration_event("waits", "go", data="after kill -9")
        state = client.wait_for_orchestration_completion("waits", timeout=60)
        assert state.serialized_output == '"after kill -9"', log.read_text()[-3000:]
        for iid in chains:
            state = client.wait_for_orchestration_completion(iid, timeout=60)
            assert state.runtime_status == OrchestrationStatus.COMPLETED
    finally:
        client.close()
        worker.stop()
        server.terminate()
        server.wait(10)


def test_moving_the_journal_to_a_folder_keeps_the_work_of_the_blob_journal(
    connection_string, hub_name, rest, tmp_path
) -> None:
    with LocalTaskHub(connection=connection_string, hub=hub_name, port=0) as hub:
        client = TaskHubGrpcClient(host_address=hub.address)
        client.schedule_new_orchestration(o.waiter, instance_id="moved")  # no worker yet
        client.close()
    assert _blob_segments(rest, hub_name)
    journal_dir = tmp_path / "journal"
    with LocalTaskHub(
        connection=connection_string, hub=hub_name, port=0, journal_dir=journal_dir
    ) as hub:
        assert _blob_segments(rest, hub_name) == []  # read, then emptied into the folder
        worker = register(TaskHubGrpcWorker(host_address=hub.address))
        worker.start()
        client = TaskHubGrpcClient(host_address=hub.address)
        try:
            client.wait_for_orchestration_start("moved", timeout=30)
            client.raise_orchestration_event("moved", "go", data="moved")
            state = client.wait_for_orchestration_completion("moved", timeout=30)
            assert state.serialized_output == '"moved"'
        finally:
            client.close()
            worker.stop()


def _leave_a_waiter(connection: str, hub_name: str, journal_dir, instance_id: str) -> None:
    """Start a waiting orchestration (no worker) through a sidecar journaling in the folder."""
    with LocalTaskHub(connection=connection, hub=hub_name, port=0, journal_dir=journal_dir) as hub:
        client = TaskHubGrpcClient(host_address=hub.address)
        client.schedule_new_orchestration(o.waiter, instance_id=instance_id)
        client.close()


def test_a_folder_from_another_storage_is_set_aside_not_replayed(
    connection_string, hub_name, rest, tmp_path, caplog
) -> None:
    journal_dir = tmp_path / "journal"
    _leave_a_waiter(connection_string, hub_name, journal_dir, "old-world")
    # the storage is reset (here: its note of the folder is gone, as with a fresh Azurite)
    rest.delete_blob(journal_container(hub_name), HOME_BLOB)
    with LocalTaskHub(
        connection=connection_string, hub=hub_name, port=0, journal_dir=journal_dir
    ) as hub:
        assert "set aside" in caplog.text
        folder = _folder(journal_dir, hub_name)
        aside = [p for p in folder.iterdir() if p.name.startswith("stale-")]
        assert len(aside) == 1 and any(p.name.startswith("journal-") for p in aside[0].iterdir())
        assert "old-world" not in hub.engine.inbox.active  # its start was not replayed


def test_the_blob_journal_refuses_a_hub_whose_journal_is_in_a_folder(
    connection_string, hub_name, tmp_path
) -> None:
    journal_dir = tmp_path / "journal"
    _leave_a_waiter(connection_string, hub_name, journal_dir, f"w-{uuid.uuid4().hex[:4]}")
    with pytest.raises(RuntimeError, match="--journal-dir") as refused:
        LocalTaskHub(connection=connection_string, hub=hub_name, port=0).start()
    assert str(journal_dir) in str(refused.value)


def test_only_the_newest_stale_folders_are_kept(tmp_path, rest, hub_name) -> None:
    """Each reset of the storage sets a folder aside; old ones do not pile up on disk."""
    container = journal_container(hub_name)
    rest.create_container(container)
    folder = tmp_path / "j"
    for n in range(KEEP_STALE + 2):
        store = file_segments(folder, rest, container)
        store.create(f"journal-{n:010d}.log")
        store.append(f"journal-{n:010d}.log", f'{{"n":{n}}}\n'.encode())
        rest.delete_blob(container, HOME_BLOB)  # the storage "is reset"
    file_segments(folder, rest, container)
    kept = sorted(p for p in folder.iterdir() if p.name.startswith("stale-"))
    assert len(kept) == KEEP_STALE  # several in the same second get distinct, ordered names
    survivors = sorted(name.name for p in kept for name in p.iterdir())
    assert survivors == [f"journal-{n:010d}.log" for n in range(2, KEEP_STALE + 2)]
