"""A realistic demo workload for investigations: an order pipeline with failures, retries,
slow calls and a few instances that get stuck waiting for a human.

``OrderWorkload`` runs its own Durable Task worker (in a background thread, with work item filters
so that only its own orchestrations and activities come to it) and starts ``orders`` instances of
``ProcessOrder`` with instance ids ``<prefix>0001``, ``<prefix>0002``, ... Everything is
deterministic given ``seed`` (which orders fail, which are retried, which wait):

================  ==============================================================================
activity          behaviour
================  ==============================================================================
ValidateOrder     fast (5-20 ms)
ReserveStock      one call per order line, in parallel (fan-out); 20-80 ms; about 3% of orders
                  fail with ``OutOfStockError``
ChargePayment     the slow one: 200-600 ms, about 5% take 1.5-2.5 s; about 12% of orders hit a
                  transient ``ConnectionError`` and are retried (retry policy: 3 attempts, 0.5 s
                  apart); about 3% fail all three attempts; about 4% are declined
                  (``ValueError: Card declined``): the retry policy retries every error, so a
                  declined card is also tried three times before the order fails
ShipOrder         30-60 ms
================  ==============================================================================

Orders over 900 wait for the external event ``ManagerApproval`` (custom status
``WaitingForManagerApproval``); nobody sends it, so they stay Running: the stuck ones.
A few bulk orders have many lines (a long fan-out and a large input).

Example:
    >>> with OrderWorkload("127.0.0.1:4001", orders=50) as run:  # doctest: +SKIP
    ...     run.start()
    ...     run.wait(timeout=60)
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from durabletask import task
from durabletask.client import OrchestrationQuery, OrchestrationStatus, TaskHubGrpcClient
from durabletask.worker import ConcurrencyOptions, TaskHubGrpcWorker

APPROVAL_LIMIT = 900
# Retries every failure of the call, whatever the error: the RetryPolicy of the durabletask SDK
# (1.12) has no option to leave some errors out, so declined cards are retried like timeouts.
RETRY = task.RetryPolicy(first_retry_interval=timedelta(seconds=0.5), max_number_of_attempts=3)
TERMINAL = {
    OrchestrationStatus.COMPLETED,
    OrchestrationStatus.FAILED,
    OrchestrationStatus.TERMINATED,
}


class OutOfStockError(RuntimeError):
    """A line of the order cannot be reserved."""


# Attempt counters of ChargePayment per order (the worker runs in this process).
_attempts: Counter[str] = Counter()
_attempts_lock = threading.Lock()


def _quiet() -> logging.Logger:
    """The SDK logs every work item at INFO; a notebook only wants real problems."""
    logger = logging.getLogger("durable_helpers.workload.sdk")
    logger.setLevel(logging.ERROR)
    return logger


def _sleep_ms(low: float, high: float, rng: random.Random) -> None:
    time.sleep(rng.uniform(low, high) / 1000)


def ValidateOrder(ctx: task.ActivityContext, order: dict[str, Any]) -> dict[str, Any]:
    """Check the order; fast."""
    _sleep_ms(5, 20, random.Random(order["id"]))
    return {"order": order["id"], "valid": True, "lines": len(order["lines"])}


def ReserveStock(ctx: task.ActivityContext, line: dict[str, Any]) -> str:
    """Reserve one order line; fails when the order is marked out of stock."""
    _sleep_ms(20, 80, random.Random(f"{line['order']}-{line['sku']}"))
    if line.get("out_of_stock"):
        raise OutOfStockError(f"Item {line['sku']} is out of stock (order {line['order']})")
    return f"reserved {line['quantity']} x {line['sku']}"


def ChargePayment(ctx: task.ActivityContext, order: dict[str, Any]) -> str:
    """Charge the card: the slow call, sometimes flaky, sometimes declined."""
    with _attempts_lock:
        _attempts[order["id"]] += 1
        attempt = _attempts[order["id"]]
    rng = random.Random(f"{order['id']}-{attempt}")
    if order.get("slow"):
        _sleep_ms(1500, 2500, rng)
    else:
        _sleep_ms(200, 600, rng)
    if attempt <= order.get("transient_failures", 0):
        raise ConnectionError(
            f"Payment gateway timed out for order {order['id']} (attempt {attempt})"
        )
    if order.get("declined"):
        raise ValueError(f"Card declined for order {order['id']}: insufficient funds")
    return f"receipt-{order['id']}"


def ShipOrder(ctx: task.ActivityContext, order: dict[str, Any]) -> str:
    """Hand the order to the carrier."""
    _sleep_ms(30, 60, random.Random(f"ship-{order['id']}"))
    return f"shipped {order['id']}"


def ProcessOrder(ctx: task.OrchestrationContext, order: dict[str, Any]) -> Any:
    """Validate, reserve every line (fan-out), wait for approval when large, charge, ship."""
    yield ctx.call_activity(ValidateOrder, input=order)
    lines = [{**line, "order": order["id"]} for line in order["lines"]]
    yield task.when_all([ctx.call_activity(ReserveStock, input=line) for line in lines])
    if order["total"] > APPROVAL_LIMIT:
        ctx.set_custom_status("WaitingForManagerApproval")
        yield ctx.wait_for_external_event("ManagerApproval")
        ctx.set_custom_status(None)
    receipt = yield ctx.call_activity(ChargePayment, input=order, retry_policy=RETRY)
    shipped = yield ctx.call_activity(ShipOrder, input=order)
    return {"order": order["id"], "receipt": receipt, "shipped": shipped}


def make_orders(count: int, seed: int = 7, *, stuck: int = 4) -> list[dict[str, Any]]:
    """The order inputs of a workload: deterministic for a given ``seed``.

    Example:
        >>> orders = make_orders(100, seed=1)
        >>> len(orders), sum(o["total"] > APPROVAL_LIMIT for o in orders)
        (100, 4)
    """
    rng = random.Random(seed)
    orders = []
    waiting = set(rng.sample(range(count), min(stuck, count)))
    for number in range(count):
        bulk = rng.random() < 0.03
        line_count = rng.randint(40, 80) if bulk else rng.randint(1, 4)
        lines = [
            {
                "sku": f"SKU-{rng.randint(100, 999)}",
                "quantity": rng.randint(1, 5),
                "note": "gift wrap, fragile, deliver to the back door" * (20 if bulk else 1),
            }
            for _ in range(line_count)
        ]
        failure = rng.random()
        out_of_stock = failure < 0.03
        if out_of_stock:
            lines[rng.randrange(line_count)]["out_of_stock"] = True
        transient = 0
        if 0.03 <= failure < 0.15:
            transient = 1 if failure < 0.12 else 3  # 3 attempts all fail: exhausted retries
        total = 900 + rng.randint(1, 500) if number in waiting else rng.randint(10, 880)
        orders.append(
            {
                "id": f"{number + 1:04d}",
                "customer": f"customer-{rng.randint(1, 60):02d}",
                "total": total,
                "lines": lines,
                "transient_failures": transient,
                "declined": 0.15 <= failure < 0.19,
                "slow": rng.random() < 0.05,
            }
        )
    return orders


@dataclass
class OrderWorkload:
    """Run the order workload against the sidecar at ``sidecar`` (see the module docstring).

    ``rate`` spreads the starts (orders per second); None starts them all at once.
    ``worker_threads`` sizes the worker's thread pool (None: the SDK's default, CPUs + 4); the
    activities wait on I/O (``ChargePayment`` sleeps up to 2.5 s), so sustained rates above a
    few orders per second want more threads.

    Example:
        >>> OrderWorkload("127.0.0.1:4001", orders=3).prefix.startswith("order-")
        True
    """

    sidecar: str
    orders: int = 300
    seed: int = 7
    stuck: int = 4
    rate: float | None = None
    worker_threads: int | None = None
    prefix: str = field(default_factory=lambda: f"order-{uuid.uuid4().hex[:6]}-")
    instance_ids: list[str] = field(default_factory=list)
    _worker: TaskHubGrpcWorker | None = field(default=None, repr=False)
    _client: TaskHubGrpcClient | None = field(default=None, repr=False)

    @property
    def client(self) -> TaskHubGrpcClient:
        """A durabletask client on the same sidecar."""
        if self._client is None:
            self._client = TaskHubGrpcClient(host_address=self.sidecar, logger=_quiet())
        return self._client

    def start_worker(self) -> None:
        """Start this workload's worker (only ProcessOrder and its activities come to it)."""
        if self._worker is not None:
            return
        options = ConcurrencyOptions(maximum_thread_pool_workers=self.worker_threads)
        worker = TaskHubGrpcWorker(
            host_address=self.sidecar, logger=_quiet(), concurrency_options=options
        )
        worker.add_orchestrator(ProcessOrder)
        for activity in (ValidateOrder, ReserveStock, ChargePayment, ShipOrder):
            worker.add_activity(activity)
        worker.use_work_item_filters()
        worker.start()
        self._worker = worker

    def start(self, progress: bool = True) -> list[str]:
        """Start the worker and schedule every order; return the instance ids."""
        from tqdm.auto import tqdm

        self.start_worker()
        orders = make_orders(self.orders, self.seed, stuck=self.stuck)
        bar = tqdm(orders, desc="starting orders", disable=not progress, unit="order")
        began = time.monotonic()
        for number, order in enumerate(bar):
            if self.rate:  # arrive over time, like real traffic, instead of all at once
                time.sleep(max(0.0, began + number / self.rate - time.monotonic()))
            instance_id = f"{self.prefix}{order['id']}"
            self.client.schedule_new_orchestration(
                ProcessOrder, input=order, instance_id=instance_id
            )
            self.instance_ids.append(instance_id)
        return list(self.instance_ids)

    def statuses(self) -> Counter[str]:
        """How many of this workload's instances are in each runtime status right now."""
        query = OrchestrationQuery(instance_id_prefix=self.prefix)
        states = self.client.get_all_orchestration_states(query)
        return Counter(state.runtime_status.name.title() for state in states)

    def wait(self, timeout: float = 120.0, progress: bool = True) -> Counter[str]:
        """Wait until every order has finished except the ones waiting for approval.

        Returns the status counts; raises ``TimeoutError`` after ``timeout`` seconds.
        """
        from tqdm.auto import tqdm

        expected = len(self.instance_ids) - self.stuck
        bar = tqdm(total=expected, desc="orders finished", disable=not progress, unit="order")
        deadline = time.monotonic() + timeout
        try:
            while True:
                counts = self.statuses()
                done = sum(counts[s.name.title()] for s in TERMINAL)
                bar.n = min(done, expected)
                bar.set_postfix(dict(counts))
                bar.refresh()
                if done >= expected:
                    return counts
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"Only {done} of {expected} orders finished in {timeout:.0f} s: "
                        f"{dict(counts)}"
                    )
                time.sleep(1.0)
        finally:
            bar.close()

    def stop(self) -> None:
        """Stop the worker and close the client (the stuck orders stay Running)."""
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> OrderWorkload:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
