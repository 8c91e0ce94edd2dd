"""Pages read as JSON through the client's pipeline are the SDK's own pages, errors included."""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.data.tables import EdmType, EntityProperty, TableClient

from durable_helpers.schema.values import UTC
from durable_helpers.table_query import query_page


def _sdk_pages(table, query_filter, page_size):
    paged = (
        table.query_entities(query_filter, results_per_page=page_size)
        if query_filter
        else table.list_entities(results_per_page=page_size)
    ).by_page()
    pages = []
    for page in paged:
        pages.append((list(page), paged.continuation_token))
    return pages


def _our_pages(table, query_filter, page_size):
    pages, token = [], None
    while True:
        rows, token = query_page(table, query_filter, page_size=page_size, token=token)
        pages.append((rows, token))
        if not token:
            return pages


@pytest.fixture(scope="module")
def typed_table(account):
    """Rows with every property type the Table service has, odd keys, 7-digit dates."""
    table = account.tables.create_table(f"Typed{uuid.uuid4().hex[:10]}")
    base = datetime(2026, 11, 30, 23, 59, 58, 123456, tzinfo=UTC)
    for n, pk in enumerate(["a", "b{c}", "d'e", "f g", "ünï", "x+y&z=1"]):
        for r in range(4):
            table.create_entity(
                {
                    "PartitionKey": pk,
                    "RowKey": f"{r:016d}",
                    "Text": f"row {n}.{r} ✓",
                    "Empty": "",
                    "Int32": r - 2,
                    "Int64": EntityProperty(2**40 + r, EdmType.INT64),
                    "Double": 1.5 * r,
                    "NotANumber": math.nan if r == 1 else 0.25,
                    "Flag": r % 2 == 0,
                    "When": base + timedelta(seconds=r),
                    "Guid": uuid.UUID(int=n * 16 + r),
                    "Bytes": bytes([n, r, 255]),
                }
            )
    yield table
    account.tables.delete_table(table.table_name)


def _same(ours, theirs) -> None:
    assert len(ours) == len(theirs)
    for (rows, token), (sdk_rows, sdk_token) in zip(ours, theirs, strict=True):
        assert token == sdk_token
        assert len(rows) == len(sdk_rows)
        for row, sdk in zip(rows, sdk_rows, strict=True):
            assert row.keys() == sdk.keys()
            for key, value in sdk.items():
                if isinstance(value, float) and math.isnan(value):
                    assert math.isnan(row[key])
                else:
                    assert (row[key] == value and isinstance(row[key], type(value))) or (
                        isinstance(value, datetime) and isinstance(row[key], datetime)
                    ), (key, row[key], value)
            assert row.metadata == sdk.metadata


@pytest.mark.parametrize(
    "query_filter",
    [None, "PartitionKey ge 'b' and PartitionKey lt 'x'", "Int32 gt 0 and Flag eq true"],
)
def test_pages_are_the_sdks_rows_types_metadata_and_tokens(typed_table, query_filter):
    _same(_our_pages(typed_table, query_filter, 5), _sdk_pages(typed_table, query_filter, 5))


def test_a_filter_with_braces_quotes_and_non_ascii_is_sent_as_it_is(typed_table):
    for key in ("b{c}", "d'e", "ünï", "x+y&z=1", "f g"):
        quoted = key.replace("'", "''")
        rows, token = query_page(typed_table, f"PartitionKey eq '{quoted}'")
        assert [r["PartitionKey"] for r in rows] == [key] * 4 and token is None


def test_a_missing_table_raises_what_the_sdk_raises(account):
    table = account.tables.get_table_client("NoSuchTable" + uuid.uuid4().hex[:8])
    with pytest.raises(ResourceNotFoundError) as ours:
        query_page(table, None)
    with pytest.raises(ResourceNotFoundError) as sdk:
        list(table.list_entities())
    assert ours.value.error_code == sdk.value.error_code == "TableNotFound"
    assert "TableNotFound" in str(ours.value) and ours.value.status_code == 404
    assert str(ours.value).splitlines()[0] == str(sdk.value).splitlines()[0]


def test_a_wrong_key_raises_what_the_sdk_raises(azurite, typed_table):
    table_port = azurite.ports[2]
    wrong = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        "AccountKey=" + "QUJD" * 22 + "==;"
        f"TableEndpoint=http://127.0.0.1:{table_port}/devstoreaccount1"
    )
    table = TableClient.from_connection_string(wrong, typed_table.table_name)
    with pytest.raises(HttpResponseError) as ours:
        query_page(table, None)
    with pytest.raises(HttpResponseError) as sdk:
        list(table.list_entities())
    assert type(ours.value) is type(sdk.value)
    assert ours.value.status_code == sdk.value.status_code == 403
    assert ours.value.error_code == sdk.value.error_code == "AuthorizationFailure"
    assert str(ours.value).splitlines()[0] == str(sdk.value).splitlines()[0]
