"""The JavaScript sample worker driven from Python: the prototype's call, failures, events, timers
and sub-orchestrations across the two languages (see conftest.py for the harness)."""

from __future__ import annotations

import json
import time

import grpc
import httpx
import pytest
from durabletask.client import OrchestrationStatus, TaskHubGrpcClient

from durable_helpers import TaskHub, schema, stubs
from durable_helpers.prototype import (
    GREETINGS,
    PROTOTYPE_ORCHESTRATOR,
    compare_with_prototype,
    prototype_history,
)

S = OrchestrationStatus


@pytest.fixture(scope="module")
def df():
    return stubs.load("durable_functions")


def done(client: TaskHubGrpcClient, instance_id: str, timeout: float = 30):
    state = client.wait_for_orchestration_completion(instance_id, timeout=timeout)
    assert state is not None, f"{instance_id} is unknown"
    return state


def rows(rest, hub: str, instance_id: str) -> list[dict]:
    pk = schema.escape_partition_key(instance_id)
    found = rest.query_all(f"{hub}History", f"PartitionKey eq {schema.odata_string(pk)}")
    return sorted(found, key=lambda r: r["RowKey"])


def of_type(table: list[dict], event_type: str) -> list[dict]:
    return [r for r in table if r.get("EventType") == event_type]


def poll(http: httpx.Client, url: str, timeout: float = 30) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while (response := http.get(url)).status_code != 200:
        assert time.monotonic() < deadline, f"{url}: {response.status_code} {response.text[:300]}"
        time.sleep(0.1)
    return response


def test_prototype_call_runs_the_javascript_orchestrator_and_writes_the_2019_rows(
    harness, df, rest, connection_string
):
    # The prototype's client, verbatim: channel to localhost, the stub, one field.
    port = harness.startnew.split(":")[1]
    with grpc.insecure_channel(f"localhost:{port}") as channel:
        stub = df.DurableTaskServiceStub(channel)
        response = stub.StartNew(
            df.NewDurableTaskRequest(functionName="DurableFunctionsOrchestratorJS"), timeout=15
        )
    assert response.id and response.StatusQueryGetUri.startswith(harness.base)
    with httpx.Client(timeout=15) as http:
        body = poll(http, response.StatusQueryGetUri).json()
        assert body["name"] == PROTOTYPE_ORCHESTRATOR and body["runtimeStatus"] == "Completed"
        assert body["output"] == GREETINGS
        events = http.get(response.StatusQueryGetUri + "&showHistory=true").json()["historyEvents"]
        assert [e["EventType"] for e in events] == ["ExecutionStarted"] + 3 * ["TaskCompleted"] + [
            "ExecutionCompleted"
        ]
        # The other URLs: restart runs the JavaScript orchestrator again; purge removes it.
        restarted = http.post(response.RestartPostUri)
        assert restarted.status_code == 202, restarted.text
        again = poll(http, restarted.json()["statusQueryGetUri"]).json()
        assert again["name"] == PROTOTYPE_ORCHESTRATOR and again["output"] == GREETINGS

    table = rows(rest, harness.hub, response.id)
    # history-after-execution.md; the JS SDK counts action ids from 1 (.NET from 0), as Python's.
    expected = [
        (r.EventType, int(r.EventId) + 1 if r.EventId >= 0 else -1, bool(r.IsPlayed))
        for r in prototype_history().itertuples()
    ]
    assert len(expected) == 16 and expected[14] == ("ExecutionCompleted", 4, False)
    assert [r["RowKey"] for r in table] == [schema.row_key(i) for i in range(16)] + ["sentinel"]
    assert [(r["EventType"], r["EventId"], r["IsPlayed"]) for r in table[:-1]] == expected
    assert table[1]["Name"] == PROTOTYPE_ORCHESTRATOR
    assert [r["Name"] for r in of_type(table, "TaskScheduled")] == ["Hello"] * 3
    assert [json.loads(r["Input"]) for r in of_type(table, "TaskScheduled")] == [
        "Tokyo",
        "Seattle",
        "London",
    ]
    assert [r["TaskScheduledId"] for r in of_type(table, "TaskCompleted")] == [1, 2, 3]
    assert [json.loads(r["Result"]) for r in of_type(table, "TaskCompleted")] == (GREETINGS)
    assert table[14]["OrchestrationStatus"] == "Completed"
    assert json.loads(table[14]["Result"]) == GREETINGS
    assert all(r["ExecutionId"] == table[-1]["ExecutionId"] for r in table)

    # The reader's frame agrees with the 2019 rows, row for row.
    history = TaskHub(connection_string, hub=harness.hub).history(response.id)
    side_by_side = compare_with_prototype(history)
    assert side_by_side["same"].all(), side_by_side.to_string()
    assert len(side_by_side) == 16
    with httpx.Client(timeout=15) as http:
        assert http.delete(response.PurgeHistoryDeleteUri).json() == {"instancesDeleted": 1}
    assert rows(rest, harness.hub, response.id) == []


def test_comparison_tells_a_different_run_apart(client, connection_string, harness, iid):
    """The side-by-side check can fail: a fan-out is not the 2019 chain."""
    client.schedule_new_orchestration("FanOutFanInJS", input=[1, 2, 3], instance_id=iid)
    state = done(client, iid)
    assert json.loads(state.serialized_output) == {"squares": [1, 4, 9], "total": 14}
    history = TaskHub(connection_string, hub=harness.hub).history(iid)
    assert not compare_with_prototype(history)["same"].all()


def test_failing_javascript_activity_leaves_its_details_in_the_history(client, rest, harness, iid):
    client.schedule_new_orchestration(
        "FailingOrchestrationJS", input={"failures": 1, "order": 7}, instance_id=iid
    )
    state = done(client, iid)
    assert state.runtime_status == S.FAILED
    assert "Card declined for order 7 (declined attempt 1 of 1)" in state.failure_details.message
    failed = of_type(rows(rest, harness.hub, iid), "TaskFailed")
    assert len(failed) == 1
    details = json.loads(failed[0]["FailureDetails"])
    assert details["ErrorType"] == "Error"
    assert details["ErrorMessage"] == "Card declined for order 7 (declined attempt 1 of 1)"
    assert "ChargeCardJS" in details["StackTrace"] and "samples.js" in details["StackTrace"]
    inst = rest.get_entity(f"{harness.hub}Instances", iid, "")
    assert inst["RuntimeStatus"] == "Failed" and "Card declined" in inst["Output"]

    # A rewind replays it: the card is charged on the second attempt.
    client.rewind_orchestration(iid, reason="card fixed")
    state = done(client, iid)
    assert state.runtime_status == S.COMPLETED, state.failure_details
    assert json.loads(state.serialized_output) == ["Hello Tokyo!", "Charged order 7"]


def test_external_event_reaches_the_javascript_orchestrator(client, iid):
    client.schedule_new_orchestration(
        "ApprovalWorkflowJS", input={"timeout_seconds": 120}, instance_id=iid
    )
    state = client.wait_for_orchestration_start(iid, timeout=30)
    deadline = time.monotonic() + 30
    while state.serialized_custom_status != '"WaitingForApproval"':
        assert time.monotonic() < deadline, state
        time.sleep(0.1)
        state = client.get_orchestration_state(iid)
    client.raise_orchestration_event(iid, "Approval", data={"approved": True, "by": "Ada"})
    state = done(client, iid)
    assert json.loads(state.serialized_output) == {
        "outcome": "Approved",
        "approval": {"approved": True, "by": "Ada"},
    }
    assert json.loads(state.serialized_custom_status) == "Approved"


def test_javascript_durable_timer_fires(client, rest, harness, iid):
    started = time.monotonic()
    client.schedule_new_orchestration("TimerDemoJS", input={"seconds": 1.5}, instance_id=iid)
    state = done(client, iid)
    assert time.monotonic() - started >= 1.5
    assert json.loads(state.serialized_output) == {"waited_seconds": 1.5}
    table = rows(rest, harness.hub, iid)
    created = [r for r in of_type(table, "TimerCreated")]
    fired = [r for r in of_type(table, "TimerFired")]
    assert len(created) == len(fired) == 1
    assert fired[0]["TimerId"] == created[0]["EventId"]
    assert fired[0]["_Timestamp"] >= created[0]["FireAt"]


def test_approval_times_out_on_the_javascript_timer(client, iid):
    client.schedule_new_orchestration(
        "ApprovalWorkflowJS", input={"timeout_seconds": 1}, instance_id=iid
    )
    state = done(client, iid)
    assert json.loads(state.serialized_output) == {"outcome": "TimedOut"}


def test_python_orchestrator_calls_the_javascript_one(client, rest, harness, iid):
    client.schedule_new_orchestration("CallsJavaScriptPy", instance_id=iid)
    state = done(client, iid)
    assert state.runtime_status == S.COMPLETED, state.failure_details
    assert json.loads(state.serialized_output) == {"from_javascript": GREETINGS}
    created = of_type(rows(rest, harness.hub, iid), "SubOrchestrationInstanceCreated")
    assert [r["Name"] for r in created] == [PROTOTYPE_ORCHESTRATOR]
    child = client.get_orchestration_state(created[0]["InstanceId"])
    assert child.name == PROTOTYPE_ORCHESTRATOR and child.runtime_status == S.COMPLETED


def test_javascript_orchestrator_calls_python_ones(client, rest, harness, iid):
    client.schedule_new_orchestration(
        "ParentOrchestrationJS", input=["Oslo", "Lima"], instance_id=iid
    )
    state = done(client, iid)
    assert state.runtime_status == S.COMPLETED, state.failure_details
    assert json.loads(state.serialized_output) == ["Hello Oslo!", "Hello Lima!"]
    created = of_type(rows(rest, harness.hub, iid), "SubOrchestrationInstanceCreated")
    assert [r["Name"] for r in created] == ["HelloSequence", "HelloSequence"]


def test_the_javascript_worker_takes_only_its_own_work(client, harness, iid):
    """Both sample workers declare filters: a name neither registers stays Pending."""
    client.schedule_new_orchestration("NobodyRegistersThis", instance_id=iid)
    time.sleep(1.5)
    state = client.get_orchestration_state(iid)
    assert state.runtime_status == S.PENDING
    client.terminate_orchestration(iid, output="cleanup")
    assert done(client, iid).runtime_status == S.TERMINATED
    assert "NobodyRegistersThis" not in harness.js.tail(400)
