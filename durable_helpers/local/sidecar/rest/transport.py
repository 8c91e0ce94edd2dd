"""The transport of the sidecar's REST client: connections, Shared Key signing, one request.

Owns the account's endpoints (from a connection string), a keep-alive ``http.client``
connection per thread and service, Shared Key signing (or a SAS token), ``request`` (three
attempts; ``StorageUnreachableError`` when the endpoint cannot be reached, ``StorageError``
for a status the caller does not accept) and the reading of a service's error body.

May call: :mod:`durable_helpers.storage` (connection strings, masking secrets).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any, Self
from urllib.parse import quote, urlencode, urlparse

from durable_helpers.storage import mask_secrets, parse_connection_string, resolve_connection

API_VERSION = "2021-12-02"
TABLE_API_VERSION = "2019-02-02"

#: Characters a resource path keeps unescaped in a request URL.
PATH_SAFE = "/()=,$@:!*'"


class StorageError(RuntimeError):
    """A storage request failed: ``status`` is the HTTP status, ``code`` the service error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:  # pickled whole (the row writer processes send it)
        return (type(self), (self.status, self.code, self.message))


#: How the message of a StorageUnreachableError begins (the HTTP API passes such messages on).
STORAGE_UNREACHABLE = "The task hub's storage is unreachable"


class StorageUnreachableError(ConnectionError):
    """No connection to a storage endpoint after retries (Azurite stopped, wrong endpoint)."""


@dataclass
class _Endpoint:
    scheme: str
    host: str
    port: int
    base_path: str  # "" for real accounts, "/devstoreaccount1" for path-style (emulator)


class Transport:
    """Signed requests to one account's services over keep-alive connections.

    Thread-safe: every thread gets its own keep-alive connection per service. Shared Key
    signing when the connection string has an account key, else the SAS token.

    Example:
        >>> Transport.from_connection_string(None).account  # local Azurite defaults
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
    def from_connection_string(cls, connection: str | None) -> Self:
        """Build from a connection string (None: ``AzureWebJobsStorage``, else local Azurite).

        Example:
            >>> Transport.from_connection_string("UseDevelopmentStorage=true").account
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
        return f"{type(self).__name__}(account={self.account!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its settings, without connections (for the row writer processes, which
        get it through a pipe: the key is in the pickle)."""
        endpoints = {
            service: f"{ep.scheme}://{ep.host}:{ep.port}{ep.base_path}"
            for service, ep in self._endpoints.items()
        }
        key = base64.b64encode(self._key).decode() if self._key else None
        return (type(self), (self.account, key, endpoints, self._sas, self._timeout))

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
        url = quote(path, safe=PATH_SAFE)
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
