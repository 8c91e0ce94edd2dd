"""The ``/entities`` routes of the HTTP API: read, signal, delete and list durable entities.

As the Functions host's HttpApiHandler serves them (durable-entities.md §2), over the sidecar's
entity RPCs (GetEntity, SignalEntity, QueryEntities):

- ``GET /entities/{name}/{key}``: 200 with the entity's state (its JSON value, or the raw text
  when it is not JSON); 404 when there is no such entity or it has no state. A key of ``$`` is
  the empty key; the name is lower-cased (entity ids are ``@name@key``).
- ``POST /entities/{name}/{key}?op=``: signal operation ``op`` (missing: ``""``); 202, no body.
  An ``application/json`` body is the input (400 when it is not valid JSON); any other body is
  taken as a string input; an empty body is no input. Which entity functions exist is known to
  the workers, not to this API: a signal to a name no worker registers is accepted, as a start
  of an unknown orchestrator is.
- ``DELETE /entities/{name}/{key}``: signals operation ``delete``; 202.
- ``GET /entities`` and ``GET /entities/{name}``: 200 with a JSON array of
  ``{"entityId": {"key", "name"}, "lastOperationTime"[, "state"]}`` (``state`` with
  ``fetchState=true``); ``lastOperationTimeFrom``/``lastOperationTimeTo`` (ISO times; to
  defaults to now), ``top`` (page size, default 100) and the ``x-ms-continuation-token`` header
  (sent for the next page, answered while more pages remain).
- Any other method on these paths: 404, as in the Functions host.

Keys containing ``/ \\ # ?`` or control characters are refused with 400 (as DF's
``SignalEntityAsync`` refuses them), names containing ``@`` too.

May call: the sidecar client (through the app), :mod:`~.context`, :mod:`~.parsing`,
:mod:`~.responses`, :mod:`durable_helpers.local.status_payload`.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

from aiohttp import web
from durabletask.internal import orchestrator_service_pb2 as pb
from google.protobuf import timestamp_pb2, wrappers_pb2

from durable_helpers.local.http_api.context import SIDECAR, ApiError, check_hub
from durable_helpers.local.http_api.parsing import (
    continuation_token,
    json_body,
    query_bool,
    query_int,
    query_timestamp,
)
from durable_helpers.local.http_api.responses import accepted, json_response, page_response
from durable_helpers.local.status_payload import format_precise, parse_json

UTC = timezone.utc  # noqa: UP017 - datetime.UTC needs Python 3.11

DEFAULT_PAGE_SIZE = 100
#: What a key must not contain (DF's DurableClient.IsInvalidCharacter).
_INVALID_KEY_CHARACTERS = frozenset("/\\#?")


def add_routes(router: web.UrlDispatcher, base: str) -> None:
    """Serve the ``/entities`` routes under ``base``."""
    entity = f"{base}/entities/{{entityName}}/{{entityKey}}"
    router.add_get(entity, get_entity, allow_head=False)
    router.add_post(entity, signal_entity)
    router.add_delete(entity, delete_entity)
    router.add_route("*", entity, _no_such_method)
    for listing in (f"{base}/entities", f"{base}/entities/{{entityName}}"):
        router.add_get(listing, list_entities, allow_head=False)
        router.add_route("*", listing, _no_such_method)


def entity_instance_id(name: str, key: str) -> str:
    """The instance id ``@name@key`` of an entity named in a URL (``$``: the empty key).

    Example:
        >>> entity_instance_id("Counter", "c1"), entity_instance_id("counter", "$")
        ('@counter@c1', '@counter@')
        >>> entity_instance_id("counter", "a/b")
        Traceback (most recent call last):
        ...
        durable_helpers.local.http_api.context.ApiError: The entity key 'a/b' contains '/'; ...
    """
    if not name or "@" in name:
        raise ApiError(
            400, f"The entity name {name!r} is not valid: it must be non-empty, without '@'."
        )
    if key == "$":
        key = ""
    bad = [c for c in key if c in _INVALID_KEY_CHARACTERS or ord(c) < 32 or 127 <= ord(c) < 160]
    if bad:
        raise ApiError(
            400,
            f"The entity key {key!r} contains {bad[0]!r}; keys must not contain / \\ # ? or "
            "control characters. Choose another key.",
        )
    return f"@{name.lower()}@{key}"


def entity_id_json(instance_id: str) -> dict[str, str]:
    """``{"key", "name"}`` of an entity's instance id (split at the first ``@`` after the start).

    Example:
        >>> entity_id_json("@counter@a@b")
        {'key': 'a@b', 'name': 'counter'}
    """
    name, _, key = instance_id[1:].partition("@")
    return {"key": key, "name": name}


def _entity_of(request: web.Request) -> str:
    check_hub(request)
    return entity_instance_id(request.match_info["entityName"], request.match_info["entityKey"])


async def get_entity(request: web.Request) -> web.Response:
    """GET /entities/{name}/{key}: the entity's state."""
    instance_id = _entity_of(request)
    response = await request.app[SIDECAR].call(
        "GetEntity", pb.GetEntityRequest(instanceId=instance_id, includeState=True)
    )
    if not response.exists or not response.entity.HasField("serializedState"):
        raise ApiError(404, f"No entity {instance_id!r} with a state in this task hub.")
    return json_response(parse_json(response.entity.serializedState.value))


async def signal_entity(request: web.Request) -> web.Response:
    """POST /entities/{name}/{key}?op=: signal an operation (the body is its input)."""
    return await _signal(request, request.query.get("op", ""))


async def delete_entity(request: web.Request) -> web.Response:
    """DELETE /entities/{name}/{key}: signal the ``delete`` operation."""
    return await _signal(request, "delete")


async def _signal(request: web.Request, operation: str) -> web.Response:
    instance_id = _entity_of(request)
    if request.content_type == "application/json":
        data = await json_body(request, require_json_type=True)
    else:
        raw = await request.read()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(400, "The body must be UTF-8 text (or JSON).") from None
        data = json.dumps(text) if text else None
    signal = pb.SignalEntityRequest(
        instanceId=instance_id,
        name=operation,
        requestId=str(uuid.uuid4()),
        requestTime=_now(),
    )
    if data is not None:
        signal.input.CopyFrom(wrappers_pb2.StringValue(value=data))
    await request.app[SIDECAR].call("SignalEntity", signal)
    return accepted()


async def list_entities(request: web.Request) -> web.Response:
    """GET /entities[/{name}]: the entities, one page at a time."""
    check_hub(request)
    name = request.match_info.get("entityName")
    prefix = entity_instance_id(name, "") if name else "@"
    fetch_state = query_bool(request, "fetchState", False)
    query = pb.EntityQuery(
        instanceIdStartsWith=wrappers_pb2.StringValue(value=prefix),
        includeState=fetch_state,
        includeTransient=False,
        pageSize=wrappers_pb2.Int32Value(value=query_int(request, "top") or DEFAULT_PAGE_SIZE),
        lastModifiedTo=query_timestamp(request, "lastOperationTimeTo") or _now(),
    )
    modified_from = query_timestamp(request, "lastOperationTimeFrom")
    if modified_from is not None:
        query.lastModifiedFrom.CopyFrom(modified_from)
    token = continuation_token(request)
    if token is not None:
        query.continuationToken.CopyFrom(token)
    response = await request.app[SIDECAR].call(
        "QueryEntities", pb.QueryEntitiesRequest(query=query)
    )
    items = []
    for entity in response.entities:
        item = {
            "entityId": entity_id_json(entity.instanceId),
            "lastOperationTime": format_precise(entity.lastModifiedTime),
        }
        if fetch_state:
            state = entity.serializedState
            item["state"] = parse_json(state.value) if entity.HasField("serializedState") else None
        items.append(item)
    return page_response(items, request, response)


async def _no_such_method(request: web.Request) -> web.Response:
    raise ApiError(
        404,
        f"{request.method} is not served on {request.path}: entities are read with GET, "
        "signalled with POST ?op=..., deleted with DELETE.",
    )


def _now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(datetime.now(UTC))
    return stamp
