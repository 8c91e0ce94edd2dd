"""The local task hub sidecar: the Durable Task gRPC protocol over a task hub in Azurite.

``LocalTaskHub`` runs the ``TaskHubSidecarService`` in-process (tests, notebooks); the official
``durabletask`` SDK connects to ``hub.address`` as client and worker, unchanged. Everything is
kept in the storage account in the Durable Functions layout (History, Instances, large-payload
blobs), and every acknowledged call is in the sidecar's journal first (append blobs in the
storage account, or files in ``journal_dir``), so it survives ``kill -9``. Orchestrations,
activities and durable entities (``@name@key``, with critical sections and the SDK's
scheduled tasks) all run this way.

Example:
    >>> with LocalTaskHub(hub="DurableFunctionsHub", port=0) as hub:  # doctest: +SKIP
    ...     client = TaskHubGrpcClient(host_address=hub.address)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["LocalTaskHub"]

if TYPE_CHECKING:
    from .hub import LocalTaskHub


def __getattr__(name: str) -> Any:
    # Imported on first use: the row writer processes (``row_writer_main``) import modules of
    # this package and need none of the server's (gRPC, the engine).
    if name == "LocalTaskHub":
        from .hub import LocalTaskHub

        globals()[name] = LocalTaskHub
        return LocalTaskHub
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
