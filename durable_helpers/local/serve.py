"""Run the local task hub sidecar in the foreground until SIGTERM/SIGINT.

Example:
    >>> serve(hub="DurableFunctionsHub", port=4001)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import signal
import threading

from durable_helpers.local.sidecar import LocalTaskHub

log = logging.getLogger("durable_helpers.local.sidecar")


def serve(
    *,
    connection: str | None = None,
    hub: str = "DurableFunctionsHub",
    host: str = "127.0.0.1",
    port: int = 4001,
    ready: threading.Event | None = None,
    lease_seconds: float | None = None,
    table_lag: float | None = None,
    journal_dir: str | None = None,
) -> None:
    """Serve the Durable Task sidecar protocol for ``hub`` on ``host:port``; blocks until a signal.

    Storage: ``connection``, else ``AzureWebJobsStorage``, else the local Azurite. ``ready`` (if
    given) is set once the server answers. ``lease_seconds``, ``table_lag``,
    ``journal_dir``: see ``LocalTaskHub``.

    Example:
        >>> serve(connection="UseDevelopmentStorage=true", port=4001)  # doctest: +SKIP
    """
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        log.info("signal %d received: stopping the local task hub", signum)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    with LocalTaskHub(
        connection=connection,
        hub=hub,
        host=host,
        port=port,
        lease_seconds=lease_seconds,
        table_lag=table_lag,
        journal_dir=journal_dir,
    ) as server:
        log.info("local task hub listening on %s", server.address)
        if ready is not None:
            ready.set()
        stop.wait()


if __name__ == "__main__":  # used by the crash test and the benchmark: python -m ...serve
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="Run the local task hub sidecar.")
    parser.add_argument("--hub", default="DurableFunctionsHub")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4001)
    parser.add_argument(
        "--lease-seconds",
        type=float,
        default=None,
        help="seconds a work item may stay uncompleted on a worker before it is handed out "
        "again (default: $DURABLE_HELPERS_LEASE_SECONDS, else 120)",
    )
    parser.add_argument(
        "--table-lag",
        type=float,
        default=None,
        help="seconds a running instance's rows may reach the tables after their checkpoint "
        "(default: $DURABLE_HELPERS_TABLE_LAG, else 1; 0: at once)",
    )
    parser.add_argument(
        "--journal-dir",
        default=None,
        help="keep the journal in files under this folder, synced, instead of blobs in the "
        "storage account (default: $DURABLE_HELPERS_JOURNAL_DIR, else in the storage account)",
    )
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    serve(
        hub=args.hub,
        host=args.host,
        port=args.port,
        lease_seconds=args.lease_seconds,
        table_lag=args.table_lag,
        journal_dir=args.journal_dir,
    )
