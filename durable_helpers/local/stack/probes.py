"""Does a service answer? Quick, bounded probes of the sidecar, the gateway and HTTP.

Calls gRPC and the durabletask SDK's generated stubs (imported lazily), and urllib.

Example:
    >>> http_answers("http://127.0.0.1:1/", timeout=0.2)
    False
"""

from __future__ import annotations

import urllib.error
import urllib.request

#: Channel options of a probe: a subchannel of its own (a channel shares the process's subchannel
#: to an address by default, and after a server restarts that one may sit in a long reconnect
#: back-off: a probe then waits for it, not for the server) and a short back-off.
PROBE_CHANNEL_OPTIONS = [
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


def sidecar_answers(address: str, timeout: float = 2.0) -> bool:
    """True when a Durable Task sidecar answers ``Hello`` at ``address``.

    Example:
        >>> sidecar_answers("127.0.0.1:1", timeout=0.2)
        False
    """
    import grpc
    from durabletask.internal import orchestrator_service_pb2_grpc as stubs
    from google.protobuf import empty_pb2

    with grpc.insecure_channel(address, options=PROBE_CHANNEL_OPTIONS) as channel:
        try:
            stubs.TaskHubSidecarServiceStub(channel).Hello(empty_pb2.Empty(), timeout=timeout)
        except grpc.RpcError:
            return False
    return True


def http_answers(url: str, timeout: float = 2.0) -> bool:
    """True when ``url`` answers HTTP 200.

    Example:
        >>> http_answers("http://127.0.0.1:1/", timeout=0.2)
        False
    """
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def grpc_port_answers(address: str, timeout: float = 2.0) -> bool:
    """True when an HTTP/2 (gRPC) server accepts a channel at ``address``.

    Example:
        >>> grpc_port_answers("127.0.0.1:1", timeout=0.2)
        False
    """
    import grpc

    with grpc.insecure_channel(address, options=PROBE_CHANNEL_OPTIONS) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            return False
    return True
