"""gRPC mapping: ``TaskHubSidecarService`` RPCs onto the engine (the SDK's generated modules)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timezone

import durabletask.internal.orchestrator_service_pb2 as pb
import durabletask.internal.orchestrator_service_pb2_grpc as stubs
import grpc
from google.protobuf import empty_pb2, wrappers_pb2

from durable_helpers import schema
from durable_helpers.local.sidecar.dispatcher import stream_work_items
from durable_helpers.local.sidecar.engine import Engine
from durable_helpers.local.sidecar.rest import StorageUnreachableError
from durable_helpers.local.sidecar.state import (
    TERMINAL,
    EngineError,
    Inst,
    Snapshot,
    fill_from_row,
    sv,
)
from durable_helpers.protocol_rows import STATUS_NAMES

log = logging.getLogger("durable_helpers.local.sidecar")
UTC = timezone.utc  # noqa: UP017

_ENTITIES = (
    "Durable entities are not implemented by the local task hub (durable_helpers.local). "
    "Use orchestrations, or run the Durable Task Scheduler emulator for entities."
)


def _abort(context: grpc.ServicerContext, error: EngineError) -> None:
    context.abort(getattr(grpc.StatusCode, error.code), str(error))


class StorageUnreachableInterceptor(grpc.ServerInterceptor):
    """Answer UNAVAILABLE with the storage endpoint when storage is down, from any RPC.

    Without it a refused storage connection reaches the client as UNKNOWN "Exception calling
    application: [Errno 111] Connection refused".
    """

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        if handler.unary_unary is not None:
            unary = handler.unary_unary

            def guarded_unary(request, context):
                try:
                    return unary(request, context)
                except StorageUnreachableError as error:
                    context.abort(grpc.StatusCode.UNAVAILABLE, str(error))

            return handler._replace(unary_unary=guarded_unary)
        if handler.unary_stream is not None:
            stream = handler.unary_stream

            def guarded_stream(request, context):
                try:
                    yield from stream(request, context)
                except StorageUnreachableError as error:
                    context.abort(grpc.StatusCode.UNAVAILABLE, str(error))

            return handler._replace(unary_stream=guarded_stream)
        return handler


class Servicer(stubs.TaskHubSidecarServiceServicer):
    """The sidecar service: client RPCs, worker RPCs; entities answer UNIMPLEMENTED."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- worker ----------------------------------------------------------------------------

    def Hello(self, request, context):
        return empty_pb2.Empty()

    def GetWorkItems(self, request, context) -> Iterator[pb.WorkItem]:
        return stream_work_items(self.engine, request, context)

    def CompleteOrchestratorTask(self, request, context):
        self.engine.complete_orchestration(request)
        return pb.CompleteTaskResponse()

    def CompleteActivityTask(self, request, context):
        self.engine.complete_activity(request)
        return pb.CompleteTaskResponse()

    def AbandonTaskOrchestratorWorkItem(self, request, context):
        self.engine.abandon(request.completionToken)
        return pb.AbandonOrchestrationTaskResponse()

    def AbandonTaskActivityWorkItem(self, request, context):
        self.engine.abandon(request.completionToken)
        return pb.AbandonActivityTaskResponse()

    def AbandonTaskEntityWorkItem(self, request, context):
        return pb.AbandonEntityTaskResponse()

    def CompleteEntityTask(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED, _ENTITIES)

    # -- client ----------------------------------------------------------------------------

    def StartInstance(self, request, context):
        try:
            return pb.CreateInstanceResponse(instanceId=self.engine.start_instance(request))
        except EngineError as error:
            _abort(context, error)

    def GetInstance(self, request, context):
        snap = self.engine.instance_state(request.instanceId)
        if snap is None:
            return pb.GetInstanceResponse(exists=False)
        return pb.GetInstanceResponse(
            exists=True, orchestrationState=snap.to_pb(request.getInputsAndOutputs)
        )

    def _wait(self, request, context, predicate, what: str):
        remaining = context.time_remaining()
        timeout = None if remaining is None or remaining > 1e6 else max(remaining - 0.05, 0.0)
        try:
            snap = self.engine.wait_for(request.instanceId, predicate, timeout)
        except TimeoutError:
            context.abort(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"Timed out waiting for instance {request.instanceId!r} to {what}.",
            )
        if snap is None:
            return pb.GetInstanceResponse(exists=False)
        return pb.GetInstanceResponse(
            exists=True, orchestrationState=snap.to_pb(request.getInputsAndOutputs)
        )

    def WaitForInstanceStart(self, request, context):
        return self._wait(
            request, context, lambda s: s.status != pb.ORCHESTRATION_STATUS_PENDING, "start"
        )

    def WaitForInstanceCompletion(self, request, context):
        return self._wait(request, context, lambda s: s.status in TERMINAL, "complete")

    def RaiseEvent(self, request, context):
        ev = self.engine.new_event(
            eventRaised=pb.EventRaisedEvent(
                name=request.name, input=request.input if request.HasField("input") else None
            ),
        )
        try:
            self.engine.send_event(request.instanceId, ev)
        except EngineError as error:
            _abort(context, error)
        return pb.RaiseEventResponse()

    def TerminateInstance(self, request, context):
        ev = self.engine.new_event(
            executionTerminated=pb.ExecutionTerminatedEvent(
                input=request.output if request.HasField("output") else None,
                recurse=request.recursive,
            ),
        )
        try:
            self.engine.send_event(request.instanceId, ev)
        except EngineError as error:
            _abort(context, error)
        return pb.TerminateResponse()

    def SuspendInstance(self, request, context):
        ev = self.engine.new_event(
            executionSuspended=pb.ExecutionSuspendedEvent(
                input=request.reason if request.HasField("reason") else None
            ),
        )
        try:
            self.engine.send_event(request.instanceId, ev)
        except EngineError as error:
            _abort(context, error)
        return pb.SuspendResponse()

    def ResumeInstance(self, request, context):
        ev = self.engine.new_event(
            executionResumed=pb.ExecutionResumedEvent(
                input=request.reason if request.HasField("reason") else None
            ),
        )
        try:
            self.engine.send_event(request.instanceId, ev)
        except EngineError as error:
            _abort(context, error)
        return pb.ResumeResponse()

    def RewindInstance(self, request, context):
        try:
            self.engine.rewind(
                request.instanceId, request.reason.value if request.HasField("reason") else None
            )
        except EngineError as error:
            _abort(context, error)
        return pb.RewindInstanceResponse()

    def RestartInstance(self, request, context):
        snap = self.engine.instance_state(request.instanceId)
        if snap is None:
            context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"No orchestration instance with id {request.instanceId!r}.",
            )
        if snap.status not in TERMINAL:
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"Only a finished orchestration can be restarted; {request.instanceId!r} is "
                f"{STATUS_NAMES.get(snap.status)}.",
            )
        import uuid

        new_id = uuid.uuid4().hex if request.restartWithNewInstanceId else request.instanceId
        create = pb.CreateInstanceRequest(
            instanceId=new_id,
            name=snap.name,
            version=sv(snap.version),
            input=sv(snap.input),
            tags=snap.tags,
            orchestrationIdReusePolicy=pb.OrchestrationIdReusePolicy(
                replaceableStatus=sorted(TERMINAL)
            ),
        )
        try:
            return pb.RestartInstanceResponse(instanceId=self.engine.start_instance(create))
        except EngineError as error:
            _abort(context, error)

    def PurgeInstances(self, request, context):
        which = request.WhichOneof("request")
        count = 0
        if which == "instanceId":
            count = self.engine.purge(request.instanceId, request.recursive)
        elif which == "instanceBatch":
            for iid in request.instanceBatch.instanceIds:
                count += self.engine.purge(iid, request.recursive)
        elif which == "purgeInstanceFilter":
            f = request.purgeInstanceFilter
            statuses = set(f.runtimeStatus) or set(TERMINAL)
            for state in self._scan(
                statuses & set(TERMINAL),
                f.createdTimeFrom.ToDatetime(tzinfo=UTC) if f.HasField("createdTimeFrom") else None,
                f.createdTimeTo.ToDatetime(tzinfo=UTC) if f.HasField("createdTimeTo") else None,
                None,
            ):
                count += self.engine.purge(state.instance_id, request.recursive)
        return pb.PurgeInstancesResponse(
            deletedInstanceCount=count, isComplete=wrappers_pb2.BoolValue(value=True)
        )

    # -- queries -----------------------------------------------------------------------------

    def _filter(self, statuses, created_from, created_to, prefix, completed=False) -> str | None:
        clauses = []
        if statuses:
            clauses.append(
                "("
                + " or ".join(
                    f"RuntimeStatus eq {schema.odata_string(STATUS_NAMES[s])}"
                    for s in sorted(statuses)
                )
                + ")"
            )
        column = "CompletedTime" if completed else "CreatedTime"
        if created_from is not None:
            clauses.append(f"{column} ge {schema.odata_datetime(created_from)}")
        if created_to is not None:
            clauses.append(f"{column} lt {schema.odata_datetime(created_to)}")
        if prefix:
            rng = schema.prefix_range(prefix)
            if rng:
                clauses.append(
                    f"PartitionKey ge {schema.odata_string(rng[0])} and "
                    f"PartitionKey lt {schema.odata_string(rng[1])}"
                )
        return " and ".join(clauses) or None

    def _scan(self, statuses, created_from, created_to, prefix):
        token = None
        flt = self._filter(statuses, created_from, created_to, prefix)
        while True:
            rows, token = self.engine.store.query_instances(flt, None, token)
            for row in rows:
                yield self._row_snapshot(row, payloads=False)
            if token is None:
                return

    def _row_snapshot(self, row: dict, payloads: bool) -> Snapshot:
        inst = Inst(schema.unescape_partition_key(row["PartitionKey"]))
        if payloads:
            row = self.engine.store.resolve_instance_payloads(row)
        fill_from_row(inst, row)
        return Snapshot.of(inst)

    def QueryInstances(self, request, context):
        q = request.query
        flt = self._filter(
            set(q.runtimeStatus),
            q.createdTimeFrom.ToDatetime(tzinfo=UTC) if q.HasField("createdTimeFrom") else None,
            q.createdTimeTo.ToDatetime(tzinfo=UTC) if q.HasField("createdTimeTo") else None,
            q.instanceIdPrefix.value if q.HasField("instanceIdPrefix") else None,
        )
        try:
            token = _decode_token(
                q.continuationToken.value if q.HasField("continuationToken") else ""
            )
        except ValueError as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        top = q.maxInstanceCount if 0 < q.maxInstanceCount < 1000 else 1000
        rows, next_token = self.engine.store.query_instances(flt, top, token)
        states = [
            self._row_snapshot(r, q.fetchInputsAndOutputs).to_pb(q.fetchInputsAndOutputs)
            for r in rows
        ]
        return pb.QueryInstancesResponse(
            orchestrationState=states,
            continuationToken=sv(_encode_token(next_token)) if next_token else None,
        )

    def ListInstanceIds(self, request, context):
        statuses = set(request.runtimeStatus) & set(TERMINAL) or set(TERMINAL)
        flt = self._filter(
            statuses,
            request.completedTimeFrom.ToDatetime(tzinfo=UTC)
            if request.HasField("completedTimeFrom")
            else None,
            request.completedTimeTo.ToDatetime(tzinfo=UTC)
            if request.HasField("completedTimeTo")
            else None,
            None,
            completed=True,
        )
        token = _decode_token(
            request.lastInstanceKey.value if request.HasField("lastInstanceKey") else ""
        )
        top = request.pageSize if 0 < request.pageSize < 1000 else 100
        rows, next_token = self.engine.store.query_instances(flt, top, token)
        ids = [schema.unescape_partition_key(r["PartitionKey"]) for r in rows]
        return pb.ListInstanceIdsResponse(
            instanceIds=ids, lastInstanceKey=sv(_encode_token(next_token)) if next_token else None
        )

    def StreamInstanceHistory(self, request, context):
        events = self.engine.history(request.instanceId)
        if events is None:
            context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"No orchestration instance with id {request.instanceId!r}.",
            )
        for start in range(0, len(events), 100):
            yield pb.HistoryChunk(events=events[start : start + 100])

    # -- not implemented -----------------------------------------------------------------------

    def SignalEntity(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED, _ENTITIES)

    def GetEntity(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED, _ENTITIES)

    def QueryEntities(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED, _ENTITIES)

    def CleanEntityStorage(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED, _ENTITIES)


def _encode_token(token: tuple[str, str]) -> str:
    import base64
    import json

    return base64.urlsafe_b64encode(json.dumps(list(token)).encode()).decode()


def _decode_token(value: str) -> tuple[str, str] | None:
    import base64
    import json

    if not value or value == "0":
        return None
    try:
        pk, rk = json.loads(base64.urlsafe_b64decode(value.encode()))
        return str(pk), str(rk)
    except (ValueError, TypeError):
        raise ValueError(
            f"The continuation token {value[:40]!r} was not issued by this task hub; pass the "
            "token of the previous page unchanged, or none for the first page."
        ) from None
