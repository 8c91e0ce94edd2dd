"""Orchestrations and activities the local task hub tests run through the real SDK worker.

``register(worker)`` adds them all; the subprocess worker (``worker_proc.py``) uses it too.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta

from durabletask import task
from durabletask.worker import TaskHubGrpcWorker

FAIL_COUNTS: dict[str, int] = {}


def Hello(ctx, name: str) -> str:
    return f"Hello {name}!"


def SlowHello(ctx, name: str) -> str:
    time.sleep(0.05)
    return f"Hello {name}!"


def SleepyHello(ctx, name: str) -> str:
    time.sleep(0.4)
    return f"Hello {name}!"


def SleepySequence(ctx: task.OrchestrationContext, _):
    results = []
    for city in ("Tokyo", "Seattle", "London"):
        results.append((yield ctx.call_activity(SleepyHello, input=city)))
    return results


def HelloSequence(ctx: task.OrchestrationContext, _):
    results = []
    for city in ("Tokyo", "Seattle", "London"):
        results.append((yield ctx.call_activity(Hello, input=city)))
    return results


def SlowSequence(ctx: task.OrchestrationContext, _):
    results = []
    for city in ("Tokyo", "Seattle", "London"):
        results.append((yield ctx.call_activity(SlowHello, input=city)))
    return results


def double(ctx, value: int) -> int:
    return value * 2


def fan_out(ctx: task.OrchestrationContext, count: int):
    results = yield task.when_all([ctx.call_activity(double, input=i) for i in range(count)])
    return sum(results)


def boom(ctx, message: str) -> None:
    raise ValueError(message)


def failing_activity(ctx: task.OrchestrationContext, message: str):
    yield ctx.call_activity(boom, input=message)
    return "unreachable"


def flaky(ctx, key: str) -> str:
    """Fails the first two times for a key, then succeeds."""
    FAIL_COUNTS[key] = FAIL_COUNTS.get(key, 0) + 1
    if FAIL_COUNTS[key] < 3:
        raise RuntimeError(f"flaky failure {FAIL_COUNTS[key]}")
    return f"ok after {FAIL_COUNTS[key]}"


RETRY = task.RetryPolicy(first_retry_interval=timedelta(milliseconds=100), max_number_of_attempts=3)


def retry_activity(ctx: task.OrchestrationContext, key: str):
    return (yield ctx.call_activity(flaky, input=key, retry_policy=RETRY))


def flaky_child(ctx: task.OrchestrationContext, key: str):
    return (yield ctx.call_activity(flaky, input=key))


def retry_sub_orchestration(ctx: task.OrchestrationContext, key: str):
    return (yield ctx.call_sub_orchestrator(flaky_child, input=key, retry_policy=RETRY))


def child(ctx: task.OrchestrationContext, value: int):
    return {"value": value, "parent": ctx.parent_instance_id, "me": ctx.instance_id}


def parent_fan_out(ctx: task.OrchestrationContext, count: int):
    tasks = [ctx.call_sub_orchestrator(child, input=i) for i in range(count)]
    tasks.append(
        ctx.call_sub_orchestrator("child", input=100, instance_id=ctx.instance_id + "-named")
    )
    return (yield task.when_all(tasks))


def wait_events(ctx: task.OrchestrationContext, names: list[str]):
    received = []
    for name in names:
        received.append((yield ctx.wait_for_external_event(name)))
    return received


def event_or_timeout(ctx: task.OrchestrationContext, seconds: float):
    approval = ctx.wait_for_external_event("approval")
    timeout = ctx.create_timer(timedelta(seconds=seconds))
    winner = yield task.when_any([approval, timeout])
    if winner == approval:
        return {"approved": approval.get_result()}
    return "timed out"


def timers(ctx: task.OrchestrationContext, seconds: list[float]):
    start = ctx.current_utc_datetime
    for s in seconds:
        yield ctx.create_timer(timedelta(seconds=s))
    return (ctx.current_utc_datetime - start).total_seconds()


def race(ctx: task.OrchestrationContext, _):
    slow = ctx.create_timer(timedelta(seconds=30))
    fast = ctx.call_activity(Hello, input="race")
    winner = yield task.when_any([slow, fast])
    return "activity" if winner == fast else "timer"


def waiter(ctx: task.OrchestrationContext, _):
    value = yield ctx.wait_for_external_event("go")
    return value


def counter(ctx: task.OrchestrationContext, state: dict):
    """Eternal orchestration: counts 'add' events, continue-as-new after each (saving events)."""
    value = yield ctx.wait_for_external_event("add")
    total = state["total"] + value
    if total >= state["target"]:
        return {"total": total, "generations": state["gen"] + 1}
    ctx.continue_as_new(
        {"total": total, "target": state["target"], "gen": state["gen"] + 1}, save_events=True
    )


def loop_as_new(ctx: task.OrchestrationContext, n: int):
    if n <= 0:
        return "done"
    yield ctx.create_timer(timedelta(milliseconds=10))
    ctx.continue_as_new(n - 1)


def custom_status(ctx: task.OrchestrationContext, _):
    ctx.set_custom_status({"step": 1})
    yield ctx.wait_for_external_event("next")
    ctx.set_custom_status({"step": 2})
    return "ok"


def sender(ctx: task.OrchestrationContext, target: str):
    ctx.send_event(target, "go", data={"from": ctx.instance_id})
    ctx.send_event(target + "-missing", "go", data=1)
    return "sent"


def tree(ctx: task.OrchestrationContext, depth: int):
    if depth > 0:
        yield ctx.call_sub_orchestrator(tree, input=depth - 1, instance_id=f"{ctx.instance_id}/c")
    yield ctx.wait_for_external_event("never")


def versioned(ctx: task.OrchestrationContext, _):
    return ctx.version


def fail_then_ok(ctx: task.OrchestrationContext, key: str):
    first = yield ctx.call_activity(Hello, input="before")
    second = yield ctx.call_activity(flaky_once, input=key)
    return [first, second]


def flaky_once(ctx, key: str) -> str:
    FAIL_COUNTS[key] = FAIL_COUNTS.get(key, 0) + 1
    if FAIL_COUNTS[key] == 1:
        raise RuntimeError("first attempt fails")
    return "recovered"


def echo(ctx: task.OrchestrationContext, value):
    return value


def echo_activity(ctx, value):
    return value


def echo_via_activity(ctx: task.OrchestrationContext, value):
    return (yield ctx.call_activity(echo_activity, input=value))


ORCHESTRATORS = [
    HelloSequence,
    SlowSequence,
    SleepySequence,
    fan_out,
    failing_activity,
    retry_activity,
    retry_sub_orchestration,
    flaky_child,
    child,
    parent_fan_out,
    wait_events,
    event_or_timeout,
    timers,
    race,
    waiter,
    counter,
    loop_as_new,
    custom_status,
    sender,
    tree,
    versioned,
    fail_then_ok,
    echo,
    echo_via_activity,
]
ACTIVITIES = [Hello, SlowHello, SleepyHello, double, boom, flaky, flaky_once, echo_activity]


def register(worker: TaskHubGrpcWorker) -> TaskHubGrpcWorker:
    """Add every test orchestrator and activity to ``worker``."""
    for fn in ORCHESTRATORS:
        worker.add_orchestrator(fn)
    for fn in ACTIVITIES:
        worker.add_activity(fn)
    return worker


def dumps(value) -> str:
    return json.dumps(value)
