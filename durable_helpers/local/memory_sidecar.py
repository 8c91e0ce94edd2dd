"""The durabletask SDK's in-memory backend as a sidecar bound to 127.0.0.1 (nothing persisted).

A stand-in for the local task hub when Azurite is not wanted (``up --backend memory``): the same
protocol, no storage, everything lost when the process ends.

Example:
    >>> sidecar = MemorySidecar(port=0).start()  # doctest: +SKIP
    >>> sidecar.address  # doctest: +SKIP
    '127.0.0.1:40123'
    >>> sidecar.stop()  # doctest: +SKIP
"""

from __future__ import annotations

import signal
import threading
from concurrent import futures

import grpc
from durabletask.internal import orchestrator_service_pb2_grpc as stubs
from durabletask.testing import InMemoryOrchestrationBackend


class MemorySidecar:
    """``InMemoryOrchestrationBackend`` served on ``host:port`` (port 0 picks a free one).

    Example:
        >>> with MemorySidecar(port=0) as sidecar:  # doctest: +SKIP
        ...     TaskHubGrpcClient(host_address=sidecar.address)
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 4001) -> None:
        self.host = host
        self.port = port
        self.backend = InMemoryOrchestrationBackend()
        self.server: grpc.Server | None = None

    @property
    def address(self) -> str:
        """``host:port`` to hand to SDK clients and workers."""
        return f"{self.host}:{self.port}"

    def start(self) -> MemorySidecar:
        """Bind and start serving; raises OSError when the port is taken."""
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=16), options=[("grpc.so_reuseport", 0)]
        )
        stubs.add_TaskHubSidecarServiceServicer_to_server(self.backend, server)
        try:
            bound = server.add_insecure_port(f"{self.host}:{self.port}")
        except RuntimeError:
            bound = 0
        if not bound:
            raise OSError(
                f"Cannot listen on {self.host}:{self.port} for the sidecar: the port is taken. "
                "Choose another one (--sidecar-port)."
            )
        self.port = bound
        server.start()
        self.server = server
        return self

    def stop(self) -> None:
        """Stop serving and release work-item streams."""
        self.backend.stop()  # wakes up GetWorkItems loops
        if self.server is not None:
            self.server.stop(grace=1).wait(5)
            self.server = None

    def __enter__(self) -> MemorySidecar:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_memory(host: str = "127.0.0.1", port: int = 4001) -> None:
    """Blocking: serve the in-memory sidecar until SIGTERM or Ctrl+C.

    Example:
        >>> serve_memory(port=4001)  # doctest: +SKIP
    """
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    with MemorySidecar(host, port):
        done.wait()
