"""Every sample orchestration runs to its documented result (started with the official client)."""

from __future__ import annotations

import pytest
from durabletask.client import OrchestrationStatus, TaskHubGrpcClient

from durable_helpers.local.samples import describe_samples, next_attempt

ORCHESTRATIONS = [
    s for s in describe_samples() if s["kind"] == "orchestration" and not s.get("stateful")
]
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
    from durable_helpers.local.sample_entities import ENTITIES, ENTITY_ORCHESTRATORS
    from durable_helpers.local.samples import ACTIVITIES, ORCHESTRATORS

    names = {s["name"] for s in describe_samples()}
    functions = (*ORCHESTRATORS, *ACTIVITIES, *ENTITIES, *ENTITY_ORCHESTRATORS)
    assert names == {f.__name__ for f in functions}
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


def _wait_state(client, eid, expected, timeout: float = 30.0):
    import time

    deadline = time.monotonic() + timeout
    while True:
        meta = client.get_entity(eid)
        value = None if meta is None else meta.get_typed_state()
        if value == expected:
            return
        assert time.monotonic() < deadline, f"{eid} holds {value}, expected {expected}"
        time.sleep(0.05)


def _key(prefix: str) -> str:
    import uuid

    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_counter_entity_counts_signals_and_answers_calls(client):
    from durabletask.entities import EntityInstanceId

    eid = EntityInstanceId("Counter", _key("c"))
    sample = next(s for s in describe_samples() if s["name"] == "Counter")
    client.signal_entity(eid, "add", sample["input"])
    _wait_state(client, eid, sample["output"])
    client.signal_entity(eid, "add")  # no input: adds 1
    client.signal_entity(eid, "add", 4)
    _wait_state(client, eid, 10)
    client.signal_entity(eid, "reset")
    _wait_state(client, eid, 0)
    assert str(eid).startswith("@counter@")


def test_transfer_moves_money_between_locked_accounts(client):
    from durabletask.entities import EntityInstanceId

    sample = next(s for s in describe_samples() if s["name"] == "Transfer")
    alice, bob = _key("alice"), _key("bob")
    client.signal_entity(EntityInstanceId("BankAccount", alice), "deposit", 100)
    _wait_state(client, EntityInstanceId("BankAccount", alice), 100)
    order = {**sample["input"], "from": alice, "to": bob}
    instance_id = client.schedule_new_orchestration("Transfer", input=order)
    state = client.wait_for_orchestration_completion(instance_id, timeout=60)
    assert state.runtime_status == OrchestrationStatus.COMPLETED, state.failure_details
    import json

    assert json.loads(state.serialized_output) == sample["output"]
    too_much = client.schedule_new_orchestration("Transfer", input={**order, "amount": 1000})
    state = client.wait_for_orchestration_completion(too_much, timeout=60)
    assert json.loads(state.serialized_output) == {
        "transferred": False,
        "from_balance": 70,
        "to_balance": 30,
    }


def test_concurrent_transfers_keep_the_total(client):
    from durabletask.entities import EntityInstanceId

    alice, bob = _key("alice"), _key("bob")
    for key in (alice, bob):
        client.signal_entity(EntityInstanceId("BankAccount", key), "deposit", 50)
    ids = [
        client.schedule_new_orchestration("Transfer", input={"from": a, "to": b, "amount": 10})
        for a, b in [(alice, bob), (bob, alice)] * 3
    ]
    for instance_id in ids:
        state = client.wait_for_orchestration_completion(instance_id, timeout=90)
        assert state.runtime_status == OrchestrationStatus.COMPLETED, state.failure_details
    _wait_state(client, EntityInstanceId("BankAccount", alice), 50)
    _wait_state(client, EntityInstanceId("BankAccount", bob), 50)


def test_withdrawing_too_much_is_refused_with_the_reason(client):
    from durabletask.entities import EntityInstanceId

    eid = EntityInstanceId("BankAccount", _key("carol"))
    client.signal_entity(eid, "deposit", 5)
    client.signal_entity(eid, "withdraw", 50)  # fails: the account keeps its balance
    client.signal_entity(eid, "withdraw", 2)
    _wait_state(client, eid, 3)
