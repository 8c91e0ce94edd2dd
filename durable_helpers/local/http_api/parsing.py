"""Reading an HTTP API request: query parameters and bodies, checked, with clear 400s.

Owns the parsing of every query parameter type the routes take (booleans, bounded integers,
ISO-8601 times, runtime status lists, a ``reason``), of the paging header, and of JSON bodies
(valid JSON, optionally ``application/json``; NaN and Infinity refused). Each error says what
was expected.

May call: :mod:`durable_helpers.local.status_payload` (status names), :mod:`~.context`.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from aiohttp import web
from google.protobuf import timestamp_pb2, wrappers_pb2

from durable_helpers.local.http_api.context import ApiError
from durable_helpers.local.status_payload import parse_runtime_statuses

UTC = timezone.utc  # noqa: UP017 - datetime.UTC needs Python 3.11
#: The header that carries a list's paging token, both ways.
CONTINUATION_HEADER = "x-ms-continuation-token"


def query_bool(request: web.Request, name: str, default: bool) -> bool:
    """A true/false (or 1/0) query parameter; ``default`` when absent."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise ApiError(400, f"Query parameter {name!r} must be true or false, not {raw!r}.")


def query_int(request: web.Request, name: str, maximum: int = 2**31 - 1) -> int | None:
    """An integer query parameter from 0 to ``maximum``; None when absent."""
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


def query_timestamp(request: web.Request, name: str) -> timestamp_pb2.Timestamp | None:
    """An ISO-8601 time query parameter (naive means UTC); None when absent."""
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


def query_statuses(request: web.Request) -> list[int]:
    """The ``runtimeStatus`` parameters (each a comma list) as protobuf statuses."""
    values: list[int] = []
    for raw in request.query.getall("runtimeStatus", []):
        try:
            values += parse_runtime_statuses(raw)
        except ValueError as error:
            raise ApiError(400, str(error)) from None
    return values


def query_reason(request: web.Request) -> wrappers_pb2.StringValue | None:
    """The ``reason`` query parameter, as the sidecar takes it."""
    reason = request.query.get("reason")
    return wrappers_pb2.StringValue(value=reason) if reason is not None else None


def continuation_token(request: web.Request) -> wrappers_pb2.StringValue | None:
    """The paging token a list request sent (None for the first page)."""
    token = request.headers.get(CONTINUATION_HEADER)
    if token and token != "null":
        return wrappers_pb2.StringValue(value=token)
    return None


async def json_body(request: web.Request, *, require_json_type: bool) -> str | None:
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
