"""``LocalTaskHub``: the sidecar's gRPC server over an :class:`~.engine.Engine`.

See the package's docstring for what it keeps where.
"""

from __future__ import annotations

import logging
import os
from concurrent import futures
from pathlib import Path

import durabletask.internal.orchestrator_service_pb2_grpc as stubs
import grpc

from durable_helpers.local.limits import MAX_GRPC_MESSAGE_BYTES
from durable_helpers.local.sidecar.engine import Engine
from durable_helpers.local.sidecar.rest import RestStorage
from durable_helpers.local.sidecar.servicer import Servicer, StorageUnreachableInterceptor
from durable_helpers.local.sidecar.store import Store
from durable_helpers.local.sidecar.table_writer import lag_from_env
from durable_helpers.local.sidecar.work_items import lease_seconds_from_env
from durable_helpers.storage import mask_secrets

__all__ = ["LocalTaskHub"]

log = logging.getLogger("durable_helpers.local.sidecar")


class LocalTaskHub:
    """The sidecar server. ``start()``/``stop()`` or use it as a context manager.

    ``connection``: a storage connection string (None: ``AzureWebJobsStorage``, else the local
    Azurite on its default ports). ``port=0`` picks a free port; ``address`` is ``host:port``.
    ``lease_seconds``: how long a work item may stay uncompleted on a worker before it is handed
    out again (None: ``DURABLE_HELPERS_LEASE_SECONDS``, else 120 s; see ``work_items``).
    ``table_lag``: at most how many seconds History/Instances rows of a running instance may reach
    the tables after their checkpoint, so that several checkpoints go in one write (None:
    ``DURABLE_HELPERS_TABLE_LAG``, else 1 s; 0 writes every checkpoint at once; a finished
    instance's rows are always written before its completion is visible; see ``table_writer``).
    ``journal_dir``: keep the journal in files under this folder (``{journal_dir}/{hub}``,
    each append synced) instead of append blobs in the storage account: about 0.3 ms an append
    instead of a request to Azurite (None: ``DURABLE_HELPERS_JOURNAL_DIR``, else in the storage
    account). The folder is tied to the storage account; see ``journal_segments``.

    Example:
        >>> hub = LocalTaskHub(connection=conn, hub="MyHub", port=0).start()  # doctest: +SKIP
        >>> hub.address  # doctest: +SKIP
        '127.0.0.1:41234'
        >>> hub.stop()  # doctest: +SKIP
    """

    def __init__(
        self,
        connection: str | None = None,
        hub: str = "DurableFunctionsHub",
        host: str = "127.0.0.1",
        port: int = 4001,
        *,
        max_workers: int = 64,
        lease_seconds: float | None = None,
        table_lag: float | None = None,
        journal_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.hub = hub
        self.host = host
        self.port = port
        self._connection = connection
        self._max_workers = max_workers
        self.lease_seconds = lease_seconds_from_env() if lease_seconds is None else lease_seconds
        if not self.lease_seconds > 0:
            raise ValueError(f"lease_seconds must be above 0, not {lease_seconds!r}")
        self.table_lag = lag_from_env() if table_lag is None else table_lag
        if not self.table_lag >= 0:
            raise ValueError(f"table_lag must be 0 or more seconds, not {table_lag!r}")
        if journal_dir is None:
            journal_dir = os.environ.get("DURABLE_HELPERS_JOURNAL_DIR") or None
        self.journal_dir = Path(journal_dir) if journal_dir is not None else None
        self._server: grpc.Server | None = None
        self.engine: Engine | None = None

    @property
    def address(self) -> str:
        """``host:port`` the sidecar listens on (the SDK's ``host_address``)."""
        return f"{self.host}:{self.port}"

    def start(self) -> LocalTaskHub:
        """Recover the hub's state from storage and start serving."""
        rest = RestStorage.from_connection_string(self._connection)
        store = Store(rest, self.hub, table_lag=self.table_lag, journal_dir=self.journal_dir)
        self.engine = Engine(store, lease_seconds=self.lease_seconds)
        try:
            self.engine.start()
        except Exception as error:
            raise RuntimeError(
                f"The local task hub could not open hub {self.hub!r} in storage account "
                f"{rest.account!r}: {mask_secrets(str(error))}. Is Azurite running "
                "(python -m durable_helpers.local up)?"
            ) from None
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self._max_workers, thread_name_prefix="grpc"),
            options=[
                ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_GRPC_MESSAGE_BYTES),
                ("grpc.so_reuseport", 0),
            ],
            interceptors=[StorageUnreachableInterceptor()],
        )
        stubs.add_TaskHubSidecarServiceServicer_to_server(Servicer(self.engine), server)
        bound = server.add_insecure_port(f"{self.host}:{self.port}")
        if bound == 0:
            self.engine.stop()
            raise RuntimeError(
                f"Cannot listen on {self.host}:{self.port} (in use?). Pick another port, "
                "or port=0 for a free one."
            )
        self.port = bound
        server.start()
        self._server = server
        log.info(
            "local task hub %r serving on %s (storage account %s)",
            self.hub,
            self.address,
            rest.account,
        )
        return self

    def stop(self, grace: float = 1.0) -> None:
        """Stop serving (in-flight calls get ``grace`` seconds) and flush the journal."""
        if self.engine is not None:
            self.engine.stopping = True
            with self.engine.cv:
                self.engine.cv.notify_all()
        if self._server is not None:
            self._server.stop(grace).wait()
            self._server = None
        if self.engine is not None:
            self.engine.stop()

    def __enter__(self) -> LocalTaskHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
