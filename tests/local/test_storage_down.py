"""Storage stops under a running sidecar: clients get UNAVAILABLE naming storage, no trace."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from durabletask.client import TaskHubGrpcClient

from durable_helpers.local.azurite import Azurite
from durable_helpers.local.http_api import create_app
from durable_helpers.local.ports import free_ports
from durable_helpers.local.sidecar import LocalTaskHub


@pytest.fixture
def sidecar_without_storage(tmp_path):
    azurite = Azurite(ports=free_ports(3), in_memory=True).start()
    hub = LocalTaskHub(connection=azurite.connection_string, hub="StorageDown", port=0)
    try:
        hub.start()
        azurite.stop()
        yield hub
    finally:
        azurite.stop()
        hub.stop()


def test_client_calls_say_storage_is_unreachable(sidecar_without_storage):
    client = TaskHubGrpcClient(host_address=sidecar_without_storage.address)
    with pytest.raises(grpc.RpcError) as info:
        client.schedule_new_orchestration("Anything", instance_id="after-azurite-stopped")
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "storage is unreachable" in info.value.details()
    assert "Exception calling application" not in info.value.details()


def test_http_api_answers_503_naming_storage(sidecar_without_storage):
    from aiohttp.test_utils import TestClient, TestServer

    async def start() -> tuple[int, dict]:
        app = create_app(sidecar_without_storage.address, timeout=20)
        async with TestClient(TestServer(app)) as http:
            response = await http.post(
                "/runtime/webhooks/durabletask/orchestrators/Anything?instanceId=http-after-stop"
            )
            return response.status, await response.json()

    status, body = asyncio.run(start())
    assert status == 503, body
    assert "storage is unreachable" in body["message"]
    assert "Azurite" in body["message"]
