"""GrpcTaskHub.entities() / entity() through QueryEntities and GetEntity, on real entities.

The sidecar is durabletask's in-memory backend served by ``durable_helpers.local.memory_sidecar``;
a real SDK worker runs a function-based and a class-based entity and an orchestration that holds
a lock, the SDK client signals them. The frame must have the shape of ``TaskHub.entities()``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
import pytest
from durabletask import task
from durabletask.client import TaskHubGrpcClient
from durabletask.entities import DurableEntity, EntityContext, EntityInstanceId
from durabletask.worker import TaskHubGrpcWorker

from durable_helpers import EntityNotFoundError, GrpcTaskHub
from durable_helpers.entity_frames import ENTITY_COLUMNS
from durable_helpers.local.memory_sidecar import MemorySidecar
from durable_helpers.local.ports import free_ports

TIMEOUT = 30
ALICE, BOB = EntityInstanceId("Account", "alice"), EntityInstanceId("Account", "bob")
C1, C2 = EntityInstanceId("counter", "c1"), EntityInstanceId("counter", "c2")


def counter(ctx: EntityContext, amount: Any) -> Any:
    """A function-based entity: add, get."""
    if ctx.operation == "add":
        ctx.set_state(ctx.get_state(int, 0) + amount)
    return ctx.get_state(int, 0)


class Account(DurableEntity):
    """A class-based entity: a balance."""

    def deposit(self, amount: int) -> int:
        balance = self.get_state(dict, {"balance": 0})["balance"] + amount
        self.set_state({"balance": balance})
        return balance

    def withdraw(self, amount: int) -> int:
        return self.deposit(-amount)


def hold_both_accounts(ctx: task.OrchestrationContext, _: Any) -> Any:
    """Move 10 from alice to bob inside a critical section, then keep the locks until "done"."""
    with (yield ctx.lock_entities([ALICE, BOB])):
        yield ctx.call_entity(ALICE, "withdraw", 10)
        yield ctx.call_entity(BOB, "deposit", 10)
        yield ctx.wait_for_external_event("done")
    return "moved"


def read_counter(ctx: task.OrchestrationContext, _: Any) -> Any:
    return (yield ctx.call_entity(C1, "get"))


def wait_until(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out after {TIMEOUT} s waiting for {what}")


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[str, TaskHubGrpcWorker, TaskHubGrpcClient]]:
    sidecar = MemorySidecar(port=free_ports(1)[0]).start()
    worker = TaskHubGrpcWorker(host_address=sidecar.address)
    worker.add_entity(counter)
    worker.add_entity(Account)
    worker.add_orchestrator(hold_both_accounts)
    worker.add_orchestrator(read_counter)
    worker.start()
    client = TaskHubGrpcClient(host_address=sidecar.address)
    try:
        yield sidecar.address, worker, client
    finally:
        worker.stop()
        sidecar.stop()


def test_grpc_entities_give_the_entities_frame(running) -> None:
    address, worker, client = running
    client.signal_entity(C1, "add", 5)
    client.signal_entity(C2, "add", 7)
    client.signal_entity(ALICE, "deposit", 100)
    client.signal_entity(BOB, "deposit", 5)
    with GrpcTaskHub(address, timeout=10) as hub:
        wait_until(lambda: len(hub.entities()["State"].dropna()) == 4, "four entities with state")
        iid = client.schedule_new_orchestration(read_counter)
        done = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
        assert done is not None and done.serialized_output == "5"
        holder = client.schedule_new_orchestration(hold_both_accounts)

        def transferred_and_locked() -> bool:
            accounts = hub.entities(name="account").set_index("Key")
            return accounts.LockedBy.notna().all() and accounts.State["bob"] == {"balance": 15}

        wait_until(transferred_and_locked, "both accounts locked after the transfer")
        ents = hub.entities(page_size=2)  # several QueryEntities pages
        assert list(ents.columns) == list(ENTITY_COLUMNS)
        assert str(ents["LastModified"].dtype) == "datetime64[ns, UTC]"
        assert str(ents["BacklogQueueSize"].dtype) == "Int32"
        by_id = ents.set_index("InstanceId")
        assert sorted(by_id.index) == [f"@{e.entity}@{e.key}" for e in (ALICE, BOB, C1, C2)]
        assert by_id.loc["@counter@c1", ["Name", "Key", "State", "StateRaw"]].tolist() == [
            "counter",
            "c1",
            5,
            "5",
        ]
        assert by_id.loc["@account@alice", "State"] == {"balance": 90}
        assert by_id["Exists"].all()
        assert by_id["Queue"].isna().all() and by_id["Engine"].isna().all()
        # the in-memory backend keeps the critical-section id in lockedBy (DTFx: the orchestration)
        holders = by_id.loc[["@account@alice", "@account@bob"], "LockedBy"]
        assert holders.nunique() == 1 and pd.isna(by_id.loc["@counter@c1", "LockedBy"])

        assert sorted(hub.entities(name="Counter")["Key"]) == ["c1", "c2"]
        assert hub.entities(name="counter", key_prefix="c2")["Key"].tolist() == ["c2"]
        assert hub.entities(key_prefix="b")["InstanceId"].tolist() == ["@account@bob"]
        assert len(hub.entities(limit=3, page_size=2)) == 3
        stateless = hub.entities(include_state=False)
        assert stateless["State"].isna().all() and stateless["Exists"].isna().all()
        future = pd.Timestamp.now(tz="UTC") + pd.Timedelta("1h")
        assert hub.entities(modified_from=future).empty
        assert hub.entity("@counter@c2")["State"] == 7
        with pytest.raises(EntityNotFoundError, match="sidecar at"):
            hub.entity("@counter@nobody")
        with pytest.raises(ValueError, match="not an entity id"):
            hub.entity("counter")

        client.raise_orchestration_event(holder, "done")
        finished = client.wait_for_orchestration_completion(holder, timeout=TIMEOUT)
        assert finished is not None and finished.serialized_output == '"moved"'
        wait_until(lambda: hub.entities(name="account").LockedBy.isna().all(), "locks released")

        # with no worker, signals wait: the backlog is what the sidecar reports
        worker.stop()
        for _ in range(3):
            client.signal_entity(C1, "add", 1)
        assert hub.entity("@counter@c1")["BacklogQueueSize"] == 3
