"""Parallel PartitionKey-range scans: the same rows in the same order, and throttling survived."""

from __future__ import annotations

from itertools import pairwise

import pandas as pd
import pytest
from azure.core.exceptions import HttpResponseError
from hypothesis import given
from hypothesis import strategies as st
from throttle_proxy import ThrottlingProxy

from durable_helpers import TaskHub, frames, scan, schema
from durable_helpers.storage import azurite_connection_string

ENTITIES_OUT = "PartitionKey lt '@' or PartitionKey ge 'A'"


def _raw_instances(big_hub, query_filter: str) -> pd.DataFrame:
    """What instances() returned before ranges: one query followed page by page by the SDK."""
    table = big_hub.account.tables.get_table_client(schema.hub_names(big_hub.hub).instances_table)
    return frames.instances_frame(list(table.query_entities(query_filter)))


@pytest.mark.parametrize(
    ("filters", "odata"),
    [
        ({}, ENTITIES_OUT),
        ({"status": "Completed"}, f"(RuntimeStatus eq 'Completed') and ({ENTITIES_OUT})"),
        (
            {"created_from": "2026-11-24", "created_to": "2026-11-25T12:00"},
            "(CreatedTime ge datetime'2026-11-24T00:00:00.0000000Z') and "
            f"(CreatedTime le datetime'2026-11-25T12:00:00.0000000Z') and ({ENTITIES_OUT})",
        ),
    ],
)
def test_parallel_instances_equal_one_query(big_hub, filters, odata):
    hub = big_hub.taskhub()
    parallel = hub.instances(**filters)
    assert len(parallel) > scan.PAGE_SIZE or filters  # the parallel path ran on the whole hub
    pd.testing.assert_frame_equal(parallel, _raw_instances(big_hub, odata))
    pd.testing.assert_frame_equal(parallel, hub.instances(**filters, max_workers=1))


def test_prefix_scan_and_escaped_ids(big_hub):
    hub = big_hub.taskhub()
    everything = hub.instances()
    odd = everything[everything.InstanceId.str.startswith("Order/")]
    assert len(odd) == 12
    pd.testing.assert_frame_equal(
        hub.instances(instance_id_prefix="Order/"), odd.reset_index(drop=True)
    )
    assert "@counter@c1" not in set(everything.InstanceId)
    assert "@counter@c1" in set(hub.instances(include_entities=True).InstanceId)


def test_history_table_scan_resumes_inside_a_partition(big_hub):
    """History has 17 rows per PartitionKey: the ranges after the first page start mid-key."""
    table = big_hub.account.tables.get_table_client(schema.hub_names(big_hub.hub).history_table)
    raw = list(table.list_entities())
    rows = scan.scan(table, None, max_workers=8)
    assert len(raw) > 10 * scan.PAGE_SIZE
    assert [(r["PartitionKey"], r["RowKey"]) for r in rows] == [
        (r["PartitionKey"], r["RowKey"]) for r in raw
    ]


def test_limit_reads_page_by_page(big_hub):
    hub = big_hub.taskhub()
    pd.testing.assert_frame_equal(hub.instances(limit=1020), hub.instances().head(1020))


@given(
    st.lists(st.text(alphabet="09AZaz^@#/-~\u00e9", min_size=0, max_size=4), max_size=40),
    st.text(alphabet="0aZ", max_size=2),
)
def test_key_ranges_cover_the_range_once_in_order(keys, low):
    ranges = scan.key_ranges(low or None, None)
    for key in keys:
        inside = [
            i
            for i, r in enumerate(ranges)
            if (not r.low or key >= r.low) and (r.high is None or key < r.high)
        ]
        assert len(inside) == (0 if low and key < low else 1), (key, inside)
    assert all(a.high == b.low for a, b in pairwise(ranges))


def test_bad_max_workers_is_a_clear_error(big_hub):
    for bad in (0, 65, 2.5, True):
        with pytest.raises(ValueError, match="max_workers"):
            big_hub.taskhub().instances(max_workers=bad)


def test_bounded_map_keeps_order_and_raises_the_error():
    assert list(scan.bounded_map(lambda x: -x, range(100), max_workers=4)) == [
        -x for x in range(100)
    ]

    def boom(x: int) -> int:
        if x == 7:
            raise RuntimeError("seven")
        return x

    with pytest.raises(RuntimeError, match="seven"):
        list(scan.bounded_map(boom, range(50), max_workers=3))


def _throttled_hub(azurite, big_hub, every: int) -> tuple[ThrottlingProxy, TaskHub]:
    blob, queue, table = azurite.ports
    proxy = ThrottlingProxy(table, every=every)
    connection = azurite_connection_string(blob_port=blob, queue_port=queue, table_port=proxy.port)
    # retry_total=0: the SDK does not retry, so the reader's own backoff is what is tested
    return proxy, TaskHub(connection, hub=big_hub.hub, retry_total=0)


def test_throttled_reads_are_retried_with_backoff(azurite, big_hub):
    direct = big_hub.taskhub()
    proxy, hub = _throttled_hub(azurite, big_hub, every=4)
    with proxy:
        instances = hub.instances()
        ids = instances.InstanceId[:40].tolist()
        histories = hub.histories(ids, progress=False)
    assert proxy.throttled >= 10, proxy.throttled  # 503s and 429s were really answered
    pd.testing.assert_frame_equal(instances, direct.instances())
    pd.testing.assert_frame_equal(histories, direct.histories(ids, progress=False))


def test_throttling_that_persists_ends_with_the_error(azurite, big_hub):
    proxy, hub = _throttled_hub(azurite, big_hub, every=1)
    backoff = scan.Backoff(attempts=3, first=0.01)
    with proxy, pytest.raises(HttpResponseError) as raised:
        scan.query(hub._instances, None, backoff=backoff)
    assert raised.value.status_code in (429, 503)
    assert proxy.requests == 3
