"""The order workload of 04_investigation: deterministic, and it has every kind of trouble."""

from __future__ import annotations

from durable_helpers.notebook_env import endpoints
from durable_helpers.workload import APPROVAL_LIMIT, OrderWorkload, make_orders


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
