"""Task hub names: the hub name rule and the tables, queues and containers a hub owns.

Owns ``validate_hub_name``, ``hub_names`` (``{hub}History``, ``{hub}Instances``, the
lower-cased queues and containers) and the control-queue partitioning of instance ids (FNV-1a).
Calls only the standard library.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_HUB = "DurableFunctionsHub"
DEFAULT_PARTITION_COUNT = 4
MAX_PARTITION_COUNT = 16
_HUB_RE = re.compile(r"[A-Za-z][A-Za-z0-9]{2,44}")


def validate_hub_name(hub: str) -> str:
    """Return ``hub`` if it is a valid task hub name, else raise a ValueError saying why.

    The safe rule (docs + provider code): 3 to 45 letters and digits, starting with a letter.

    Example:
        >>> validate_hub_name("DurableFunctionsHub")
        'DurableFunctionsHub'
    """
    if not isinstance(hub, str) or not _HUB_RE.fullmatch(hub):
        raise ValueError(
            f"Invalid task hub name {hub!r}: a hub name must be 3 to 45 characters, only letters "
            "and digits (A-Z, a-z, 0-9), and start with a letter, e.g. 'DurableFunctionsHub'."
        )
    return hub


@dataclass(frozen=True)
class HubNames:
    """The storage resource names of one task hub (tables keep the case, queues are lower-cased).

    Example:
        >>> names = hub_names("MyHub")
        >>> names.history_table, names.workitems_queue, names.control_queue(2)
        ('MyHubHistory', 'myhub-workitems', 'myhub-control-02')
    """

    hub: str
    history_table: str
    instances_table: str
    partitions_table: str
    workitems_queue: str
    largemessages_container: str
    leases_container: str
    applease_container: str

    @property
    def lower(self) -> str:
        """The hub name lower-cased, as used for queues and containers."""
        return self.hub.lower()

    def control_queue(self, index: int) -> str:
        """Name of control queue ``index`` (0-based, 2-digit zero-padded).

        Example:
            >>> hub_names("MyHub").control_queue(0)
            'myhub-control-00'
        """
        if not 0 <= int(index) < MAX_PARTITION_COUNT:
            raise ValueError(
                f"control queue index must be 0..{MAX_PARTITION_COUNT - 1}, not {index}"
            )
        return f"{self.lower}-control-{int(index):02d}"

    def control_queues(self, partition_count: int = DEFAULT_PARTITION_COUNT) -> list[str]:
        """Names of all control queues for ``partition_count`` partitions (1..16, default 4).

        Example:
            >>> hub_names("MyHub").control_queues(2)
            ['myhub-control-00', 'myhub-control-01']
        """
        if not 1 <= int(partition_count) <= MAX_PARTITION_COUNT:
            raise ValueError(
                f"partition_count must be 1..{MAX_PARTITION_COUNT}, not {partition_count}"
            )
        return [self.control_queue(i) for i in range(int(partition_count))]


def hub_names(hub: str) -> HubNames:
    """Validate ``hub`` and return the names of its tables, queues and containers.

    Example:
        >>> hub_names("DurableFunctionsHub").largemessages_container
        'durablefunctionshub-largemessages'
    """
    validate_hub_name(hub)
    low = hub.lower()
    return HubNames(
        hub=hub,
        history_table=f"{hub}History",
        instances_table=f"{hub}Instances",
        partitions_table=f"{hub}Partitions",
        workitems_queue=f"{low}-workitems",
        largemessages_container=f"{low}-largemessages",
        leases_container=f"{low}-leases",
        applease_container=f"{low}-applease",
    )


def control_queue_index(instance_id: str, partition_count: int = DEFAULT_PARTITION_COUNT) -> int:
    """The control-queue partition of an instance: 32-bit FNV-1a of its UTF-8 bytes, modulo count.

    Example:
        >>> 0 <= control_queue_index("abc") < 4
        True
    """
    h = 2166136261
    for byte in instance_id.encode("utf-8"):
        h ^= byte
        h = (h * 16777619) & 0xFFFFFFFF
    return h % int(partition_count)
