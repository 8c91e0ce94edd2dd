"""The ``/orchestrators`` routes of the HTTP API: start an orchestration (and optionally wait).

Owns ``POST /orchestrators/{name}[/{instanceId}]``: 202 with the check-status payload (the body,
JSON, is the input); with ``?timeout=&pollingInterval=`` (seconds) it waits and answers 200 with
the output when the instance finishes in time. And ``add_routes``.

May call: the sidecar client (through the app), :mod:`~.context`, :mod:`~.parsing`,
:mod:`~.responses`, :mod:`durable_helpers.local.status_payload`.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from aiohttp import web
from durabletask.internal import orchestrator_service_pb2 as pb
from google.protobuf import wrappers_pb2

from durable_helpers.local.http_api.context import SIDECAR, check_hub
from durable_helpers.local.http_api.parsing import json_body, query_int
from durable_helpers.local.http_api.responses import check_status_response, json_response
from durable_helpers.local.status_payload import TERMINAL, status_name, status_payload


def add_routes(router: web.UrlDispatcher, base: str) -> None:
    """Serve the ``/orchestrators`` routes under ``base``."""
    router.add_post(f"{base}/orchestrators/{{functionName}}", start_orchestration)
    router.add_post(f"{base}/orchestrators/{{functionName}}/{{instanceId}}", start_orchestration)


async def start_orchestration(request: web.Request) -> web.Response:
    """POST /orchestrators/{name}[/{instanceId}]: start it; the body (JSON) is the input."""
    check_hub(request)
    name = request.match_info["functionName"]
    instance_id = request.match_info.get("instanceId") or ""
    timeout = query_int(request, "timeout")
    interval = query_int(request, "pollingInterval") or 1
    data = await json_body(request, require_json_type=False)
    create = pb.CreateInstanceRequest(name=name, instanceId=instance_id or _new_id())
    if data is not None:
        create.input.CopyFrom(wrappers_pb2.StringValue(value=data))
    sidecar = request.app[SIDECAR]
    response = await sidecar.call("StartInstance", create)
    started = response.instanceId or create.instanceId
    if timeout:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = await sidecar.state(started)
            if state is not None and status_name(state.orchestrationStatus) in TERMINAL:
                payload = status_payload(state)
                return json_response(payload["output"], 200)
            await asyncio.sleep(min(interval, max(0.0, deadline - time.monotonic())))
    return check_status_response(request, started)


def _new_id() -> str:
    return uuid.uuid4().hex
