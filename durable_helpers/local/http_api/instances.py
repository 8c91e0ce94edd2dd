"""The ``/instances`` routes of the HTTP API: status, list, events, lifecycle, purge.

Owns the handlers of ``GET /instances/{id}`` (status; 202 while running), ``GET /instances``
(filters, ``top``, the continuation header), ``POST /instances/{id}/raiseEvent/{event}``,
``.../terminate``, ``.../suspend``, ``.../resume``, ``.../rewind``, ``.../restart``, and
``DELETE /instances[/{id}]`` (purge), with the status codes of the Functions host's
HttpApiHandler (see the package docstring), and ``add_routes``.

May call: the sidecar client (through the app), :mod:`~.context`, :mod:`~.parsing`,
:mod:`~.responses`, :mod:`durable_helpers.local.status_payload`.
"""

from __future__ import annotations

import json

from aiohttp import web
from durabletask.internal import orchestrator_service_pb2 as pb
from google.protobuf import wrappers_pb2

from durable_helpers.local.http_api.context import SIDECAR, ApiError, check_hub, existing
from durable_helpers.local.http_api.parsing import (
    continuation_token,
    json_body,
    query_bool,
    query_int,
    query_reason,
    query_statuses,
    query_timestamp,
)
from durable_helpers.local.http_api.responses import (
    accepted,
    check_status_response,
    json_response,
    page_response,
)
from durable_helpers.local.status_payload import (
    RUNNING_LIKE,
    TERMINAL,
    history_events,
    status_name,
    status_payload,
)

DEFAULT_PAGE_SIZE = 100
#: The statuses a rewind answers 410 for (a Failed instance is rewound; others are 409).
REWIND_REFUSED = frozenset({"Completed", "Terminated", "Canceled"})


def add_routes(router: web.UrlDispatcher, base: str) -> None:
    """Serve the ``/instances`` routes under ``base``."""
    instance = f"{base}/instances/{{instanceId}}"
    router.add_get(f"{base}/instances", list_instances, allow_head=False)
    router.add_delete(f"{base}/instances", purge_instances)
    router.add_get(instance, get_status, allow_head=False)
    router.add_delete(instance, purge_instance)
    router.add_post(f"{instance}/raiseEvent/{{eventName}}", raise_event)
    router.add_post(f"{instance}/terminate", terminate)
    router.add_post(f"{instance}/suspend", suspend)
    router.add_post(f"{instance}/resume", resume)
    router.add_post(f"{instance}/rewind", rewind)
    router.add_post(f"{instance}/restart", restart)


async def unfinished(
    request: web.Request, verb: str, finished: frozenset[str] = TERMINAL
) -> tuple[str, str]:
    """The id and status of the route's instance: it must exist (404), not be finished (410).

    Checks the request's task hub first (400).
    """
    check_hub(request)
    instance_id = request.match_info["instanceId"]
    state = await existing(request, instance_id)
    status = status_name(state.orchestrationStatus)
    if status in finished:
        raise ApiError(410, f"Instance {instance_id!r} is {status}; cannot {verb} it.")
    return instance_id, status


async def get_status(request: web.Request) -> web.Response:
    """GET /instances/{id}: the instance's status JSON."""
    check_hub(request)
    instance_id = request.match_info["instanceId"]
    show_history = query_bool(request, "showHistory", False)
    show_history_output = query_bool(request, "showHistoryOutput", False)
    show_input = query_bool(request, "showInput", True)
    fail_500 = query_bool(request, "returnInternalServerErrorOnFailure", False)
    sidecar = request.app[SIDECAR]
    state = await existing(request, instance_id, payloads=True)
    history = None
    if show_history:
        events = await sidecar.history(instance_id)
        history = history_events(
            events, show_input=show_input, show_history_output=show_history_output
        )
    payload = status_payload(state, show_input=show_input, history=history)
    runtime_status = payload["runtimeStatus"]
    if runtime_status in RUNNING_LIKE:
        return json_response(payload, 202, {"Location": str(request.url), "Retry-After": "5"})
    if runtime_status == "Failed" and fail_500:
        return json_response(payload, 500)
    return json_response(payload, 200)


async def list_instances(request: web.Request) -> web.Response:
    """GET /instances: statuses matching the filters, one page at a time."""
    check_hub(request)
    show_input = query_bool(request, "showInput", False)
    top = query_int(request, "top")
    query = pb.InstanceQuery(
        runtimeStatus=query_statuses(request),
        maxInstanceCount=top or DEFAULT_PAGE_SIZE,
        fetchInputsAndOutputs=True,
    )
    for name, field in (("createdTimeFrom", "createdTimeFrom"), ("createdTimeTo", "createdTimeTo")):
        stamp = query_timestamp(request, name)
        if stamp is not None:
            getattr(query, field).CopyFrom(stamp)
    prefix = request.query.get("instanceIdPrefix")
    if prefix:
        query.instanceIdPrefix.CopyFrom(wrappers_pb2.StringValue(value=prefix))
    token = continuation_token(request)
    if token is not None:
        query.continuationToken.CopyFrom(token)
    response = await request.app[SIDECAR].call(
        "QueryInstances", pb.QueryInstancesRequest(query=query)
    )
    items = [status_payload(s, show_input=show_input) for s in response.orchestrationState]
    return page_response(items, request, response)


async def raise_event(request: web.Request) -> web.Response:
    """POST /instances/{id}/raiseEvent/{eventName}: deliver an event (body = JSON data)."""
    check_hub(request)
    instance_id = request.match_info["instanceId"]
    name = request.match_info["eventName"]
    data = await json_body(request, require_json_type=True)
    await unfinished(request, "raise an event to")  # after the body: a bad body is a 400 first
    event = pb.RaiseEventRequest(instanceId=instance_id, name=name)
    if data is not None:
        event.input.CopyFrom(wrappers_pb2.StringValue(value=data))
    await request.app[SIDECAR].call("RaiseEvent", event)
    return accepted()


async def terminate(request: web.Request) -> web.Response:
    """POST /instances/{id}/terminate?reason=: terminate a running instance."""
    instance_id, _ = await unfinished(request, "terminate")
    reason = request.query.get("reason")
    message = pb.TerminateRequest(instanceId=instance_id, recursive=True)
    if reason is not None:
        message.output.CopyFrom(wrappers_pb2.StringValue(value=json.dumps(reason)))
    await request.app[SIDECAR].call("TerminateInstance", message)
    return accepted()


async def suspend(request: web.Request) -> web.Response:
    """POST /instances/{id}/suspend?reason=: suspend a running instance."""
    instance_id, _ = await unfinished(request, "suspend")
    sidecar = request.app[SIDECAR]
    await sidecar.call(
        "SuspendInstance", pb.SuspendRequest(instanceId=instance_id, reason=query_reason(request))
    )
    sidecar.pending_suspend.add(instance_id)
    return accepted()


async def resume(request: web.Request) -> web.Response:
    """POST /instances/{id}/resume?reason=: resume a suspended instance (no-op when running)."""
    instance_id, status = await unfinished(request, "resume")
    sidecar = request.app[SIDECAR]
    # A resume delivered to an instance that is not suspended fails it in the Python SDK, so it
    # is only forwarded when the instance is suspended or a suspend sent from here is pending.
    if status == "Suspended" or instance_id in sidecar.pending_suspend:
        await sidecar.call(
            "ResumeInstance", pb.ResumeRequest(instanceId=instance_id, reason=query_reason(request))
        )
        sidecar.pending_suspend.discard(instance_id)
    return accepted()


async def rewind(request: web.Request) -> web.Response:
    """POST /instances/{id}/rewind?reason=: replay a failed instance from its last good state."""
    instance_id, status = await unfinished(request, "rewind", REWIND_REFUSED)
    if status != "Failed":
        raise ApiError(
            409, f"Instance {instance_id!r} is {status}; only a Failed instance can be rewound."
        )
    await request.app[SIDECAR].call(
        "RewindInstance",
        pb.RewindInstanceRequest(instanceId=instance_id, reason=query_reason(request)),
    )
    return accepted()


async def restart(request: web.Request) -> web.Response:
    """POST /instances/{id}/restart: start a finished instance again (same input)."""
    check_hub(request)
    instance_id = request.match_info["instanceId"]
    new_id = query_bool(request, "restartWithNewInstanceId", True)
    state = await existing(request, instance_id)
    status = status_name(state.orchestrationStatus)
    if status not in TERMINAL:
        raise ApiError(
            409,
            f"Instance {instance_id!r} is {status}; only a completed, failed or "
            "terminated instance can be restarted.",
        )
    response = await request.app[SIDECAR].call(
        "RestartInstance",
        pb.RestartInstanceRequest(instanceId=instance_id, restartWithNewInstanceId=new_id),
    )
    return check_status_response(request, response.instanceId or instance_id)


async def purge_instance(request: web.Request) -> web.Response:
    """DELETE /instances/{id}: delete a finished instance's state and history."""
    check_hub(request)
    instance_id = request.match_info["instanceId"]
    state = await existing(request, instance_id)
    response = await request.app[SIDECAR].call(
        "PurgeInstances",
        pb.PurgeInstancesRequest(instanceId=instance_id, recursive=True, isOrchestration=True),
    )
    if response.deletedInstanceCount == 0:
        status = status_name(state.orchestrationStatus)
        raise ApiError(
            404,
            f"Instance {instance_id!r} was not purged: it is {status}; only "
            "completed, failed or terminated instances are purged.",
        )
    return json_response({"instancesDeleted": response.deletedInstanceCount})


async def purge_instances(request: web.Request) -> web.Response:
    """DELETE /instances?createdTimeFrom=...: purge every finished instance matching filters."""
    check_hub(request)
    created_from = query_timestamp(request, "createdTimeFrom")
    if created_from is None:
        raise ApiError(
            400,
            "createdTimeFrom is required to purge by filter "
            "(for example ?createdTimeFrom=2024-01-01T00:00:00Z).",
        )
    flt = pb.PurgeInstanceFilter(
        createdTimeFrom=created_from, runtimeStatus=query_statuses(request)
    )
    created_to = query_timestamp(request, "createdTimeTo")
    if created_to is not None:
        flt.createdTimeTo.CopyFrom(created_to)
    response = await request.app[SIDECAR].call(
        "PurgeInstances",
        pb.PurgeInstancesRequest(purgeInstanceFilter=flt, recursive=True),
        timeout=60.0,
    )
    if response.deletedInstanceCount == 0:
        raise ApiError(404, "No finished instance matched the filter; nothing was purged.")
    return json_response({"instancesDeleted": response.deletedInstanceCount})
