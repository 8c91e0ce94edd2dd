"""The task hub storage layout, in both directions: THE one package that knows it.

Everything about names, keys, columns, column types, nulls and large-payload blobs of the Durable
Task Framework's Azure Storage provider lives here (see
``/work/shared/reference/task-hub-storage-layout.md``). The reader (``taskhub``, ``frames``) uses
the decode half; the local task hub uses the encode half, so what it writes is exactly what the
reader (and real tooling) understands. Import from ``durable_helpers.schema``; the modules are
its parts, each owning one thing:

- ``names``: the hub name rule; table, queue and container names; control-queue partitions;
- ``keys``: PartitionKey escaping, History RowKeys, OData literals and prefix ranges;
- ``values``: one stored value <-> Python (UTC datetimes, JSON text, the three nulls);
- ``columns``: EventTypes, runtime statuses and the Edm type of every column;
- ``encode``: whole rows as the provider writes them (History, sentinel, Instances);
- ``decode``: whole rows as read, tolerant of both provider generations;
- ``failures``: a failure's type, message and stack from either generation's columns;
- ``payloads``: large properties in ``{hub}-largemessages`` blobs, out and back;
- ``entities``: durable entities: ids, scheduler state, status, their rows and queries;
- ``entity_messages``: the request / response / release bodies and event names of entities.

Encode example:
    >>> from datetime import datetime, timezone
    >>> t = datetime(2019, 12, 23, 14, 16, 27, tzinfo=timezone.utc)
    >>> e = history_entity("abc", "e1", 2, "TaskScheduled", event_id=0, is_played=False,
    ...                    timestamp=t, Name="Hello", Version="")
    >>> e["PartitionKey"], e["RowKey"], e["EventType"], e["EventId"]
    ('abc', '0000000000000002', 'TaskScheduled', 0)

Decode example:
    >>> decode_payload('"Hello Tokyo!"'), decode_payload("null"), decode_payload("not json")
    ('Hello Tokyo!', None, 'not json')
"""

from __future__ import annotations

from durable_helpers.schema.columns import (
    BOOL_COLUMNS,
    COMPLETION_EVENT_TYPES,
    DATETIME_COLUMNS,
    EVENT_TYPES,
    FAILURE_EVENT_TYPES,
    INT32_COLUMNS,
    INT64_COLUMNS,
    JSON_OBJECT_COLUMNS,
    ORCHESTRATION_STATUS_CODES,
    PAYLOAD_COLUMNS,
    RUNTIME_STATUSES,
    SCHEDULE_EVENT_TYPES,
    SYSTEM_COLUMNS,
    decode_column,
    encode_column,
)
from durable_helpers.schema.decode import (
    HISTORY_CONSUMED,
    INSTANCE_CONSUMED,
    decode_history_row,
    decode_instance_row,
    instance_id_of,
    is_sentinel,
    table_timestamp,
)
from durable_helpers.schema.encode import (
    history_entity,
    instance_entity,
    sentinel_entity,
)
from durable_helpers.schema.entities import (
    ENTITY_BATCH_EVENTS,
    ENTITY_CONSUMED,
    ENTITY_ID_PREFIX,
    ENTITY_KEY_RANGE,
    NOT_ENTITIES_FILTER,
    Engine,
    EntityStatus,
    SchedulerState,
    decode_entity_row,
    decode_entity_state,
    entity_batch_rows,
    entity_id_prefix,
    entity_instance_id,
    entity_query_filter,
    entity_status_json,
    is_entity_id,
    json_object,
    parse_entity_status,
    parse_scheduler_state,
    scheduler_state_json,
    split_entity_id,
)
from durable_helpers.schema.entity_messages import (
    CONTINUE_EVENT,
    LOCK_GRANTED_RESULT,
    MAX_SIGNAL_DELAY,
    OPERATION_EVENT,
    ORPHANED_LOCK_RELEASE_ID,
    RELEASE_EVENT,
    REQUEST_KEYS_BEFORE_ID,
    UNSET_DATETIME,
    EntityEvent,
    ReleaseMessage,
    RequestMessage,
    ResponseMessage,
    classify_entity_event,
    delayed_operation_event,
    dotnet_json_datetime,
    dotnet_o_datetime,
    parse_release_message,
    parse_request_message,
    parse_response_message,
    release_message_json,
    request_message_json,
    response_message_json,
)
from durable_helpers.schema.failures import (
    failed_output,
    split_failure,
)
from durable_helpers.schema.keys import (
    ESCAPE_CHAR,
    INSTANCE_ROW_KEY,
    SENTINEL_ROW_KEY,
    escape_partition_key,
    odata_datetime,
    odata_string,
    parse_row_key,
    prefix_range,
    row_key,
    unescape_partition_key,
)
from durable_helpers.schema.names import (
    DEFAULT_HUB,
    DEFAULT_PARTITION_COUNT,
    MAX_PARTITION_COUNT,
    HubNames,
    control_queue_index,
    hub_names,
    validate_hub_name,
)
from durable_helpers.schema.payloads import (
    BLOB_NAME_SUFFIX,
    LARGE_PAYLOAD_PROPERTIES,
    LARGE_PAYLOAD_THRESHOLD,
    blob_name_from_url,
    blob_url,
    compress_payload,
    decompress_payload,
    has_large_payloads,
    history_blob_name,
    inline_large_payloads,
    is_large,
    offload_history_payloads,
    offload_instance_payloads,
    utf16_size,
)
from durable_helpers.schema.values import (
    UTC,
    decode_payload,
    is_null,
    plain,
    raw_payload,
    to_bool,
    to_datetime,
    to_int,
    to_json,
    to_text,
    to_utc,
)

__all__ = [
    "BLOB_NAME_SUFFIX",
    "BOOL_COLUMNS",
    "COMPLETION_EVENT_TYPES",
    "CONTINUE_EVENT",
    "DATETIME_COLUMNS",
    "DEFAULT_HUB",
    "DEFAULT_PARTITION_COUNT",
    "ENTITY_BATCH_EVENTS",
    "ENTITY_CONSUMED",
    "ENTITY_ID_PREFIX",
    "ENTITY_KEY_RANGE",
    "ESCAPE_CHAR",
    "EVENT_TYPES",
    "FAILURE_EVENT_TYPES",
    "HISTORY_CONSUMED",
    "INSTANCE_CONSUMED",
    "INSTANCE_ROW_KEY",
    "INT32_COLUMNS",
    "INT64_COLUMNS",
    "JSON_OBJECT_COLUMNS",
    "LARGE_PAYLOAD_PROPERTIES",
    "LARGE_PAYLOAD_THRESHOLD",
    "LOCK_GRANTED_RESULT",
    "MAX_PARTITION_COUNT",
    "MAX_SIGNAL_DELAY",
    "NOT_ENTITIES_FILTER",
    "OPERATION_EVENT",
    "ORCHESTRATION_STATUS_CODES",
    "ORPHANED_LOCK_RELEASE_ID",
    "PAYLOAD_COLUMNS",
    "RELEASE_EVENT",
    "REQUEST_KEYS_BEFORE_ID",
    "RUNTIME_STATUSES",
    "SCHEDULE_EVENT_TYPES",
    "SENTINEL_ROW_KEY",
    "SYSTEM_COLUMNS",
    "UNSET_DATETIME",
    "UTC",
    "Engine",
    "EntityEvent",
    "EntityStatus",
    "HubNames",
    "ReleaseMessage",
    "RequestMessage",
    "ResponseMessage",
    "SchedulerState",
    "blob_name_from_url",
    "blob_url",
    "classify_entity_event",
    "compress_payload",
    "control_queue_index",
    "decode_column",
    "decode_entity_row",
    "decode_entity_state",
    "decode_history_row",
    "decode_instance_row",
    "decode_payload",
    "decompress_payload",
    "delayed_operation_event",
    "dotnet_json_datetime",
    "dotnet_o_datetime",
    "encode_column",
    "entity_batch_rows",
    "entity_id_prefix",
    "entity_instance_id",
    "entity_query_filter",
    "entity_status_json",
    "escape_partition_key",
    "failed_output",
    "has_large_payloads",
    "history_blob_name",
    "history_entity",
    "hub_names",
    "inline_large_payloads",
    "instance_entity",
    "instance_id_of",
    "is_entity_id",
    "is_large",
    "is_null",
    "is_sentinel",
    "json_object",
    "odata_datetime",
    "odata_string",
    "offload_history_payloads",
    "offload_instance_payloads",
    "parse_entity_status",
    "parse_release_message",
    "parse_request_message",
    "parse_response_message",
    "parse_row_key",
    "parse_scheduler_state",
    "plain",
    "prefix_range",
    "raw_payload",
    "release_message_json",
    "request_message_json",
    "response_message_json",
    "row_key",
    "scheduler_state_json",
    "sentinel_entity",
    "split_entity_id",
    "split_failure",
    "table_timestamp",
    "to_bool",
    "to_datetime",
    "to_int",
    "to_json",
    "to_text",
    "to_utc",
    "unescape_partition_key",
    "utf16_size",
    "validate_hub_name",
]
