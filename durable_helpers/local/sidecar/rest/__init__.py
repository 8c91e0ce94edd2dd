"""A lean Azure Storage REST client (tables, blobs, queues) for the sidecar's hot path.

The Azure SDK spends about 2 ms of Python CPU per request (pipeline policies, ``requests``);
the sidecar makes thousands of small requests, so it talks REST itself over keep-alive
``http.client`` connections with Shared Key signing (about 0.3 ms per request). It works against
Azurite and real accounts that have an account key (or a SAS token).

Parts: :mod:`~.transport` (connections, signing, one request, errors), :mod:`~.tables`
(entities, queries, batches), :mod:`~.blobs` (blobs, and creating queues), :mod:`~.odata`
(entities as OData JSON). ``RestStorage`` is all of them for one account.

Example:
    >>> client = RestStorage.from_connection_string(conn)  # doctest: +SKIP
    >>> ops = [("upsert", {"PartitionKey": "a", "RowKey": "b"})]
    >>> client.table_batch("H", ops)  # doctest: +SKIP
"""

from __future__ import annotations

from durable_helpers.local.sidecar.rest.blobs import BlobOperations
from durable_helpers.local.sidecar.rest.odata import (
    entity_from_wire,
    entity_to_wire,
    parse_datetime,
)
from durable_helpers.local.sidecar.rest.tables import TableOperations
from durable_helpers.local.sidecar.rest.transport import (
    STORAGE_UNREACHABLE,
    StorageError,
    StorageUnreachableError,
)

__all__ = [
    "STORAGE_UNREACHABLE",
    "RestStorage",
    "StorageError",
    "StorageUnreachableError",
    "entity_from_wire",
    "entity_to_wire",
    "parse_datetime",
]


class RestStorage(TableOperations, BlobOperations):
    """Tables, queues and blobs of one account over raw REST with Shared Key (or SAS).

    Thread-safe: every thread gets its own keep-alive connection per service.

    Example:
        >>> s = RestStorage.from_connection_string(None)  # local Azurite defaults
        >>> s.account
        'devstoreaccount1'
    """
