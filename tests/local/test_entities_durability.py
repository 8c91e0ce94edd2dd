"""Entities survive ``kill -9`` of the sidecar: no acknowledged operation lost or applied twice."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid

import pytest
from durabletask.client import OrchestrationStatus, TaskHubGrpcClient
from durabletask.entities import EntityInstanceId
from durabletask.worker import TaskHubGrpcWorker
from local_entities import register_entities, wait_until
from local_orchestrations import register
from test_durability import _start_server

from durable_helpers import schema
from durable_helpers.local.ports import free_ports

SIGNALS = 300
CALLS = 20


def _value(client, eid):
    meta = client.get_entity(eid)
    return None if meta is None else meta.get_state(int)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["fn_counter", "classcounter"])
def test_kill_9_with_signals_and_calls_in_flight(connection_string, rest, tmp_path, kind):
    hub = "K" + uuid.uuid4().hex[:10]
    port = free_ports(1)[0]
    address = f"127.0.0.1:{port}"
    log = tmp_path / "sidecar.log"
    server = _start_server(hub, port, connection_string, log)
    worker = register_entities(register(TaskHubGrpcWorker(host_address=address)))
    worker.start()
    client = TaskHubGrpcClient(host_address=address)
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
        os.kill(server.pid, signal.SIGKILL)  # most of them are still queued or in a batch
        server.wait(10)
        server = _start_server(hub, port, connection_string, log)
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
        rows = list(rest.query_all(f"{hub}History", f"PartitionKey eq {schema.odata_string(pk)}"))
        assert len(rows) == 4  # the three rows of the latest batch + the sentinel
        assert len({r["ExecutionId"] for r in rows}) == 1
    finally:
        client.close()
        worker.stop()
        server.terminate()
        server.wait(10)
