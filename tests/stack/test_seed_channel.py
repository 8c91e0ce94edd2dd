"""The prototype's client flow over the seed's gRPC channel, then every returned URL over HTTP."""

from __future__ import annotations

import json
import uuid

import grpc
import pytest
from stack_helpers import fill, poll_status, status_is

GREETINGS = ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]


def test_prototype_client_starts_hello_sequence_and_urls_work(stack, df, http):
    # Exactly the prototype's client: insecure channel to localhost, the stub, one field.
    port = stack.startnew.split(":")[1]
    with grpc.insecure_channel(f"localhost:{port}") as channel:
        stub = df.DurableTaskServiceStub(channel)
        reply = stub.StartNew(df.NewDurableTaskRequest(functionName="HelloSequence"), timeout=15)
    assert reply.id
    base = f"{stack.base}/instances/{reply.id}"
    query = f"taskHub={stack.hub}&connection=Storage"
    assert reply.StatusQueryGetUri == f"{base}?{query}"
    assert reply.SendEventPostUri == f"{base}/raiseEvent/{{eventName}}?{query}"
    assert reply.TerminatePostUri == f"{base}/terminate?reason={{text}}&{query}"
    assert reply.RewindPostUri == f"{base}/rewind?reason={{text}}&{query}"
    assert reply.PurgeHistoryDeleteUri == f"{base}?{query}"
    assert reply.RestartPostUri == f"{base}/restart?{query}"
    assert reply.SuspendPostUri == f"{base}/suspend?reason={{text}}&{query}"
    assert reply.ResumePostUri == f"{base}/resume?reason={{text}}&{query}"

    done = poll_status(http, reply.StatusQueryGetUri)
    body = done.json()
    assert list(body) == [
        "name",
        "instanceId",
        "runtimeStatus",
        "input",
        "customStatus",
        "output",
        "createdTime",
        "lastUpdatedTime",
    ]
    assert body["name"] == "HelloSequence"
    assert body["instanceId"] == reply.id
    assert body["runtimeStatus"] == "Completed"
    assert body["output"] == GREETINGS
    assert body["createdTime"].endswith("Z") and len(body["createdTime"]) == 20

    history = http.get(reply.StatusQueryGetUri + "&showHistory=true&showHistoryOutput=true")
    assert history.status_code == 200
    events = history.json()["historyEvents"]
    assert [e["EventType"] for e in events] == [
        "ExecutionStarted",
        "TaskCompleted",
        "TaskCompleted",
        "TaskCompleted",
        "ExecutionCompleted",
    ]
    assert events[0]["FunctionName"] == "HelloSequence"
    assert [e["FunctionName"] for e in events[1:4]] == ["Hello"] * 3
    assert [e["Result"] for e in events[1:4]] == GREETINGS
    assert all("ScheduledTime" in e and "EventId" not in e for e in events[1:4])
    assert events[-1]["OrchestrationStatus"] == "Completed"
    assert events[-1]["Result"] == GREETINGS
    # Without showHistoryOutput no Result; with showInput=false no Input.
    quiet = http.get(reply.StatusQueryGetUri + "&showHistory=true&showInput=false").json()
    assert all("Result" not in e and "Input" not in e for e in quiet["historyEvents"])
    assert quiet["input"] is None

    # Restart, then purge the original.
    restarted = http.post(reply.RestartPostUri)
    assert restarted.status_code == 202
    new_id = restarted.json()["id"]
    assert new_id != reply.id
    assert poll_status(http, restarted.json()["statusQueryGetUri"]).json()["output"] == GREETINGS
    purged = http.delete(reply.PurgeHistoryDeleteUri)
    assert purged.status_code == 200
    assert purged.json() == {"instancesDeleted": 1}
    assert http.get(reply.StatusQueryGetUri).status_code == 404
    assert http.delete(reply.PurgeHistoryDeleteUri).status_code == 404


def test_startnew_with_input_and_instance_id(seed_stub, df, http):
    instance_id = "seed-" + uuid.uuid4().hex[:8]
    reply = seed_stub.StartNew(
        df.NewDurableTaskRequest(
            functionName="HelloSequence", input=json.dumps(["Paris"]), instanceId=instance_id
        ),
        timeout=15,
    )
    assert reply.id == instance_id
    done = poll_status(http, reply.StatusQueryGetUri)
    assert done.json()["output"] == ["Hello Paris!"]
    assert done.json()["input"] == ["Paris"]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"functionName": ""}, "functionName is empty"),
        ({"functionName": "   "}, "functionName is empty"),
        ({"functionName": "HelloSequence", "input": "{not json"}, "not valid JSON"),
    ],
)
def test_startnew_rejects_bad_requests(seed_stub, df, kwargs, fragment):
    with pytest.raises(grpc.RpcError) as caught:
        seed_stub.StartNew(df.NewDurableTaskRequest(**kwargs), timeout=15)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in caught.value.details()


def test_approval_event_via_send_event_uri(seed_stub, df, http):
    reply = seed_stub.StartNew(
        df.NewDurableTaskRequest(
            functionName="ApprovalWorkflow", input=json.dumps({"timeout_seconds": 120})
        ),
        timeout=15,
    )
    waiting = poll_status(
        http,
        reply.StatusQueryGetUri,
        lambda r: r.status_code == 202 and r.json()["customStatus"] == "WaitingForApproval",
    )
    assert waiting.headers["Retry-After"] == "5"
    assert waiting.headers["Location"].startswith(reply.StatusQueryGetUri.split("?")[0])
    url = fill(reply.SendEventPostUri, eventName="Approval")
    # Not JSON content type, invalid JSON: 400.
    assert http.post(url, content=b"yes", headers={"Content-Type": "text/plain"}).status_code == 400
    bad = http.post(url, content=b"{oops", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["message"]
    assert http.post(url, json={"approved": True, "by": "Ada"}).status_code == 202
    done = poll_status(http, reply.StatusQueryGetUri)
    assert done.json()["output"] == {
        "outcome": "Approved",
        "approval": {"approved": True, "by": "Ada"},
    }
    # Completed: 410. Unknown instance: 404.
    assert http.post(url, json=True).status_code == 410
    unknown = url.replace(reply.id, "no-such-instance")
    assert http.post(unknown, json=True).status_code == 404


def test_terminate(seed_stub, df, http):
    reply = seed_stub.StartNew(
        df.NewDurableTaskRequest(
            functionName="ApprovalWorkflow", input=json.dumps({"timeout_seconds": 120})
        ),
        timeout=15,
    )
    poll_status(http, reply.StatusQueryGetUri, status_is("Running"))
    url = fill(reply.TerminatePostUri, text="no longer needed")
    assert http.post(url).status_code == 202
    done = poll_status(http, reply.StatusQueryGetUri)
    assert done.json()["runtimeStatus"] == "Terminated"
    assert done.json()["output"] == "no longer needed"
    assert http.post(url).status_code == 410
    assert http.post(url.replace(reply.id, "missing-id")).status_code == 404


def test_suspend_and_resume(seed_stub, df, http):
    reply = seed_stub.StartNew(
        df.NewDurableTaskRequest(
            functionName="ApprovalWorkflow", input=json.dumps({"timeout_seconds": 120})
        ),
        timeout=15,
    )
    poll_status(http, reply.StatusQueryGetUri, status_is("Running"))
    assert http.post(fill(reply.SuspendPostUri, text="lunch")).status_code == 202
    suspended = poll_status(http, reply.StatusQueryGetUri, status_is("Suspended"))
    assert suspended.status_code == 202
    assert http.post(fill(reply.ResumePostUri, text="back")).status_code == 202
    poll_status(http, reply.StatusQueryGetUri, status_is("Running"))
    assert (
        http.post(fill(reply.SendEventPostUri, eventName="Approval"), json=False).status_code == 202
    )
    done = poll_status(http, reply.StatusQueryGetUri)
    assert done.json()["output"]["outcome"] == "Rejected"
    for template in (reply.SuspendPostUri, reply.ResumePostUri):
        assert http.post(fill(template, text="late")).status_code == 410


def test_rewind_a_failed_instance(seed_stub, df, http):
    reply = seed_stub.StartNew(
        df.NewDurableTaskRequest(functionName="FailingOrchestration"), timeout=15
    )
    failed = poll_status(http, reply.StatusQueryGetUri)
    body = failed.json()
    assert body["runtimeStatus"] == "Failed"
    assert "Card declined for order 42" in body["output"]
    assert "FailingOrchestration" in body["output"]
    assert (
        http.get(reply.StatusQueryGetUri + "&returnInternalServerErrorOnFailure=true").status_code
        == 500
    )
    history = http.get(reply.StatusQueryGetUri + "&showHistory=true").json()["historyEvents"]
    task_failed = [e for e in history if e["EventType"] == "TaskFailed"]
    assert task_failed and task_failed[0]["FunctionName"] == "ChargeCard"
    assert "Card declined" in task_failed[0]["Reason"]

    assert http.post(fill(reply.RewindPostUri, text="card fixed")).status_code == 202
    done = poll_status(http, reply.StatusQueryGetUri, status_is("Completed"))
    assert done.json()["output"] == ["Hello Tokyo!", "Charged order 42"]
    assert http.post(fill(reply.RewindPostUri, text="again")).status_code == 410
    assert (
        http.post(fill(reply.RewindPostUri, text="x").replace(reply.id, "nope")).status_code == 404
    )


def test_restart_with_same_instance_id(seed_stub, df, http):
    reply = seed_stub.StartNew(df.NewDurableTaskRequest(functionName="HelloSequence"), timeout=15)
    poll_status(http, reply.StatusQueryGetUri)
    restarted = http.post(reply.RestartPostUri + "&restartWithNewInstanceId=false")
    assert restarted.status_code == 202
    assert restarted.json()["id"] == reply.id
    assert restarted.headers["Location"] == restarted.json()["statusQueryGetUri"]
    done = poll_status(http, reply.StatusQueryGetUri)
    assert done.json()["output"] == GREETINGS
    assert http.post(reply.RestartPostUri.replace(reply.id, "nope")).status_code == 404
