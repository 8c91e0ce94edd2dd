"""Fixtures of the big-hub tests: one synthetic hub of several pages, written once per session."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from durable_helpers import TaskHub, schema
from durable_helpers.export import ExportResult
from durable_helpers.storage import StorageAccount
from durable_helpers.synthetic import write_synthetic_hub

#: More than one 1,000-row page of Instances, so the parallel range scan is what runs.
COUNT = 1100
#: Ids that need escaping in PartitionKeys, and that sort before, between and after the hex ids.
ODD_PREFIXES = ("Order/", "Z#", "^caret", "Ünï-")


@dataclass
class BigHub:
    connection_string: str
    hub: str
    account: StorageAccount

    def taskhub(self, **options) -> TaskHub:
        return TaskHub(self.connection_string, hub=self.hub, **options)


@pytest.fixture(scope="session")
def big_hub(account: StorageAccount, connection_string: str) -> BigHub:
    """A hub of about 1,150 synthetic instances (complete, failed, running, pending, timers),
    some with ids that need escaping, and one durable entity row (left out by the reader)."""
    hub = "Big" + uuid.uuid4().hex[:10]
    write_synthetic_hub(account, hub, COUNT, seed=17, days=3)
    for n, prefix in enumerate(ODD_PREFIXES):
        write_synthetic_hub(account, hub, 12, seed=100 + n, days=3, prefix=prefix)
    names = schema.hub_names(hub)
    account.tables.get_table_client(names.instances_table).upsert_entity(
        schema.instance_entity("@counter@c1", Name="counter", RuntimeStatus="Running")
    )
    return BigHub(connection_string, hub, account)


@pytest.fixture(scope="session")
def whole_export(big_hub: BigHub, tmp_path_factory: pytest.TempPathFactory) -> ExportResult:
    """The whole big hub exported once (history read by range scans)."""
    path: Path = tmp_path_factory.mktemp("export") / "all"
    return big_hub.taskhub().export(path, progress=False)
