"""TaskHub: one task hub's Instances, History and queues as DataFrames (read-only).

Example:
    >>> from durable_helpers import TaskHub
    >>> hub = TaskHub("UseDevelopmentStorage=true", hub="DurableFunctionsHub")  # doctest: +SKIP
    >>> hub.instances(status="Failed", created_from="2026-01-01")  # doctest: +SKIP
    >>> hub.history("95c7f6639fe04bf0a919698255cecd33")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from itertools import islice
from typing import Any, Literal

import pandas as pd
from azure.core.exceptions import (
    ResourceNotFoundError,
)

from durable_helpers import entity_frames, frames, scan, schema
from durable_helpers.executions import select_execution
from durable_helpers.instance_filters import InstanceFilter, as_list, check_instance_id
from durable_helpers.instance_filters import instance_ids as distinct_ids
from durable_helpers.queue_depths import queue_depths
from durable_helpers.storage import StorageAccount, mask_secrets, missing_service_error
from durable_helpers.storage_errors import error_code, storage_errors

log = logging.getLogger(__name__)

#: Show a progress bar in :meth:`TaskHub.histories` from this many instances on.
PROGRESS_THRESHOLD = 20


class HubNotFoundError(LookupError):
    """The task hub's tables are not in the storage account; the message lists the hubs that are."""


class InstanceNotFoundError(KeyError):
    """No orchestration instance with this id in the task hub."""

    def __str__(self) -> str:  # KeyError would show the message in quotes
        return str(self.args[0]) if self.args else ""


class TaskHub:
    """Read one task hub (Azure Storage provider) into pandas DataFrames.

    ``connection`` is a connection string, ``UseDevelopmentStorage=true``, or an account URL used
    with ``credential`` (e.g. ``DefaultAzureCredential()``); None means the ``AzureWebJobsStorage``
    environment variable, else the local Azurite. ``client_options`` go to the Azure SDK clients
    (e.g. ``read_timeout=300`` on a slow network). Nothing is read until a method is called.
    Big reads run on a bounded thread pool (``max_workers``, see ``durable_helpers.scan``) and
    retry throttled requests with backoff.

    Example:
        >>> hub = TaskHub("UseDevelopmentStorage=true", hub="MyHub")
        >>> hub.names.history_table
        'MyHubHistory'
    """

    def __init__(
        self,
        connection: str | None = None,
        hub: str = schema.DEFAULT_HUB,
        *,
        credential: Any = None,
        **client_options: Any,
    ) -> None:
        self.names = schema.hub_names(hub)
        self.account = StorageAccount.from_connection(
            connection, credential=credential, **scan.with_pooled_transport(client_options)
        )
        self._history = self.account.tables.get_table_client(self.names.history_table)
        self._instances = self.account.tables.get_table_client(self.names.instances_table)
        blobs = self.account.blobs
        container = self.names.largemessages_container
        self._blobs = blobs.get_container_client(container) if blobs is not None else None

    @property
    def hub(self) -> str:
        """The task hub name."""
        return self.names.hub

    def __repr__(self) -> str:
        return f"TaskHub(hub={self.hub!r}, account={mask_secrets(str(self.account))!r})"

    # ---------------------------------------------------------------------------- discovery

    @classmethod
    def hubs(
        cls, connection: str | None = None, *, credential: Any = None, **client_options: Any
    ) -> list[str]:
        """Names of the task hubs in a storage account (each ``{hub}History`` + ``{hub}Instances``).

        Example:
            >>> TaskHub.hubs("UseDevelopmentStorage=true")  # doctest: +SKIP
            ['DurableFunctionsHub', 'TestHubName']
        """
        account = StorageAccount.from_connection(
            connection, credential=credential, **client_options
        )
        return _hubs_of(account)

    def _missing_hub(self) -> HubNotFoundError:
        try:
            available = _hubs_of(self.account)
        except Exception:  # listing may be forbidden (SAS scoped to tables): say what we know
            available = None
        if available:
            known = "Task hubs in this account: " + ", ".join(available) + "."
        elif available is None:
            known = "Could not list the account's tables to suggest others."
        else:
            known = "This account has no task hubs ({hub}History + {hub}Instances tables) yet."
        return HubNotFoundError(
            f"No task hub {self.hub!r} in storage account {self.account}: table "
            f"{self.names.history_table} or {self.names.instances_table} does not exist. "
            f"{known} Pass hub='<name>' (Durable Functions' default is the app name, locally "
            "'TestHubName'; DF 1.x used 'DurableFunctionsHub')."
        )

    def _call(self, operation: Any) -> Any:
        """Run a storage call, turning SDK errors into errors that say what to do."""
        try:
            with storage_errors(self.account):
                return operation()
        except ResourceNotFoundError as error:
            if "TableNotFound" in error_code(error) + str(error):
                raise self._missing_hub() from None
            raise

    def _query(
        self,
        table: Any,
        query_filter: str | None,
        *,
        page_size: int | None = None,
        first_page_only: bool = False,
    ) -> list[Any]:
        return self._call(
            lambda: scan.query(
                table, query_filter, page_size=page_size, first_page_only=first_page_only
            )
        )

    # ---------------------------------------------------------------------------- blobs

    def _fetch_blob(self, name: str) -> bytes | None:
        if self._blobs is None:
            raise missing_service_error(self.account, "BlobEndpoint", "reading large payloads")
        try:
            with storage_errors(self.account):
                return scan.DEFAULT_BACKOFF.run(lambda: self._blobs.download_blob(name).readall())
        except ResourceNotFoundError:
            log.warning("large payload blob %s/%s is missing", self._blobs.container_name, name)
            return None

    def _inline(self, entity: Mapping[str, Any], container: str | None = None) -> Any:
        if schema.has_large_payloads(entity, container):
            return schema.inline_large_payloads(entity, self._fetch_blob, container=container)
        return entity

    # ---------------------------------------------------------------------------- instances

    def instances(
        self,
        status: str | Iterable[str] | None = None,
        name: str | Iterable[str] | None = None,
        created_from: Any = None,
        created_to: Any = None,
        instance_id_prefix: str | None = None,
        limit: int | None = None,
        *,
        include_entities: bool = False,
        fetch_large_payloads: bool = True,
        max_workers: int = scan.DEFAULT_MAX_WORKERS,
    ) -> pd.DataFrame:
        """The Instances table as a frame (docs/frames.md), filtered on the server.

        ``status`` and ``name`` take one value or several; ``created_from`` (inclusive) and
        ``created_to`` (inclusive) take datetimes or ISO strings (naive = UTC);
        ``instance_id_prefix`` is a PartitionKey range; ``limit`` stops after that many rows.
        Durable entities (ids starting with ``@``) are left out unless ``include_entities``;
        :meth:`entities` gives them as entities (state decoded, lock holder, backlog).
        Every value is escaped into the OData filter; continuation pages are followed. A table
        of more than one page is read as PartitionKey ranges by ``max_workers`` threads
        (``durable_helpers.scan.scan``: same rows, same order); with ``limit``, page by page.

        Example:
            >>> hub.instances(status=["Running", "Pending"], limit=100)  # doctest: +SKIP
        """
        wanted = InstanceFilter.of(
            status, name, created_from, created_to, instance_id_prefix, limit
        )
        if wanted.limit == 0:
            return frames.instances_frame([])
        conditions: list[str] = []
        if wanted.statuses:
            conditions.append(
                " or ".join(f"RuntimeStatus eq {schema.odata_string(s)}" for s in wanted.statuses)
            )
        if wanted.names:
            conditions.append(
                " or ".join(f"Name eq {schema.odata_string(n)}" for n in wanted.names)
            )
        if wanted.created_from is not None:
            conditions.append(f"CreatedTime ge {schema.odata_datetime(wanted.created_from)}")
        if wanted.created_to is not None:
            conditions.append(f"CreatedTime le {schema.odata_datetime(wanted.created_to)}")
        bounds = schema.prefix_range(wanted.id_prefix)
        if bounds is not None:
            low, high = (schema.odata_string(b) for b in bounds)
            conditions.append(f"PartitionKey ge {low} and PartitionKey lt {high}")
        if not include_entities:
            conditions.append(schema.NOT_ENTITIES_FILTER)
        query_filter = " and ".join(f"({c})" for c in conditions)
        entities: Iterator[Any]
        if wanted.limit is None:
            low, high = bounds or (None, None)
            found = self._call(
                lambda: scan.scan(
                    self._instances, query_filter, low=low, high=high, max_workers=max_workers
                )
            )
            entities = iter(found)
        else:
            page = min(wanted.limit, scan.PAGE_SIZE)
            entities = iter(self._query(self._instances, query_filter, page_size=page))
        if wanted.id_prefix:  # the range is exact for escaped keys; double-check on the id
            entities = (
                e for e in entities if schema.instance_id_of(e).startswith(wanted.id_prefix)
            )
        if wanted.limit is not None:
            entities = islice(entities, wanted.limit)
        container = self.names.largemessages_container
        rows = [self._inline(e, container) if fetch_large_payloads else e for e in entities]
        return frames.instances_frame(rows)

    def instance(self, instance_id: str) -> pd.Series:
        """One instance's row of :meth:`instances` (raises InstanceNotFoundError).

        Example:
            >>> hub.instance("95c7f6639fe04bf0a919698255cecd33")["RuntimeStatus"]  # doctest: +SKIP
            'Completed'
        """
        entity = self._instance_entity(instance_id)
        if entity is None:
            raise self._unknown_instance(instance_id)
        container = self.names.largemessages_container
        return frames.instances_frame([self._inline(entity, container)]).iloc[0]

    def _instance_entity(self, instance_id: str) -> Any:
        check_instance_id(instance_id)
        key = schema.escape_partition_key(instance_id)
        try:
            return self._call(
                lambda: scan.DEFAULT_BACKOFF.run(
                    lambda: self._instances.get_entity(key, schema.INSTANCE_ROW_KEY)
                )
            )
        except ResourceNotFoundError:
            return None

    def _unknown_instance(self, instance_id: str) -> InstanceNotFoundError:
        return InstanceNotFoundError(
            f"No orchestration instance {instance_id!r} in task hub {self.hub!r} "
            f"(no rows in {self.names.history_table} or {self.names.instances_table}). "
            "Check the id (case matters), the hub name, and whether it was purged; "
            "TaskHub.instances(instance_id_prefix=...) lists similar ids."
        )

    # ---------------------------------------------------------------------------- entities

    def entities(
        self,
        name: str | None = None,
        key_prefix: str | None = None,
        modified_from: Any = None,
        modified_to: Any = None,
        include_state: bool = True,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """Durable entities as a frame (docs/frames.md), one row per entity, filtered on the server.

        ``name`` (case-insensitive, as entity ids are) and ``key_prefix`` become a PartitionKey
        range, ``modified_from``/``modified_to`` (inclusive; datetimes or ISO strings, naive =
        UTC) a CreatedTime range: the provider's own entity query. Entities without state
        (deleted, or only locked) are rows too, with Exists False. ``include_state=False`` reads
        only the status (no Input, no blobs): State, Queue and Suspended are then null.

        Example:
            >>> hub.entities(name="counter")[["Key", "State", "LockedBy"]]  # doctest: +SKIP
        """
        wanted = entity_frames.EntityFilter.of(
            name, key_prefix, modified_from, modified_to, include_state, limit
        )
        if wanted.limit == 0:
            return entity_frames.entities_frame([])
        select = None if include_state else entity_frames.STATELESS_SELECT
        page = min(wanted.limit, 1000) if wanted.limit else None

        def run() -> list[Any]:
            pages = self._instances.query_entities(
                wanted.odata(), select=select, results_per_page=page
            )
            found = (e for e in pages if wanted.matches(schema.instance_id_of(e)))
            return list(islice(found, wanted.limit))

        container = self.names.largemessages_container
        rows = [self._inline(e, container) if include_state else e for e in self._call(run)]
        return entity_frames.entities_frame(rows)

    def entity(self, entity_id: str) -> pd.Series:
        """One entity's row of :meth:`entities` (EntityNotFoundError, a KeyError, if unknown).

        Example:
            >>> hub.entity("@counter@c1")["State"]  # doctest: +SKIP
            5
        """
        entity = self._instance_entity(entity_frames.check_entity_id(entity_id))
        if entity is None:
            raise entity_frames.unknown_entity(
                entity_id, f"task hub {self.hub!r} (no row in {self.names.instances_table})"
            )
        container = self.names.largemessages_container
        return entity_frames.entities_frame([self._inline(entity, container)]).iloc[0]

    # ---------------------------------------------------------------------------- history

    def _history_entities(self, instance_id: str, execution: str = "current") -> list[Any]:
        """The History rows of one instance, selected for ``execution``, large payloads inlined."""
        check_instance_id(instance_id)
        key = schema.odata_string(schema.escape_partition_key(instance_id))
        query_filter = f"PartitionKey eq {key}"
        if execution not in ("current", "all"):
            query_filter += f" and ExecutionId eq {schema.odata_string(str(execution))}"
        entities = self._query(self._history, query_filter)
        if not entities:
            if self._instance_entity(instance_id) is None and (
                execution in ("current", "all") or not self._any_history(key)
            ):
                raise self._unknown_instance(instance_id)
            return []
        rows = select_execution(entities, execution)
        return [self._inline(e) for e in rows]

    def _any_history(self, quoted_key: str) -> bool:
        probe = f"PartitionKey eq {quoted_key}"
        return bool(self._query(self._history, probe, page_size=1, first_page_only=True))

    def history(
        self, instance_id: str, execution: Literal["current", "all"] | str = "current"
    ) -> pd.DataFrame:
        """One instance's history as a frame (docs/frames.md), in RowKey order.

        ``execution`` is ``"current"`` (the execution in the sentinel row; stops at the first row
        of another execution, i.e. leftovers after continue-as-new), ``"all"`` (every row still
        in the table, older executions first) or an execution id. Large payloads are fetched from
        their blobs and gunzipped; completions get Name, ScheduledTime and Duration.

        Example:
            >>> df = hub.history("95c7f6639fe04bf0a919698255cecd33")  # doctest: +SKIP
            >>> df[df.EventType == "TaskCompleted"][["Name", "Duration"]]  # doctest: +SKIP
        """
        return frames.history_frame(self._history_entities(instance_id, execution))

    def histories(
        self,
        ids: str | Iterable[str],
        *,
        execution: Literal["current", "all"] | str = "current",
        max_workers: int = scan.DEFAULT_MAX_WORKERS,
        progress: bool | None = None,
        missing: Literal["raise", "skip"] = "raise",
    ) -> pd.DataFrame:
        """Histories of many instances in one frame, read in parallel (``max_workers`` threads).

        ``progress`` shows a tqdm bar (default: when there are 20 or more ids). Unknown ids raise
        InstanceNotFoundError, or are skipped (with a log warning) when ``missing="skip"``.

        Example:
            >>> failed = hub.instances(status="Failed")  # doctest: +SKIP
            >>> hub.histories(failed.InstanceId)  # doctest: +SKIP
        """
        if missing not in ("raise", "skip"):
            raise ValueError("missing must be 'raise' or 'skip'")
        unique = distinct_ids(ids)
        show = progress if progress is not None else len(unique) >= PROGRESS_THRESHOLD

        def read(instance_id: str) -> list[Any]:
            try:
                return self._history_entities(instance_id, execution)
            except InstanceNotFoundError:
                if missing == "raise":
                    raise
                log.warning("instance %r not found; skipped", instance_id)
                return []

        mapped: Iterable[list[Any]] = scan.bounded_map(read, unique, max_workers=max_workers)
        if show:
            from tqdm.auto import tqdm

            mapped = tqdm(mapped, total=len(unique), desc=f"{self.hub} histories", unit="inst")
        results = list(mapped)
        return frames.history_frame(e for rows in results for e in rows)

    # ---------------------------------------------------------------------------- queues

    def queues(self) -> pd.DataFrame:
        """Control and work-item queues of the hub with their approximate depth.

        Columns: Queue, Kind (``control``/``workitems``), Partition, ApproximateMessageCount,
        OldestMessageTime (insertion time of the first visible message) and OldestMessageAge.

        Example:
            >>> hub.queues()[["Queue", "ApproximateMessageCount"]]  # doctest: +SKIP
        """
        service = self.account.queues
        if service is None:
            raise missing_service_error(self.account, "QueueEndpoint", "listing the hub's queues")

        def confirm_hub() -> None:  # no queues: say so if the hub itself is missing
            self._query(self._instances, None, page_size=1, first_page_only=True)

        return queue_depths(service, self.names, call=self._call, confirm_hub=confirm_hub)

    # ---------------------------------------------------------------------------- snapshot

    def snapshot(
        self,
        path: Any,
        *,
        instance_ids: str | Iterable[str] | None = None,
        execution: Literal["current", "all"] | str = "current",
        max_workers: int = scan.DEFAULT_MAX_WORKERS,
        **instance_filters: Any,
    ) -> Any:
        """Save instances (filtered like :meth:`instances`) and their histories for offline use.

        Delegates the writing to ``durable_helpers.snapshot.save_snapshot``.

        Example:
            >>> hub.snapshot("failed.snapshot", status="Failed")  # doctest: +SKIP
        """
        from durable_helpers.snapshot import save_snapshot

        instances = self.instances(**instance_filters)
        if instance_ids is not None:
            wanted = set(as_list(instance_ids))
            instances = instances[instances["InstanceId"].isin(wanted)].reset_index(drop=True)
        histories = self.histories(
            instances["InstanceId"].tolist(),
            execution=execution,
            max_workers=max_workers,
            missing="skip",
        )
        return save_snapshot(path, instances=instances, histories=histories)

    def export(
        self,
        path: Any,
        *,
        status: str | Iterable[str] | None = None,
        name: str | Iterable[str] | None = None,
        created_from: Any = None,
        created_to: Any = None,
        instance_id_prefix: str | None = None,
        **options: Any,
    ) -> Any:
        """Export instances (filtered like :meth:`instances`) and their histories to
        Hive-partitioned Parquet (by created date): in chunks with bounded memory, resumable
        after an interruption, with a progress bar. Read it with DuckDB, Dask or ``load_export``.

        Delegates to ``durable_helpers.export.export_hub`` (its ``options``: execution,
        history_reads, chunk_size, chunk_rows, max_workers, progress, overwrite).

        Example:
            >>> hub.export("exports/week-48", created_from="2026-11-23")  # doctest: +SKIP
        """
        from durable_helpers.export import export_hub

        return export_hub(
            self,
            path,
            status=status,
            name=name,
            created_from=created_from,
            created_to=created_to,
            instance_id_prefix=instance_id_prefix,
            **options,
        )


def _hubs_of(account: StorageAccount) -> list[str]:
    with storage_errors(account):
        tables = {t.name for t in account.tables.list_tables()}
    found = []
    for table in tables:
        if table.endswith("History"):
            hub = table[: -len("History")]
            if f"{hub}Instances" in tables:
                try:
                    found.append(schema.validate_hub_name(hub))
                except ValueError:
                    continue
    return sorted(found, key=str.lower)
