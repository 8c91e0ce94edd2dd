"""The hub's control and work-item queues with their approximate depths, as a typed frame.

Queue names come from ``schema`` (``{hub}-control-NN``, ``{hub}-workitems``); queues of other
hubs that share the prefix are left out. Used by ``TaskHub.queues``.

Example:
    >>> hub.queues()  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from durable_helpers import schema


def queue_depths(
    service: Any,
    names: schema.HubNames,
    *,
    call: Callable[[Callable[[], Any]], Any],
    confirm_hub: Callable[[], None],
) -> pd.DataFrame:
    """Control and work-item queues of the hub ``names`` with their approximate depth.

    ``service`` is a ``QueueServiceClient``; ``call`` runs each storage request (the reader's
    error mapping); ``confirm_hub`` is called when the hub has no queues at all (it raises if
    the hub itself is missing). Columns as ``TaskHub.queues`` says.

    Example:
        >>> queue_depths(  # doctest: +SKIP
        ...     account.queues, schema.hub_names("DurableFunctionsHub"),
        ...     call=lambda request: request(), confirm_hub=lambda: None)
    """
    prefix = f"{names.lower}-"
    queues = call(lambda: [q.name for q in service.list_queues(name_starts_with=prefix)])
    if not queues:
        confirm_hub()
    control = {names.control_queue(i): i for i in range(schema.MAX_PARTITION_COUNT)}
    rows = []
    now = pd.Timestamp.now(tz="UTC")
    for queue in sorted(queues):
        if queue == names.workitems_queue:
            kind, partition = "workitems", None
        elif queue in control:  # not e.g. a stray '-control-16' of someone else's
            kind, partition = "control", control[queue]
        else:
            continue
        client = service.get_queue_client(queue)
        props = call(client.get_queue_properties)
        peeked = call(lambda c=client: list(c.peek_messages(max_messages=1)))
        oldest = pd.Timestamp(peeked[0].inserted_on) if peeked else pd.NaT
        if oldest is not pd.NaT and oldest.tzinfo is None:
            oldest = oldest.tz_localize("UTC")
        rows.append(
            {
                "Queue": queue,
                "Kind": kind,
                "Partition": partition,
                "ApproximateMessageCount": props.approximate_message_count,
                "OldestMessageTime": oldest,
            }
        )
    frame = pd.DataFrame(
        rows,
        columns=[
            "Queue",
            "Kind",
            "Partition",
            "ApproximateMessageCount",
            "OldestMessageTime",
        ],
    )
    # All-empty queues give an all-NaT column that pandas reads as naive: make it UTC first.
    frame["OldestMessageTime"] = pd.to_datetime(frame["OldestMessageTime"], utc=True)
    frame["OldestMessageAge"] = now - frame["OldestMessageTime"]
    return frame.astype(
        {
            "Queue": "string",
            "Kind": "string",
            "Partition": "Int32",
            "ApproximateMessageCount": "Int64",
            "OldestMessageTime": "datetime64[ns, UTC]",
            "OldestMessageAge": "timedelta64[ns]",
        }
    )
