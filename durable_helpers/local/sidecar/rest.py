"""A lean Azure Storage REST client (tables, blobs, queues) for the sidecar's hot path.

The Azure SDK spends about 2 ms of Python CPU per request (pipeline policies, ``requests``);
the sidecar makes thousands of small requests, so it talks REST itself over keep-alive
``http.client`` connections with Shared Key signing (about 0.3 ms per request). It works against
Azurite and real accounts that have an account key (or a SAS token). Entities are the plain
dicts that :mod:`durable_helpers.schema` builds (str, bool, int -> Edm.Int32, float, datetime ->
Edm.DateTime, ``azure.data.tables.EntityProperty`` for explicit types).

Example:
    >>> client = RestStorage.from_connection_string(conn)  # doctest: +SKIP
    >>> ops = [("upsert", {"PartitionKey": "a", "RowKey": "b"})]
    >>> client.table_batch("H", ops)  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import logging
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import formatdate
from typing import Any, ClassVar
from urllib.parse import quote, urlencode, urlparse
from xml.etree import ElementTree

from durable_helpers.storage import mask_secrets, parse_connection_string, resolve_connection

log = logging.getLogger(__name__)

API_VERSION = "2021-12-02"
TABLE_API_VERSION = "2019-02-02"
UTC = timezone.utc  # noqa: UP017


class StorageError(RuntimeError):
    """A storage request failed: ``status`` is the HTTP status, ``code`` the service error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code


#: How the message of a StorageUnreachableError begins (the HTTP API passes such messages on).
STORAGE_UNREACHABLE = "The task hub's storage is unreachable"


class StorageUnreachableError(ConnectionError):
    """No connection to a storage endpoint after retries (Azurite stopped, wrong endpoint)."""


# ------------------------------------------------------------------------------------------
# Entity (de)serialization: OData JSON with minimal metadata
# ------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------
# Connection pool and signing
# ------------------------------------------------------------------------------------------


@dataclass
class _Endpoint:
    scheme: str
    host: str
    port: int
    base_path: str  # "" for real accounts, "/devstoreaccount1" for path-style (emulator)


class RestStorage:
    """Tables, queues and blobs of one account over raw REST with Shared Key (or SAS).

    Thread-safe: every thread gets its own keep-alive connection per service.

    Example:
        >>> s = RestStorage.from_connection_string(None)  # local Azurite defaults
        >>> s.account
        'devstoreaccount1'
    """

    def __init__(
        self,
        account: str,
        key: str | None,
        endpoints: Mapping[str, str],
        sas: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.account = account
        self._key = base64.b64decode(key) if key else None
        self._sas = sas.lstrip("?") if sas else None
        if self._key is None and self._sas is None:
            raise ValueError(
                "The sidecar needs an account key or a SAS token in the connection string "
                "(AccountKey=... or SharedAccessSignature=...); token credentials are not "
                "supported for the local task hub."
            )
        self._endpoints: dict[str, _Endpoint] = {}
        for service, url in endpoints.items():
            parsed = urlparse(url)
            port = parsed.port or (443 if parsed.scheme == "https" else 80)
            self._endpoints[service] = _Endpoint(
                parsed.scheme, parsed.hostname or "", port, parsed.path.rstrip("/")
            )
        self._local = threading.local()
        self._timeout = timeout

    @classmethod
    def from_connection_string(cls, connection: str | None) -> RestStorage:
        """Build from a connection string (None: ``AzureWebJobsStorage``, else local Azurite).

        Example:
            >>> RestStorage.from_connection_string("UseDevelopmentStorage=true").account
            'devstoreaccount1'
        """
        value = resolve_connection(connection)
        parts = parse_connection_string(value)
        account = parts.get("AccountName", "")
        protocol = parts.get("DefaultEndpointsProtocol", "https")
        suffix = parts.get("EndpointSuffix", "core.windows.net")
        endpoints = {}
        for service, key in (
            ("blob", "BlobEndpoint"),
            ("queue", "QueueEndpoint"),
            ("table", "TableEndpoint"),
        ):
            endpoints[service] = parts.get(key) or f"{protocol}://{account}.{service}.{suffix}"
        if not account:
            host = urlparse(endpoints["table"]).hostname or ""
            account = host.split(".")[0]
        return cls(account, parts.get("AccountKey"), endpoints, parts.get("SharedAccessSignature"))

    def __repr__(self) -> str:
        return f"RestStorage(account={self.account!r})"

    # -- plumbing ------------------------------------------------------------------------

    def _conn(self, service: str) -> http.client.HTTPConnection:
        conns = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        conn = conns.get(service)
        if conn is None:
            ep = self._endpoints[service]
            cls = (
                http.client.HTTPSConnection if ep.scheme == "https" else http.client.HTTPConnection
            )
            conn = cls(ep.host, ep.port, timeout=self._timeout)
            conns[service] = conn
        return conn

    def _drop_conn(self, service: str) -> None:
        conns = getattr(self._local, "conns", {})
        conn = conns.pop(service, None)
        if conn is not None:
            conn.close()

    def _sign(
        self,
        service: str,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: dict[str, str],
    ) -> None:
        if self._key is None:
            return
        canonical_resource = f"/{self.account}{path}"
        if service == "table":
            if "comp" in query:
                canonical_resource += f"?comp={query['comp']}"
            to_sign = "\n".join(
                [
                    method,
                    headers.get("Content-MD5", ""),
                    headers.get("Content-Type", ""),
                    headers["x-ms-date"],
                    canonical_resource,
                ]
            )
        else:
            for name in sorted(query):
                canonical_resource += f"\n{name.lower()}:{query[name]}"
            xms = "".join(
                f"{k.lower()}:{v}\n"
                for k, v in sorted(headers.items())
                if k.lower().startswith("x-ms-")
            )
            length = headers.get("Content-Length", "")
            to_sign = (
                "\n".join(
                    [
                        method,
                        headers.get("Content-Encoding", ""),
                        headers.get("Content-Language", ""),
                        "" if length == "0" else length,
                        headers.get("Content-MD5", ""),
                        headers.get("Content-Type", ""),
                        "",
                        headers.get("If-Modified-Since", ""),
                        headers.get("If-Match", ""),
                        headers.get("If-None-Match", ""),
                        headers.get("If-Unmodified-Since", ""),
                        headers.get("Range", ""),
                    ]
                )
                + "\n"
                + xms
                + canonical_resource
            )
        digest = hmac.new(self._key, to_sign.encode("utf-8"), hashlib.sha256).digest()
        headers["Authorization"] = f"SharedKey {self.account}:{base64.b64encode(digest).decode()}"

    def request(
        self,
        service: str,
        method: str,
        resource: str,
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        ok: Sequence[int] = (200, 201, 202, 204),
    ) -> tuple[int, dict[str, str], bytes]:
        """Send one signed request; returns (status, lower-cased headers, body).

        ``resource`` is the path after the account (e.g. ``/HubHistory()``); raises StorageError
        for a status not in ``ok``.
        """
        ep = self._endpoints[service]
        path = ep.base_path + resource
        query = dict(query or {})
        hdrs = {
            "x-ms-date": formatdate(usegmt=True),
            "x-ms-version": TABLE_API_VERSION if service == "table" else API_VERSION,
            "Content-Length": str(len(body)),
        }
        if headers:
            hdrs.update(headers)
        url = quote(path, safe="/()=,$@:!*'")
        self._sign(service, method, url, query, hdrs)
        params = dict(query)
        if self._sas:
            url_query = urlencode(params, quote_via=quote) if params else ""
            url_query = f"{url_query}&{self._sas}" if url_query else self._sas
        else:
            url_query = urlencode(params, quote_via=quote) if params else ""
        if url_query:
            url += "?" + url_query
        for attempt in range(3):
            conn = self._conn(service)
            try:
                conn.request(method, url, body=body, headers=hdrs)
                response = conn.getresponse()
                data = response.read()
                break
            except (http.client.HTTPException, OSError) as error:
                self._drop_conn(service)
                if attempt == 2:
                    raise StorageUnreachableError(
                        f"{STORAGE_UNREACHABLE}: {service} endpoint "
                        f"{ep.scheme}://{ep.host}:{ep.port} ({type(error).__name__}: {error}). "
                        "Is Azurite running? 'python -m durable_helpers.local status' tells."
                    ) from error
        status = response.status
        rheaders = {k.lower(): v for k, v in response.getheaders()}
        if status not in ok:
            code, message = _error_details(data, rheaders)
            raise StorageError(status, code, mask_secrets(message))
        return status, rheaders, data

    # -- tables --------------------------------------------------------------------------

    _JSON: ClassVar[dict[str, str]] = {
        "Accept": "application/json;odata=minimalmetadata",
        "Content-Type": "application/json",
        "DataServiceVersion": "3.0;NetFx",
        "MaxDataServiceVersion": "3.0;NetFx",
    }

    def create_table(self, table: str) -> None:
        """Create a table; an existing one is fine."""
        body = json.dumps({"TableName": table}).encode()
        self.request(
            "table",
            "POST",
            "/Tables",
            headers={**self._JSON, "Prefer": "return-no-content"},
            body=body,
            ok=(201, 204, 409),
        )

    def upsert_entity(self, table: str, entity: Mapping[str, Any], *, merge: bool = False) -> None:
        """Insert-or-replace (or insert-or-merge) one entity."""
        body = json.dumps(entity_to_wire(entity)).encode()
        pk, rk = _esc(entity["PartitionKey"]), _esc(entity["RowKey"])
        raw = f"/{table}(PartitionKey='{pk}',RowKey='{rk}')"
        self.request("table", "MERGE" if merge else "PUT", raw, headers=self._JSON, body=body)

    def insert_entity(self, table: str, entity: Mapping[str, Any]) -> bool:
        """Insert one entity; False (and no change) when it already exists."""
        body = json.dumps(entity_to_wire(entity)).encode()
        status, _, _ = self.request(
            "table",
            "POST",
            f"/{table}",
            headers={**self._JSON, "Prefer": "return-no-content"},
            body=body,
            ok=(201, 204, 409),
        )
        return status != 409

    def get_entity(self, table: str, pk: str, rk: str) -> dict[str, Any] | None:
        """One entity, or None when it does not exist."""
        raw = f"/{table}(PartitionKey='{_esc(pk)}',RowKey='{_esc(rk)}')"
        status, _, data = self.request("table", "GET", raw, headers=self._JSON, ok=(200, 404))
        if status == 404:
            return None
        return entity_from_wire(json.loads(data))

    def delete_entity(self, table: str, pk: str, rk: str) -> None:
        """Delete one entity; a missing one is fine."""
        raw = f"/{table}(PartitionKey='{_esc(pk)}',RowKey='{_esc(rk)}')"
        self.request("table", "DELETE", raw, headers={**self._JSON, "If-Match": "*"}, ok=(204, 404))

    def query_entities(
        self,
        table: str,
        filter: str | None = None,
        select: Sequence[str] | None = None,
        top: int | None = None,
        continuation: tuple[str, str] | None = None,
    ) -> tuple[list[dict[str, Any]], tuple[str, str] | None]:
        """One page of a query: (entities, continuation or None)."""
        query: dict[str, str] = {}
        if filter:
            query["$filter"] = filter
        if select:
            query["$select"] = ",".join(select)
        if top:
            query["$top"] = str(top)
        if continuation:
            query["NextPartitionKey"], query["NextRowKey"] = continuation
        _, headers, data = self.request(
            "table", "GET", f"/{table}()", query=query, headers=self._JSON
        )
        items = [entity_from_wire(e) for e in json.loads(data).get("value", [])]
        npk = headers.get("x-ms-continuation-nextpartitionkey")
        if npk:
            return items, (npk, headers.get("x-ms-continuation-nextrowkey", ""))
        return items, None

    def query_all(
        self, table: str, filter: str | None = None, select: Sequence[str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every entity matching ``filter`` (follows continuations)."""
        token = None
        while True:
            items, token = self.query_entities(table, filter, select, continuation=token)
            yield from items
            if token is None:
                return

    def table_batch(self, table: str, operations: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        """One entity-group transaction (same PartitionKey, at most 100 operations).

        Operations: ``("upsert", entity)`` (insert-or-replace), ``("merge", entity)``
        (insert-or-merge), ``("delete", entity)`` (needs PartitionKey/RowKey).
        """
        if not operations:
            return
        if len(operations) > 100:
            raise ValueError("an entity-group transaction holds at most 100 operations")
        ep = self._endpoints["table"]
        batch = f"batch_{uuid.uuid4()}"
        changeset = f"changeset_{uuid.uuid4()}"
        parts = [f"--{batch}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n"]
        base = f"{ep.scheme}://{ep.host}:{ep.port}{ep.base_path}"
        for index, (op, entity) in enumerate(operations):
            pk, rk = entity["PartitionKey"], entity["RowKey"]
            url = base + quote(
                f"/{table}(PartitionKey='{_esc(pk)}',RowKey='{_esc(rk)}')", safe="/()=,$@:!*'"
            )
            if op == "delete":
                method, extra, body = "DELETE", "If-Match: *\r\n", ""
            else:
                method = "MERGE" if op == "merge" else "PUT"
                extra = ""
                body = json.dumps(entity_to_wire(entity))
            parts.append(
                f"--{changeset}\r\nContent-Type: application/http\r\n"
                f"Content-Transfer-Encoding: binary\r\n\r\n"
                f"{method} {url} HTTP/1.1\r\nContent-ID: {index + 1}\r\n"
                f"Accept: application/json;odata=minimalmetadata\r\n"
                f"Content-Type: application/json\r\nDataServiceVersion: 3.0;\r\n{extra}\r\n"
                f"{body}\r\n"
            )
        parts.append(f"--{changeset}--\r\n--{batch}--\r\n")
        payload = "".join(parts).encode("utf-8")
        _, _, data = self.request(
            "table",
            "POST",
            "/$batch",
            headers={
                "Content-Type": f"multipart/mixed; boundary={batch}",
                "Accept": "application/json;odata=minimalmetadata",
                "DataServiceVersion": "3.0;",
                "MaxDataServiceVersion": "3.0;NetFx",
            },
            body=payload,
            ok=(202,),
        )
        text = data.decode("utf-8", "replace")
        for line in text.splitlines():
            if line.startswith("HTTP/1.1 "):
                status = int(line.split()[1])
                if status >= 300:
                    raise StorageError(status, "BatchFailed", _batch_error(text))

    # -- queues --------------------------------------------------------------------------

    def create_queue(self, queue: str) -> None:
        """Create a queue; an existing one is fine."""
        self.request("queue", "PUT", f"/{queue}", ok=(201, 204, 409))

    # -- blobs ---------------------------------------------------------------------------

    def create_container(self, container: str) -> None:
        """Create a blob container; an existing one is fine."""
        self.request("blob", "PUT", f"/{container}", query={"restype": "container"}, ok=(201, 409))

    def put_blob(
        self, container: str, name: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> None:
        """Upload a block blob in one request."""
        self.request(
            "blob",
            "PUT",
            f"/{container}/{name}",
            body=data,
            headers={"x-ms-blob-type": "BlockBlob", "Content-Type": content_type},
            ok=(201,),
        )

    def create_append_blob(self, container: str, name: str) -> None:
        """Create (or truncate) an empty append blob."""
        self.request(
            "blob",
            "PUT",
            f"/{container}/{name}",
            headers={"x-ms-blob-type": "AppendBlob"},
            ok=(201,),
        )

    def append_block(self, container: str, name: str, data: bytes) -> None:
        """Append one block (at most 4 MiB) to an append blob; atomic."""
        self.request(
            "blob",
            "PUT",
            f"/{container}/{name}",
            query={"comp": "appendblock"},
            body=data,
            ok=(201,),
        )

    def get_blob(self, container: str, name: str) -> bytes | None:
        """A blob's content, or None if it does not exist."""
        status, _, data = self.request("blob", "GET", f"/{container}/{name}", ok=(200, 404))
        return None if status == 404 else data

    def delete_blob(self, container: str, name: str) -> None:
        """Delete a blob; a missing one is fine."""
        self.request("blob", "DELETE", f"/{container}/{name}", ok=(202, 404))

    def list_blobs(self, container: str, prefix: str = "") -> list[str]:
        """Names of the blobs in ``container`` that start with ``prefix``."""
        names: list[str] = []
        marker = ""
        while True:
            query = {"restype": "container", "comp": "list"}
            if prefix:
                query["prefix"] = prefix
            if marker:
                query["marker"] = marker
            status, _, data = self.request(
                "blob", "GET", f"/{container}", query=query, ok=(200, 404)
            )
            if status == 404:
                return names
            root = ElementTree.fromstring(data)
            names.extend(el.text or "" for el in root.iter("Name"))
            marker = root.findtext("NextMarker") or ""
            if not marker:
                return names


def _esc(value: str) -> str:
    return value.replace("'", "''")


def _error_details(data: bytes, headers: Mapping[str, str]) -> tuple[str, str]:
    code = headers.get("x-ms-error-code", "")
    text = data.decode("utf-8", "replace")
    message = text[:500]
    try:
        payload = json.loads(text)
        err = payload.get("odata.error", payload)
        code = code or err.get("code", "")
        msg = err.get("message", "")
        message = msg.get("value", "") if isinstance(msg, dict) else str(msg)
    except (ValueError, AttributeError):
        pass
    return code or "Error", message


def _batch_error(text: str) -> str:
    start = text.find("{")
    return text[start : start + 400] if start >= 0 else text[:400]
