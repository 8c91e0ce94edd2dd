"""The arguments of ``instances()`` and ``histories()``, checked once for both readers.

TaskHub (tables) and GrpcTaskHub (a sidecar) take the same filters; this module turns what a
user typed into checked values, or a ValueError that says what to pass instead.

Example:
    >>> InstanceFilter.of(status="failed", limit=10).statuses
    ['Failed']
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from durable_helpers import schema


def as_list(value: str | Iterable[str]) -> list[str]:
    """One value or several as a list (a str is one value, not its characters).

    Example:
        >>> as_list("abc"), as_list(("a", "b"))
        (['abc'], ['a', 'b'])
    """
    return [value] if isinstance(value, str) else list(value)


def check_instance_id(instance_id: Any) -> str:
    """The id itself, or a ValueError for anything but a non-empty str.

    Example:
        >>> check_instance_id("order-1")
        'order-1'
    """
    if not isinstance(instance_id, str) or not instance_id:
        raise ValueError(f"an instance id is a non-empty string, not {instance_id!r}")
    return instance_id


def instance_ids(ids: str | Iterable[str]) -> list[str]:
    """Distinct instance ids in first-seen order (one id may be passed as a str).

    Example:
        >>> instance_ids(["b", "a", "b"])
        ['b', 'a']
    """
    return list(dict.fromkeys(check_instance_id(i) for i in as_list(ids)))


def utc_datetime(value: Any, argument: str = "created_from") -> datetime:
    """A datetime, date or ISO 8601 string as an aware UTC datetime (naive means UTC).

    Example:
        >>> utc_datetime("2026-11-26 12:00").isoformat()
        '2026-11-26T12:00:00+00:00'
    """
    stamp = None
    if isinstance(value, (str, date, np.datetime64)):  # not numbers: epoch units are ambiguous
        try:
            stamp = pd.Timestamp(value)
        except ValueError:
            stamp = None
    if stamp is None or pd.isna(stamp):
        raise ValueError(
            f"{argument} takes a datetime or an ISO 8601 string such as '2026-11-26T12:00Z' "
            f"(naive means UTC), not {value!r}"
        )
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()


def runtime_statuses(value: Any) -> list[str]:
    """Runtime status names, case-insensitive; enums (durabletask's OrchestrationStatus) by name.

    Example:
        >>> runtime_statuses(["running", "Pending"])
        ['Running', 'Pending']
    """
    if hasattr(value, "name") or not isinstance(value, Iterable):
        value = [value]
    names = [getattr(v, "name", v) for v in as_list(value)]
    known = {s.lower(): s for s in schema.RUNTIME_STATUSES}
    statuses = [
        known.get(n.lower().replace("_", "")) if isinstance(n, str) else None for n in names
    ]
    if not names or None in statuses:
        raise ValueError(
            f"Unknown runtime status {value!r}; use any of {list(schema.RUNTIME_STATUSES)}, "
            "or status=None for all"
        )
    return [s for s in statuses if s is not None]


def _names(value: Any) -> list[str]:
    values = as_list(value)
    if not values or any(not isinstance(v, str) for v in values):
        raise ValueError(
            f"name takes one orchestration name or a list of names (str), not {value!r}; "
            "pass name=None for every name"
        )
    return values


def _limit(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"limit is a whole number of rows (0 or more) or None, not {value!r}")
    return int(value)


@dataclass(frozen=True)
class InstanceFilter:
    """Checked filters of ``instances()``: None (or "") means no filter on that field."""

    statuses: list[str] | None = None
    names: list[str] | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    id_prefix: str = ""
    limit: int | None = None

    @classmethod
    def of(
        cls,
        status: Any = None,
        name: Any = None,
        created_from: Any = None,
        created_to: Any = None,
        instance_id_prefix: Any = None,
        limit: Any = None,
    ) -> InstanceFilter:
        """Check the user's arguments; a ValueError says which one and what to pass.

        Example:
            >>> InstanceFilter.of(created_from="2026-11-26").created_from.year
            2026
        """
        if instance_id_prefix is not None and not isinstance(instance_id_prefix, str):
            raise ValueError(f"instance_id_prefix is a str, not {instance_id_prefix!r}")
        return cls(
            statuses=None if status is None else runtime_statuses(status),
            names=None if name is None else _names(name),
            created_from=None
            if created_from is None
            else utc_datetime(created_from, "created_from"),
            created_to=None if created_to is None else utc_datetime(created_to, "created_to"),
            id_prefix=instance_id_prefix or "",
            limit=_limit(limit),
        )
