"""Every sample orchestration runs to its documented result (started with the official client)."""

from __future__ import annotations

import pytest
from durabletask.client import OrchestrationStatus, TaskHubGrpcClient

from durable_helpers.local.samples import describe_samples, next_attempt

ORCHESTRATIONS = [s for s in describe_samples() if s["kind"] == "orchestration"]
# Faster timings than the documented defaults; outputs do not depend on them.
FAST = {
    "ApprovalWorkflow": {"timeout_seconds": 60},
    "RetryFlaky": {"failures": 2, "max_attempts": 5, "retry_seconds": 0.2},
    "EternalMonitor": {"max_iterations": 3, "interval_seconds": 0.2},
    "TimerDemo": {"seconds": 2},
}


@pytest.fixture(scope="module")
def client(stack):
    with TaskHubGrpcClient(host_address=stack.sidecar) as client:
        yield client


def test_the_table_documents_every_registered_function():
    from durable_helpers.local.samples import ACTIVITIES, ORCHESTRATORS

    names = {s["name"] for s in describe_samples()}
    assert names == {f.__name__ for f in (*ORCHESTRATORS, *ACTIVITIES)}
    import durable_helpers.local.samples as module

    for sample in ORCHESTRATIONS:
        assert f"`{sample['name']}`" in module.__doc__


@pytest.mark.parametrize("sample", ORCHESTRATIONS, ids=lambda s: s["name"])
def test_sample_runs_to_its_documented_result(client, sample):
    name = sample["name"]
    instance_id = client.schedule_new_orchestration(name, input=FAST.get(name, sample["input"]))
    if "event" in sample:
        client.wait_for_orchestration_start(instance_id, timeout=30)
        client.raise_orchestration_event(
            instance_id, sample["event"]["name"], data=sample["event"]["data"]
        )
    state = client.wait_for_orchestration_completion(instance_id, timeout=30)
    assert state is not None
    assert state.runtime_status.name == sample["status"].upper()
    if sample["status"] == "Completed":
        assert state.serialized_output is not None
        import json

        assert json.loads(state.serialized_output) == sample["output"]
    else:
        assert "Card declined for order 42" in str(state.failure_details.message)


def test_approval_times_out(client):
    instance_id = client.schedule_new_orchestration(
        "ApprovalWorkflow", input={"timeout_seconds": 1}
    )
    state = client.wait_for_orchestration_completion(instance_id, timeout=30)
    assert state.runtime_status == OrchestrationStatus.COMPLETED
    assert state.serialized_output == '{"outcome": "TimedOut"}'


def test_flaky_fails_when_retries_run_out(client):
    instance_id = client.schedule_new_orchestration(
        "RetryFlaky", input={"failures": 3, "max_attempts": 2, "retry_seconds": 0.1}
    )
    state = client.wait_for_orchestration_completion(instance_id, timeout=30)
    assert state.runtime_status == OrchestrationStatus.FAILED
    assert "Transient failure on attempt 2" in state.failure_details.message


def test_attempt_counter_survives_a_new_process(tmp_path):
    import subprocess
    import sys

    assert next_attempt("k", tmp_path) == 1
    code = (
        "from durable_helpers.local.samples import next_attempt; import sys; "
        "print(next_attempt('k', sys.argv[1]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "2"
