"""Durable entities through the local task hub: the official SDK's client and worker, unchanged.

Every behaviour runs with a function-based and a class-based entity (``KINDS``).
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from durabletask.client import EntityQuery, OrchestrationStatus
from durabletask.entities import EntityInstanceId
from local_entities import KINDS, wait_until

UTC = timezone.utc  # noqa: UP017

pytestmark = pytest.mark.parametrize("kind", KINDS)


def _key() -> str:
    return "k" + uuid.uuid4().hex[:10]


def _state(client, eid: EntityInstanceId):
    meta = client.get_entity(eid, include_state=True)
    return None if meta is None else meta.get_state(int)


def _wait_state(client, eid, expected, timeout: float = 30.0):
    wait_until(lambda: _state(client, eid) == expected, timeout, f"{eid} to hold {expected}")


def _run(client, name, args, timeout: float = 60.0):
    iid = client.schedule_new_orchestration(name, input=args)
    state = client.wait_for_orchestration_completion(iid, timeout=timeout)
    assert state is not None, iid
    return state


def test_client_signals_run_in_order_and_get_entity_reads_state(client, kind):
    eid = EntityInstanceId(kind, _key())
    assert client.get_entity(eid) is None  # missing: None
    client.signal_entity(eid, "add", 5)
    client.signal_entity(eid, "reset")  # order matters: add, reset, add
    client.signal_entity(eid, "add", 2)
    _wait_state(client, eid, 2)
    meta = client.get_entity(eid, include_state=False)
    assert meta is not None and not meta.includes_state
    assert meta.id == eid
    assert meta.get_locked_by() is None
    assert meta.last_modified.tzinfo is not None
    assert abs(meta.last_modified - datetime.now(UTC)) < timedelta(minutes=1)


def test_mixed_case_name_is_lower_cased(client, kind):
    key = _key()
    client.signal_entity(EntityInstanceId(kind.upper(), key), "add", 3)
    _wait_state(client, EntityInstanceId(kind, key), 3)


def test_call_entity_returns_the_result(client, kind):
    key = _key()
    eid = EntityInstanceId(kind, key)
    client.signal_entity(eid, "add", 4)
    state = _run(client, "call_counter", {"name": kind, "key": key, "op": "add", "input": 6})
    assert state.runtime_status == OrchestrationStatus.COMPLETED
    assert json.loads(state.serialized_output) == 10


def test_failing_operation_reports_details_and_the_entity_keeps_working(client, kind):
    key = _key()
    client.signal_entity(EntityInstanceId(kind, key), "add", 7)
    state = _run(client, "call_counter_catching", {"name": kind, "key": key})
    assert state.runtime_status == OrchestrationStatus.COMPLETED
    out = json.loads(state.serialized_output)
    assert out["value"] == 7  # the failed operation's state change was rolled back
    assert "refuses: no" in out["seen"]["message"]
    assert "ValueError" in out["seen"]["inner_type"]
    assert "refuses: no" in out["seen"]["inner_message"]
    # Uncaught, the failure fails the calling orchestration with those details.
    failed = _run(client, "call_counter", {"name": kind, "key": key, "op": "fail", "input": "x"})
    assert failed.runtime_status == OrchestrationStatus.FAILED
    assert "refuses: x" in failed.failure_details.message
    client.signal_entity(EntityInstanceId(kind, key), "add", 1)
    _wait_state(client, EntityInstanceId(kind, key), 8)


def test_orchestration_signals_an_entity(client, kind):
    key = _key()
    state = _run(client, "signal_counter", {"name": kind, "key": key, "times": 3})
    assert state.runtime_status == OrchestrationStatus.COMPLETED
    _wait_state(client, EntityInstanceId(kind, key), 3)


def test_entity_signals_another_entity(client, kind):
    source, target = _key(), _key()
    client.signal_entity(
        EntityInstanceId(kind, source), "signal_other", {"name": kind, "key": target}
    )
    _wait_state(client, EntityInstanceId(kind, target), 1)


def test_entity_starts_an_orchestration(client, kind):
    key, started = _key(), "o" + uuid.uuid4().hex[:10]
    eid = EntityInstanceId(kind, key)
    client.signal_entity(eid, "add", 9)
    client.signal_entity(eid, "start_orchestration", started)
    wait_until(lambda: client.get_orchestration_state(started), 30, "the started orchestration")
    state = client.wait_for_orchestration_completion(started, timeout=30)
    assert state.runtime_status == OrchestrationStatus.COMPLETED
    assert json.loads(state.serialized_output) == {"started_with": 9}


def _not_before(client, eid, delay: float, sent_at: float) -> float:
    """Check the delayed add does not land early; return when it landed (monotonic)."""
    time.sleep(delay * 0.6)
    assert _state(client, eid) in (None, 0), "the delayed signal ran early"
    landed = wait_until(lambda: _state(client, eid) == 1 and time.monotonic(), delay + 20, "it")
    assert landed - sent_at >= delay - 0.3
    return landed


def test_delayed_signal_from_the_client_does_not_run_early(client, kind):
    eid = EntityInstanceId(kind, _key())
    sent = time.monotonic()
    client.signal_entity(eid, "add", 1, signal_time=datetime.now(UTC) + timedelta(seconds=3))
    _not_before(client, eid, 3, sent)


def test_delayed_signal_from_an_orchestration_does_not_run_early(client, kind):
    key = _key()
    sent = time.monotonic()
    _run(client, "signal_counter", {"name": kind, "key": key, "delay": 3})
    _not_before(client, EntityInstanceId(kind, key), 3, sent)


def test_delayed_self_signal_from_an_entity_does_not_run_early(client, kind):
    eid = EntityInstanceId(kind, _key())
    client.signal_entity(eid, "reset")
    _wait_state(client, eid, 0)
    sent = time.monotonic()
    client.signal_entity(eid, "signal_later", 3)
    _not_before(client, eid, 3, sent)


def test_query_entities_by_prefix_window_state_and_pages(client, kind):
    prefix = "q" + uuid.uuid4().hex[:6]
    ids = [EntityInstanceId(kind, f"{prefix}-{i}") for i in range(5)]
    before = datetime.now(UTC) - timedelta(seconds=1)
    for n, eid in enumerate(ids):
        client.signal_entity(eid, "add", n + 1)
    for n, eid in enumerate(ids):
        _wait_state(client, eid, n + 1)
    after = datetime.now(UTC) + timedelta(seconds=1)
    query = EntityQuery(instance_id_starts_with=f"@{kind}@{prefix}", include_state=True)
    found = client.get_all_entities(query)
    assert sorted((m.id.key, m.get_state(int)) for m in found) == [
        (f"{prefix}-{i}", i + 1) for i in range(5)
    ]
    # No '@' in front: the sidecar adds it, as DTFx does.
    bare = client.get_all_entities(EntityQuery(instance_id_starts_with=f"{kind}@{prefix}"))
    assert len(bare) == 5
    paged = client.get_all_entities(
        EntityQuery(instance_id_starts_with=f"@{kind}@{prefix}", page_size=2, include_state=False)
    )
    assert sorted(m.id.key for m in paged) == [f"{prefix}-{i}" for i in range(5)]
    assert all(not m.includes_state for m in paged)
    window = EntityQuery(
        instance_id_starts_with=f"@{kind}@{prefix}",
        last_modified_from=before,
        last_modified_to=after,
    )
    assert len(client.get_all_entities(window)) == 5
    later = EntityQuery(instance_id_starts_with=f"@{kind}@{prefix}", last_modified_from=after)
    assert client.get_all_entities(later) == []
    # A deleted entity has no state: listed only with include_transient.
    client.signal_entity(ids[0], "delete")
    wait_until(lambda: client.get_entity(ids[0]) is None, 30, "the delete")
    assert len(client.get_all_entities(query)) == 4
    transient = EntityQuery(instance_id_starts_with=f"@{kind}@{prefix}", include_transient=True)
    assert len(client.get_all_entities(transient)) == 5


def test_clean_entity_storage_removes_empty_entities(client, kind):
    key = _key()
    eid = EntityInstanceId(kind, key)
    client.signal_entity(eid, "add", 1)
    _wait_state(client, eid, 1)
    client.signal_entity(eid, "delete")
    wait_until(lambda: client.get_entity(eid) is None, 30, "the delete")
    query = EntityQuery(instance_id_starts_with=str(eid), include_transient=True)
    assert len(client.get_all_entities(query)) == 1  # still tracked, without state
    result = client.clean_entity_storage(remove_empty_entities=True, release_orphaned_locks=False)
    assert result.empty_entities_removed >= 1
    assert client.get_all_entities(query) == []
    # It can be used again afterwards.
    client.signal_entity(eid, "add", 2)
    _wait_state(client, eid, 2)


def test_a_first_page_of_transient_entities_is_not_returned_empty(client, sidecar, kind):
    import grpc
    from durabletask.internal import orchestrator_service_pb2 as pb
    from durabletask.internal import orchestrator_service_pb2_grpc as pb_grpc
    from google.protobuf import wrappers_pb2

    prefix = "t" + uuid.uuid4().hex[:6]
    gone, kept = EntityInstanceId(kind, f"{prefix}-a"), EntityInstanceId(kind, f"{prefix}-b")
    for eid in (gone, kept):
        client.signal_entity(eid, "add", 1)
        _wait_state(client, eid, 1)
    client.signal_entity(gone, "delete")  # the first row in key order now has no state
    wait_until(lambda: client.get_entity(gone) is None, 30, "the delete")
    query = pb.EntityQuery(
        instanceIdStartsWith=wrappers_pb2.StringValue(value=f"@{kind}@{prefix}"),
        pageSize=wrappers_pb2.Int32Value(value=1),
    )
    with grpc.insecure_channel(sidecar.address) as channel:
        stub = pb_grpc.TaskHubSidecarServiceStub(channel)
        page = stub.QueryEntities(pb.QueryEntitiesRequest(query=query), timeout=10)
    assert [e.instanceId for e in page.entities] == [str(kept)]
