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

import os
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

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
    value = connection if connection is not None else os.environ.get(CONNECTION_ENV_VAR)
    if value is None or not value.strip():
        return azurite_connection_string()
    value = value.strip()
    if value.replace(" ", "").lower().startswith("usedevelopmentstorage=true"):
        return azurite_connection_string()
    return value


def parse_connection_string(connection: str) -> dict[str, str]:
    """Split ``Key=Value;...`` into a dict with case-preserved keys.

    Example:
        >>> parse_connection_string("AccountName=a;AccountKey=k")["AccountName"]
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
        parts[key.strip()] = value.strip()
    return parts


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
    blobs: BlobServiceClient = field(repr=False)
    queues: QueueServiceClient = field(repr=False)
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
        try:
            tables = TableServiceClient.from_connection_string(value, **options)
            blobs = BlobServiceClient.from_connection_string(value, **options)
            queues = QueueServiceClient.from_connection_string(value, **options)
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
        return cls(
            name=name,
            tables=TableServiceClient(service_urls["table"], credential=credential, **options),
            blobs=BlobServiceClient(service_urls["blob"], credential=credential, **options),
            queues=QueueServiceClient(service_urls["queue"], credential=credential, **options),
            description=mask_secrets(f"{name} ({service_urls['table']})"),
            is_emulator=name == AZURITE_ACCOUNT,
        )

    def __str__(self) -> str:
        return self.description or self.name
