"""Table entities as OData JSON (minimal metadata): the wire form of the sidecar's REST client.

Entities are the plain dicts that :mod:`durable_helpers.schema` builds (str, bool, int ->
Edm.Int32, float, datetime -> Edm.DateTime, ``azure.data.tables.EntityProperty`` for explicit
types); ``entity_to_wire`` writes them, ``entity_from_wire`` reads them back.

May call: the standard library only.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

UTC = timezone.utc  # noqa: UP017


def _format_datetime(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def parse_datetime(text: str) -> datetime:
    """Parse an OData/ISO-8601 UTC datetime with up to 7 fractional digits.

    Example:
        >>> parse_datetime("2026-01-02T03:04:05.1234567Z").microsecond
        123456
    """
    text = text.rstrip("Z")
    if "." in text:
        main, frac = text.split(".", 1)
        frac = (frac + "000000")[:6]
        text = f"{main}.{frac}"
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def entity_to_wire(entity: Mapping[str, Any]) -> dict[str, Any]:
    """A schema entity dict as the OData JSON body of the Table service.

    Example:
        >>> entity_to_wire({"PartitionKey": "p", "RowKey": "r", "EventId": 1})["EventId"]
        1
    """
    out: dict[str, Any] = {}
    for name, value in entity.items():
        if type(value) is str:  # most columns, and every one of a row already in wire form
            out[name] = value
            continue
        if value is None:
            continue
        edm = getattr(value, "edm_type", None)
        if edm is not None:  # azure.data.tables.EntityProperty
            raw = value.value
            type_name = str(getattr(edm, "value", edm))
            if type_name == "Edm.Int64":
                out[name] = str(int(raw))
            elif type_name == "Edm.DateTime" and isinstance(raw, datetime):
                out[name] = _format_datetime(raw)
            else:
                out[name] = raw
            out[f"{name}@odata.type"] = type_name
        elif isinstance(value, bool):
            out[name] = value
        elif isinstance(value, int):
            if -(2**31) <= value < 2**31:
                out[name] = value
            else:
                out[name] = str(value)
                out[f"{name}@odata.type"] = "Edm.Int64"
        elif isinstance(value, float):
            out[name] = value
            out[f"{name}@odata.type"] = "Edm.Double"
        elif isinstance(value, datetime):
            out[name] = _format_datetime(value)
            out[f"{name}@odata.type"] = "Edm.DateTime"
        elif isinstance(value, bytes):
            out[name] = base64.b64encode(value).decode()
            out[f"{name}@odata.type"] = "Edm.Binary"
        else:
            out[name] = str(value)
    return out


def entity_from_wire(data: Mapping[str, Any]) -> dict[str, Any]:
    """An entity dict (datetimes, ints, bools, strings) from OData JSON with minimal metadata.

    Example:
        >>> entity_from_wire({"A": "2026-01-01T00:00:00Z", "A@odata.type": "Edm.DateTime"})["A"].day
        1
    """
    out: dict[str, Any] = {}
    for name, value in data.items():
        if "@odata." in name or name.startswith("odata."):
            if name == "odata.etag":
                out["odata.etag"] = value
            continue
        type_name = data.get(f"{name}@odata.type")
        if type_name == "Edm.DateTime" and isinstance(value, str):
            value = parse_datetime(value)
            if name == "Timestamp":
                pass
        elif type_name == "Edm.Int64" and isinstance(value, str):
            value = int(value)
        elif type_name == "Edm.Binary" and isinstance(value, str):
            value = base64.b64decode(value)
        elif name == "Timestamp" and isinstance(value, str):
            value = parse_datetime(value)
        out[name] = value
    return out
