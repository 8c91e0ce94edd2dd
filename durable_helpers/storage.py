"""Where a task hub lives: one storage account, reached by connection string or by credential.

This module turns what a user hands us (a connection string, an account URL plus a credential,
``UseDevelopmentStorage=true``, or nothing at all) into Azure SDK clients for tables, blobs and
queues, and it is the one place that masks secrets before anything is printed.

Example:
    >>> account = StorageAccount.from_connection("UseDevelopmentStorage=true")
    >>> account.name
    'devstoreaccount1'
    >>> "Eby8" in repr(account)
    False
"""

from __future__ import annotations

import base64
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlparse

from azure.core.exceptions import ServiceRequestError, ServiceResponseError

if TYPE_CHECKING:  # imported where clients are built: the sidecar's helpers need none of them
    from azure.data.tables import TableServiceClient
    from azure.storage.blob import BlobServiceClient
    from azure.storage.queue import QueueServiceClient

#: The environment variable Durable Functions reads its storage connection from.
CONNECTION_ENV_VAR = "AzureWebJobsStorage"

#: Azurite's well-known development account. The key is public (it is in Microsoft's docs).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
AZURITE_HOST = "127.0.0.1"
AZURITE_PORTS = {"blob": 10000, "queue": 10001, "table": 10002}

#: Options for the Azure SDK clients unless the caller passes others: bounded waits and few
#: retries, so an endpoint that never answers fails within minutes, not the SDK's default of
#: 300 s per read times 10 retries.
DEFAULT_CLIENT_OPTIONS: dict[str, Any] = {
    "connection_timeout": 10,
    "read_timeout": 60,
    "retry_total": 3,
}

_SECRET_PATTERNS = [
    # AccountKey=...; SharedAccessSignature=...; sig=... in SAS query strings
    re.compile(r"(?i)(AccountKey\s*=\s*)([^;\s\"']+)"),
    re.compile(r"(?i)(SharedAccessSignature\s*=\s*)([^;\s\"']+)"),
    re.compile(r"(?i)([?&]sig=)([^&\s\"']+)"),
]


class StorageConfigurationError(ValueError):
    """The storage connection we were given cannot be used; the message says what to do."""


def mask_secrets(text: str) -> str:
    """Replace account keys and SAS signatures in ``text`` with ``***``.

    Example:
        >>> mask_secrets("AccountName=a;AccountKey=c2VjcmV0;EndpointSuffix=core.windows.net")
        'AccountName=a;AccountKey=***;EndpointSuffix=core.windows.net'
    """
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + "***", text)
    return text


def azurite_connection_string(
    host: str = AZURITE_HOST,
    blob_port: int = AZURITE_PORTS["blob"],
    queue_port: int = AZURITE_PORTS["queue"],
    table_port: int = AZURITE_PORTS["table"],
) -> str:
    """The connection string of an Azurite emulator (the public development account).

    Example:
        >>> azurite_connection_string(table_port=20002).split(";")[-1]
        'TableEndpoint=http://127.0.0.1:20002/devstoreaccount1'
    """
    base = f"http://{host}"
    return (
        "DefaultEndpointsProtocol=http;"
        f"AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint={base}:{blob_port}/{AZURITE_ACCOUNT};"
        f"QueueEndpoint={base}:{queue_port}/{AZURITE_ACCOUNT};"
        f"TableEndpoint={base}:{table_port}/{AZURITE_ACCOUNT}"
    )


def resolve_connection(connection: str | None = None) -> str:
    """Pick the connection the way Durable Functions does, falling back to the local Azurite.

    ``connection`` wins; else the ``AzureWebJobsStorage`` environment variable; else the local
    Azurite on its default ports. ``UseDevelopmentStorage=true`` means the local Azurite.

    Example:
        >>> resolve_connection("UseDevelopmentStorage=true").startswith("DefaultEndpoints")
        True
    """
    if connection is not None and not connection.strip():
        raise StorageConfigurationError(
            "The storage connection string is empty. Pass a connection string, an account URL "
            "with credential=..., 'UseDevelopmentStorage=true' for the local Azurite, or None "
            f"to use the {CONNECTION_ENV_VAR} environment variable."
        )
    value = connection if connection is not None else os.environ.get(CONNECTION_ENV_VAR)
    if value is None or not value.strip():
        return azurite_connection_string()
    value = value.strip()
    if value.replace(" ", "").lower().startswith("usedevelopmentstorage=true"):
        return azurite_connection_string()
    return value


#: Connection string keys in their documented spelling (keys are case-insensitive).
CONNECTION_KEYS = {
    key.lower(): key
    for key in (
        "DefaultEndpointsProtocol",
        "AccountName",
        "AccountKey",
        "EndpointSuffix",
        "BlobEndpoint",
        "QueueEndpoint",
        "TableEndpoint",
        "FileEndpoint",
        "SharedAccessSignature",
        "UseDevelopmentStorage",
        "DevelopmentStorageProxyUri",
    )
}


def parse_connection_string(connection: str) -> dict[str, str]:
    """Split ``Key=Value;...`` into a dict; known keys in their documented spelling.

    Example:
        >>> parse_connection_string("accountname=a;AccountKey=a2V5")["AccountName"]
        'a'
    """
    parts: dict[str, str] = {}
    for piece in connection.split(";"):
        if not piece.strip():
            continue
        key, sep, value = piece.partition("=")
        if not sep:
            raise StorageConfigurationError(
                f"This does not look like a storage connection string (no '=' in {key[:20]!r}...). "
                "Pass a connection string from the portal ('Access keys'), an account URL such as "
                "https://<account>.table.core.windows.net with credential=..., or "
                "'UseDevelopmentStorage=true' for the local Azurite."
            )
        key = key.strip()
        parts[CONNECTION_KEYS.get(key.lower(), key)] = value.strip()
    key = parts.get("AccountKey")
    if key is not None:
        try:
            base64.b64decode(key, validate=True)
        except ValueError:
            raise StorageConfigurationError(
                "The AccountKey in the connection string is not a valid key (not base64). Copy "
                "key1 or key2 whole from the storage account's 'Access keys' page."
            ) from None
    return parts


def _service_clients() -> tuple[Any, Any, Any]:
    """The Azure SDK's table, blob and queue service client classes (imported when needed)."""
    from azure.data.tables import TableServiceClient
    from azure.storage.blob import BlobServiceClient
    from azure.storage.queue import QueueServiceClient

    return TableServiceClient, BlobServiceClient, QueueServiceClient


def _optional_client(
    client: Any, value: str, parts: dict[str, str], endpoint: str, options: dict[str, Any]
) -> Any:
    """The service client, or None when the string names neither the account nor the endpoint."""
    if not parts.get("AccountName") and endpoint not in parts:
        return None
    return client.from_connection_string(value, **options)


def missing_service_error(
    account: StorageAccount, endpoint: str, needed_for: str
) -> StorageConfigurationError:
    """The error for a connection string without ``endpoint`` (e.g. a SAS for tables only).

    Example:
        >>> account = StorageAccount.from_connection(None)
        >>> "has no QueueEndpoint" in str(missing_service_error(account, "QueueEndpoint", "x"))
        True
    """
    return StorageConfigurationError(
        f"The connection to storage account {account} has no {endpoint}, which {needed_for} "
        f"needs. Add {endpoint}=https://<account>.<service>.core.windows.net to the connection "
        "string (with a SAS that allows that service), or use the account's full connection "
        "string."
    )


_T = TypeVar("_T")


def retry_idempotent(call: Callable[[], _T], attempts: int = 5) -> _T:
    """``call()``, again after a short back-off when the connection drops before the answer.

    For writes that are safe to repeat (upserts, overwriting uploads) only. The Azure SDK does
    not retry a POST that failed on the wire, such as an entity-group transaction, and Node's
    HTTP server (Azurite) now and then resets a kept-alive connection just as a request goes
    out (nodejs/node#47130).

    Example:
        >>> retry_idempotent(lambda: 42)
        42
    """
    for attempt in range(attempts - 1):
        try:
            return call()
        except (ServiceRequestError, ServiceResponseError):
            time.sleep(0.2 * 2**attempt)
    return call()


def _is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


@dataclass(frozen=True)
class StorageAccount:
    """A storage account and the three clients a task hub needs.

    Build it with :meth:`from_connection`. Its repr never shows a key.

    Example:
        >>> StorageAccount.from_connection(None).name  # no env var set -> local Azurite
        'devstoreaccount1'
    """

    name: str
    tables: TableServiceClient = field(repr=False)
    blobs: BlobServiceClient | None = field(repr=False)  # None: no blob endpoint given
    queues: QueueServiceClient | None = field(repr=False)  # None: no queue endpoint given
    description: str = ""
    is_emulator: bool = False

    @classmethod
    def from_connection(
        cls, connection: str | None = None, *, credential: Any = None, **client_options: Any
    ) -> StorageAccount:
        """Clients from a connection string, an account URL + credential, or the defaults.

        ``connection`` may be a full connection string, ``UseDevelopmentStorage=true``, an
        account URL for any one service (``https://acct.table.core.windows.net``; the blob and
        queue URLs are derived from it) used with ``credential`` (for example azure-identity's
        ``DefaultAzureCredential()``), or None (the ``AzureWebJobsStorage`` variable, else
        the local Azurite). ``client_options`` go to the Azure SDK clients (``read_timeout``,
        ``retry_total``, ...) over :data:`DEFAULT_CLIENT_OPTIONS`.

        Example:
            >>> StorageAccount.from_connection("UseDevelopmentStorage=true").is_emulator
            True
        """
        value = resolve_connection(connection)
        options = {**DEFAULT_CLIENT_OPTIONS, **client_options}
        if _is_url(value):
            return cls._from_url(value, credential, options)
        parts = parse_connection_string(value)
        name = parts.get("AccountName", "")
        if not name and not any(k.endswith("Endpoint") for k in parts):
            raise StorageConfigurationError(
                "The storage connection string has no AccountName and no endpoints. Copy the whole "
                "connection string from the storage account's 'Access keys' page, or use "
                "'UseDevelopmentStorage=true' for the local Azurite."
            )
        table_client, blob_client, queue_client = _service_clients()
        try:
            tables = table_client.from_connection_string(value, **options)
            # A SAS string may name only some services' endpoints: the others are left out.
            blobs = _optional_client(blob_client, value, parts, "BlobEndpoint", options)
            queues = _optional_client(queue_client, value, parts, "QueueEndpoint", options)
        except Exception as error:  # the SDK's message may quote the key: never pass it on
            raise StorageConfigurationError(
                "The storage connection string could not be used "
                f"({type(error).__name__}: {mask_secrets(str(error))}). "
                "Check that it was copied whole, including AccountKey and EndpointSuffix."
            ) from None
        table_url = tables.url
        return cls(
            name=name or tables.account_name or "",
            tables=tables,
            blobs=blobs,
            queues=queues,
            description=mask_secrets(f"{name or tables.account_name} ({table_url})"),
            is_emulator=name == AZURITE_ACCOUNT,
        )

    @classmethod
    def _from_url(cls, url: str, credential: Any, options: dict[str, Any]) -> StorageAccount:
        parsed = urlparse(url)
        host = parsed.hostname or ""
        path_account = parsed.path.strip("/").split("/")[0] if parsed.path.strip("/") else ""
        service_urls: dict[str, str] = {}
        if path_account:  # emulator style: http://127.0.0.1:10002/devstoreaccount1
            # Only the given service is known; the others use Azurite's default ports.
            for service, port in AZURITE_PORTS.items():
                service_urls[service] = f"{parsed.scheme}://{host}:{port}/{path_account}"
            given = next(
                (s for s, p in AZURITE_PORTS.items() if parsed.port == p),
                "table",
            )
            service_urls[given] = url.rstrip("/")
            name = path_account
        else:
            labels = host.split(".")
            if len(labels) < 3 or labels[1] not in {"table", "blob", "queue", "dfs"}:
                raise StorageConfigurationError(
                    f"Cannot tell the account from the URL {mask_secrets(url)!r}. Use an account "
                    "URL like https://<account>.table.core.windows.net."
                )
            name = labels[0]
            suffix = ".".join(labels[2:])
            for service in ("table", "blob", "queue"):
                service_urls[service] = f"{parsed.scheme}://{name}.{service}.{suffix}"
        if credential is None:
            raise StorageConfigurationError(
                f"An account URL ({mask_secrets(url)}) needs a credential: pass "
                "credential=DefaultAzureCredential() (pip package azure-identity), an "
                "AzureNamedKeyCredential, or a SAS credential; or pass a connection string instead."
            )
        table_client, blob_client, queue_client = _service_clients()
        return cls(
            name=name,
            tables=table_client(service_urls["table"], credential=credential, **options),
            blobs=blob_client(service_urls["blob"], credential=credential, **options),
            queues=queue_client(service_urls["queue"], credential=credential, **options),
            description=mask_secrets(f"{name} ({service_urls['table']})"),
            is_emulator=name == AZURITE_ACCOUNT,
        )

    def __str__(self) -> str:
        return self.description or self.name
