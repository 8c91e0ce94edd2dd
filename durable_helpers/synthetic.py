"""A synthetic task hub of any size, written as the provider's rows (``schema``), not run.

For benchmarks and tests of big hubs: running 50,000 orchestrations through a sidecar takes
hours, writing their rows takes minutes. Each instance is one of a few shapes of an order
pipeline (activities ``Validate``, ``Reserve``, ``Charge``): most complete (16 events),
some fail in ``Charge`` (``ConnectionError`` or ``ValueError``), some still run with a call
pending, some are Pending and never started, some wait on a durable timer. Ids are random hex
(as Durable Functions makes them), so they spread over the PartitionKey space; times spread
over ``days`` days. Everything is derived from ``seed``: the same arguments give the same hub.

Example:
    >>> rows = list(synthetic_instances(3, seed=1))
    >>> [len(history) for _, history in rows]
    [17, 17, 17]
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from durable_helpers import schema
from durable_helpers.storage import retry_idempotent

START = datetime(2026, 11, 23, tzinfo=schema.UTC)
ORCHESTRATOR = "ProcessOrder"
ACTIVITIES = ("Validate", "Reserve", "Charge")
#: Instance shapes by ``index % 20``.
SHAPES = (
    ["completed"] * 14
    + ["timer", "failed-connection", "failed-value", "running"]
    + [
        "pending",
        "completed",
    ]
)


def _failure(error_type: str, message: str) -> dict[str, Any]:
    return {
        "ErrorType": error_type,
        "ErrorMessage": message,
        "StackTrace": f'  File "activities.py", line 42, in charge\n    raise {error_type}()',
    }


def synthetic_instances(
    count: int,
    *,
    seed: int = 0,
    start: datetime = START,
    days: float = 7.0,
    prefix: str = "",
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """``(Instances row, History rows with sentinel)`` for ``count`` synthetic instances.

    Example:
        >>> row, history = next(synthetic_instances(1, seed=3))
        >>> row["RuntimeStatus"], history[0]["EventType"]
        ('Completed', 'OrchestratorStarted')
    """
    rng = random.Random(seed)
    spacing = timedelta(days=days) / max(count, 1)
    for index in range(count):
        instance_id = prefix + f"{rng.getrandbits(128):032x}"
        execution = f"{rng.getrandbits(128):032x}"
        created = start + spacing * index
        yield _instance(rng, SHAPES[index % len(SHAPES)], instance_id, execution, created)


def _instance(
    rng: random.Random, shape: str, instance_id: str, execution: str, created: datetime
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    events: list[tuple[str, int, datetime, dict[str, Any]]] = []
    now = created + timedelta(milliseconds=rng.uniform(5, 50))
    order = {"order": instance_id[:8], "lines": rng.randint(1, 5)}
    common = {"Name": ORCHESTRATOR, "CreatedTime": created, "ExecutionId": execution}
    if shape == "pending":
        row = schema.instance_entity(
            instance_id,
            RuntimeStatus="Pending",
            LastUpdatedTime=created,
            Input=order,
            Version="",
            TaskHubName="BenchHub",
            CustomStatus="null",
            **common,
        )
        return row, []

    def add(event_type: str, event_id: int = -1, **columns: Any) -> None:
        events.append((event_type, event_id, now, columns))

    add("OrchestratorStarted")
    add("ExecutionStarted", Name=ORCHESTRATOR, Version="", Input=order)
    status, output, failure = "Completed", None, None
    for number, activity in enumerate(ACTIVITIES):
        add("TaskScheduled", number, Name=activity, Version="")
        add("OrchestratorCompleted")
        if shape == "timer" and number == 1:
            fire = now + timedelta(seconds=30)
            add("OrchestratorStarted")
            add("TimerCreated", 10, FireAt=fire)
            now = fire
            add("TimerFired", TimerId=10, FireAt=fire)
        slow = activity == "Charge" and rng.random() < 0.05
        now += timedelta(milliseconds=rng.lognormvariate(4.0 if not slow else 7.5, 0.6))
        if shape == "running" and activity == "Charge":
            status = "Running"
            break
        add("OrchestratorStarted")
        if shape.startswith("failed") and activity == "Charge":
            error = "ConnectionError" if shape == "failed-connection" else "ValueError"
            failure = _failure(error, f"charge of order {instance_id[:8]} failed")
            add(
                "TaskFailed",
                TaskScheduledId=number,
                FailureDetails=failure,
                Reason=f"{error}: charge failed",
            )
            status = "Failed"
            break
        add("TaskCompleted", TaskScheduledId=number, Result={"step": activity, "ok": True})
    if status == "Completed":
        output = {"order": instance_id[:8], "shipped": True}
        add("ExecutionCompleted", len(ACTIVITIES), OrchestrationStatus="Completed", Result=output)
        add("OrchestratorCompleted")
    elif status == "Failed":
        wrapped = {**_failure("TaskFailedException", "Charge failed"), "InnerFailure": failure}
        add(
            "ExecutionCompleted",
            len(ACTIVITIES),
            OrchestrationStatus="Failed",
            FailureDetails=wrapped,
        )
        add("OrchestratorCompleted")
    history = [
        schema.history_entity(
            instance_id,
            execution,
            sequence,
            event_type,
            event_id=event_id,
            is_played=False,
            timestamp=stamp,
            **columns,
        )
        for sequence, (event_type, event_id, stamp, columns) in enumerate(events)
    ]
    done = now + timedelta(milliseconds=3)
    history.append(schema.sentinel_entity(instance_id, execution, checkpoint_completed=done))
    finished = status in ("Completed", "Failed")
    row = schema.instance_entity(
        instance_id,
        RuntimeStatus=status,
        LastUpdatedTime=done,
        Input=order,
        Version="",
        CompletedTime=done if finished else None,
        Output=output or failure,
        TaskHubName="BenchHub",
        CustomStatus="null",
        **common,
    )
    return row, history


def write_synthetic_hub(
    account: Any,
    hub: str,
    count: int,
    *,
    seed: int = 0,
    days: float = 7.0,
    prefix: str = "",
    threads: int = 8,
) -> int:
    """Create ``hub``'s tables in ``account`` (a ``StorageAccount``) and write ``count`` instances.

    Each instance's History rows go in one entity-group transaction (as a checkpoint does).
    Returns the number of History rows written (sentinels included).

    Example:
        >>> account = StorageAccount.from_connection(conn)  # doctest: +SKIP
        >>> write_synthetic_hub(account, "BigHub", 50_000)  # doctest: +SKIP
        850000
    """
    names = schema.hub_names(hub)
    for table in (names.history_table, names.instances_table):
        account.tables.create_table_if_not_exists(table)
    history = account.tables.get_table_client(names.history_table)
    instances = account.tables.get_table_client(names.instances_table)

    def write(item: tuple[dict[str, Any], list[dict[str, Any]]]) -> int:
        row, rows = item
        for first in range(0, len(rows), 100):
            batch = [("upsert", e) for e in rows[first : first + 100]]
            retry_idempotent(lambda b=batch: history.submit_transaction(b))
        retry_idempotent(lambda: instances.upsert_entity(row))
        return len(rows)

    source = synthetic_instances(count, seed=seed, days=days, prefix=prefix)
    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(write, source))
