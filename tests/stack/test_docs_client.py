"""Someone else's HTTP client: plain httpx calls written the way the Durable Functions HTTP API
reference shows them (hand-built URLs with taskHub/connection/code, no helper of ours)."""

from __future__ import annotations

import time

import httpx
import pytest

SYSTEM_KEY = "XXX"  # the docs' placeholder; the local API ignores `code`


@pytest.fixture
def api(stack):
    with httpx.Client(base_url=stack.http, timeout=15) as client:
        yield client


def _wait_for(api: httpx.Client, path: str, status: int = 200, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        response = api.get(path)
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


def test_documented_calls(api, stack):
    hub = stack.hub
    common = f"taskHub={hub}&connection=Storage&code={SYSTEM_KEY}"

    # Start new orchestration: POST /runtime/webhooks/durabletask/orchestrators/{functionName}
    started = api.post(
        f"/runtime/webhooks/durabletask/orchestrators/ApprovalWorkflow?code={SYSTEM_KEY}",
        headers={"Content-Type": "application/json"},
        content=b'{"timeout_seconds": 120}',
    )
    assert started.status_code == 202
    instance_id = started.json()["id"]

    # Get instance status.
    status_path = (
        f"/runtime/webhooks/durabletask/instances/{instance_id}?{common}"
        "&showHistory=false&showHistoryOutput=false&showInput=true"
    )
    running = api.get(status_path)
    assert running.status_code in (200, 202)
    assert running.json()["input"] == {"timeout_seconds": 120}

    # Raise event: the docs send a JSON string body with Content-Type application/json.
    _wait_for(api, status_path, 202)
    raised = api.post(
        f"/runtime/webhooks/durabletask/instances/{instance_id}/raiseEvent/Approval?{common}",
        headers={"Content-Type": "application/json"},
        content=b'"incr"',
    )
    assert raised.status_code == 202
    done = _wait_for(api, status_path)
    assert done.status_code == 200
    assert done.json()["output"] == {"outcome": "Approved", "approval": "incr"}

    # Terminate (410 now, it is completed), suspend/resume likewise.
    for verb in ("terminate", "suspend", "resume"):
        gone = api.post(
            f"/runtime/webhooks/durabletask/instances/{instance_id}/{verb}?reason=buggy&{common}"
        )
        assert gone.status_code == 410

    # Get all instances status, filtered.
    listed = api.get(
        f"/runtime/webhooks/durabletask/instances?{common}"
        "&runtimeStatus=Running,Completed&top=10&showInput=false"
    )
    assert listed.status_code == 200
    assert isinstance(listed.json(), list) and len(listed.json()) <= 10

    # Purge single instance history.
    purged = api.delete(f"/runtime/webhooks/durabletask/instances/{instance_id}?{common}")
    assert purged.status_code == 200 and purged.json() == {"instancesDeleted": 1}
    assert api.get(status_path).status_code == 404


def test_documented_terminate_and_v1_paths(api, stack):
    started = api.post(
        "/runtime/webhooks/durabletask/orchestrators/ApprovalWorkflow",
        json={"timeout_seconds": 120},
    )
    instance_id = started.json()["id"]
    v1 = f"/admin/extensions/DurableTaskExtension/instances/{instance_id}"
    query = f"taskHub={stack.hub}&connection=Storage&code={SYSTEM_KEY}"
    _wait_for(api, f"{v1}?{query}", 202)
    terminated = api.post(f"{v1}/terminate?reason=buggy&{query}")
    assert terminated.status_code == 202
    done = _wait_for(api, f"{v1}?{query}")
    assert done.json()["runtimeStatus"] == "Terminated"
    assert done.json()["output"] == "buggy"


def test_documented_purge_by_filter(api, stack):
    started = api.post("/runtime/webhooks/durabletask/orchestrators/HelloSequence")
    _wait_for(api, f"/runtime/webhooks/durabletask/instances/{started.json()['id']}")
    purged = api.delete(
        f"/runtime/webhooks/durabletask/instances?code={SYSTEM_KEY}"
        "&createdTimeFrom=2018-02-28T00:00:00Z&runtimeStatus=Completed,Terminated"
    )
    assert purged.status_code == 200
    assert purged.json()["instancesDeleted"] >= 1
