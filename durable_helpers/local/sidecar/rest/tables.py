"""Table operations of the sidecar's REST client: tables, entities, queries, batches.

Owns creating tables, reading and writing one entity, paged queries (with continuations), and
entity-group transactions (``table_batch``: at most 100 operations on one partition), all in
OData JSON (:mod:`~.odata`).

May call: the transport (``request``) and :mod:`~.odata`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import quote

from durable_helpers.local.sidecar.rest.odata import entity_from_wire, entity_to_wire
from durable_helpers.local.sidecar.rest.transport import PATH_SAFE, StorageError, Transport


class TableOperations(Transport):
    """The Table service of one account (see the module docstring)."""

    _JSON: ClassVar[dict[str, str]] = {
        "Accept": "application/json;odata=minimalmetadata",
        "Content-Type": "application/json",
        "DataServiceVersion": "3.0;NetFx",
        "MaxDataServiceVersion": "3.0;NetFx",
    }

    def create_table(self, table: str) -> None:
        """Create a table; an existing one is fine."""
        body = json.dumps({"TableName": table}).encode()
        self.request(
            "table",
            "POST",
            "/Tables",
            headers={**self._JSON, "Prefer": "return-no-content"},
            body=body,
            ok=(201, 204, 409),
        )

    def upsert_entity(self, table: str, entity: Mapping[str, Any], *, merge: bool = False) -> None:
        """Insert-or-replace (or insert-or-merge) one entity."""
        body = json.dumps(entity_to_wire(entity)).encode()
        raw = _entity_path(table, entity["PartitionKey"], entity["RowKey"])
        self.request("table", "MERGE" if merge else "PUT", raw, headers=self._JSON, body=body)

    def insert_entity(self, table: str, entity: Mapping[str, Any]) -> bool:
        """Insert one entity; False (and no change) when it already exists."""
        body = json.dumps(entity_to_wire(entity)).encode()
        status, _, _ = self.request(
            "table",
            "POST",
            f"/{table}",
            headers={**self._JSON, "Prefer": "return-no-content"},
            body=body,
            ok=(201, 204, 409),
        )
        return status != 409

    def get_entity(self, table: str, pk: str, rk: str) -> dict[str, Any] | None:
        """One entity, or None when it does not exist."""
        raw = _entity_path(table, pk, rk)
        status, _, data = self.request("table", "GET", raw, headers=self._JSON, ok=(200, 404))
        if status == 404:
            return None
        return entity_from_wire(json.loads(data))

    def delete_entity(self, table: str, pk: str, rk: str) -> None:
        """Delete one entity; a missing one is fine."""
        raw = _entity_path(table, pk, rk)
        self.request("table", "DELETE", raw, headers={**self._JSON, "If-Match": "*"}, ok=(204, 404))

    def query_entities(
        self,
        table: str,
        filter: str | None = None,
        select: Sequence[str] | None = None,
        top: int | None = None,
        continuation: tuple[str, str] | None = None,
    ) -> tuple[list[dict[str, Any]], tuple[str, str] | None]:
        """One page of a query: (entities, continuation or None)."""
        query: dict[str, str] = {}
        if filter:
            query["$filter"] = filter
        if select:
            query["$select"] = ",".join(select)
        if top:
            query["$top"] = str(top)
        if continuation:
            query["NextPartitionKey"], query["NextRowKey"] = continuation
        _, headers, data = self.request(
            "table", "GET", f"/{table}()", query=query, headers=self._JSON
        )
        items = [entity_from_wire(e) for e in json.loads(data).get("value", [])]
        npk = headers.get("x-ms-continuation-nextpartitionkey")
        if npk:
            return items, (npk, headers.get("x-ms-continuation-nextrowkey", ""))
        return items, None

    def query_all(
        self, table: str, filter: str | None = None, select: Sequence[str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every entity matching ``filter`` (follows continuations)."""
        token = None
        while True:
            items, token = self.query_entities(table, filter, select, continuation=token)
            yield from items
            if token is None:
                return

    def table_batch(self, table: str, operations: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        """One entity-group transaction (same PartitionKey, at most 100 operations).

        Operations: ``("upsert", entity)`` (insert-or-replace), ``("merge", entity)``
        (insert-or-merge), ``("delete", entity)`` (needs PartitionKey/RowKey).
        """
        if not operations:
            return
        if len(operations) > 100:
            raise ValueError("an entity-group transaction holds at most 100 operations")
        ep = self._endpoints["table"]
        batch = f"batch_{uuid.uuid4()}"
        changeset = f"changeset_{uuid.uuid4()}"
        parts = [f"--{batch}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n"]
        base = f"{ep.scheme}://{ep.host}:{ep.port}{ep.base_path}"
        for index, (op, entity) in enumerate(operations):
            pk, rk = entity["PartitionKey"], entity["RowKey"]
            url = base + quote(_entity_path(table, pk, rk), safe=PATH_SAFE)
            if op == "delete":
                method, extra, body = "DELETE", "If-Match: *\r\n", ""
            else:
                method = "MERGE" if op == "merge" else "PUT"
                extra = ""
                body = json.dumps(entity_to_wire(entity))
            parts.append(
                f"--{changeset}\r\nContent-Type: application/http\r\n"
                f"Content-Transfer-Encoding: binary\r\n\r\n"
                f"{method} {url} HTTP/1.1\r\nContent-ID: {index + 1}\r\n"
                f"Accept: application/json;odata=minimalmetadata\r\n"
                f"Content-Type: application/json\r\nDataServiceVersion: 3.0;\r\n{extra}\r\n"
                f"{body}\r\n"
            )
        parts.append(f"--{changeset}--\r\n--{batch}--\r\n")
        payload = "".join(parts).encode("utf-8")
        _, _, data = self.request(
            "table",
            "POST",
            "/$batch",
            headers={
                "Content-Type": f"multipart/mixed; boundary={batch}",
                "Accept": "application/json;odata=minimalmetadata",
                "DataServiceVersion": "3.0;",
                "MaxDataServiceVersion": "3.0;NetFx",
            },
            body=payload,
            ok=(202,),
        )
        text = data.decode("utf-8", "replace")
        for line in text.splitlines():
            if line.startswith("HTTP/1.1 "):
                status = int(line.split()[1])
                if status >= 300:
                    raise StorageError(status, "BatchFailed", _batch_error(text))


def _entity_path(table: str, pk: str, rk: str) -> str:
    """The resource path of one entity (quotes in keys doubled, as OData wants)."""
    return f"/{table}(PartitionKey='{_esc(pk)}',RowKey='{_esc(rk)}')"


def _esc(value: str) -> str:
    return value.replace("'", "''")


def _batch_error(text: str) -> str:
    start = text.find("{")
    return text[start : start + 400] if start >= 0 else text[:400]
