"""The HTTP management API's own routes: start, list and paging, purge by filter, errors."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from stack_helpers import poll_status, status_is

from durable_helpers.local.limits import MAX_REQUEST_BYTES

UTC = timezone.utc  # noqa: UP017 - datetime.UTC needs Python 3.11


def _start(http, stack, name="HelloSequence", instance_id=None, **kwargs):
    url = f"{stack.base}/orchestrators/{name}" + (f"/{instance_id}" if instance_id else "")
    return http.post(url, **kwargs)


def test_start_answers_check_status_payload(stack, http):
    started = _start(http, stack, json=["Oslo"])
    assert started.status_code == 202
    body = started.json()
    assert list(body) == [
        "id",
        "statusQueryGetUri",
        "sendEventPostUri",
        "terminatePostUri",
        "rewindPostUri",
        "purgeHistoryDeleteUri",
        "restartPostUri",
        "suspendPostUri",
        "resumePostUri",
    ]
    assert started.headers["Location"] == body["statusQueryGetUri"]
    assert started.headers["Retry-After"] == "10"
    assert f"taskHub={stack.hub}&connection=Storage" in body["statusQueryGetUri"]
    done = poll_status(http, body["statusQueryGetUri"])
    assert done.json()["output"] == ["Hello Oslo!"]


def test_start_with_instance_id_and_conflict(stack, http):
    instance_id = "fixed-" + uuid.uuid4().hex[:8]
    first = _start(http, stack, "ApprovalWorkflow", instance_id, json={"timeout_seconds": 60})
    assert first.status_code == 202 and first.json()["id"] == instance_id
    again = _start(http, stack, "ApprovalWorkflow", instance_id, json={"timeout_seconds": 60})
    assert again.status_code == 409
    assert again.json()["error"] == "Conflict"
    http.post(first.json()["terminatePostUri"].replace("{text}", "cleanup"))


def test_start_waits_with_timeout(stack, http):
    done = http.post(f"{stack.base}/orchestrators/HelloSequence?timeout=20&pollingInterval=1")
    assert done.status_code == 200
    assert done.json() == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]


@pytest.mark.parametrize("body", [b"{nope", b"NaN", b'{"x": Infinity}', b"[-Infinity]"])
def test_start_rejects_bad_json(stack, http, body):
    bad = _start(http, stack, content=body, headers={"Content-Type": "application/json"})
    assert bad.status_code == 400
    assert "not valid JSON" in bad.json()["message"]


def test_a_continuation_token_it_did_not_issue_is_a_400(stack, http):
    listed = http.get(
        f"{stack.base}/instances", headers={"x-ms-continuation-token": "not-a-token!"}
    )
    assert listed.status_code == 400
    assert "continuation token" in listed.json()["message"]


def test_list_filters_and_paging(stack, http):
    prefix = "page-" + uuid.uuid4().hex[:6] + "-"
    ids = [f"{prefix}{n}" for n in range(5)]
    for instance_id in ids:
        assert _start(http, stack, instance_id=instance_id, json=["x"]).status_code == 202
    for instance_id in ids:
        poll_status(http, f"{stack.base}/instances/{instance_id}")
    seen, token, pages = [], None, 0
    while True:
        headers = {"x-ms-continuation-token": token} if token else {}
        page = http.get(
            f"{stack.base}/instances",
            params={"instanceIdPrefix": prefix, "top": 2},
            headers=headers,
        )
        assert page.status_code == 200
        assert len(page.json()) <= 2
        seen += [item["instanceId"] for item in page.json()]
        pages += 1
        token = page.headers.get("x-ms-continuation-token")
        if not token:
            break
        assert pages < 10
    assert sorted(seen) == ids
    assert 3 <= pages <= 4  # a provider may end with one empty page
    listed = http.get(
        f"{stack.base}/instances",
        params={
            "instanceIdPrefix": prefix,
            "runtimeStatus": "Completed,Failed",
            "showInput": "true",
        },
    ).json()
    assert len(listed) == 5 and all(item["input"] == ["x"] for item in listed)
    assert all(item["output"] == ["Hello x!"] for item in listed)
    none = http.get(
        f"{stack.base}/instances", params={"instanceIdPrefix": prefix, "runtimeStatus": "Running"}
    ).json()
    assert none == []
    future = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (
        http.get(
            f"{stack.base}/instances",
            params={"instanceIdPrefix": prefix, "createdTimeFrom": future},
        ).json()
        == []
    )


def test_purge_by_filter(stack, http):
    since = datetime.now(UTC) - timedelta(seconds=2)
    prefix = "purge-" + uuid.uuid4().hex[:6]
    body = _start(http, stack, instance_id=prefix, json=["y"]).json()
    poll_status(http, body["statusQueryGetUri"])
    missing = http.delete(f"{stack.base}/instances")
    assert missing.status_code == 400 and "createdTimeFrom" in missing.json()["message"]
    stamp = since.strftime("%Y-%m-%dT%H:%M:%SZ")
    purged = http.delete(
        f"{stack.base}/instances", params={"createdTimeFrom": stamp, "runtimeStatus": "Completed"}
    )
    assert purged.status_code == 200
    assert purged.json()["instancesDeleted"] >= 1
    assert http.get(body["statusQueryGetUri"]).status_code == 404
    future = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (
        http.delete(f"{stack.base}/instances", params={"createdTimeFrom": future}).status_code
        == 404
    )


def test_purge_of_a_running_instance_is_refused(stack, http):
    body = _start(http, stack, "ApprovalWorkflow", json={"timeout_seconds": 60}).json()
    poll_status(http, body["statusQueryGetUri"], status_is("Running"))
    refused = http.delete(body["purgeHistoryDeleteUri"])
    assert refused.status_code == 404
    assert "Running" in refused.json()["message"]
    assert http.post(body["rewindPostUri"].replace("{text}", "x")).status_code == 409
    assert http.post(body["restartPostUri"]).status_code == 409
    http.post(body["terminatePostUri"].replace("{text}", "cleanup"))


def test_an_instance_no_worker_handles_can_be_terminated_and_purged(stack, http):
    if stack.backend != "LocalTaskHub":
        pytest.skip("the SDK's in-memory backend has no work item filters")
    body = _start(http, stack, "NoWorkerRegistersThis", json=1).json()
    time.sleep(1)  # the sample worker (work item filters) never takes it
    assert http.get(body["statusQueryGetUri"]).json()["runtimeStatus"] == "Pending"
    ended = http.post(body["terminatePostUri"].replace("{text}", "typo in the name"))
    assert ended.status_code == 202
    final = poll_status(http, body["statusQueryGetUri"], status_is("Terminated")).json()
    assert final["output"] == "typo in the name"
    history = http.get(body["statusQueryGetUri"], params={"showHistory": "true"}).json()
    kinds = [e["EventType"] for e in history["historyEvents"]]
    assert kinds[-2:] == ["ExecutionTerminated", "ExecutionCompleted"], kinds  # as a worker ends it
    assert http.delete(body["purgeHistoryDeleteUri"]).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "params", "status"),
    [
        ("GET", "/nope", {}, 404),
        ("GET", "/runtime/webhooks/durabletask/instances/x/raiseEvent/E", {}, 405),
        ("PUT", "/runtime/webhooks/durabletask/instances", {}, 405),
        ("GET", "/runtime/webhooks/durabletask/instances/unknown-id", {}, 404),
        ("GET", "/runtime/webhooks/durabletask/instances/x", {"showHistory": "maybe"}, 400),
        ("GET", "/runtime/webhooks/durabletask/instances", {"top": "many"}, 400),
        ("GET", "/runtime/webhooks/durabletask/instances", {"runtimeStatus": "Sleeping"}, 400),
        ("GET", "/runtime/webhooks/durabletask/instances", {"createdTimeFrom": "yesterday"}, 400),
        ("GET", "/runtime/webhooks/durabletask/instances", {"top": "3000000000"}, 400),
        ("GET", "/runtime/webhooks/durabletask/instances", {"top": "-1"}, 400),
        (
            "GET",
            "/runtime/webhooks/durabletask/instances",
            {"createdTimeFrom": "0001-01-01T00:00:00+01:00"},  # before year 1 in UTC
            400,
        ),
        ("GET", "/runtime/webhooks/durabletask/instances", {"taskHub": "SomeOtherHub"}, 400),
        ("POST", "/runtime/webhooks/durabletask/instances/unknown-id/terminate", {}, 404),
    ],
)
def test_errors_are_clean_json(stack, http, method, path, params, status):
    response = http.request(method, stack.http + path, params=params)
    assert response.status_code == status
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "message"}
    assert "Traceback" not in response.text


def test_task_hub_and_connection_parameters_are_accepted(stack, http):
    listed = http.get(
        f"{stack.base}/instances",
        params={"taskHub": stack.hub.lower(), "connection": "Storage", "top": 1},
    )
    assert listed.status_code == 200
    started = http.post(
        f"{stack.base}/orchestrators/HelloSequence",
        params={"taskHub": stack.hub, "connection": "MyStorage"},
    )
    assert "connection=MyStorage" in started.json()["statusQueryGetUri"]


def test_sidecar_down_is_503(stack):
    import asyncio

    from aiohttp.test_utils import TestClient, TestServer

    from durable_helpers.local.http_api import create_app
    from durable_helpers.local.ports import free_ports

    async def go():
        app = create_app(f"127.0.0.1:{free_ports(1)[0]}", timeout=3)
        async with TestClient(TestServer(app)) as client:
            response = await client.get("/runtime/webhooks/durabletask/instances/abc")
            return response.status, await response.json()

    status, body = asyncio.run(go())
    assert status in (503, 504)
    assert "sidecar" in body["message"]


@pytest.mark.parametrize("instance_id", ["odd id", "slash/inside", "ünïcode", "parent:0001"])
def test_instance_ids_with_special_characters_round_trip(stack, http, instance_id):
    from urllib.parse import quote

    unique = f"{instance_id}-{uuid.uuid4().hex[:6]}"
    started = _start(http, stack, instance_id=quote(unique, safe=""), json=["Rome"])
    assert started.status_code == 202
    assert started.json()["id"] == unique
    done = poll_status(http, started.json()["statusQueryGetUri"])
    assert done.json()["instanceId"] == unique
    assert done.json()["output"] == ["Hello Rome!"]


def test_too_large_body_is_a_clean_413(stack, http):
    too_large = json.dumps(["x" * MAX_REQUEST_BYTES])
    response = http.post(f"{stack.base}/orchestrators/HelloSequence", content=too_large)
    assert response.status_code == 413
    assert set(response.json()) == {"error", "message"}
    assert "4 MiB" in response.json()["message"] and "address" in response.json()["message"]


def test_a_3_mb_input_goes_through_to_the_output_and_back(stack, http):
    city = "x" * 3_000_000
    started = _start(http, stack, json=[city])
    assert started.status_code == 202, started.text
    done = poll_status(http, started.json()["statusQueryGetUri"], timeout=120)
    assert done.json()["output"] == [f"Hello {city}!"]
    shown = http.get(started.json()["statusQueryGetUri"], params={"showInput": "true"})
    assert shown.json()["input"] == [city]
