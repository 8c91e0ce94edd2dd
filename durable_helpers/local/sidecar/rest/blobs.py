"""Blob and queue operations of the sidecar's REST client.

Owns creating containers, block blobs (large payloads), append blobs (the journal), reading,
deleting and listing blobs, and creating queues (the only queue operation the sidecar needs:
the hub's queues exist so it looks complete).

May call: the transport (``request``).
"""

from __future__ import annotations

from xml.etree import ElementTree

from durable_helpers.local.sidecar.rest.transport import Transport


class BlobOperations(Transport):
    """The Blob (and Queue) service of one account (see the module docstring)."""

    # -- queues --------------------------------------------------------------------------

    def create_queue(self, queue: str) -> None:
        """Create a queue; an existing one is fine."""
        self.request("queue", "PUT", f"/{queue}", ok=(201, 204, 409))

    # -- blobs ---------------------------------------------------------------------------

    def create_container(self, container: str) -> None:
        """Create a blob container; an existing one is fine."""
        self.request("blob", "PUT", f"/{container}", query={"restype": "container"}, ok=(201, 409))

    def put_blob(
        self, container: str, name: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> None:
        """Upload a block blob in one request."""
        self.request(
            "blob",
            "PUT",
            f"/{container}/{name}",
            body=data,
            headers={"x-ms-blob-type": "BlockBlob", "Content-Type": content_type},
            ok=(201,),
        )

    def create_append_blob(self, container: str, name: str) -> None:
        """Create (or truncate) an empty append blob."""
        self.request(
            "blob",
            "PUT",
            f"/{container}/{name}",
            headers={"x-ms-blob-type": "AppendBlob"},
            ok=(201,),
        )

    def append_block(self, container: str, name: str, data: bytes) -> None:
        """Append one block (at most 4 MiB) to an append blob; atomic."""
        self.request(
            "blob",
            "PUT",
            f"/{container}/{name}",
            query={"comp": "appendblock"},
            body=data,
            ok=(201,),
        )

    def get_blob(self, container: str, name: str) -> bytes | None:
        """A blob's content, or None if it does not exist."""
        status, _, data = self.request("blob", "GET", f"/{container}/{name}", ok=(200, 404))
        return None if status == 404 else data

    def delete_blob(self, container: str, name: str) -> None:
        """Delete a blob; a missing one is fine."""
        self.request("blob", "DELETE", f"/{container}/{name}", ok=(202, 404))

    def list_blobs(self, container: str, prefix: str = "") -> list[str]:
        """Names of the blobs in ``container`` that start with ``prefix``."""
        names: list[str] = []
        marker = ""
        while True:
            query = {"restype": "container", "comp": "list"}
            if prefix:
                query["prefix"] = prefix
            if marker:
                query["marker"] = marker
            status, _, data = self.request(
                "blob", "GET", f"/{container}", query=query, ok=(200, 404)
            )
            if status == 404:
                return names
            root = ElementTree.fromstring(data)
            names.extend(el.text or "" for el in root.iter("Name"))
            marker = root.findtext("NextMarker") or ""
            if not marker:
                return names
