"""Sample orchestrators for the replay check: an order workflow, its candidate v2 changes, and
Python ports of the seed's 2019 Hello chain in both SDK styles.

``OrderApproval`` (v1) validates and reserves an order, waits for an ``Approval`` event, ships
it through the ``ShipParcel`` sub-orchestration, waits for a ``Delivered`` event and notifies:

    Validate -> Reserve -> [wait Approval] -> ShipParcel (child) -> [wait Delivered] -> Notify

``order_approval(change)`` returns that orchestrator with one change from ``CHANGES`` applied
(``None``: v1 itself). Each change is what a developer might deploy while instances wait; the
replay check (``durable_helpers.replay``) tells which waiting instances it would break. The
safe change is guarded the way the Durable Task docs advise for new steps: by the instance's
orchestration version (``ctx.version``), so instances started as ``"1.0"`` keep v1's behaviour.

``order_worker(address, change)`` is a real SDK worker with the orchestrator (v1 or a change)
and every activity registered; ``start_orders`` brings instances to their waiting points and
``finish_orders`` raises the events they wait for, both through an SDK client.

Example:
    >>> sorted(CHANGES)[:3]
    ['add_timer', 'change_sub_orchestration', 'insert_activity']
    >>> order_approval("reorder").__name__
    'OrderApproval'
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterable
from datetime import timedelta
from typing import Any

import pandas as pd
from durabletask import client as sdk_client
from durabletask import task
from durabletask.worker import TaskHubGrpcWorker

ORCHESTRATOR = "OrderApproval"
CHILD = "ShipParcel"
#: The version the safe change's new step is for (instances started before it are "1.0").
NEW_VERSION = "2.0"

#: change -> what it does to v1 (the notebook shows this table).
CHANGES: dict[str, str] = {
    "insert_activity": "a FraudCheck activity inserted after Reserve, before the approval wait",
    "remove_activity": "Validate removed",
    "reorder": "Reserve called before Validate",
    "rename_activity": "Reserve renamed ReserveItems",
    "add_timer": "a 1-second durable timer after the approval, before shipping",
    "change_sub_orchestration": "ShipParcelV2 called instead of the ShipParcel sub-orchestration",
    "replace_event_wait": "the Approval wait replaced by an AutoApprove activity",
    "safe_append": "a Survey activity after Notify, only for instances of version 2.0",
}

Gen = Generator[task.Task[Any], Any, Any]


def version_at_least(version: str | None, wanted: str) -> bool:
    """Whether a dotted ``version`` (``None``/``""`` count as ``"1.0"``) is ``wanted`` or newer.

    Example:
        >>> version_at_least("2.0", "2.0"), version_at_least(None, "2.0")
        (True, False)
    """

    def parts(text: str) -> tuple[int, ...]:
        return tuple(int(p) if p.isdigit() else 0 for p in text.split("."))

    return parts(version or "1.0") >= parts(wanted)


# ---------------------------------------------------------------------------------- activities
def Validate(ctx: task.ActivityContext, order: dict[str, Any]) -> bool:
    """Activity: an order is valid when it has items.

    Example:
        >>> Validate(None, {"id": 1, "items": 2})
        True
    """
    return int(order.get("items", 0)) > 0


def Reserve(ctx: task.ActivityContext, order: dict[str, Any]) -> str:
    """Activity: ``"reserved <id>"``.

    Example:
        >>> Reserve(None, {"id": 7})
        'reserved 7'
    """
    return f"reserved {order['id']}"


def _named(name: str, text: str) -> Callable[[task.ActivityContext, Any], str]:
    def activity(ctx: task.ActivityContext, order: Any) -> str:
        return f"{text} {order['id'] if isinstance(order, dict) else order}"

    activity.__name__ = activity.__qualname__ = name
    activity.__doc__ = f"Activity: ``'{text} <id>'``."
    return activity


ReserveItems = _named("ReserveItems", "reserved")
FraudCheck = _named("FraudCheck", "checked")
AutoApprove = _named("AutoApprove", "auto-approved")
Pack = _named("Pack", "packed")
Notify = _named("Notify", "notified")
Survey = _named("Survey", "surveyed")
ACTIVITIES = [Validate, Reserve, ReserveItems, FraudCheck, AutoApprove, Pack, Notify, Survey]


def ShipParcel(ctx: task.OrchestrationContext, order: dict[str, Any]) -> Gen:
    """Sub-orchestration: packs the order (activity ``Pack``) and returns the parcel text."""
    packed = yield ctx.call_activity("Pack", input=order)
    return f"shipped ({packed})"


def ShipParcelV2(ctx: task.OrchestrationContext, order: dict[str, Any]) -> Gen:
    """Sub-orchestration of the ``change_sub_orchestration`` change: same work, new name."""
    packed = yield ctx.call_activity("Pack", input=order)
    return f"shipped v2 ({packed})"


# ------------------------------------------------------------------------------ orchestrator
def order_approval(change: str | None = None) -> Callable[[task.OrchestrationContext, Any], Gen]:
    """``OrderApproval`` as v1 (``change=None``) or with one of ``CHANGES`` applied.

    Example:
        >>> order_approval("safe_append").__doc__.split(":")[0]
        'OrderApproval with change safe_append'
    """
    if change is not None and change not in CHANGES:
        raise ValueError(f"unknown change {change!r}; choose one of {sorted(CHANGES)}")

    def OrderApproval(ctx: task.OrchestrationContext, order: dict[str, Any]) -> Gen:
        ctx.set_custom_status("Validating")
        if change == "reorder":
            reservation = yield ctx.call_activity("Reserve", input=order)
            valid = yield ctx.call_activity("Validate", input=order)
        else:
            valid = True
            if change != "remove_activity":
                valid = yield ctx.call_activity("Validate", input=order)
            reserve = "ReserveItems" if change == "rename_activity" else "Reserve"
            reservation = yield ctx.call_activity(reserve, input=order)
        if change == "insert_activity":
            yield ctx.call_activity("FraudCheck", input=order)
        ctx.set_custom_status("WaitingForApproval")
        if change == "replace_event_wait":
            approval = yield ctx.call_activity("AutoApprove", input=order)
        else:
            approval = yield ctx.wait_for_external_event("Approval")
        if change == "add_timer":
            yield ctx.create_timer(timedelta(seconds=1))
        child = "ShipParcelV2" if change == "change_sub_orchestration" else CHILD
        shipment = yield ctx.call_sub_orchestrator(child, input=order)
        ctx.set_custom_status("WaitingForDelivery")
        yield ctx.wait_for_external_event("Delivered")
        note = yield ctx.call_activity("Notify", input=order)
        result = {"valid": valid, "reservation": reservation, "approval": approval}
        result.update(shipment=shipment, note=note)
        if change == "safe_append" and version_at_least(ctx.version, NEW_VERSION):
            result["survey"] = yield ctx.call_activity("Survey", input=order)
        ctx.set_custom_status("Done")
        return result

    OrderApproval.__doc__ = f"OrderApproval with change {change}: {CHANGES.get(change or '', 'v1')}"
    return OrderApproval


def order_worker(
    address: str, change: str | None = None, **worker_options: Any
) -> TaskHubGrpcWorker:
    """A (not yet started) SDK worker for ``address`` running ``order_approval(change)``.

    It registers the orchestrator, both ``ShipParcel`` versions and every activity, and asks the
    sidecar only for those (work item filters), so it can share a task hub with other workers.

    Example:
        >>> worker = order_worker("127.0.0.1:4001", "insert_activity")  # doctest: +SKIP
        >>> worker.start()  # doctest: +SKIP
    """
    worker = TaskHubGrpcWorker(host_address=address, **worker_options)
    worker.add_orchestrator(order_approval(change))
    worker.add_orchestrator(ShipParcel)
    worker.add_orchestrator(ShipParcelV2)
    for activity in ACTIVITIES:
        worker.add_activity(activity)
    worker.use_work_item_filters()
    return worker


# ------------------------------------------------------------------------- driving instances
WAITING_FOR_APPROVAL = "WaitingForApproval"
WAITING_FOR_DELIVERY = "WaitingForDelivery"
_TERMINAL = {
    sdk_client.OrchestrationStatus.COMPLETED,
    sdk_client.OrchestrationStatus.FAILED,
    sdk_client.OrchestrationStatus.TERMINATED,
}


def wait_for(
    client: sdk_client.TaskHubGrpcClient,
    instance_id: str,
    done: Callable[[sdk_client.OrchestrationState], bool],
    *,
    timeout: float = 60.0,
    what: str = "the expected state",
) -> sdk_client.OrchestrationState:
    """Poll ``instance_id`` until ``done(state)`` holds; TimeoutError (with its state) after
    ``timeout`` seconds.

    Example:
        >>> wait_for(client, iid, lambda s: s.runtime_status.name == "RUNNING")  # doctest: +SKIP
    """
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        state = client.get_orchestration_state(instance_id)
        if state is not None and done(state):
            return state
        time.sleep(0.05)
    status = state.runtime_status.name if state else "unknown"
    custom = state.serialized_custom_status if state else None
    raise TimeoutError(
        f"instance {instance_id!r} did not reach {what} within {timeout:.0f} s "
        f"(status {status}, custom status {custom}); is a worker for it running?"
    )


def _custom(state: sdk_client.OrchestrationState) -> str:
    return (state.serialized_custom_status or "").strip('"')


def start_orders(
    client: sdk_client.TaskHubGrpcClient,
    count: int,
    *,
    approve: Callable[[int], bool] = lambda i: i % 2 == 1,
    prefix: str = "order",
    version: str = "1.0",
    timeout: float = 60.0,
) -> list[str]:
    """Start ``count`` orders (a v1 worker must run) and return their ids once each waits:
    order ``i`` is approved when ``approve(i)`` and then waits for ``Delivered``, the others
    wait for ``Approval``.

    Example:
        >>> start_orders(client, 6)  # doctest: +SKIP
        ['order-0', 'order-1', ...]
    """
    ids = [
        client.schedule_new_orchestration(
            ORCHESTRATOR,
            input={"id": i, "items": 1 + i % 3},
            instance_id=f"{prefix}-{i}",
            version=version,
        )
        for i in range(count)
    ]
    _wait_status(client, ids, WAITING_FOR_APPROVAL, timeout)
    approved = [iid for i, iid in enumerate(ids) if approve(i)]
    for iid in approved:
        client.raise_orchestration_event(iid, "Approval", data=True)
    _wait_status(client, approved, WAITING_FOR_DELIVERY, timeout)
    return ids


def _wait_status(
    client: sdk_client.TaskHubGrpcClient, ids: list[str], status: str, timeout: float
) -> None:
    for iid in ids:
        wait_for(client, iid, lambda s: _custom(s) == status, timeout=timeout, what=status)


def finish_orders(
    client: sdk_client.TaskHubGrpcClient, ids: Iterable[str], *, timeout: float = 60.0
) -> dict[str, sdk_client.OrchestrationState]:
    """Send each waiting order the events it still needs (``Approval`` when it waits for one,
    then ``Delivered``) and wait until every one of them has finished, failed or not.

    Example:
        >>> states = finish_orders(client, ids)  # doctest: +SKIP
        >>> {i: s.runtime_status.name for i, s in states.items()}  # doctest: +SKIP
    """
    ids = list(ids)
    for iid in ids:
        state = client.get_orchestration_state(iid)
        if state is not None and _custom(state) != WAITING_FOR_DELIVERY:
            client.raise_orchestration_event(iid, "Approval", data=True)
        client.raise_orchestration_event(iid, "Delivered", data="at the door")
    return {
        iid: wait_for(
            client,
            iid,
            lambda s: s.runtime_status in _TERMINAL,
            timeout=timeout,
            what="a final status",
        )
        for iid in ids
    }


def confirm(
    predicted: pd.DataFrame,
    recorded: pd.DataFrame,
    after: pd.DataFrame,
    states: dict[str, sdk_client.OrchestrationState],
) -> pd.DataFrame:
    """Predictions (``check_many``'s frame) next to what really happened once the new code ran.

    ``recorded`` holds the histories the predictions were made from, ``after`` the histories
    read once the instances finished, ``states`` their final states (``finish_orders``).
    ``Confirmed`` is True when reality agrees: a ``breaks`` instance failed with the SDK's
    NonDeterminismError; a ``diverges`` one went on and, right after its recorded history,
    scheduled the activity the check named; an ``ok`` one completed.

    Example:
        >>> confirm(found, recorded, hub.histories(ids), states)  # doctest: +SKIP
    """
    rows = []
    for found in predicted.itertuples():
        state = states[found.InstanceId]
        failure = state.failure_details
        recorded_rows = int((recorded.InstanceId == found.InstanceId).sum())
        later = after[after.InstanceId == found.InstanceId].iloc[recorded_rows:]
        ran = [n for n in later[later.EventType == "TaskScheduled"].Name.tolist() if n]
        status = state.runtime_status.name.title()
        if found.Verdict == "breaks":
            confirmed = failure is not None and "NonDeterminismError" in failure.error_type
        elif found.Verdict == "diverges":
            first = ran[0] if ran else None
            confirmed = status != "Failed" and first is not None and f"'{first}'" in found.Code
        else:
            confirmed = status == "Completed"
        rows.append(
            {
                "InstanceId": found.InstanceId,
                "Predicted": found.Verdict,
                "Status": status,
                "Error": failure.error_type.rsplit(".", 1)[-1] if failure else None,
                "ActivitiesAfterRecording": ran,
                "Confirmed": confirmed,
            }
        )
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------- the seed's chain
#: The seed's orchestrator, as the 2019 history names it (a JavaScript function then).
SEED_ORCHESTRATOR = "DurableFunctionsOrchestratorJS"
SEED_CITIES = ("Tokyo", "Seattle", "London")


def hello_chain(ctx: task.OrchestrationContext, _: Any) -> Gen:
    """The seed's chain ported to the ``durabletask`` SDK: ``Hello`` for each city, in turn."""
    results = []
    for city in SEED_CITIES:
        results.append((yield ctx.call_activity("Hello", input=city)))
    return results


def hello_fan_out(ctx: task.OrchestrationContext, _: Any) -> Gen:
    """A reordered port: the three ``Hello`` calls started at once instead of one by one."""
    return (yield task.when_all([ctx.call_activity("Hello", input=c) for c in SEED_CITIES]))


def hello_reversed(ctx: task.OrchestrationContext, _: Any) -> Gen:
    """A reordered port: the cities in reverse order (visible only where inputs are stored)."""
    results = []
    for city in reversed(SEED_CITIES):
        results.append((yield ctx.call_activity("Hello", input=city)))
    return results


def hello_chain_functions(context: Any) -> Generator[Any, Any, Any]:
    """The seed's chain in the Functions-app style (``azure-functions-durable``)."""
    results = []
    for city in SEED_CITIES:
        results.append((yield context.call_activity("Hello", city)))
    return results


def hello_fan_out_functions(context: Any) -> Generator[Any, Any, Any]:
    """The reordered Functions-app port: the three calls started at once."""
    return (yield context.task_all([context.call_activity("Hello", c) for c in SEED_CITIES]))


def hello_reversed_functions(context: Any) -> Generator[Any, Any, Any]:
    """The reversed Functions-app port (visible only where inputs are stored)."""
    results = []
    for city in reversed(SEED_CITIES):
        results.append((yield context.call_activity("Hello", city)))
    return results


def order_approval_functions(change: str | None = None) -> Callable[[Any], Any]:
    """``OrderApproval`` v1 in the Functions-app style (``azure-functions-durable``), or with
    ``change="reorder"`` (Reserve before Validate), for checking Functions apps.

    Example:
        >>> order_approval_functions("reorder").__name__
        'OrderApproval'
    """
    if change not in (None, "reorder"):
        raise ValueError("the Functions-app port knows v1 (None) and 'reorder' only")
    first, second = ("Reserve", "Validate") if change == "reorder" else ("Validate", "Reserve")

    def OrderApproval(context: Any) -> Generator[Any, Any, Any]:
        order = context.get_input()
        context.set_custom_status("Validating")
        one = yield context.call_activity(first, order)
        two = yield context.call_activity(second, order)
        context.set_custom_status("WaitingForApproval")
        approval = yield context.wait_for_external_event("Approval")
        shipment = yield context.call_sub_orchestrator(CHILD, order)
        context.set_custom_status("WaitingForDelivery")
        yield context.wait_for_external_event("Delivered")
        note = yield context.call_activity("Notify", order)
        context.set_custom_status("Done")
        return {"steps": [one, two], "approval": approval, "shipment": shipment, "note": note}

    return OrderApproval
