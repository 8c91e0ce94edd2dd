"""The preload that keeps Azurite's lookups by key fast answers exactly as Azurite does."""

from __future__ import annotations

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableServiceClient, UpdateMode

from durable_helpers.local.azurite import Azurite
from durable_helpers.local.ports import free_ports

PARTITIONS = ["p1", "p2", "p'q", "p1x", "", "10", "9", "1e3", "P0"]
FILTERS = [
    "PartitionKey eq 'p1'",
    "PartitionKey eq 'p1' and RowKey ge '0002'",
    "RowKey eq '0001' and PartitionKey eq 'p''q'",
    "(PartitionKey eq 'p1') and (Value gt 3)",
    "Value gt 3 and (RowKey lt '0004' and PartitionKey eq 'p2')",
    "PartitionKey eq 'p1' or PartitionKey eq 'p2'",
    "not (PartitionKey eq 'p1')",
    "PartitionKey eq 'p1' and PartitionKey eq 'p2'",
    "PartitionKey ge 'p1' and PartitionKey eq 'p2'",
    "PartitionKey eq ''",
    "RowKey eq 'sentinel'",
    "PartitionKey ne 'p1' and RowKey eq '0001'",
    # ranges: numeric-looking keys compare as strings ("10" < "1e3" < "9")
    "PartitionKey ge 'p1' and PartitionKey lt 'p2'",
    "PartitionKey gt '1' and PartitionKey le '9'",
    "PartitionKey gt '10' and PartitionKey lt '9'",
    "'p1' le PartitionKey and Value gt 2",
    "PartitionKey lt 'p'",
    "PartitionKey ge 'p1' and PartitionKey ge 'p1x' and RowKey lt '0003'",
    "PartitionKey gt 'p1' or PartitionKey lt '2'",
    "(PartitionKey lt '@' or PartitionKey ge 'A') and PartitionKey ge 'P' and PartitionKey lt 'p'",
    "PartitionKey ge 'p2' and PartitionKey lt 'p1'",
]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The same entities in an Azurite with the preload and in one without it."""
    logs = tmp_path_factory.mktemp("azurite")
    with (
        Azurite(ports=free_ports(3), in_memory=True, log_file=logs / "keyed.log") as keyed,
        Azurite(
            ports=free_ports(3), in_memory=True, keyed_lookups=False, log_file=logs / "plain.log"
        ) as plain,
    ):
        tables = []
        for azurite in (keyed, plain):
            service = TableServiceClient.from_connection_string(azurite.connection_string)
            table = service.create_table("Lookups")
            for pk in PARTITIONS:
                for n in range(6):
                    table.create_entity({"PartitionKey": pk, "RowKey": f"{n:04d}", "Value": n})
                table.create_entity({"PartitionKey": pk, "RowKey": "sentinel", "Value": -1})
            tables.append(table)
        yield keyed, tables
        assert "azurite_keyed_lookups: applied" in (logs / "keyed.log").read_text()
        assert "azurite_keyed_lookups" not in (logs / "plain.log").read_text()


def _rows(entities) -> list[tuple]:
    return [(e["PartitionKey"], e["RowKey"], e["Value"]) for e in entities]


@pytest.mark.parametrize("query", FILTERS)
def test_a_filtered_query_answers_the_same_rows_in_the_same_order(pair, query: str) -> None:
    _, (keyed, plain) = pair
    assert _rows(keyed.query_entities(query)) == _rows(plain.query_entities(query))


def test_pages_of_one_partition_follow_the_same_continuation(pair) -> None:
    _, (keyed, plain) = pair
    pages = []
    for table in (keyed, plain):
        pager = table.query_entities("PartitionKey eq 'p2'", results_per_page=2).by_page()
        pages.append([_rows(page) for page in pager])
    assert pages[0] == pages[1] and len(pages[0]) == 4  # 7 rows, 2 a page


def test_pages_of_a_partition_range_follow_the_same_continuation(pair) -> None:
    _, (keyed, plain) = pair
    query = "PartitionKey ge '1' and PartitionKey lt 'p2'"
    pages = []
    for table in (keyed, plain):
        pager = table.query_entities(query, results_per_page=4).by_page()
        pages.append([_rows(page) for page in pager])
    assert pages[0] == pages[1] and len(pages[0]) == 13  # 7 partitions of 7 rows, 4 a page


def test_point_reads_inserts_and_upserts_behave_as_without_it(pair) -> None:
    _, (keyed, plain) = pair
    for table in (keyed, plain):
        assert table.get_entity("p'q", "0003")["Value"] == 3
        with pytest.raises(ResourceExistsError):
            table.create_entity({"PartitionKey": "p1", "RowKey": "0001", "Value": 0})
        table.upsert_entity(
            {"PartitionKey": "p1", "RowKey": "0001", "Value": 10}, UpdateMode.REPLACE
        )
        table.upsert_entity({"PartitionKey": "new", "RowKey": "0001", "Value": 1})
    assert _rows(keyed.query_entities("RowKey eq '0001'")) == _rows(
        plain.query_entities("RowKey eq '0001'")
    )


def test_ranges_in_a_row_then_inserts_and_deletes_answer_as_without_it(pair) -> None:
    """Range queries in a row use keys sorted once; any insert or delete must drop them."""
    _, (keyed, plain) = pair
    queries = ["PartitionKey ge '1' and PartitionKey lt 'p2'", "PartitionKey gt 'p1'"]

    def same() -> None:
        for query in queries * 2:  # the second query on an unchanged table sorts the keys
            assert _rows(keyed.query_entities(query)) == _rows(plain.query_entities(query))

    same()
    for table in (keyed, plain):  # a new entity inside the ranges
        table.create_entity({"PartitionKey": "p1a", "RowKey": "x", "Value": 7})
    same()
    for table in (keyed, plain):  # one out, one in: same count, positions moved
        table.delete_entity("1e3", "0002")
        table.create_entity({"PartitionKey": "9z", "RowKey": "x", "Value": 8})
    same()
    for table in (keyed, plain):  # an update keeps its place; a delete shortens the table
        table.upsert_entity({"PartitionKey": "p1a", "RowKey": "x", "Value": 70}, UpdateMode.MERGE)
        table.delete_entity("10", "0001")
    same()
    assert ("p1a", "x", 70) in _rows(keyed.query_entities(queries[0]))
