"""One process serving the seed's StartNew channel (gRPC) and the HTTP management API.

Example:
    >>> run_gateway("127.0.0.1:4001", startnew_port=50051, http_port=7071)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from aiohttp import web

from durable_helpers.local.http_api import DEFAULT_HUB, create_app
from durable_helpers.local.ports import port_taken
from durable_helpers.local.seed_channel import start_seed_channel

log = logging.getLogger(__name__)


def _check_free(host: str, port: int, what: str) -> None:
    if port_taken(host, port):
        raise OSError(
            f"Cannot listen on {host}:{port} for {what}: the port is taken by another "
            "program. Stop it or choose another port."
        )


async def serve_gateway(
    sidecar: str,
    *,
    host: str = "127.0.0.1",
    startnew_port: int = 50051,
    http_port: int = 7071,
    hub: str = DEFAULT_HUB,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve StartNew and the HTTP API until ``stop`` is set (asyncio).

    Example:
        >>> asyncio.run(serve_gateway("127.0.0.1:4001"))  # doctest: +SKIP
    """
    _check_free(host, http_port, "the HTTP management API")
    origin = f"http://{host}:{http_port}"
    seed = start_seed_channel(sidecar, host=host, port=startnew_port, http_origin=origin, hub=hub)
    runner = web.AppRunner(create_app(sidecar, hub=hub), access_log=log)
    try:
        await runner.setup()
        site = web.TCPSite(runner, host, http_port, reuse_port=False)
        await site.start()
        log.info(
            "StartNew on %s:%s, HTTP API on %s, sidecar %s", host, startnew_port, origin, sidecar
        )
        await (stop or asyncio.Event()).wait()
    finally:
        await runner.cleanup()
        seed.stop(grace=2).wait(5)


def run_gateway(
    sidecar: str,
    *,
    host: str = "127.0.0.1",
    startnew_port: int = 50051,
    http_port: int = 7071,
    hub: str = DEFAULT_HUB,
) -> None:
    """Blocking: serve StartNew and the HTTP API until SIGTERM or Ctrl+C.

    Example:
        >>> run_gateway("127.0.0.1:4001", startnew_port=50051, http_port=7071)  # doctest: +SKIP
    """

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signum, stop.set)
        await serve_gateway(
            sidecar, host=host, startnew_port=startnew_port, http_port=http_port, hub=hub, stop=stop
        )

    asyncio.run(main())
