"""Large payloads: when a property goes to a blob, the blob's name and content, and back.

Owns the provider's large-message rules for the ``{hub}-largemessages`` container: the 60 KiB
UTF-16 threshold, gzip content, History ``<Prop>BlobName`` columns and Instances blob URLs
(``offload_*`` to write, ``inline_large_payloads`` to read). Does no I/O itself: the caller
uploads and passes a ``fetch``. Calls ``keys`` and ``values``.
"""

from __future__ import annotations

import copy
import gzip
import json
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from durable_helpers.schema.keys import escape_partition_key, unescape_partition_key
from durable_helpers.schema.values import is_null

#: String properties the provider moves to a blob when too large (UTF-16 byte count).
LARGE_PAYLOAD_PROPERTIES: tuple[str, ...] = (
    "Name",
    "Input",
    "Result",
    "Output",
    "Reason",
    "Details",
    "Correlation",
    "FailureDetails",
    "Tags",
)
#: A property is offloaded when its UTF-16 byte count is greater than this (60 KiB).
LARGE_PAYLOAD_THRESHOLD = 61440
BLOB_NAME_SUFFIX = "BlobName"


def utf16_size(text: str) -> int:
    """Bytes of ``text`` in UTF-16 (what the provider compares with the threshold).

    Example:
        >>> utf16_size("abc")
        6
    """
    return len(text.encode("utf-16-le", "surrogatepass"))


def is_large(text: Any) -> bool:
    """True if a string property is over :data:`LARGE_PAYLOAD_THRESHOLD` UTF-16 bytes.

    Example:
        >>> is_large("x" * 30720), is_large("x" * 30721)
        (False, True)
    """
    # 2 bytes per code unit: only strings longer than threshold/4 can possibly be large.
    return (
        isinstance(text, str)
        and len(text) * 2 > LARGE_PAYLOAD_THRESHOLD // 2
        and (utf16_size(text) > LARGE_PAYLOAD_THRESHOLD)
    )


def compress_payload(text: str) -> bytes:
    """gzip the UTF-8 bytes of ``text`` (blob content in ``{h}-largemessages``).

    Example:
        >>> decompress_payload(compress_payload("hi"))
        'hi'
    """
    return gzip.compress(text.encode("utf-8"))


def decompress_payload(data: bytes) -> str:
    """gunzip blob content back to text (plain content is accepted too).

    Example:
        >>> decompress_payload(b"plain")
        'plain'
    """
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return data.decode("utf-8-sig")


def history_blob_name(
    instance_id: str, row_key_: str, event_type: str, prop: str, random_hex: str | None = None
) -> str:
    """Blob name of an offloaded History property (the provider's naming since May 2023).

    Example:
        >>> history_blob_name("a/b", "000000000000000E", "ExecutionCompleted", "Result", "1A2B3C4D")
        'a^0b/history-000000000000000E-ExecutionCompleted-1A2B3C4D-Result.json.gz'
    """
    rand = random_hex if random_hex is not None else secrets.token_hex(4).upper()
    return (
        f"{escape_partition_key(instance_id)}/history-{row_key_}-{event_type}-{rand}-{prop}.json.gz"
    )


def offload_history_payloads(
    entity: Mapping[str, Any], *, random_hex: str | None = None
) -> tuple[dict[str, Any], list[tuple[str, bytes]]]:
    """Move oversized properties of a History entity to blobs, as the provider does.

    Returns ``(entity, blobs)``: the entity with each large property (of
    :data:`LARGE_PAYLOAD_PROPERTIES`) set to ``""`` plus ``<Prop>BlobName``, and the list of
    ``(blob_name, gzip_bytes)`` to upload into ``{h}-largemessages``. Small entities come back
    unchanged with an empty list.

    Example:
        >>> from datetime import datetime, timezone
        >>> from durable_helpers.schema import history_entity
        >>> e = history_entity("id", "ex", 1, "ExecutionStarted", event_id=-1, is_played=True,
        ...                    timestamp=datetime(2026, 1, 1, tzinfo=timezone.utc),
        ...                    Input='"' + "x" * 40000 + '"')
        >>> e2, blobs = offload_history_payloads(e, random_hex="00000000")
        >>> e2["Input"], e2["InputBlobName"], len(blobs)
        ('', 'id/history-0000000000000001-ExecutionStarted-00000000-Input.json.gz', 1)
    """
    out = dict(entity)
    blobs: list[tuple[str, bytes]] = []
    instance_id = unescape_partition_key(out["PartitionKey"])
    for prop in LARGE_PAYLOAD_PROPERTIES:
        value = out.get(prop)
        if not is_large(value):
            continue
        name = history_blob_name(
            instance_id, out["RowKey"], out.get("EventType", ""), prop, random_hex
        )
        blobs.append((name, compress_payload(value)))
        out[prop] = ""
        out[prop + BLOB_NAME_SUFFIX] = name
    return out, blobs


def blob_url(container_url: str, blob_name: str) -> str:
    """The URL of a blob in a container (``/`` kept, other special characters percent-encoded).

    Example:
        >>> blob_url("http://127.0.0.1:10000/devstoreaccount1/h-largemessages", "a/b.json.gz")
        'http://127.0.0.1:10000/devstoreaccount1/h-largemessages/a/b.json.gz'
    """
    from urllib.parse import quote

    return container_url.rstrip("/") + "/" + quote(blob_name, safe="/")


def offload_instance_payloads(
    entity: Mapping[str, Any],
    container_url: str,
    *,
    blob_names: Mapping[str, str] | None = None,
    random_hex: str | None = None,
) -> tuple[dict[str, Any], list[tuple[str, bytes]]]:
    """Move oversized properties of an Instances entity to blobs; the column gets the blob URL.

    The provider points the Instances row at the blob already written for the History row (e.g.
    ExecutionStarted's ``InputBlobName``): pass those in ``blob_names`` (property -> blob name) and
    nothing new is uploaded. Otherwise a blob ``{escapedId}/instance-{Prop}-{8 hex}.json.gz`` is
    returned for upload (our own name; readers only follow the URL).

    Example:
        >>> from durable_helpers.schema import instance_entity
        >>> e = instance_entity("id", Output='"' + "y" * 40000 + '"')
        >>> e2, blobs = offload_instance_payloads(e, "http://h/c", random_hex="00000000")
        >>> e2["Output"], len(blobs)
        ('http://h/c/id/instance-Output-00000000.json.gz', 1)
    """
    out = dict(entity)
    blobs: list[tuple[str, bytes]] = []
    escaped = out["PartitionKey"]
    for prop in LARGE_PAYLOAD_PROPERTIES:
        value = out.get(prop)
        if not is_large(value):
            continue
        name = (blob_names or {}).get(prop)
        if name is None:
            rand = random_hex if random_hex is not None else secrets.token_hex(4).upper()
            name = f"{escaped}/instance-{prop}-{rand}.json.gz"
            blobs.append((name, compress_payload(value)))
        out[prop] = blob_url(container_url, name)
    return out, blobs


def blob_name_from_url(url: str, container: str) -> str | None:
    """The blob name inside ``container`` that a blob URL points at, or None if it does not.

    Only blobs of the given container are followed (a stored URL never sends us elsewhere).

    Example:
        >>> blob_name_from_url("https://a.blob.core.windows.net/h-largemessages/x%5E0/b.json.gz",
        ...                    "h-largemessages")
        'x^0/b.json.gz'
    """
    from urllib.parse import unquote, urlparse

    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return None
    path = urlparse(url).path
    marker = f"/{container}/"
    at = path.find(marker)
    if at < 0:
        return None
    name = unquote(path[at + len(marker) :])
    return name or None


def _message_blob_input(text: str) -> str | None:
    """The orchestration input inside a queue-message blob (``...-ExecutionStarted.json.gz``)."""
    try:
        message = json.loads(text)
    except ValueError:
        return None
    event = (message.get("TaskMessage") or {}).get("Event") if isinstance(message, dict) else None
    return event.get("Input") if isinstance(event, dict) else None


def inline_large_payloads(
    entity: Mapping[str, Any],
    fetch: Callable[[str], bytes | None],
    *,
    container: str | None = None,
) -> dict[str, Any]:
    """Replace offloaded properties with their (gunzipped) blob content.

    History rows: each ``<Prop>BlobName`` column is fetched into ``<Prop>`` (the BlobName column
    is kept). Instances rows: a payload column holding a blob URL of ``container`` is fetched (the
    input of a queue-message blob ``...-ExecutionStarted.json.gz`` is taken from the message).
    ``fetch(blob_name)`` returns the blob bytes, or None when the blob is gone (value left as is).

    Example:
        >>> blobs = {"id/history-x-Input.json.gz": compress_payload('"big"')}
        >>> inline_large_payloads({"Input": "", "InputBlobName": "id/history-x-Input.json.gz"},
        ...                       blobs.get)["Input"]
        '"big"'
    """
    out: dict[str, Any] | None = None
    for name, value in entity.items():
        if name.endswith(BLOB_NAME_SUFFIX) and isinstance(value, str) and value:
            prop = name[: -len(BLOB_NAME_SUFFIX)]
            if prop not in LARGE_PAYLOAD_PROPERTIES or not is_null(entity.get(prop)):
                continue
            data = fetch(value)
            if data is not None:
                out = out if out is not None else _writable_copy(entity)
                out[prop] = decompress_payload(data)
    if container:
        for prop in LARGE_PAYLOAD_PROPERTIES:
            value = entity.get(prop)
            if not (isinstance(value, str) and value.startswith("http") and ".json" in value):
                continue
            blob = blob_name_from_url(value, container)
            if blob is None:
                continue
            data = fetch(blob)
            if data is None:
                continue
            text = decompress_payload(data)
            if "/message-" in blob and blob.endswith("ExecutionStarted.json.gz"):
                text = _message_blob_input(text) or text
            out = out if out is not None else _writable_copy(entity)
            out[prop] = text
    if out is None:
        return entity if isinstance(entity, dict) else dict(entity)
    return out


def _writable_copy(entity: Mapping[str, Any]) -> dict[str, Any]:
    """A shallow copy that keeps a TableEntity's metadata (its table Timestamp lives there)."""
    return copy.copy(entity) if isinstance(entity, dict) else dict(entity)


def has_large_payloads(entity: Mapping[str, Any], container: str | None = None) -> bool:
    """True if the entity refers to blobs (``*BlobName`` columns, or blob URLs in ``container``).

    Example:
        >>> has_large_payloads({"Input": "", "InputBlobName": "x"})
        True
    """
    for name, value in entity.items():
        if name.endswith(BLOB_NAME_SUFFIX) and value:
            return True
        if (
            container
            and isinstance(value, str)
            and value.startswith("http")
            and f"/{container}/" in value
        ):
            return True
    return False
