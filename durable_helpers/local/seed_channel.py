"""The seed's gRPC channel: ``gRPCChannel.DurableTaskService/StartNew`` on 127.0.0.1:50051.

The prototype's Functions host answered StartNew with hard-coded URLs; this server really starts
the orchestration in the local task hub (through the official ``durabletask`` client and the
Durable Task sidecar) and answers with its id and management URLs that work against the local
HTTP API (:mod:`durable_helpers.local.http_api`). The prototype's own client works unchanged:

    channel = grpc.insecure_channel("localhost:50051")
    stub = df.DurableTaskServiceStub(channel)
    stub.StartNew(df.NewDurableTaskRequest(functionName="HelloSequence"))

Optional request fields (new field numbers): ``input`` (JSON text) and ``instanceId``.
An empty function name or input that is not JSON is INVALID_ARGUMENT; an id already in use is
ALREADY_EXISTS; an unreachable sidecar is UNAVAILABLE.

Example:
    >>> server = start_seed_channel("127.0.0.1:4001", port=0)  # doctest: +SKIP
    >>> server.stop(None)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
from collections import namedtuple
from concurrent import futures
from typing import Any

import grpc
from durabletask.client import TaskHubGrpcClient

from durable_helpers import stubs
from durable_helpers.local.management_urls import management_urls

log = logging.getLogger(__name__)

DEFAULT_PORT = 50051
CALL_TIMEOUT = 10.0

_df = stubs.load("durable_functions")

# The prototype's response field names for the payload keys.
_FIELDS = {
    "id": "id",
    "statusQueryGetUri": "StatusQueryGetUri",
    "sendEventPostUri": "SendEventPostUri",
    "terminatePostUri": "TerminatePostUri",
    "rewindPostUri": "RewindPostUri",
    "purgeHistoryDeleteUri": "PurgeHistoryDeleteUri",
    "restartPostUri": "RestartPostUri",
    "suspendPostUri": "SuspendPostUri",
    "resumePostUri": "ResumePostUri",
}


class _CallDetails(
    namedtuple(
        "_CallDetails",
        ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"),
    ),
    grpc.ClientCallDetails,
):
    pass


class DeadlineInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Gives every call without a deadline one of ``timeout`` seconds.

    Example:
        >>> client = TaskHubGrpcClient(host_address="127.0.0.1:4001",
        ...                            interceptors=[DeadlineInterceptor(10)])
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        if details.timeout is not None:
            return details
        return _CallDetails(
            details.method,
            self.timeout,
            details.metadata,
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)


class SeedChannelServicer(_df.DurableTaskServiceServicer):
    """``DurableTaskService`` implemented on a Durable Task sidecar.

    Example:
        >>> servicer = SeedChannelServicer("127.0.0.1:4001", http_origin="http://127.0.0.1:7071")
    """

    def __init__(
        self,
        sidecar: str,
        *,
        http_origin: str = "http://127.0.0.1:7071",
        hub: str = "DurableFunctionsHub",
        timeout: float = CALL_TIMEOUT,
    ) -> None:
        self.sidecar = sidecar
        self.http_origin = http_origin
        self.hub = hub
        self.client = TaskHubGrpcClient(
            host_address=sidecar, interceptors=[DeadlineInterceptor(timeout)]
        )

    def StartNew(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Start ``request.functionName`` and answer with its id and management URLs."""
        name = request.functionName.strip()
        if not name:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "functionName is empty: set it to the orchestrator to start, e.g. "
                "NewDurableTaskRequest(functionName='HelloSequence').",
            )
        data = None
        if request.input.strip():
            try:
                data = json.loads(request.input)
            except ValueError as error:
                context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"input is not valid JSON ({error}); pass JSON text such as "
                    '\'["Tokyo", "Seattle"]\' or leave it empty.',
                )
        try:
            instance_id = self.client.schedule_new_orchestration(
                name, input=data, instance_id=request.instanceId or None
            )
        except grpc.RpcError as error:
            code = error.code()  # type: ignore[attr-defined]
            details = error.details()  # type: ignore[attr-defined]
            if code == grpc.StatusCode.UNAVAILABLE:
                details = (
                    f"The Durable Task sidecar at {self.sidecar} is not answering; start the "
                    "local task hub with 'python -m durable_helpers.local up'."
                )
            context.abort(code, details or code.name)
        log.info("StartNew %s -> %s", name, instance_id)
        urls = management_urls(self.http_origin, instance_id, hub=self.hub)
        return _df.NewDurableTaskResponse(**{_FIELDS[key]: value for key, value in urls.items()})

    def close(self) -> None:
        """Close the sidecar client."""
        self.client.close()


def start_seed_channel(
    sidecar: str,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    http_origin: str = "http://127.0.0.1:7071",
    hub: str = "DurableFunctionsHub",
) -> grpc.Server:
    """Start the StartNew server in background threads; returns the started ``grpc.Server``.

    ``port=0`` picks a free port (``server.bound_port`` tells which). Raises OSError when the
    port is taken.

    Example:
        >>> server = start_seed_channel("127.0.0.1:4001", port=0)  # doctest: +SKIP
        >>> server.bound_port  # doctest: +SKIP
        50213
    """
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8), options=[("grpc.so_reuseport", 0)]
    )
    servicer = SeedChannelServicer(sidecar, http_origin=http_origin, hub=hub)
    _df.add_DurableTaskServiceServicer_to_server(servicer, server)
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError as error:
        bound = 0
        cause: Exception | None = error
    else:
        cause = None
    if not bound:
        servicer.close()
        raise OSError(
            f"Cannot listen on {host}:{port} for the StartNew channel: the port is taken. "
            "Choose another one (--startnew-port)."
        ) from cause
    server.bound_port = bound  # type: ignore[attr-defined]
    server.start()
    return server
