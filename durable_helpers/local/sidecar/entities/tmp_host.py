"""TEMPORARY: the EntityHost over the pre-split engine (replaced by the engine-split seams)."""

from __future__ import annotations

from typing import Any

import durabletask.internal.orchestrator_service_pb2 as pb

from durable_helpers.local.sidecar.store import wire


class EngineHost:
    def __init__(self, engine: Any) -> None:
        self.e = engine
        self.lock = engine.lock
        self.cv = engine.cv
        self.store = engine.store
        self.hub = engine.hub

    @property
    def stopping(self) -> bool:
        return self.e.stopping

    def now(self):
        return self.e._now()

    def new_id(self) -> str:
        return self.e._new_id()

    def message(self, instance_id: str, event: pb.HistoryEvent, visible_at: float = 0.0):
        from durable_helpers.local.sidecar.engine import OMsg, ts

        if not event.HasField("timestamp"):
            event.timestamp.CopyFrom(ts(self.e._now()))
        return OMsg(self.e._new_id(), instance_id, event, visible_at=visible_at)

    def deliver(self, msg) -> None:
        self.e._deliver(msg)

    def materialize(self, ops) -> None:
        self.e._materialize(ops)

    def start_parts(self, req: pb.CreateInstanceRequest):
        from durable_helpers.local.sidecar.engine import TERMINAL

        existing = self.e.instance_state(req.instanceId)
        if existing is not None and existing.status not in TERMINAL:
            return None
        generation = existing.generation + 1 if existing is not None else 0
        msg, _st, row, blobs = self.e._start_parts(req, req.instanceId, generation)
        return msg, [{"t": "i", "pk": row["PartitionKey"], "e": wire(row)}], blobs
