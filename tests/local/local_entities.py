"""Entities (function-based and class-based) and orchestrations that use them, for the tests.

``register_entities(worker)`` adds them all. Both kinds of entity implement the same counter
(``add``, ``slow_add``, ``get``, ``reset``, ``fail``, ``delete``, ``signal_other``,
``start_orchestration``, ``signal_later``), so every behaviour is tested with each (``KINDS``);
the function one can also ``store`` any JSON value as its state.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from durabletask import entities, task
from durabletask.worker import TaskHubGrpcWorker

UTC = timezone.utc  # noqa: UP017

#: Entity id -> operations of it running now, in this process; OVERLAPS records any second one
#: (two batches of one entity in flight at once would show here).
RUNNING: dict[str, int] = {}
OVERLAPS: list[str] = []
_RUNNING_LOCK = threading.Lock()


def _exclusive_sleep(entity_id: str, seconds: float) -> None:
    with _RUNNING_LOCK:
        RUNNING[entity_id] = RUNNING.get(entity_id, 0) + 1
        if RUNNING[entity_id] > 1:
            OVERLAPS.append(entity_id)
    try:
        time.sleep(seconds)
    finally:
        with _RUNNING_LOCK:
            RUNNING[entity_id] -= 1


def fn_counter(ctx: entities.EntityContext, input: Any) -> Any:
    """The function-based counter."""
    op = ctx.operation
    if op == "reset":
        ctx.set_state(0)
        return None
    if op == "delete":
        ctx.set_state(None)
        return None
    if op == "store":  # any JSON value as the state
        ctx.set_state(input)
        return None
    value = ctx.get_state(int, 0)
    if op == "slow_add":
        _exclusive_sleep(str(ctx.entity_id), 0.005)
        op = "add"
    if op == "add":
        ctx.set_state(value + int(input))
        return value + int(input)
    if op == "get":
        return value
    if op == "fail":
        ctx.set_state(value + 1000)  # rolled back: the operation raises
        raise ValueError(f"counter {ctx.entity_id.key} refuses: {input}")
    if op == "signal_other":
        ctx.signal_entity(entities.EntityInstanceId(input["name"], input["key"]), "add", 1)
        return None
    if op == "start_orchestration":
        return ctx.schedule_new_orchestration("entity_started", input=value, instance_id=input)
    if op == "signal_later":
        when = datetime.now(UTC) + timedelta(seconds=float(input))
        ctx.signal_entity(ctx.entity_id, "add", 1, signal_time=when)
        return None
    raise ValueError(f"fn_counter has no operation {op!r}")


class ClassCounter(entities.DurableEntity):
    """The class-based counter (same operations)."""

    def add(self, amount: int) -> int:
        value = self.get_state(int, 0) + int(amount)
        self.set_state(value)
        return value

    def slow_add(self, amount: int) -> int:
        _exclusive_sleep(str(self.entity_context.entity_id), 0.005)
        return self.add(amount)

    def get(self, _: Any = None) -> int:
        return self.get_state(int, 0)

    def reset(self, _: Any = None) -> None:
        self.set_state(0)

    def fail(self, reason: Any = None) -> None:
        self.set_state(self.get_state(int, 0) + 1000)
        raise ValueError(f"counter {self.entity_context.entity_id.key} refuses: {reason}")

    def signal_other(self, target: dict[str, str]) -> None:
        self.signal_entity(entities.EntityInstanceId(target["name"], target["key"]), "add", 1)

    def start_orchestration(self, instance_id: str) -> str:
        return self.schedule_new_orchestration(
            "entity_started", input=self.get_state(int, 0), instance_id=instance_id
        )

    def signal_later(self, seconds: float) -> None:
        when = datetime.now(UTC) + timedelta(seconds=float(seconds))
        self.signal_entity(self.entity_context.entity_id, "add", 1, signal_time=when)


#: The entity names of the two kinds (lower-cased, as ids carry them).
KINDS = ("fn_counter", "classcounter")


def entity_started(ctx: task.OrchestrationContext, value: int) -> dict[str, Any]:
    return {"started_with": value}


def call_counter(ctx: task.OrchestrationContext, args: dict[str, Any]) -> Any:
    """Call ``op`` on ``@name@key`` and return its result (a failure fails the orchestration)."""
    eid = entities.EntityInstanceId(args["name"], args["key"])
    return (yield ctx.call_entity(eid, args["op"], args.get("input")))


def call_counter_catching(ctx: task.OrchestrationContext, args: dict[str, Any]) -> Any:
    """Call ``fail`` and report what the caller saw, then call ``get``: the entity still works."""
    eid = entities.EntityInstanceId(args["name"], args["key"])
    try:
        yield ctx.call_entity(eid, "fail", "no")
        seen = "no failure"
    except task.TaskFailedError as error:
        details = error.details
        inner = details.inner_failure
        seen = {
            "message": details.message,
            "inner_type": inner.error_type if inner else None,
            "inner_message": inner.message if inner else None,
        }
    value = yield ctx.call_entity(eid, "get")
    return {"seen": seen, "value": value}


def signal_counter(ctx: task.OrchestrationContext, args: dict[str, Any]) -> None:
    """Signal ``add`` ``times`` times (optionally ``delay`` seconds from now)."""
    eid = entities.EntityInstanceId(args["name"], args["key"])
    when = None
    if args.get("delay"):
        when = ctx.current_utc_datetime + timedelta(seconds=float(args["delay"]))
    for _ in range(args.get("times", 1)):
        ctx.signal_entity(eid, "add", 1, signal_time=when)
    return None


def locked_transfer(ctx: task.OrchestrationContext, args: dict[str, Any]) -> Any:
    """Lock two counters, move ``amount`` from one to the other, wait ``hold`` s, unlock."""
    a = entities.EntityInstanceId(args["name"], args["from"])
    b = entities.EntityInstanceId(args["name"], args["to"])
    with (yield ctx.lock_entities([b, a])):
        started = ctx.current_utc_datetime
        yield ctx.call_entity(a, "add", -args["amount"])
        if args.get("hold"):
            yield ctx.create_timer(timedelta(seconds=float(args["hold"])))
        total = yield ctx.call_entity(b, "add", args["amount"])
        ended = ctx.current_utc_datetime
    after = yield ctx.call_entity(a, "get")  # after the section: no lock needed
    return {"start": started.isoformat(), "end": ended.isoformat(), "to": total, "from": after}


def lock_and_fail(ctx: task.OrchestrationContext, args: dict[str, Any]) -> None:
    """Lock a counter and fail inside the critical section (the SDK must still unlock)."""
    eid = entities.EntityInstanceId(args["name"], args["key"])
    with (yield ctx.lock_entities([eid])):
        yield ctx.call_entity(eid, "add", 1)
        raise RuntimeError("failing inside a critical section")


def lock_and_wait(ctx: task.OrchestrationContext, args: dict[str, Any]) -> None:
    """Lock a counter and wait for an event (to be terminated while holding the lock)."""
    eid = entities.EntityInstanceId(args["name"], args["key"])
    with (yield ctx.lock_entities([eid])):
        yield ctx.call_entity(eid, "add", 1)
        yield ctx.wait_for_external_event("never")


ORCHESTRATORS = (
    entity_started,
    call_counter,
    call_counter_catching,
    signal_counter,
    locked_transfer,
    lock_and_fail,
    lock_and_wait,
)


def wait_until(check, timeout: float = 30.0, what: str = "the condition"):
    """Poll ``check()`` until it returns a truthy value (returned); fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def register_entities(worker: TaskHubGrpcWorker) -> TaskHubGrpcWorker:
    """Add every test entity and orchestration to ``worker`` (returns it)."""
    worker.add_entity(fn_counter)
    worker.add_entity(ClassCounter)
    for orchestrator in ORCHESTRATORS:
        worker.add_orchestrator(orchestrator)
    return worker
