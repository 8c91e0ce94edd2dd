"""The HTTP API's client of the Durable Task sidecar: gRPC calls with deadlines, errors as HTTP.

Owns the one ``grpc.aio`` channel of the app (``SidecarClient``), the deadline of every call,
reading a history stream and an instance's state, and turning a failed RPC into an
:class:`~.context.ApiError` with the status a Functions host would answer (an unreachable
sidecar or storage 503, a slow one 504, UNIMPLEMENTED 501). A new group of routes (entities)
calls its RPCs through ``SidecarClient.call``.

May call: the sidecar over gRPC, :mod:`~.context` (ApiError).
"""

from __future__ import annotations

from typing import Any

import grpc
from durabletask.internal import orchestrator_service_pb2 as pb
from durabletask.internal import orchestrator_service_pb2_grpc as stubs

from durable_helpers.local.http_api.context import ApiError
from durable_helpers.local.limits import grpc_channel_options
from durable_helpers.local.sidecar.rest import STORAGE_UNREACHABLE

CALL_TIMEOUT = 10.0
HISTORY_TIMEOUT = 30.0

_GRPC_TO_HTTP = {
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.UNIMPLEMENTED: 501,
}


class SidecarClient:
    """The Durable Task sidecar over one grpc.aio channel; every call has a deadline."""

    def __init__(self, address: str, timeout: float = CALL_TIMEOUT) -> None:
        self.address = address
        self.timeout = timeout
        # Status with showInput/showHistory can carry several MiB of payloads.
        self.channel = grpc.aio.insecure_channel(address, options=grpc_channel_options())
        self.stub = stubs.TaskHubSidecarServiceStub(self.channel)
        self.pending_suspend: set[str] = set()

    async def call(self, method: str, request: Any, timeout: float | None = None) -> Any:
        """One unary RPC ``method`` (ApiError when it fails)."""
        try:
            return await getattr(self.stub, method)(request, timeout=timeout or self.timeout)
        except grpc.aio.AioRpcError as error:
            raise rpc_error(error, self.address) from None

    async def history(self, instance_id: str) -> list[pb.HistoryEvent]:
        """An instance's whole history (the StreamInstanceHistory chunks joined)."""
        request = pb.StreamInstanceHistoryRequest(instanceId=instance_id)
        events: list[pb.HistoryEvent] = []
        try:
            async for chunk in self.stub.StreamInstanceHistory(request, timeout=HISTORY_TIMEOUT):
                events.extend(chunk.events)
        except grpc.aio.AioRpcError as error:
            raise rpc_error(error, self.address) from None
        return events

    async def state(self, instance_id: str, payloads: bool = True) -> pb.OrchestrationState | None:
        """An instance's state, or None when it does not exist."""
        request = pb.GetInstanceRequest(instanceId=instance_id, getInputsAndOutputs=payloads)
        response = await self.call("GetInstance", request)
        return response.orchestrationState if response.exists else None

    async def close(self) -> None:
        await self.channel.close()


def rpc_error(error: grpc.aio.AioRpcError, address: str) -> ApiError:
    """The HTTP error for a failed RPC to the sidecar at ``address``."""
    code = error.code()
    status = _GRPC_TO_HTTP.get(code, 502)
    if code == grpc.StatusCode.UNAVAILABLE and (error.details() or "").startswith(
        STORAGE_UNREACHABLE
    ):
        message = error.details()  # the sidecar answers, its storage does not
    elif code == grpc.StatusCode.UNAVAILABLE:
        message = (
            f"The Durable Task sidecar at {address} is not answering. Start the local task hub "
            "with 'python -m durable_helpers.local up'."
        )
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
        message = f"The Durable Task sidecar at {address} did not answer in time."
    else:
        message = error.details() or code.name
    return ApiError(status, message)
