"""Shared fixtures: one real Azurite for the whole test session, on free ports, in memory."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from durable_helpers.local.azurite import Azurite
from durable_helpers.local.ports import free_ports
from durable_helpers.storage import StorageAccount


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """A real Azurite emulator for the test session (in memory, free ports, 127.0.0.1)."""
    log = tmp_path_factory.mktemp("azurite") / "azurite.log"
    emulator = Azurite(
        ports=free_ports(3),  # type: ignore[arg-type]
        in_memory=True,
        log_file=log,
        stop_with_parent=True,
    )
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="session")
def connection_string(azurite: Azurite) -> str:
    """The Azurite connection string for the session's emulator."""
    return azurite.connection_string


@pytest.fixture(scope="session")
def account(connection_string: str) -> StorageAccount:
    """Table, blob and queue clients for the session's Azurite."""
    return StorageAccount.from_connection(connection_string)


@pytest.fixture
def hub_name() -> str:
    """A fresh task hub name per test (letters and digits, starts with a letter)."""
    return "T" + uuid.uuid4().hex[:12]
