"""Entities survive ``kill -9`` of the sidecar: no acknowledged operation lost or applied twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import durabletask.internal.orchestrator_service_pb2 as pb
import durabletask.internal.orchestrator_service_pb2_grpc as stubs
import grpc
import local_entities
import pytest
from durabletask.client import OrchestrationStatus, TaskHubGrpcClient
from durabletask.entities import EntityInstanceId
from durabletask.worker import TaskHubGrpcWorker
from local_entities import register_entities, wait_until
from local_orchestrations import register
from sidecar_process import start_sidecar
from test_durability import HERE, ROOT

from durable_helpers import schema
from durable_helpers.local.ports import free_ports
from durable_helpers.local.sidecar import LocalTaskHub

SIGNALS = 300
CALLS = 20


class _Killable:
    """A sidecar subprocess (for ``kill -9``) with an in-process SDK worker and client."""

    def __init__(self, connection_string: str, log, prefix: str) -> None:
        self.hub = prefix + uuid.uuid4().hex[:10]
        self.port = free_ports(1)[0]
        self.connection_string = connection_string
        self.log = log
        self.server = start_sidecar(self.hub, self.port, connection_string, log)
        address = f"127.0.0.1:{self.port}"
        self.worker = register_entities(register(TaskHubGrpcWorker(host_address=address)))
        self.worker.start()
        self.client = TaskHubGrpcClient(host_address=address)

    def kill_9_and_restart(self) -> None:
        os.kill(self.server.pid, signal.SIGKILL)
        self.server.wait(10)
        self.server = start_sidecar(self.hub, self.port, self.connection_string, self.log)

    def close(self) -> None:
        self.client.close()
        self.worker.stop()
        self.server.terminate()
        self.server.wait(10)


def _value(client, eid):
    meta = client.get_entity(eid)
    return None if meta is None else meta.get_state(int)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["fn_counter", "classcounter"])
def test_kill_9_with_signals_and_calls_in_flight(connection_string, rest, tmp_path, kind):
    log = tmp_path / "sidecar.log"
    hub = _Killable(connection_string, log, "K")
    client = hub.client
    signalled = EntityInstanceId(kind, "signals")
    called = EntityInstanceId(kind, "calls")
    try:
        callers = [
            client.schedule_new_orchestration(
                "call_counter", input={"name": kind, "key": "calls", "op": "slow_add", "input": 1}
            )
            for _ in range(CALLS)
        ]
        for _ in range(SIGNALS):
            client.signal_entity(signalled, "slow_add", 1)  # returns once it is acknowledged
        hub.kill_9_and_restart()  # most of them are still queued or in a batch
        recovered = [line for line in log.read_text().splitlines() if "recovering" in line]
        pending = int(recovered[-1].split(" pending orchestration")[0].rsplit(" ", 1)[1])
        assert pending > 10, f"too little was in flight to test anything: {recovered[-1]}"
        for iid in callers:
            state = client.wait_for_orchestration_completion(iid, timeout=120)
            assert state.runtime_status == OrchestrationStatus.COMPLETED, log.read_text()[-3000:]
        results = sorted(
            json.loads(client.get_orchestration_state(iid).serialized_output) for iid in callers
        )
        assert results == list(range(1, CALLS + 1)), "a call was applied twice or lost"
        wait_until(lambda: _value(client, signalled) == SIGNALS, 120, f"{SIGNALS} signals")
        time.sleep(1.0)  # nothing is applied a second time afterwards
        assert _value(client, signalled) == SIGNALS
        assert _value(client, called) == CALLS
        pk = schema.escape_partition_key(str(signalled))
        flt = f"PartitionKey eq {schema.odata_string(pk)}"
        rows = list(rest.query_all(f"{hub.hub}History", flt))
        assert len(rows) == 4  # the three rows of the latest batch + the sentinel
        assert len({r["ExecutionId"] for r in rows}) == 1
    finally:
        hub.close()


@pytest.mark.slow
def test_worker_loss_redelivers_the_entity_batch_in_flight(connection_string, tmp_path):
    hub = "W" + uuid.uuid4().hex[:10]
    eid = EntityInstanceId("fn_counter", "worker-loss")
    with LocalTaskHub(connection=connection_string, hub=hub, port=0) as sidecar:
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "worker_proc.py"), sidecar.address],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = TaskHubGrpcClient(host_address=sidecar.address)
        worker = None
        try:
            for _ in range(SIGNALS):
                client.signal_entity(eid, "slow_add", 1)
            wait_until(lambda: sidecar.engine.tokens, 30, "a batch in flight on the worker")
            proc.kill()  # mid-batch: its results never reach the sidecar
            proc.wait(10)
            assert (_value(client, eid) or 0) < SIGNALS
            worker = register_entities(register(TaskHubGrpcWorker(host_address=sidecar.address)))
            worker.start()
            wait_until(lambda: _value(client, eid) == SIGNALS, 60, "every signal, once")
            time.sleep(0.5)
            assert _value(client, eid) == SIGNALS
        finally:
            if proc.poll() is None:
                proc.kill()
            if worker is not None:
                worker.stop()
            client.close()


def test_an_abandoned_batch_is_delivered_again_in_order(connection_string):
    hub = "A" + uuid.uuid4().hex[:10]
    eid = EntityInstanceId("fn_counter", "abandoned")
    with LocalTaskHub(connection=connection_string, hub=hub, port=0) as sidecar:
        client = TaskHubGrpcClient(host_address=sidecar.address)
        channel = grpc.insecure_channel(sidecar.address)
        worker = None
        try:
            for op, value in (("add", 5), ("reset", None), ("add", 2)):
                client.signal_entity(eid, op, value)
            stub = stubs.TaskHubSidecarServiceStub(channel)
            stream = stub.GetWorkItems(pb.GetWorkItemsRequest(), timeout=30)
            item = next(i for i in stream if i.HasField("entityRequestV2"))
            ops = [
                e.entityOperationSignaled.operation for e in item.entityRequestV2.operationRequests
            ]
            assert ops == ["add", "reset", "add"]
            stub.AbandonTaskEntityWorkItem(
                pb.AbandonEntityTaskRequest(completionToken=item.completionToken), timeout=10
            )
            stream.cancel()
            worker = register_entities(register(TaskHubGrpcWorker(host_address=sidecar.address)))
            worker.start()
            wait_until(lambda: _value(client, eid) == 2, 30, "the abandoned batch, in order")
            stale = pb.EntityBatchResult(completionToken=item.completionToken)
            stub.CompleteEntityTask(stale, timeout=10)  # a stale completion changes nothing
            assert _value(client, eid) == 2
        finally:
            channel.close()
            if worker is not None:
                worker.stop()
            client.close()


@pytest.mark.slow
def test_one_batch_per_entity_in_flight_with_many_workers(connection_string):
    hub = "B" + uuid.uuid4().hex[:10]
    keys = [f"busy-{n}" for n in range(3)]
    local_entities.OVERLAPS.clear()
    with LocalTaskHub(connection=connection_string, hub=hub, port=0) as sidecar:
        client = TaskHubGrpcClient(host_address=sidecar.address)
        workers = [
            register_entities(register(TaskHubGrpcWorker(host_address=sidecar.address)))
            for _ in range(3)
        ]
        for w in workers:
            w.start()
        try:
            for round_ in range(40):
                for key in keys:
                    client.signal_entity(EntityInstanceId("classcounter", key), "slow_add", 1)
                if round_ % 10 == 0:
                    time.sleep(0.05)  # several batches per entity, on different workers
            for key in keys:
                eid = EntityInstanceId("classcounter", key)
                wait_until(lambda eid=eid: _value(client, eid) == 40, 60, f"{eid}")
            assert local_entities.OVERLAPS == [], "two batches of one entity ran at once"
        finally:
            for w in workers:
                w.stop()
            client.close()


@pytest.mark.slow
def test_a_delayed_signal_survives_kill_9_and_runs_once_on_time(connection_string, tmp_path):
    from datetime import datetime, timedelta, timezone

    hub = _Killable(connection_string, tmp_path / "sidecar.log", "D")
    client = hub.client
    eid = EntityInstanceId("fn_counter", "later")
    try:
        due = datetime.now(timezone.utc) + timedelta(seconds=4)  # noqa: UP017
        client.signal_entity(eid, "add", 1, signal_time=due)
        hub.kill_9_and_restart()
        assert client.get_entity(eid) is None  # not yet
        wait_until(lambda: _value(client, eid) == 1, 30, "the delayed signal")
        assert datetime.now(timezone.utc) >= due - timedelta(milliseconds=300)  # noqa: UP017
        time.sleep(1.0)
        assert _value(client, eid) == 1
    finally:
        hub.close()
