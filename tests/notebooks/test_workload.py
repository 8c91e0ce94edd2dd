"""The order workload of 04_investigation: deterministic, and it has every kind of trouble."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from nbharness import LocalStack

from durable_helpers import TaskHub
from durable_helpers.notebook_env import endpoints, wait_for
from durable_helpers.workload import APPROVAL_LIMIT, OrderWorkload, ProcessOrder, make_orders


def test_orders_are_deterministic_and_mixed() -> None:
    orders = make_orders(300, seed=7, stuck=4)
    assert orders == make_orders(300, seed=7, stuck=4)
    assert sum(o["total"] > APPROVAL_LIMIT for o in orders) == 4
    assert any(any(line.get("out_of_stock") for line in o["lines"]) for o in orders)
    assert any(o["declined"] for o in orders)
    assert any(o["transient_failures"] == 1 for o in orders)
    assert any(o["transient_failures"] == 3 for o in orders)
    assert any(o["slow"] for o in orders)
    assert max(len(o["lines"]) for o in orders) >= 40  # bulk orders: long fan-outs


def test_prefix_is_unique_per_run() -> None:
    sidecar = endpoints({}).sidecar
    assert OrderWorkload(sidecar).prefix != OrderWorkload(sidecar).prefix


def _order(**trouble: Any) -> dict[str, Any]:
    line = {"sku": "SKU-100", "quantity": 1, "note": "-"}
    order = {"customer": "c", "total": 50, "lines": [line], "slow": False}
    return {**order, "transient_failures": 0, "declined": False, **trouble}


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_retry_policy_retries_declined_cards_like_timeouts(local_stack: LocalStack) -> None:
    """What 04_investigation says about retries, read back from the History table: a flaky
    payment is retried until it works, and a declined card is tried three times, like a payment
    that times out every time (the SDK's RetryPolicy cannot leave an error type out)."""
    env = local_stack.endpoints
    hub = TaskHub(env.connection, hub=env.hub)
    orders = {
        "declined": _order(declined=True),
        "flaky": _order(transient_failures=1),
        "timeout": _order(transient_failures=3),
    }
    with OrderWorkload(env.sidecar, orders=0, stuck=0) as run:
        run.start_worker()
        for name, order in orders.items():
            order["id"] = f"{run.prefix}{name}"
            run.client.schedule_new_orchestration(
                ProcessOrder, input=order, instance_id=order["id"]
            )
        for order in orders.values():
            run.client.wait_for_orchestration_completion(order["id"], timeout=60)

    def history(name: str) -> pd.DataFrame:
        instance_id = orders[name]["id"]
        wait_for(
            lambda: hub.history(instance_id).EventType.eq("ExecutionCompleted").any(),
            timeout=30,
            what=f"ExecutionCompleted of {instance_id} in the History table",
        )
        return hub.history(instance_id)

    def charge(h: pd.DataFrame, event_type: str) -> pd.DataFrame:
        return h[(h.EventType == event_type) & (h.Name == "ChargePayment")]

    def outcome(h: pd.DataFrame) -> str:
        return h[h.EventType == "ExecutionCompleted"].OrchestrationStatus.iloc[0]

    declined = history("declined")
    assert len(charge(declined, "TaskScheduled")) == 3
    failures = charge(declined, "TaskFailed")
    assert len(failures) == 3
    assert set(failures.FailureType) == {"builtins.ValueError"}
    assert failures.FailureMessage.str.startswith("Card declined").all()
    assert outcome(declined) == "Failed"
    assert not (declined.Name == "ShipOrder").any()

    flaky = history("flaky")
    assert len(charge(flaky, "TaskScheduled")) == 2
    assert len(charge(flaky, "TaskFailed")) == 1
    assert outcome(flaky) == "Completed"

    timeout = history("timeout")
    assert len(charge(timeout, "TaskScheduled")) == 3
    assert set(charge(timeout, "TaskFailed").FailureType) == {"builtins.ConnectionError"}
    assert outcome(timeout) == "Failed"
