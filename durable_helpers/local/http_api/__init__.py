"""The Durable Functions HTTP management API, served by aiohttp in front of a Durable Task sidecar.

Routes (base ``/runtime/webhooks/durabletask``; status codes as in the Functions host's
HttpApiHandler, task-hub-storage-layout.md §6.2):

- ``GET /instances/{id}``: status; 202 while running (Location, Retry-After: 5), 200 when done,
  404 unknown; ``showHistory``, ``showHistoryOutput``, ``showInput``,
  ``returnInternalServerErrorOnFailure`` (500 for Failed).
- ``GET /instances``: list; ``instanceIdPrefix``, ``createdTimeFrom``, ``createdTimeTo``,
  ``runtimeStatus`` (comma list), ``showInput``, ``top``; ``x-ms-continuation-token`` header
  paging in both directions (page size ``top``, default 100).
- ``POST /instances/{id}/raiseEvent/{event}``: 202; 404; 410 when finished; 400 when the body is
  not ``application/json`` or not valid JSON.
- ``POST /instances/{id}/terminate|suspend|resume?reason=``: 202; 404; 410 when finished.
- ``POST /instances/{id}/rewind?reason=``: 202; 404; 410 when Completed/Terminated/Canceled;
  409 when not Failed (e.g. still running).
- ``POST /instances/{id}/restart?restartWithNewInstanceId=``: 202 check-status payload; 404;
  409 while running.
- ``DELETE /instances/{id}``: 200 ``{"instancesDeleted": 1}``; 404 (unknown or not finished).
- ``DELETE /instances?createdTimeFrom=&createdTimeTo=&runtimeStatus=``: 200
  ``{"instancesDeleted": N}``; 404 when nothing matched; 400 without createdTimeFrom.
- ``POST /orchestrators/{name}[/{instanceId}]``: 202 check-status payload (body = JSON input,
  Location, Retry-After: 10); ``?timeout=&pollingInterval=`` (seconds) waits and answers 200
  with the output when the instance finishes in time.
- ``GET /entities/{name}/{key}``: the entity's state (404 when absent); ``POST ...?op=``: signal
  (202); ``DELETE``: signal ``delete`` (202); ``GET /entities[/{name}]``: the list, with
  ``lastOperationTimeFrom``/``To``, ``top``, ``fetchState`` and the continuation header
  (details in :mod:`~.entities`).

``taskHub`` and ``connection`` are accepted everywhere (a taskHub other than the one served is a
400). Errors are JSON ``{"error": ..., "message": ...}``; no stack trace ever reaches a client.
A sidecar that does not answer, or whose storage does not, gives 503; one too slow gives 504.

Example:
    >>> app = create_app("127.0.0.1:4001", hub="DurableFunctionsHub")
    >>> web.run_app(app, host="127.0.0.1", port=7071)  # doctest: +SKIP

Parts: :mod:`~.instances`, :mod:`~.orchestrators` and :mod:`~.entities` (the route groups,
each with its ``add_routes``, listed in ``ROUTE_GROUPS``), :mod:`~.sidecar` (the gRPC client;
every call has a deadline), :mod:`~.context` (app keys, ``ApiError``, the served hub),
:mod:`~.parsing` (query parameters and bodies) and :mod:`~.responses` (JSON responses, errors
as JSON).
"""

from __future__ import annotations

from aiohttp import web

from durable_helpers.local.http_api import entities, instances, orchestrators
from durable_helpers.local.http_api.context import CONFIG, SIDECAR, ApiError
from durable_helpers.local.http_api.responses import errors_as_json
from durable_helpers.local.http_api.sidecar import CALL_TIMEOUT, SidecarClient
from durable_helpers.local.limits import MAX_REQUEST_BYTES
from durable_helpers.local.management_urls import WEBHOOK_PATH

__all__ = ["DEFAULT_HUB", "LEGACY_WEBHOOK_PATH", "ApiError", "create_app"]

DEFAULT_HUB = "DurableFunctionsHub"
#: The Functions v1 base path; served too, so old scripts keep working.
LEGACY_WEBHOOK_PATH = "/admin/extensions/DurableTaskExtension"
#: The modules whose ``add_routes(router, base)`` the app serves, in this order.
ROUTE_GROUPS = (instances, orchestrators, entities)


def create_app(
    sidecar: str,
    *,
    hub: str = DEFAULT_HUB,
    public_origin: str | None = None,
    timeout: float = CALL_TIMEOUT,
) -> web.Application:
    """The aiohttp application serving the management API for ``hub`` via ``sidecar``.

    ``public_origin`` (e.g. ``http://127.0.0.1:7071``) fixes the origin of returned URLs; by
    default they use the origin the request came in on, as the Functions host does.

    Example:
        >>> app = create_app("127.0.0.1:4001")
        >>> sorted({r.method for r in app.router.routes()})  # '*': 404 for other methods
        ['*', 'DELETE', 'GET', 'POST']
    """
    app = web.Application(middlewares=[errors_as_json], client_max_size=MAX_REQUEST_BYTES)
    app[CONFIG] = {"hub": hub, "public_origin": public_origin}

    async def open_sidecar(app: web.Application) -> None:
        app[SIDECAR] = SidecarClient(sidecar, timeout)

    async def close_sidecar(app: web.Application) -> None:
        await app[SIDECAR].close()

    app.on_startup.append(open_sidecar)
    app.on_cleanup.append(close_sidecar)
    for base in (WEBHOOK_PATH, LEGACY_WEBHOOK_PATH):
        for group in ROUTE_GROUPS:
            group.add_routes(app.router, base)
    return app
