"""Leases: work a worker holds without completing it is handed out again when its lease ends."""

from __future__ import annotations

import threading
import time

import pytest
from durabletask import task
from durabletask.client import OrchestrationStatus, TaskHubGrpcClient
from durabletask.worker import TaskHubGrpcWorker

from durable_helpers.local.sidecar import LocalTaskHub
from durable_helpers.local.sidecar.work_items import LEASE_ENV_VAR, lease_seconds_from_env

RUNS: list[float] = []
RELEASE = threading.Event()


def hangs_the_first_time(ctx, _) -> str:
    RUNS.append(time.monotonic())
    if len(RUNS) == 1:
        RELEASE.wait(30)  # a worker that hangs: the stream stays connected, nothing completes
        return "late"
    return "redelivered"


def one_activity(ctx: task.OrchestrationContext, _):
    return (yield ctx.call_activity(hangs_the_first_time))


@pytest.mark.slow
def test_an_activity_held_past_its_lease_is_handed_out_again(connection_string, hub_name):
    RUNS.clear()
    RELEASE.clear()
    with LocalTaskHub(connection=connection_string, hub=hub_name, port=0, lease_seconds=2) as hub:
        worker = TaskHubGrpcWorker(host_address=hub.address)
        worker.add_orchestrator(one_activity)
        worker.add_activity(hangs_the_first_time)
        worker.start()
        client = TaskHubGrpcClient(host_address=hub.address)
        try:
            started = time.monotonic()
            client.schedule_new_orchestration(one_activity, instance_id="leased")
            state = client.wait_for_orchestration_completion("leased", timeout=20)
            assert state.runtime_status == OrchestrationStatus.COMPLETED
            assert state.serialized_output == '"redelivered"'
            assert len(RUNS) == 2
            assert 1.5 < RUNS[1] - RUNS[0] < 6, "handed out again about when the 2 s lease ended"
            assert time.monotonic() - started < 10
            RELEASE.set()  # the first run's late completion is ignored: the result stays
            time.sleep(0.5)
            state = client.get_orchestration_state("leased")
            assert state.serialized_output == '"redelivered"'
        finally:
            RELEASE.set()
            client.close()
            worker.stop()


def test_the_lease_comes_from_the_environment_or_is_refused_with_a_reason(monkeypatch):
    monkeypatch.delenv(LEASE_ENV_VAR, raising=False)
    assert lease_seconds_from_env() == 120.0
    monkeypatch.setenv(LEASE_ENV_VAR, "7.5")
    assert LocalTaskHub(port=0).lease_seconds == 7.5
    monkeypatch.setenv(LEASE_ENV_VAR, "soon")
    with pytest.raises(ValueError, match="not a number of seconds above 0"):
        lease_seconds_from_env()
    with pytest.raises(ValueError, match="lease_seconds must be above 0"):
        LocalTaskHub(port=0, lease_seconds=0)
