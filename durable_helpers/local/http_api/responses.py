"""Writing an HTTP API response: JSON bodies, 202s, and every error as JSON.

Owns the JSON response helper, the bare 202, the check-status payload (202 with Location and
Retry-After), a page of a list (with its paging header), and the middleware that turns an
:class:`~.context.ApiError`, an aiohttp HTTP error (404 route, 405, 413) or an unexpected
exception into ``{"error": ..., "message": ...}`` (no stack trace ever reaches a client).

May call: :mod:`~.context`, :mod:`~.parsing` (the paging header's name).
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any

from aiohttp import web

from durable_helpers.local.http_api.context import ApiError, urls
from durable_helpers.local.http_api.parsing import CONTINUATION_HEADER
from durable_helpers.local.limits import MAX_REQUEST_BYTES
from durable_helpers.local.management_urls import WEBHOOK_PATH

log = logging.getLogger("durable_helpers.local.http_api")


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """``data`` as a JSON response."""
    return web.Response(
        text=json.dumps(data),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def accepted() -> web.Response:
    """A bare 202 Accepted."""
    return web.Response(status=202)


def check_status_response(request: web.Request, instance_id: str) -> web.Response:
    """202 with the instance's management URLs (Location: its status URL)."""
    links = urls(request, instance_id)
    headers = {"Location": links["statusQueryGetUri"], "Retry-After": "10"}
    return json_response(links, status=202, headers=headers)


def page_response(items: list[Any], request: web.Request, response: Any) -> web.Response:
    """One page of a list as JSON, with the paging header while more pages remain.

    ``response`` is the sidecar's answer (its ``continuationToken``); a token of ``"0"`` or the
    one the request sent means there is no next page.
    """
    asked = request.headers.get(CONTINUATION_HEADER)
    next_token = response.continuationToken.value if response.HasField("continuationToken") else ""
    headers = {}
    if next_token and next_token != "0" and next_token != asked:
        headers[CONTINUATION_HEADER] = next_token
    return json_response(items, 200, headers)


@web.middleware
async def errors_as_json(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every error as JSON ``{"error": ..., "message": ...}`` with a message saying what to do."""
    try:
        return await handler(request)
    except ApiError as error:
        return json_response(
            {"error": _reason_phrase(error.status), "message": error.message}, error.status
        )
    except web.HTTPException as error:
        if error.status < 400:
            raise
        message = {
            404: f"No such route: {request.method} {request.path}. The API lives under "
            f"{WEBHOOK_PATH}/instances, {WEBHOOK_PATH}/orchestrators/{{name}} and "
            f"{WEBHOOK_PATH}/entities.",
            405: f"{request.method} is not allowed on {request.path}.",
            413: f"The request body is larger than {MAX_REQUEST_BYTES // 2**20} MiB, the most a "
            "worker receives in one message. Store large data elsewhere (a blob, a file) and "
            "pass its address as the input.",
        }.get(error.status, error.reason)
        return json_response(
            {"error": error.reason, "message": message},
            error.status,
            {"Allow": error.headers["Allow"]} if "Allow" in error.headers else None,
        )
    except Exception:
        log.exception("unexpected error in %s %s", request.method, request.path)
        return json_response(
            {"error": "Internal Server Error", "message": "Unexpected error; see the gateway log."},
            500,
        )


def _reason_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
