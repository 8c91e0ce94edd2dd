"""Python twins of js_orchestrations.js (names end in Py), and Python calling JavaScript."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from durabletask import task

from durable_helpers.local.samples import next_attempt

#: Where FailFirstPy counts attempts (set by the conftest).
STATE_DIR: list[Path] = []


def EventsInOrderPy(ctx: task.OrchestrationContext, seen: Any):
    so_far = seen if isinstance(seen, list) else []
    value = yield ctx.wait_for_external_event("next")
    values = [*so_far, value]
    if len(values) >= 5:
        return values
    ctx.continue_as_new(values, save_events=True)
    return None


def RewindParentPy(ctx: task.OrchestrationContext, depth: Any):
    """Calls ``<id>:child``: RewindParentPy(depth - 1) while depth > 1, else RewindChildPy."""
    levels = depth if isinstance(depth, int) else 1
    child_id = f"{ctx.instance_id}:child"
    if levels > 1:
        child = ctx.call_sub_orchestrator(RewindParentPy, input=levels - 1, instance_id=child_id)
    else:
        child = ctx.call_sub_orchestrator(RewindChildPy, instance_id=child_id)
    return (yield child)


def RewindChildPy(ctx: task.OrchestrationContext, _: Any):
    return (yield ctx.call_activity(FailFirstPy, input=ctx.instance_id))


def FailFirstPy(ctx: task.ActivityContext, key: str) -> str:
    attempt = next_attempt(f"fail-first/{key}", STATE_DIR[0])
    if attempt == 1:
        raise RuntimeError(f"first attempt for {key} fails")
    return f"ok {key} (attempt {attempt})"


def NullPy(ctx: task.ActivityContext, _: Any) -> None:
    return None


def NullsPy(ctx: task.OrchestrationContext, given: Any):
    result = yield ctx.call_activity(NullPy)

    def describe(value: Any) -> str:
        return "null" if value is None else type(value).__name__

    ctx.set_custom_status({"input": describe(given), "result": describe(result)})
    return result


def CallsJavaScriptPy(ctx: task.OrchestrationContext, _: Any):
    """Python calling JavaScript: the prototype's orchestrator as a sub-orchestration."""
    greetings = yield ctx.call_sub_orchestrator("DurableFunctionsOrchestratorJS")
    return {"from_javascript": greetings}


ORCHESTRATORS = (EventsInOrderPy, RewindParentPy, RewindChildPy, NullsPy, CallsJavaScriptPy)
ACTIVITIES = (FailFirstPy, NullPy)
