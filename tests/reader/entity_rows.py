"""Entity rows for the reader tests, as durable-entities.md says Durable Functions writes them.

Both engines leave the same rows (§1.3, §1.6: three History rows and the sentinel, rewritten each
batch, and the Instances row); they differ in the JSON: DurableTask.Core (written by ``schema``)
and classic DF 2.x, whose scheduler state carries ``exists`` and whose queued messages, sent by
orchestrations with the default converter, carry ``$type`` (§1.4, §1.12; written out here).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from durable_helpers import schema

UTC = schema.UTC
T0 = datetime(2025, 1, 10, 8, 0, tzinfo=UTC)
CLASSIC_REQUEST = (
    "Microsoft.Azure.WebJobs.Extensions.DurableTask.RequestMessage, "
    "Microsoft.Azure.WebJobs.Extensions.DurableTask"
)
#: The worked example's batch-2 sorter (§1.16 step 4).
WORKED_SORTER = {
    "ReceivedFromInstance": {
        "orch1": {"Last": "2025-01-10T08:01:00.1234567Z", "ExecutionId": "X1"}
    },
    "ReceiveHorizon": "2025-01-10T07:31:00.1234567Z",
}


def batch(
    entity_id: str,
    execution_id: str,
    scheduler_state: str,
    status: str,
    at: datetime,
    hub: str = "H",
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The History rows and the Instances row one batch of ``entity_id`` leaves."""
    return schema.entity_batch_rows(
        entity_id,
        execution_id,
        scheduler_state=scheduler_state,
        status=status,
        started=at,
        completed=at + timedelta(milliseconds=20),
        task_hub=hub,
    )


def core_entity(
    entity_id: str,
    state: str | None,
    at: datetime,
    *,
    queue: list[dict[str, Any]] | None = None,
    locked_by: str | None = None,
    sorter: dict[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """An entity as the DurableTask.Core engine leaves it (.NET isolated, gRPC backends)."""
    queue = queue or []
    text = schema.scheduler_state_json(state=state, queue=queue, locked_by=locked_by, sorter=sorter)
    status = schema.entity_status_json(
        exists=state is not None, queue_size=len(queue), locked_by=locked_by
    )
    return batch(entity_id, "E" + entity_id.encode().hex()[:30], text, status, at)


def classic_request(op: str, request_id: str, parent: str, at: datetime) -> dict[str, Any]:
    """A RequestMessage an orchestration sent through DF 2.x (``$type`` first, no IsLockRequest)."""
    return {
        "$type": CLASSIC_REQUEST,
        "op": op,
        "id": request_id,
        "parent": parent,
        "Timestamp": schema.dotnet_json_datetime(at),
        "Predecessor": "0001-01-01T00:00:00",
    }


def classic_entity(
    entity_id: str,
    state: str | None,
    at: datetime,
    *,
    queue: list[dict[str, Any]] | None = None,
    locked_by: str | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """An entity as classic DF 2.x leaves it (``exists`` first; status with currentOperation
    absent at checkpoint time; defaults omitted)."""
    doc: dict[str, Any] = {}
    if state is not None:
        doc.update(exists=True, state=state)
    if queue:
        doc["queue"] = queue
    if locked_by:
        doc["lockedBy"] = locked_by
    doc["sorter"] = {}
    status: dict[str, Any] = {}
    if state is not None:
        status["entityExists"] = True
    if queue:
        status["queueSize"] = len(queue)
    if locked_by:
        status["lockedBy"] = locked_by
    execution_id = "C" + entity_id.encode().hex()[:30]
    return batch(entity_id, execution_id, json.dumps(doc), json.dumps(status), at)


def orchestration_talking_to(
    instance_id: str, entity_id: str, request_id: str, at: datetime, *, classic: bool
) -> list[dict[str, Any]]:
    """An orchestration's History rows of a call: EventSent ``op`` and the EventRaised response."""
    if classic:
        sent = json.dumps(classic_request("get", request_id, instance_id, at))
    else:
        sent = schema.request_message_json(
            op="get", id=request_id, parent=instance_id, parent_execution="X1", timestamp=at
        )
    response = {"Name": request_id, "Input": schema.response_message_json(result="5")}
    rows = [
        ("ExecutionStarted", -1, {"Name": "Caller", "Version": "", "Input": "null"}),
        ("EventSent", 0, {"InstanceId": entity_id, "Name": "op", "Input": sent}),
        ("EventRaised", -1, response),
    ]
    history = [
        schema.history_entity(instance_id, "X1", seq, event_type, event_id=event_id,
                              is_played=event_type != "EventSent", timestamp=at, **columns)
        for seq, (event_type, event_id, columns) in enumerate(rows)
    ]  # fmt: skip
    history.append(schema.sentinel_entity(instance_id, "X1", checkpoint_completed=at))
    return history
