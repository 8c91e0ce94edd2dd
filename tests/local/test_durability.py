"""Durability: kill -9 the sidecar mid-run, lose a worker mid-run; everything still completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import local_orchestrations as o
import pytest
from durabletask.client import OrchestrationStatus, TaskHubGrpcClient
from durabletask.worker import TaskHubGrpcWorker
from local_orchestrations import register
from sidecar_process import start_sidecar

from durable_helpers import schema
from durable_helpers.local.ports import free_ports
from durable_helpers.local.sidecar import LocalTaskHub

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def _check_history(rest, hub: str, instance_id: str) -> None:
    pk = schema.escape_partition_key(instance_id)
    table = sorted(
        rest.query_all(f"{hub}History", f"PartitionKey eq {schema.odata_string(pk)}"),
        key=lambda r: r["RowKey"],
    )
    events = [r for r in table if r["RowKey"] != "sentinel"]
    assert [r["RowKey"] for r in events] == [schema.row_key(i) for i in range(len(events))]
    assert {r["ExecutionId"] for r in table} == {table[-1]["ExecutionId"]}
    scheduled = [r["EventId"] for r in events if r["EventType"] == "TaskScheduled"]
    completed = [r["TaskScheduledId"] for r in events if r["EventType"] == "TaskCompleted"]
    assert sorted(scheduled) == sorted(completed) == [1, 2, 3], instance_id
    assert [r["EventType"] for r in events].count("ExecutionStarted") == 1


@pytest.mark.slow
def test_kill_9_of_the_sidecar_loses_nothing(connection_string, hub_name, rest, tmp_path):
    port = free_ports(1)[0]
    address = f"127.0.0.1:{port}"
    log = tmp_path / "sidecar.log"
    server = start_sidecar(hub_name, port, connection_string, log)
    worker = register(TaskHubGrpcWorker(host_address=address))
    worker.start()
    client = TaskHubGrpcClient(host_address=address)
    try:
        ids = [
            client.schedule_new_orchestration(o.SlowSequence, instance_id=f"crash-{n:03d}")
            for n in range(100)
        ]
        deadline = time.monotonic() + 30
        while (
            client.get_orchestration_state(ids[10]).runtime_status != OrchestrationStatus.COMPLETED
        ):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(server.pid, signal.SIGKILL)  # mid-run: most orchestrations are in flight
        server.wait(10)
        server = start_sidecar(hub_name, port, connection_string, log)
        for instance_id in ids:
            state = client.wait_for_orchestration_completion(instance_id, timeout=120)
            assert state.runtime_status == OrchestrationStatus.COMPLETED, log.read_text()[-3000:]
        for instance_id in ids:
            _check_history(rest, hub_name, instance_id)
    finally:
        client.close()
        worker.stop()
        server.terminate()
        server.wait(10)


@pytest.mark.slow
def test_worker_loss_redelivers_in_flight_work(connection_string, hub_name, tmp_path):
    with LocalTaskHub(connection=connection_string, hub=hub_name, port=0) as hub:
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "worker_proc.py"), hub.address],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        client = TaskHubGrpcClient(host_address=hub.address)
        worker = None
        try:
            ids = [
                client.schedule_new_orchestration(o.SleepySequence, instance_id=f"{hub_name}-{n}")
                for n in range(10)
            ]
            deadline = time.monotonic() + 30
            while not hub.engine.tokens:  # the worker has work in flight
                assert time.monotonic() < deadline
                time.sleep(0.05)
            time.sleep(0.3)
            proc.kill()
            proc.wait(10)
            worker = register(TaskHubGrpcWorker(host_address=hub.address))
            worker.start()
            for instance_id in ids:
                state = client.wait_for_orchestration_completion(instance_id, timeout=60)
                assert state.runtime_status == OrchestrationStatus.COMPLETED
        finally:
            if proc.poll() is None:
                proc.kill()
            if worker is not None:
                worker.stop()
            client.close()


def test_journal_rotation_and_restart_keep_pending_work(connection_string, hub_name, monkeypatch):
    from durable_helpers.local.sidecar import journal

    monkeypatch.setattr(journal, "ROTATE_AFTER_APPENDS", 5)
    with LocalTaskHub(connection=connection_string, hub=hub_name, port=0) as hub:
        worker = register(TaskHubGrpcWorker(host_address=hub.address))
        worker.start()
        client = TaskHubGrpcClient(host_address=hub.address)
        try:
            client.schedule_new_orchestration(o.waiter, instance_id="waiting")
            client.wait_for_orchestration_start("waiting", timeout=10)
            ids = [client.schedule_new_orchestration(o.HelloSequence) for _ in range(5)]
            for instance_id in ids:
                assert client.wait_for_orchestration_completion(instance_id, timeout=30)
            assert hub.engine.store.journal._segment > 2  # rotated (compacted) several times
        finally:
            client.close()
            worker.stop()
    with LocalTaskHub(connection=connection_string, hub=hub_name, port=0) as hub:
        worker = register(TaskHubGrpcWorker(host_address=hub.address))
        worker.start()
        client = TaskHubGrpcClient(host_address=hub.address)
        try:
            client.raise_orchestration_event("waiting", "go", data="after restart")
            state = client.wait_for_orchestration_completion("waiting", timeout=30)
            assert state.serialized_output == '"after restart"'
            assert len(hub.engine.store.journal.segments()) == 1
        finally:
            client.close()
            worker.stop()
