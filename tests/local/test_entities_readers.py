"""What the sidecar writes for entities reads back through both readers, alike.

``TaskHub.entities()`` reads the Instances rows (the provider's layout); ``GrpcTaskHub.entities()``
asks the sidecar (QueryEntities). Both must see the same entities, states and lock holders.
"""

from __future__ import annotations

import uuid

from durabletask.entities import EntityInstanceId
from local_entities import wait_until

from durable_helpers.grpc_taskhub import GrpcTaskHub
from durable_helpers.taskhub import TaskHub


def test_both_readers_see_the_entities_the_sidecar_wrote(client, sidecar, connection_string):
    prefix = "r" + uuid.uuid4().hex[:8]
    locked, counted = f"{prefix}-locked", f"{prefix}-counted"
    client.signal_entity(EntityInstanceId("fn_counter", counted), "add", 4)
    holder = client.schedule_new_orchestration(
        "lock_and_wait", input={"name": "fn_counter", "key": locked}
    )
    tables = TaskHub(connection_string, hub=sidecar.hub)
    wait_until(
        lambda: (
            tables.entity(f"@fn_counter@{locked}")["LockedBy"] == holder
            if len(tables.entities(name="fn_counter", key_prefix=locked))
            else None
        ),
        30,
        "the lock",
    )
    client.signal_entity(EntityInstanceId("fn_counter", locked), "add", 10)  # waits: locked

    def settled():
        frame = tables.entities(name="fn_counter", key_prefix=prefix).set_index("Key")
        if len(frame) != 2 or frame.loc[locked, "BacklogQueueSize"] != 1:
            return None
        return (frame,) if frame.loc[counted, "State"] == 4 else None

    (from_tables,) = wait_until(settled, 30, "both entities in the tables")
    assert from_tables.loc[locked, "State"] == 1
    assert from_tables.loc[locked, "LockedBy"] == holder
    assert from_tables.loc[locked, "Engine"] == "core"
    assert bool(from_tables.loc[counted, "Exists"])
    with GrpcTaskHub(sidecar.address, timeout=10) as grpc_hub:
        via_grpc = grpc_hub.entities(name="fn_counter", key_prefix=prefix).set_index("Key")
        one = grpc_hub.entity(f"@fn_counter@{counted}")
    for column in ("InstanceId", "State", "LockedBy", "BacklogQueueSize", "LastModified"):
        assert via_grpc[column].sort_index().tolist() == from_tables[column].sort_index().tolist()
    assert one["State"] == 4
    assert tables.entity(f"@fn_counter@{counted}")["State"] == 4
    assert all(not i.startswith("@") for i in tables.instances()["InstanceId"])
    client.terminate_orchestration(holder)
    wait_until(
        lambda: tables.entity(f"@fn_counter@{locked}")["State"] == 11, 30, "the waiting signal"
    )
