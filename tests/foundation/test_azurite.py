"""Azurite lifecycle against the real emulator from npm."""

from __future__ import annotations

import os

import pytest
from azure.data.tables import TableServiceClient

from durable_helpers.local.azurite import Azurite, AzuriteError
from durable_helpers.local.ports import free_ports


def test_table_round_trip(azurite: Azurite, hub_name: str) -> None:
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    table = service.create_table(hub_name)
    table.create_entity({"PartitionKey": "p", "RowKey": "r", "Value": 42})
    assert table.get_entity("p", "r")["Value"] == 42
    service.delete_table(hub_name)


def test_second_start_reuses_running_emulator(azurite: Azurite) -> None:
    again = Azurite(ports=azurite.ports, in_memory=True).start()
    assert again.reused
    assert again.pid is None
    again.stop()  # must leave the session's emulator running
    assert azurite.answering()


def test_stop_leaves_no_process(tmp_path) -> None:
    emulator = Azurite(ports=free_ports(3), data_dir=tmp_path / "data").start()
    pid = emulator.pid
    assert pid is not None and emulator.answering()
    assert (tmp_path / "data").is_dir()
    emulator.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not emulator.answering()


def test_port_taken_by_something_else_is_a_clear_error() -> None:
    import socket

    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        ports = (port, *free_ports(2))
        with pytest.raises(AzuriteError, match="taken by something that is not Azurite"):
            Azurite(ports=ports, in_memory=True).start()  # type: ignore[arg-type]


def test_missing_azurite_names_the_command(monkeypatch, tmp_path) -> None:
    import durable_helpers.local.azurite as module

    monkeypatch.setattr(module, "PROJECT_ROOT", tmp_path)
    monkeypatch.delenv("AZURITE_BIN", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(AzuriteError, match="npm ci"):
        module.find_azurite()


def test_emulator_tied_to_a_killed_parent_goes_away(tmp_path) -> None:
    """A test session killed with SIGKILL must not leave its emulator behind."""
    import signal
    import subprocess
    import sys
    import time

    script = (
        "import sys, time\n"
        "from durable_helpers.local.azurite import Azurite\n"
        "from durable_helpers.local.ports import free_ports\n"
        "a = Azurite(ports=free_ports(3), in_memory=True, stop_with_parent=True).start()\n"
        "print(a.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(child, signal.SIGKILL)
    pytest.fail("Azurite outlived its killed parent")
