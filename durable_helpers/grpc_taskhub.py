"""GrpcTaskHub: instances, histories and entities over the Durable Task gRPC protocol, as frames.

A second source with the same frame shape as :class:`durable_helpers.TaskHub` (docs/frames.md),
for any backend that speaks the protocol (the local task hub, a Durable Task sidecar, the
Durable Task Scheduler emulator, durabletask's in-memory test backend). The protocol messages are
turned into table-shaped rows (the column names and encodings the Azure Storage provider writes,
via :mod:`durable_helpers.protocol_rows`) and built into frames by the same builders the table
reader uses (:mod:`durable_helpers.frames`, :mod:`durable_helpers.entity_frames`), so every
analysis works on either source.

What the protocol does not carry stays null: ``TableTimestamp`` (no table), ``Generation`` and
``TaskHubName`` (unless ``hub_name`` is given). ``IsPlayed`` is inferred the way the Azure
Storage provider writes it (inbound events True; OrchestratorStarted/Completed and the
orchestrator's own actions False). ``Sequence``/``RowKey`` count per execution from 0, and
every row's ``ExecutionId`` is that of the ExecutionStarted it follows. An unset event
timestamp (some backends leave it empty on the events the worker sends) is null, not 1970.

Example:
    >>> from durable_helpers import GrpcTaskHub
    >>> with GrpcTaskHub("localhost:4001") as hub:                      # doctest: +SKIP
    ...     failed = hub.instances(status="Failed")
    ...     history = hub.histories(failed.InstanceId)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, Literal

import durabletask.internal.orchestrator_service_pb2 as pb
import durabletask.internal.orchestrator_service_pb2_grpc as stubs
import grpc
import pandas as pd
from google.protobuf import timestamp_pb2

from durable_helpers import entity_frames, frames, schema
from durable_helpers.instance_filters import InstanceFilter, check_instance_id, instance_ids
from durable_helpers.local.limits import grpc_channel_options
from durable_helpers.protocol_rows import (
    STATUS_FROM_NAME,
    STATUS_NAMES,
    event_to_columns,
    failure_to_json,
)
from durable_helpers.protocol_rows import string_value as _sv

log = logging.getLogger(__name__)
UTC = timezone.utc  # noqa: UP017

__all__ = ["GrpcTaskHub", "events_to_rows", "state_to_row"]

#: Events the orchestrator writes itself (IsPlayed False), besides the episode markers.
_NOT_PLAYED = frozenset(
    {
        "OrchestratorStarted",
        "OrchestratorCompleted",
        "TaskScheduled",
        "SubOrchestrationInstanceCreated",
        "TimerCreated",
        "EventSent",
        "ExecutionCompleted",
        "ContinueAsNew",
    }
)
_TERMINAL = frozenset({"Completed", "Failed", "Terminated", "Canceled"})


class GrpcTaskHub:
    """Read instances and histories from a Durable Task sidecar into pandas DataFrames.

    ``address`` is ``host:port`` of the gRPC TaskHubSidecarService. Every call has a deadline of
    ``timeout`` seconds (a history stream: for the whole stream). ``secure=True`` uses TLS with
    the system roots (or ``credentials``); ``metadata`` is sent with every call (e.g.
    ``[("taskhub", "MyHub")]`` for the Durable Task Scheduler). ``hub_name`` fills the
    ``TaskHubName`` column. The channel opens on first use; ``close()`` or ``with`` ends it.

    Example:
        >>> hub = GrpcTaskHub("localhost:4001", timeout=10)             # doctest: +SKIP
        >>> hub.instances(status=["Running", "Pending"], limit=100)     # doctest: +SKIP
        >>> hub.history("abc")                                          # doctest: +SKIP
    """

    def __init__(
        self,
        address: str = "localhost:4001",
        *,
        timeout: float = 30.0,
        secure: bool = False,
        credentials: grpc.ChannelCredentials | None = None,
        metadata: Iterable[tuple[str, str]] | None = None,
        hub_name: str | None = None,
    ) -> None:
        if not isinstance(address, str) or ":" not in address:
            raise ValueError(
                f"address must be 'host:port' (e.g. 'localhost:4001'), not {address!r}"
            )
        self.address = address
        self.timeout = float(timeout)
        self.hub_name = hub_name
        self._secure = secure or credentials is not None
        self._credentials = credentials
        self._metadata = list(metadata or [])
        self._channel: grpc.Channel | None = None
        self._stub: stubs.TaskHubSidecarServiceStub | None = None

    def __repr__(self) -> str:
        return f"GrpcTaskHub({self.address!r}, timeout={self.timeout:g})"

    # ------------------------------------------------------------------------ channel

    @property
    def stub(self) -> stubs.TaskHubSidecarServiceStub:
        """The TaskHubSidecarService stub (opens the channel on first use)."""
        if self._stub is None:
            options = grpc_channel_options()
            if self._secure:
                creds = self._credentials or grpc.ssl_channel_credentials()
                self._channel = grpc.secure_channel(self.address, creds, options=options)
            else:
                self._channel = grpc.insecure_channel(self.address, options=options)
            self._stub = stubs.TaskHubSidecarServiceStub(self._channel)
        return self._stub

    def close(self) -> None:
        """Close the channel (a later call opens a new one)."""
        if self._channel is not None:
            self._channel.close()
        self._channel = None
        self._stub = None

    def __enter__(self) -> GrpcTaskHub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, rpc: str, request: Any) -> Any:
        try:
            return getattr(self.stub, rpc)(
                request, timeout=self.timeout, metadata=self._metadata or None
            )
        except grpc.RpcError as error:
            raise self._error(rpc, error, getattr(request, "instanceId", None)) from None

    def _error(self, rpc: str, error: grpc.RpcError, instance_id: str | None = None) -> Exception:
        from durable_helpers.taskhub import InstanceNotFoundError

        code = error.code() if hasattr(error, "code") else None
        detail = error.details() if hasattr(error, "details") else str(error)
        if code == grpc.StatusCode.NOT_FOUND and instance_id is not None:
            return InstanceNotFoundError(
                f"No orchestration instance {instance_id!r} at {self.address} ({detail}). "
                "Check the id (case matters) and whether it was purged; "
                "GrpcTaskHub.instances(instance_id_prefix=...) lists similar ids."
            )
        if code == grpc.StatusCode.UNAVAILABLE:
            return ConnectionError(
                f"No Durable Task sidecar answers at {self.address} ({detail}). Start one "
                "(python -m durable_helpers.local up) or pass the right address."
            )
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return TimeoutError(
                f"{rpc} at {self.address} took longer than {self.timeout:g} s; "
                "pass a larger timeout= or ask for less (limit=, fewer ids)."
            )
        if code == grpc.StatusCode.UNIMPLEMENTED:
            return NotImplementedError(f"The sidecar at {self.address} does not implement {rpc}.")
        return RuntimeError(f"{rpc} at {self.address} failed: {code}: {detail}")

    # ------------------------------------------------------------------------ instances

    def instances(
        self,
        status: str | Iterable[str] | None = None,
        name: str | Iterable[str] | None = None,
        created_from: Any = None,
        created_to: Any = None,
        instance_id_prefix: str | None = None,
        limit: int | None = None,
        *,
        fetch_inputs_and_outputs: bool = True,
        page_size: int = 1000,
    ) -> pd.DataFrame:
        """Instances as a frame (docs/frames.md) through QueryInstances, following every page.

        Status, created-time range and id prefix are filtered by the sidecar; ``name`` is
        filtered here (the protocol has no name filter); ``limit`` stops after that many rows.

        Example:
            >>> hub.instances(status="Failed", created_from="2026-01-01")  # doctest: +SKIP
        """

        wanted = InstanceFilter.of(
            status, name, created_from, created_to, instance_id_prefix, limit
        )
        limit = wanted.limit
        if limit == 0:
            return frames.instances_frame([])
        query = pb.InstanceQuery(fetchInputsAndOutputs=fetch_inputs_and_outputs)
        for s in wanted.statuses or []:
            if s not in STATUS_FROM_NAME:
                raise ValueError(f"The Durable Task protocol has no {s!r} status to filter on")
            query.runtimeStatus.append(STATUS_FROM_NAME[s])
        if wanted.created_from is not None:
            query.createdTimeFrom.CopyFrom(_timestamp(wanted.created_from))
        if wanted.created_to is not None:
            query.createdTimeTo.CopyFrom(_timestamp(wanted.created_to))
        if wanted.id_prefix:
            query.instanceIdPrefix.value = wanted.id_prefix
        names = None if wanted.names is None else set(wanted.names)

        def page(token: str | None) -> tuple[list[dict[str, Any]], Any]:
            query.maxInstanceCount = max(1, min(page_size, limit or page_size))
            if token:
                query.continuationToken.value = token
            response = self._call("QueryInstances", pb.QueryInstancesRequest(query=query))
            rows = [
                state_to_row(state, hub_name=self.hub_name)
                for state in response.orchestrationState
                if names is None or state.name in names
            ]
            return rows, response

        return frames.instances_frame(_follow_pages(page, limit))

    def instance(self, instance_id: str) -> pd.Series:
        """One instance's row of :meth:`instances`, through GetInstance.

        Example:
            >>> hub.instance("abc")["RuntimeStatus"]                    # doctest: +SKIP
            'Completed'
        """
        from durable_helpers.taskhub import InstanceNotFoundError

        check_instance_id(instance_id)
        response = self._call(
            "GetInstance", pb.GetInstanceRequest(instanceId=instance_id, getInputsAndOutputs=True)
        )
        if not response.exists:
            raise InstanceNotFoundError(
                f"No orchestration instance {instance_id!r} at {self.address}."
            )
        return frames.instances_frame(
            [state_to_row(response.orchestrationState, self.hub_name)]
        ).iloc[0]

    # ------------------------------------------------------------------------ entities

    def entities(
        self,
        name: str | None = None,
        key_prefix: str | None = None,
        modified_from: Any = None,
        modified_to: Any = None,
        include_state: bool = True,
        limit: int | None = None,
        *,
        page_size: int = 100,
    ) -> pd.DataFrame:
        """Durable entities as the frame of ``TaskHub.entities`` through QueryEntities, paged.

        The sidecar filters the id prefix and the last-modified window (its own bounds rule:
        DTFx includes ``modified_to``, durabletask's in-memory backend excludes it); transient
        entities (no state, e.g. only locked) are asked for too. What the protocol does not
        carry is null: Queue, Suspended, LastUpdated, ExecutionId, Engine, the raw columns.

        Example:
            >>> hub.entities(name="counter", include_state=True)  # doctest: +SKIP
        """
        wanted = entity_frames.EntityFilter.of(
            name, key_prefix, modified_from, modified_to, include_state, limit
        )
        if wanted.limit == 0:
            return entity_frames.metadata_frame([])
        query = pb.EntityQuery(includeState=include_state, includeTransient=True)
        query.instanceIdStartsWith.value = wanted.id_prefix
        if wanted.modified_from is not None:
            query.lastModifiedFrom.CopyFrom(_timestamp(wanted.modified_from))
        if wanted.modified_to is not None:
            query.lastModifiedTo.CopyFrom(_timestamp(wanted.modified_to))

        def page(token: str | None) -> tuple[list[dict[str, Any]], Any]:
            query.pageSize.value = max(1, min(page_size, wanted.limit or page_size))
            if token:
                query.continuationToken.value = token
            response = self._call("QueryEntities", pb.QueryEntitiesRequest(query=query))
            rows = [
                entity_frames.metadata_row(e, include_state=include_state)
                for e in response.entities
                if wanted.matches(e.instanceId)
            ]
            return rows, response

        return entity_frames.metadata_frame(_follow_pages(page, wanted.limit))

    def entity(self, entity_id: str) -> pd.Series:
        """One entity's row of :meth:`entities`, through GetEntity (EntityNotFoundError if none).

        Example:
            >>> hub.entity("@counter@c1")["State"]                      # doctest: +SKIP
            5
        """
        request = pb.GetEntityRequest(
            instanceId=entity_frames.check_entity_id(entity_id), includeState=True
        )
        response = self._call("GetEntity", request)
        if not response.exists:
            raise entity_frames.unknown_entity(entity_id, f"the sidecar at {self.address}")
        row = entity_frames.metadata_row(response.entity, include_state=True)
        return entity_frames.metadata_frame([row]).iloc[0]

    # ------------------------------------------------------------------------ history

    def _events(self, instance_id: str, execution_id: str | None = None) -> list[pb.HistoryEvent]:
        check_instance_id(instance_id)
        request = pb.StreamInstanceHistoryRequest(instanceId=instance_id)
        if execution_id:
            request.executionId.value = execution_id
        events: list[pb.HistoryEvent] = []
        try:
            stream = self.stub.StreamInstanceHistory(
                request, timeout=self.timeout, metadata=self._metadata or None
            )
            for chunk in stream:
                events.extend(chunk.events)
        except grpc.RpcError as error:
            raise self._error("StreamInstanceHistory", error, instance_id) from None
        return events

    def history(
        self, instance_id: str, execution: Literal["current", "all"] | str = "current"
    ) -> pd.DataFrame:
        """One instance's history as a frame (docs/frames.md), through StreamInstanceHistory.

        ``execution``: ``"current"`` (the last execution the stream holds), ``"all"`` (every
        execution the sidecar returns) or an execution id.

        Example:
            >>> hub.history("abc")[["EventType", "Name", "Timestamp"]]     # doctest: +SKIP
        """
        wanted = None if execution in ("current", "all") else str(execution)
        rows = events_to_rows(instance_id, self._events(instance_id, wanted))
        return frames.history_frame(_select(rows, execution))

    def histories(
        self,
        ids: str | Iterable[str],
        *,
        execution: Literal["current", "all"] | str = "current",
        max_workers: int = 8,
        missing: Literal["raise", "skip"] = "raise",
    ) -> pd.DataFrame:
        """Histories of many instances in one frame (``max_workers`` streams in parallel).

        Unknown ids raise InstanceNotFoundError, or are skipped (logged) with ``missing="skip"``.

        Example:
            >>> hub.histories(hub.instances(status="Failed").InstanceId)  # doctest: +SKIP
        """
        from durable_helpers.taskhub import InstanceNotFoundError

        if missing not in ("raise", "skip"):
            raise ValueError("missing must be 'raise' or 'skip'")
        wanted = None if execution in ("current", "all") else str(execution)

        def read(instance_id: str) -> list[dict[str, Any]]:
            try:
                rows = events_to_rows(instance_id, self._events(instance_id, wanted))
            except InstanceNotFoundError:
                if missing == "raise":
                    raise
                log.warning("instance %r not found; skipped", instance_id)
                return []
            return _select(rows, execution)

        unique = instance_ids(ids)
        with ThreadPoolExecutor(max_workers=max(1, int(max_workers))) as pool:
            results = list(pool.map(read, unique))
        return frames.history_frame(row for rows in results for row in rows)


# ---------------------------------------------------------------------------- conversions


def state_to_row(state: pb.OrchestrationState, hub_name: str | None = None) -> dict[str, Any]:
    """An OrchestrationState as an Instances table row (the Azure Storage provider's columns).

    A failed instance's Output is ``"<ErrorType>: <ErrorMessage>"`` as the provider writes it
    (the protocol itself reports no output); the failure itself goes to an extra
    ``FailureDetails`` column (JSON), as the local task hub writes it.

    Example:
        >>> state_to_row(pb.OrchestrationState(instanceId="a/b", name="Hello"))["PartitionKey"]
        'a^0b'
    """
    status = STATUS_NAMES.get(state.orchestrationStatus, "Unknown")
    output = _sv(state, "output")
    if output is None and state.HasField("failureDetails"):
        failure = state.failureDetails
        output = schema.failed_output(failure.errorType, failure.errorMessage)
    row: dict[str, Any] = {
        "PartitionKey": schema.escape_partition_key(state.instanceId),
        "RowKey": "",
        "Name": state.name,
        "Version": _sv(state, "version") or "",
        "RuntimeStatus": status,
        "CreatedTime": _dt(state, "createdTimestamp"),
        "LastUpdatedTime": _dt(state, "lastUpdatedTimestamp"),
        "CompletedTime": _dt(state, "completedTimestamp") if status in _TERMINAL else None,
        "ExecutionId": _sv(state, "executionId"),
        "Input": _sv(state, "input"),
        "Output": output,
        "CustomStatus": _sv(state, "customStatus") or "null",
        "ScheduledStartTime": _dt(state, "scheduledStartTimestamp"),
        "Tags": json.dumps(dict(state.tags), separators=(",", ":")) if state.tags else "null",
        "TaskHubName": hub_name,
    }
    if state.HasField("failureDetails"):
        row["FailureDetails"] = json.dumps(
            failure_to_json(state.failureDetails), separators=(",", ":")
        )
    return {k: v for k, v in row.items() if v is not None}


def events_to_rows(instance_id: str, events: Iterable[pb.HistoryEvent]) -> list[dict[str, Any]]:
    """Protocol history events as History table rows, per execution in sequence order.

    Example:
        >>> ev = pb.HistoryEvent(eventId=-1, orchestratorStarted=pb.OrchestratorStartedEvent())
        >>> events_to_rows("i", [ev])[0]["RowKey"]
        '0000000000000000'
    """
    events = list(events)
    # The execution of each event: the ExecutionStarted it follows (the first one for rows
    # before any ExecutionStarted, e.g. the episode's OrchestratorStarted).
    ids = [
        _sv(e.executionStarted.orchestrationInstance, "executionId")
        if e.HasField("executionStarted")
        else None
        for e in events
    ]
    current = next((i for i in ids if i), None)
    pk = schema.escape_partition_key(instance_id)
    rows: list[dict[str, Any]] = []
    sequence = 0
    for event, started_id in zip(events, ids, strict=True):
        if started_id and started_id != current:
            current, sequence = started_id, 0
            # an OrchestratorStarted right before belongs to the new execution too
            if rows and rows[-1]["EventType"] == "OrchestratorStarted":
                rows[-1].update(ExecutionId=current, RowKey=schema.row_key(0))
                sequence = 1
        event_type, columns = event_to_columns(event)
        row = {
            "PartitionKey": pk,
            "RowKey": schema.row_key(sequence),
            "EventType": event_type,
            "EventId": event.eventId,
            "IsPlayed": event_type not in _NOT_PLAYED,
            "_Timestamp": _dt(event, "timestamp"),
            "ExecutionId": current,
            **columns,
        }
        rows.append(row)
        sequence += 1
    return rows


def _follow_pages(
    page: Callable[[str | None], tuple[list[dict[str, Any]], Any]], limit: int | None
) -> list[dict[str, Any]]:
    """Rows of every page: ``page(token)`` gives a page's rows and the response holding the next
    token; stops at ``limit`` rows, or by the SDK's rule (no token, ``"0"``, the same again)."""
    rows: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        found, response = page(token)
        rows.extend(found)
        if limit is not None and len(rows) >= limit:
            return rows[:limit]
        new = response.continuationToken.value if response.HasField("continuationToken") else ""
        if not new or new == "0" or new == token:
            return rows
        token = new


def _select(rows: list[dict[str, Any]], execution: str) -> list[dict[str, Any]]:
    if execution == "all" or not rows:
        return rows
    wanted = rows[-1]["ExecutionId"] if execution == "current" else execution
    return [r for r in rows if r.get("ExecutionId") == wanted]


def _dt(message: Any, field: str) -> datetime | None:
    if not message.HasField(field):
        return None
    value: timestamp_pb2.Timestamp = getattr(message, field)
    if value.seconds == 0 and value.nanos == 0:
        return None
    return value.ToDatetime(tzinfo=UTC)


def _timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)  # aware: converted to UTC
    return ts
