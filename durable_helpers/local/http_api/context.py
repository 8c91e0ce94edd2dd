"""What every route of the HTTP API shares: the app's keys, ``ApiError``, the served hub.

Owns the application keys (``SIDECAR``: the :class:`~.sidecar.SidecarClient`; ``CONFIG``: the
served hub and public origin), ``ApiError`` (an HTTP error with a JSON body), the check that a
request's ``taskHub`` is the served one, the management URLs of an instance as this request
sees them, and looking up an instance that must exist (404 otherwise).

May call: :mod:`durable_helpers.local.management_urls`; the sidecar client through the app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from durable_helpers.local.management_urls import DEFAULT_CONNECTION_NAME, management_urls

if TYPE_CHECKING:
    from durabletask.internal import orchestrator_service_pb2 as pb

SIDECAR = web.AppKey("sidecar", object)
CONFIG = web.AppKey("config", dict)


class ApiError(Exception):
    """An HTTP error with a JSON body ``{"error": reason, "message": message}``.

    Example:
        >>> ApiError(404, "No instance with id 'x'.").status
        404
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def check_hub(request: web.Request) -> None:
    """400 when the request names a task hub other than the one served."""
    hub = request.app[CONFIG]["hub"]
    asked = request.query.get("taskHub")
    if asked and asked.lower() != hub.lower():
        raise ApiError(
            400,
            f"This local API serves the task hub {hub!r}; taskHub={asked!r} is not "
            "available here. Drop the parameter or use the served hub.",
        )


def urls(request: web.Request, instance_id: str) -> dict[str, str]:
    """The management URLs of an instance, on the origin the request came in on."""
    config = request.app[CONFIG]
    origin = config.get("public_origin") or str(request.url.origin())
    connection = request.query.get("connection") or DEFAULT_CONNECTION_NAME
    return management_urls(origin, instance_id, hub=config["hub"], connection=connection)


async def existing(
    request: web.Request, instance_id: str, payloads: bool = False
) -> pb.OrchestrationState:
    """The instance's state; 404 when it does not exist."""
    state = await request.app[SIDECAR].state(instance_id, payloads)
    if state is None:
        raise ApiError(
            404, f"No instance with id {instance_id!r} in task hub {request.app[CONFIG]['hub']!r}."
        )
    return state
