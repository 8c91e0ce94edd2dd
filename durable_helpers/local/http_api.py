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

``taskHub`` and ``connection`` are accepted everywhere (a taskHub other than the one served is a
400). Errors are JSON ``{"error": ..., "message": ...}``; no stack trace ever reaches a client.
A sidecar that does not answer, or whose storage does not, gives 503; one too slow gives 504.

Example:
    >>> app = create_app("127.0.0.1:4001", hub="DurableFunctionsHub")
    >>> web.run_app(app, host="127.0.0.1", port=7071)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import datetime, timezone
from typing import Any

import grpc
from aiohttp import web
from durabletask.internal import orchestrator_service_pb2 as pb
from durabletask.internal import orchestrator_service_pb2_grpc as stubs
from google.protobuf import timestamp_pb2, wrappers_pb2

from durable_helpers.local.limits import MAX_REQUEST_BYTES, grpc_channel_options
from durable_helpers.local.management_urls import (
    DEFAULT_CONNECTION_NAME,
    WEBHOOK_PATH,
    management_urls,
)
from durable_helpers.local.sidecar.rest import STORAGE_UNREACHABLE
from durable_helpers.local.status_payload import (
    RUNNING_LIKE,
    TERMINAL,
    history_events,
    parse_runtime_statuses,
    status_name,
    status_payload,
)

log = logging.getLogger(__name__)
UTC = timezone.utc  # noqa: UP017 - datetime.UTC needs Python 3.11

DEFAULT_HUB = "DurableFunctionsHub"
#: The Functions v1 base path; served too, so old scripts keep working.
LEGACY_WEBHOOK_PATH = "/admin/extensions/DurableTaskExtension"
DEFAULT_PAGE_SIZE = 100
CALL_TIMEOUT = 10.0
HISTORY_TIMEOUT = 30.0

_SIDECAR = web.AppKey("sidecar", object)
_CONFIG = web.AppKey("config", dict)

_GRPC_TO_HTTP = {
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.UNIMPLEMENTED: 501,
}


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


class _Sidecar:
    """The Durable Task sidecar over one grpc.aio channel; every call has a deadline."""

    def __init__(self, address: str, timeout: float = CALL_TIMEOUT) -> None:
        self.address = address
        self.timeout = timeout
        # Status with showInput/showHistory can carry several MiB of payloads.
        self.channel = grpc.aio.insecure_channel(address, options=grpc_channel_options())
        self.stub = stubs.TaskHubSidecarServiceStub(self.channel)
        self.pending_suspend: set[str] = set()

    async def call(self, method: str, request: Any, timeout: float | None = None) -> Any:
        try:
            return await getattr(self.stub, method)(request, timeout=timeout or self.timeout)
        except grpc.aio.AioRpcError as error:
            raise _rpc_error(error, self.address) from None

    async def history(self, instance_id: str) -> list[pb.HistoryEvent]:
        request = pb.StreamInstanceHistoryRequest(instanceId=instance_id)
        events: list[pb.HistoryEvent] = []
        try:
            async for chunk in self.stub.StreamInstanceHistory(request, timeout=HISTORY_TIMEOUT):
                events.extend(chunk.events)
        except grpc.aio.AioRpcError as error:
            raise _rpc_error(error, self.address) from None
        return events

    async def state(self, instance_id: str, payloads: bool = True) -> pb.OrchestrationState | None:
        request = pb.GetInstanceRequest(instanceId=instance_id, getInputsAndOutputs=payloads)
        response = await self.call("GetInstance", request)
        return response.orchestrationState if response.exists else None

    async def close(self) -> None:
        await self.channel.close()


def _rpc_error(error: grpc.aio.AioRpcError, address: str) -> ApiError:
    code = error.code()
    status = _GRPC_TO_HTTP.get(code, 502)
    if code == grpc.StatusCode.UNAVAILABLE and (error.details() or "").startswith(
        STORAGE_UNREACHABLE
    ):
        message = error.details()  # the sidecar answers, its storage does not
    elif code == grpc.StatusCode.UNAVAILABLE:
        message = (
            f"The Durable Task sidecar at {address} is not answering. Start the local task hub "
            "with 'python -m durable_helpers.local up'."
        )
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
        message = f"The Durable Task sidecar at {address} did not answer in time."
    else:
        message = error.details() or code.name
    return ApiError(status, message)


# ------------------------------------------------------------------------------ request helpers
def _bool(request: web.Request, name: str, default: bool) -> bool:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise ApiError(400, f"Query parameter {name!r} must be true or false, not {raw!r}.")


def _int(request: web.Request, name: str, maximum: int = 2**31 - 1) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"Query parameter {name!r} must be an integer, not {raw!r}.") from None
    if not 0 <= value <= maximum:
        raise ApiError(400, f"Query parameter {name!r} must be between 0 and {maximum}.")
    return value


def _timestamp(request: web.Request, name: str) -> timestamp_pb2.Timestamp | None:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        text = raw.strip().replace(" ", "+")  # a '+' offset arrives as a space when not encoded
        value = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        raise ApiError(
            400,
            f"Query parameter {name!r} must be an ISO-8601 time such as "
            f"2024-01-31T12:00:00Z, not {raw!r}.",
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    stamp = timestamp_pb2.Timestamp()
    try:
        stamp.FromDatetime(value.astimezone(UTC))
    except (OverflowError, ValueError):
        raise ApiError(
            400, f"Query parameter {name!r} is outside years 1 to 9999 in UTC: {raw!r}."
        ) from None
    return stamp


def _statuses(request: web.Request) -> list[int]:
    values: list[int] = []
    for raw in request.query.getall("runtimeStatus", []):
        try:
            values += parse_runtime_statuses(raw)
        except ValueError as error:
            raise ApiError(400, str(error)) from None
    return values


def _check_hub(request: web.Request) -> None:
    hub = request.app[_CONFIG]["hub"]
    asked = request.query.get("taskHub")
    if asked and asked.lower() != hub.lower():
        raise ApiError(
            400,
            f"This local API serves the task hub {hub!r}; taskHub={asked!r} is not "
            "available here. Drop the parameter or use the served hub.",
        )


def _urls(request: web.Request, instance_id: str) -> dict[str, str]:
    config = request.app[_CONFIG]
    origin = config.get("public_origin") or str(request.url.origin())
    connection = request.query.get("connection") or DEFAULT_CONNECTION_NAME
    return management_urls(origin, instance_id, hub=config["hub"], connection=connection)


async def _json_body(request: web.Request, *, require_json_type: bool) -> str | None:
    """The body as JSON text (validated), or None when empty."""
    raw = await request.read()
    if not raw.strip():
        return None
    if require_json_type and request.content_type != "application/json":
        raise ApiError(
            400,
            f"The body must be JSON with 'Content-Type: application/json' "
            f"(got {request.content_type!r}).",
        )
    try:
        text = raw.decode("utf-8")
        json.loads(text, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as error:
        raise ApiError(400, f"The body is not valid JSON: {error}.") from None
    return text


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value (Python writes it; other runtimes refuse it)")


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json.dumps(data),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _accepted() -> web.Response:
    return web.Response(status=202)


def _check_status_response(request: web.Request, instance_id: str) -> web.Response:
    urls = _urls(request, instance_id)
    headers = {"Location": urls["statusQueryGetUri"], "Retry-After": "10"}
    return _json(urls, status=202, headers=headers)


async def _existing(request: web.Request, instance_id: str, payloads: bool = False):
    state = await request.app[_SIDECAR].state(instance_id, payloads)
    if state is None:
        raise ApiError(
            404, f"No instance with id {instance_id!r} in task hub {request.app[_CONFIG]['hub']!r}."
        )
    return state


# ------------------------------------------------------------------------------------ handlers
async def _get_status(request: web.Request) -> web.Response:
    """GET /instances/{id}: the instance's status JSON."""
    _check_hub(request)
    instance_id = request.match_info["instanceId"]
    show_history = _bool(request, "showHistory", False)
    show_history_output = _bool(request, "showHistoryOutput", False)
    show_input = _bool(request, "showInput", True)
    fail_500 = _bool(request, "returnInternalServerErrorOnFailure", False)
    sidecar = request.app[_SIDECAR]
    state = await _existing(request, instance_id, payloads=True)
    history = None
    if show_history:
        events = await sidecar.history(instance_id)
        history = history_events(
            events, show_input=show_input, show_history_output=show_history_output
        )
    payload = status_payload(state, show_input=show_input, history=history)
    runtime_status = payload["runtimeStatus"]
    if runtime_status in RUNNING_LIKE:
        return _json(payload, 202, {"Location": str(request.url), "Retry-After": "5"})
    if runtime_status == "Failed" and fail_500:
        return _json(payload, 500)
    return _json(payload, 200)


async def _list_instances(request: web.Request) -> web.Response:
    """GET /instances: statuses matching the filters, one page at a time."""
    _check_hub(request)
    show_input = _bool(request, "showInput", False)
    top = _int(request, "top")
    query = pb.InstanceQuery(
        runtimeStatus=_statuses(request),
        maxInstanceCount=top or DEFAULT_PAGE_SIZE,
        fetchInputsAndOutputs=True,
    )
    for name, field in (("createdTimeFrom", "createdTimeFrom"), ("createdTimeTo", "createdTimeTo")):
        stamp = _timestamp(request, name)
        if stamp is not None:
            getattr(query, field).CopyFrom(stamp)
    prefix = request.query.get("instanceIdPrefix")
    if prefix:
        query.instanceIdPrefix.CopyFrom(wrappers_pb2.StringValue(value=prefix))
    token = request.headers.get("x-ms-continuation-token")
    if token and token != "null":
        query.continuationToken.CopyFrom(wrappers_pb2.StringValue(value=token))
    response = await request.app[_SIDECAR].call(
        "QueryInstances", pb.QueryInstancesRequest(query=query)
    )
    items = [status_payload(s, show_input=show_input) for s in response.orchestrationState]
    headers = {}
    next_token = response.continuationToken.value if response.HasField("continuationToken") else ""
    if next_token and next_token != "0" and next_token != token:
        headers["x-ms-continuation-token"] = next_token
    return _json(items, 200, headers)


async def _raise_event(request: web.Request) -> web.Response:
    """POST /instances/{id}/raiseEvent/{eventName}: deliver an event (body = JSON data)."""
    _check_hub(request)
    instance_id = request.match_info["instanceId"]
    name = request.match_info["eventName"]
    data = await _json_body(request, require_json_type=True)
    state = await _existing(request, instance_id)
    if status_name(state.orchestrationStatus) in TERMINAL:
        return _gone(instance_id, state, "raise an event to")
    event = pb.RaiseEventRequest(instanceId=instance_id, name=name)
    if data is not None:
        event.input.CopyFrom(wrappers_pb2.StringValue(value=data))
    await request.app[_SIDECAR].call("RaiseEvent", event)
    return _accepted()


def _gone(instance_id: str, state: pb.OrchestrationState, verb: str) -> web.Response:
    status = status_name(state.orchestrationStatus)
    message = f"Instance {instance_id!r} is {status}; cannot {verb} it."
    return _json({"error": "Gone", "message": message}, 410)


def _reason(request: web.Request) -> wrappers_pb2.StringValue | None:
    reason = request.query.get("reason")
    return wrappers_pb2.StringValue(value=reason) if reason is not None else None


async def _terminate(request: web.Request) -> web.Response:
    """POST /instances/{id}/terminate?reason=: terminate a running instance."""
    _check_hub(request)
    instance_id = request.match_info["instanceId"]
    state = await _existing(request, instance_id)
    if status_name(state.orchestrationStatus) in TERMINAL:
        return _gone(instance_id, state, "terminate")
    reason = request.query.get("reason")
    message = pb.TerminateRequest(instanceId=instance_id, recursive=True)
    if reason is not None:
        message.output.CopyFrom(wrappers_pb2.StringValue(value=json.dumps(reason)))
    await request.app[_SIDECAR].call("TerminateInstance", message)
    return _accepted()


async def _suspend(request: web.Request) -> web.Response:
    """POST /instances/{id}/suspend?reason=: suspend a running instance."""
    _check_hub(request)
    instance_id = request.match_info["instanceId"]
    state = await _existing(request, instance_id)
    if status_name(state.orchestrationStatus) in TERMINAL:
        return _gone(instance_id, state, "suspend")
    sidecar = request.app[_SIDECAR]
    await sidecar.call(
        "SuspendInstance", pb.SuspendRequest(instanceId=instance_id, reason=_reason(request))
    )
    sidecar.pending_suspend.add(instance_id)
    return _accepted()


async def _resume(request: web.Request) -> web.Response:
    """POST /instances/{id}/resume?reason=: resume a suspended instance (no-op when running)."""
    _check_hub(request)
    instance_id = request.match_info["instanceId"]
    state = await _existing(request, instance_id)
    status = status_name(state.orchestrationStatus)
    if status in TERMINAL:
        return _gone(instance_id, state, "resume")
    sidecar = request.app[_SIDECAR]
    # A resume delivered to an instance that is not suspended fails it in the Python SDK, so it
    # is only forwarded when the instance is suspended or a suspend sent from here is pending.
    if status == "Suspended" or instance_id in sidecar.pending_suspend:
        await sidecar.call(
            "ResumeInstance", pb.ResumeRequest(instanceId=instance_id, reason=_reason(request))
        )
        sidecar.pending_suspend.discard(instance_id)
    return _accepted()


async def _rewind(request: web.Request) -> web.Response:
    """POST /instances/{id}/rewind?reason=: replay a failed instance from its last good state."""
    _check_hub(request)
    instance_id = request.match_info["instanceId"]
    state = await _existing(request, instance_id)
    status = status_name(state.orchestrationStatus)
    if status in ("Completed", "Terminated", "Canceled"):
        return _gone(instance_id, state, "rewind")
    if status != "Failed":
        raise ApiError(
            409, f"Instance {instance_id!r} is {status}; only a Failed instance can be rewound."
        )
    await request.app[_SIDECAR].call(
        "RewindInstance", pb.RewindInstanceRequest(instanceId=instance_id, reason=_reason(request))
    )
    return _accepted()


async def _restart(request: web.Request) -> web.Response:
    """POST /instances/{id}/restart: start a finished instance again (same input)."""
    _check_hub(request)
    instance_id = request.match_info["instanceId"]
    new_id = _bool(request, "restartWithNewInstanceId", True)
    state = await _existing(request, instance_id)
    status = status_name(state.orchestrationStatus)
    if status not in TERMINAL:
        raise ApiError(
            409,
            f"Instance {instance_id!r} is {status}; only a completed, failed or "
            "terminated instance can be restarted.",
        )
    response = await request.app[_SIDECAR].call(
        "RestartInstance",
        pb.RestartInstanceRequest(instanceId=instance_id, restartWithNewInstanceId=new_id),
    )
    return _check_status_response(request, response.instanceId or instance_id)


async def _purge_instance(request: web.Request) -> web.Response:
    """DELETE /instances/{id}: delete a finished instance's state and history."""
    _check_hub(request)
    instance_id = request.match_info["instanceId"]
    state = await _existing(request, instance_id)
    response = await request.app[_SIDECAR].call(
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
    return _json({"instancesDeleted": response.deletedInstanceCount})


async def _purge_instances(request: web.Request) -> web.Response:
    """DELETE /instances?createdTimeFrom=...: purge every finished instance matching filters."""
    _check_hub(request)
    created_from = _timestamp(request, "createdTimeFrom")
    if created_from is None:
        raise ApiError(
            400,
            "createdTimeFrom is required to purge by filter "
            "(for example ?createdTimeFrom=2024-01-01T00:00:00Z).",
        )
    flt = pb.PurgeInstanceFilter(createdTimeFrom=created_from, runtimeStatus=_statuses(request))
    created_to = _timestamp(request, "createdTimeTo")
    if created_to is not None:
        flt.createdTimeTo.CopyFrom(created_to)
    response = await request.app[_SIDECAR].call(
        "PurgeInstances",
        pb.PurgeInstancesRequest(purgeInstanceFilter=flt, recursive=True),
        timeout=60.0,
    )
    if response.deletedInstanceCount == 0:
        raise ApiError(404, "No finished instance matched the filter; nothing was purged.")
    return _json({"instancesDeleted": response.deletedInstanceCount})


async def _start_orchestration(request: web.Request) -> web.Response:
    """POST /orchestrators/{name}[/{instanceId}]: start it; the body (JSON) is the input."""
    _check_hub(request)
    name = request.match_info["functionName"]
    instance_id = request.match_info.get("instanceId") or ""
    timeout = _int(request, "timeout")
    interval = _int(request, "pollingInterval") or 1
    data = await _json_body(request, require_json_type=False)
    create = pb.CreateInstanceRequest(name=name, instanceId=instance_id or _new_id())
    if data is not None:
        create.input.CopyFrom(wrappers_pb2.StringValue(value=data))
    sidecar = request.app[_SIDECAR]
    response = await sidecar.call("StartInstance", create)
    started = response.instanceId or create.instanceId
    if timeout:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = await sidecar.state(started)
            if state is not None and status_name(state.orchestrationStatus) in TERMINAL:
                payload = status_payload(state)
                return _json(payload["output"], 200)
            await asyncio.sleep(min(interval, max(0.0, deadline - time.monotonic())))
    return _check_status_response(request, started)


def _new_id() -> str:
    import uuid

    return uuid.uuid4().hex


# ---------------------------------------------------------------------------------------- app
@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as error:
        return _json(
            {"error": _reason_phrase(error.status), "message": error.message}, error.status
        )
    except web.HTTPException as error:
        if error.status < 400:
            raise
        message = {
            404: f"No such route: {request.method} {request.path}. The API lives under "
            f"{WEBHOOK_PATH}/instances and {WEBHOOK_PATH}/orchestrators/{{name}}.",
            405: f"{request.method} is not allowed on {request.path}.",
            413: f"The request body is larger than {MAX_REQUEST_BYTES // 2**20} MiB, the most a "
            "worker receives in one message. Store large data elsewhere (a blob, a file) and "
            "pass its address as the input.",
        }.get(error.status, error.reason)
        return _json(
            {"error": error.reason, "message": message},
            error.status,
            {"Allow": error.headers["Allow"]} if "Allow" in error.headers else None,
        )
    except Exception:
        log.exception("unexpected error in %s %s", request.method, request.path)
        return _json(
            {"error": "Internal Server Error", "message": "Unexpected error; see the gateway log."},
            500,
        )


def _reason_phrase(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


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
        >>> sorted(r.method for r in app.router.routes())[:2]
        ['DELETE', 'DELETE']
    """
    app = web.Application(middlewares=[_errors], client_max_size=MAX_REQUEST_BYTES)
    app[_CONFIG] = {"hub": hub, "public_origin": public_origin}

    async def open_sidecar(app: web.Application) -> None:
        app[_SIDECAR] = _Sidecar(sidecar, timeout)

    async def close_sidecar(app: web.Application) -> None:
        await app[_SIDECAR].close()

    app.on_startup.append(open_sidecar)
    app.on_cleanup.append(close_sidecar)
    for base in (WEBHOOK_PATH, LEGACY_WEBHOOK_PATH):
        add = app.router
        instance = f"{base}/instances/{{instanceId}}"
        add.add_get(f"{base}/instances", _list_instances, allow_head=False)
        add.add_delete(f"{base}/instances", _purge_instances)
        add.add_get(instance, _get_status, allow_head=False)
        add.add_delete(instance, _purge_instance)
        add.add_post(f"{instance}/raiseEvent/{{eventName}}", _raise_event)
        add.add_post(f"{instance}/terminate", _terminate)
        add.add_post(f"{instance}/suspend", _suspend)
        add.add_post(f"{instance}/resume", _resume)
        add.add_post(f"{instance}/rewind", _rewind)
        add.add_post(f"{instance}/restart", _restart)
        add.add_post(f"{base}/orchestrators/{{functionName}}", _start_orchestration)
        add.add_post(f"{base}/orchestrators/{{functionName}}/{{instanceId}}", _start_orchestration)
    return app
