"""retry_idempotent against a real reset: a TCP proxy in front of Azurite's table endpoint
resets the first connections once their request has arrived, as Node now and then does to a
kept-alive connection. The Azure SDK does not retry such a POST; retry_idempotent does."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import uuid
from collections.abc import Iterator

import pytest
from azure.core.exceptions import ServiceResponseError
from azure.data.tables import TableClient

from durable_helpers.local.azurite import Azurite
from durable_helpers.storage import azurite_connection_string, retry_idempotent


class ResettingProxy:
    """Forwards 127.0.0.1:port to ``target_port`` byte for byte, except that while
    ``reset_done < resets`` a request that arrives is not forwarded: its connection is reset
    (TCP RST)."""

    def __init__(self, target_port: int, resets: int) -> None:
        self.target_port, self.resets, self.reset_done = target_port, resets, 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self._server.accept()
                threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=30)
        threading.Thread(target=_pump, args=(upstream, conn), daemon=True).start()
        with contextlib.suppress(OSError):
            while data := conn.recv(65536):
                if self.reset_done < self.resets:  # a request arrives: reset it unanswered
                    self.reset_done += 1
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    break
                upstream.sendall(data)
        conn.close()
        upstream.close()

    def close(self) -> None:
        self._server.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


@pytest.fixture
def table_via_proxy(azurite: Azurite) -> Iterator[tuple[TableClient, ResettingProxy]]:
    blob, queue, table = azurite.ports
    proxy = ResettingProxy(table, resets=0)
    name = "T" + uuid.uuid4().hex[:12]
    conn = azurite_connection_string(blob_port=blob, queue_port=queue, table_port=proxy.port)
    client = TableClient.from_connection_string(conn, name)
    client.create_table()
    try:
        yield client, proxy
    finally:
        proxy.resets = 0
        client.delete_table()
        proxy.close()


def batch(pk: str) -> list[tuple[str, dict[str, object]]]:
    return [("upsert", {"PartitionKey": pk, "RowKey": f"{n:03d}", "N": n}) for n in range(5)]


def test_the_sdk_gives_up_on_a_reset_transaction(table_via_proxy) -> None:
    client, proxy = table_via_proxy
    proxy.resets = proxy.reset_done + 1
    with pytest.raises(ServiceResponseError):
        client.submit_transaction(batch("p"))
    assert proxy.reset_done == proxy.resets


def test_retry_idempotent_gets_a_reset_transaction_through(table_via_proxy) -> None:
    client, proxy = table_via_proxy
    proxy.resets = proxy.reset_done + 2
    retry_idempotent(lambda: client.submit_transaction(batch("p")))
    assert proxy.reset_done == proxy.resets
    rows = list(client.query_entities("PartitionKey eq 'p'"))
    assert [r["N"] for r in rows] == list(range(5))


def test_retry_idempotent_raises_when_the_resets_do_not_stop(table_via_proxy) -> None:
    client, proxy = table_via_proxy
    proxy.resets = proxy.reset_done + 100
    with pytest.raises(ServiceResponseError):
        retry_idempotent(lambda: client.submit_transaction(batch("q")), attempts=3)
    assert proxy.reset_done == 3
