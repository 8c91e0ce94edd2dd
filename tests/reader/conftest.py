"""Fixtures for the reader tests: a fresh task hub in the session's Azurite, and a writer for it."""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from azure.core.exceptions import ResourceExistsError

from durable_helpers import TaskHub, schema
from durable_helpers.storage import StorageAccount, retry_idempotent


@dataclass
class HubWriter:
    """Writes rows into one task hub the way the provider does (batches per partition)."""

    account: StorageAccount
    connection_string: str
    names: schema.HubNames

    @property
    def history(self) -> Any:
        return self.account.tables.get_table_client(self.names.history_table)

    @property
    def instances_table(self) -> Any:
        return self.account.tables.get_table_client(self.names.instances_table)

    @property
    def container(self) -> Any:
        return self.account.blobs.get_container_client(self.names.largemessages_container)

    def write_history(self, entities: Iterable[Mapping[str, Any]]) -> None:
        """Upsert rows in entity-group transactions of at most 100 per partition (retried on a
        dropped connection, as upserts may be)."""
        by_partition: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
        for entity in entities:
            by_partition[entity["PartitionKey"]].append(entity)
        table = self.history
        for rows in by_partition.values():
            for start in range(0, len(rows), 100):
                batch = [("upsert", dict(e)) for e in rows[start : start + 100]]
                retry_idempotent(lambda b=batch: table.submit_transaction(b))

    def write_instance(self, entity: Mapping[str, Any]) -> None:
        retry_idempotent(lambda: self.instances_table.upsert_entity(dict(entity)))

    def upload(self, blobs: Iterable[tuple[str, bytes]]) -> None:
        container = self.container
        for name, data in blobs:
            retry_idempotent(lambda n=name, d=data: container.upload_blob(n, d, overwrite=True))

    def taskhub(self) -> TaskHub:
        return TaskHub(self.connection_string, hub=self.names.hub)


def _create_container(account: StorageAccount, name: str) -> None:
    with contextlib.suppress(ResourceExistsError):
        account.blobs.create_container(name)


@pytest.fixture
def hub(account: StorageAccount, connection_string: str, hub_name: str) -> Iterator[HubWriter]:
    """A fresh task hub (History and Instances tables, large-message container)."""
    names = schema.hub_names(hub_name)
    for table in (names.history_table, names.instances_table):  # safe to repeat: if not exists
        retry_idempotent(lambda t=table: account.tables.create_table_if_not_exists(t))
    retry_idempotent(lambda: _create_container(account, names.largemessages_container))
    yield HubWriter(account, connection_string, names)
    account.tables.delete_table(names.history_table)
    account.tables.delete_table(names.instances_table)
    account.blobs.delete_container(names.largemessages_container)
