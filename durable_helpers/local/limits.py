"""Message size limits of the local task hub, in one place.

The sidecar sends and receives gRPC messages up to :data:`MAX_GRPC_MESSAGE_BYTES`; its own
clients (the HTTP API, the sample worker, GrpcTaskHub) accept as much. Workers built with the
SDK's defaults accept :data:`SDK_DEFAULT_RECEIVE_BYTES`, so the HTTP API takes request bodies
up to that size.

Example:
    >>> MAX_GRPC_MESSAGE_BYTES // SDK_DEFAULT_RECEIVE_BYTES
    16
"""

from __future__ import annotations

#: What the sidecar and this kit's own gRPC clients send and receive in one message.
MAX_GRPC_MESSAGE_BYTES = 64 * 1024 * 1024

#: What a Durable Task SDK worker or client receives in one message unless configured otherwise.
SDK_DEFAULT_RECEIVE_BYTES = 4 * 1024 * 1024

#: The largest HTTP request body (e.g. an orchestration's input) the HTTP API accepts.
MAX_REQUEST_BYTES = SDK_DEFAULT_RECEIVE_BYTES


def grpc_channel_options() -> list[tuple[str, int]]:
    """gRPC channel options that accept messages as large as the sidecar sends.

    Example:
        >>> grpc_channel_options()[0][0]
        'grpc.max_receive_message_length'
    """
    return [("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_BYTES)]
