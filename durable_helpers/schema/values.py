"""One table value, in both directions: UTC datetimes, compact JSON text, the provider's nulls.

Owns how a single stored property becomes a Python value (unwrapping ``EntityProperty``, the
three spellings of null, ISO text with 7 fraction digits, JSON payload text) and how a Python
value becomes JSON text. Knows nothing of tables or columns; calls only the standard library.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any

#: UTC (``datetime.UTC`` needs Python 3.11; we support 3.10).
UTC = timezone.utc  # noqa: UP017


def to_utc(value: datetime) -> datetime:
    """A timezone-aware UTC datetime (a naive one is taken as UTC already).

    Example:
        >>> to_utc(datetime(2026, 1, 1)).tzinfo
        datetime.timezone.utc
    """
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}: {value!r}")
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def to_json(value: Any) -> str:
    """Compact JSON text, as the SDKs write payloads (``["a","b"]``, non-ASCII kept).

    Example:
        >>> to_json({"InstanceId": "abc", "ExecutionId": "e1"})
        '{"InstanceId":"abc","ExecutionId":"e1"}'
    """
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def plain(value: Any) -> Any:
    """The Python value of a table property (unwraps azure-data-tables ``EntityProperty``).

    Example:
        >>> plain(5), plain(None)
        (5, None)
    """
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    inner = getattr(value, "value", None)
    if inner is not None and hasattr(value, "edm_type"):
        return inner
    return value


def is_null(value: Any) -> bool:
    """True for the provider's three spellings of null: absent/None, ``""`` and ``"null"``.

    Example:
        >>> is_null(None), is_null(""), is_null("null"), is_null("0")
        (True, True, True, False)
    """
    return value is None or (isinstance(value, str) and (value == "" or value == "null"))


def decode_payload(text: Any) -> Any:
    """Decode a payload column: JSON text -> Python object; non-JSON text stays a string.

    Absent, ``""`` and ``"null"`` all decode to None.

    Example:
        >>> decode_payload('"Hello Tokyo!"'), decode_payload("null"), decode_payload("not json")
        ('Hello Tokyo!', None, 'not json')
    """
    text = plain(text)
    if text is None or text == "":
        return None
    if not isinstance(text, str):
        return text
    first = text.lstrip()[:1]
    if not first or first not in '{["-0123456789tfn':
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


_ISO_FRACTION = re.compile(r"^(.*T\d\d:\d\d:\d\d)\.(\d+)(.*)$")


def to_datetime(value: Any) -> datetime | None:
    """A UTC datetime from a table value (datetime, ISO-8601 text with up to 7 digits) or None.

    Example:
        >>> to_datetime("2018-02-28T05:18:49.3452372Z")
        datetime.datetime(2018, 2, 28, 5, 18, 49, 345237, tzinfo=datetime.timezone.utc)
    """
    value = plain(value)
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return to_utc(value)
    if isinstance(value, str):
        try:  # the service's own spelling, "2018-02-28T05:18:49.3452372Z", parses as it is
            return to_utc(datetime.fromisoformat(value))
        except ValueError:
            pass
        text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
        match = _ISO_FRACTION.match(text)
        if match:  # fromisoformat on 3.10 wants 3 or 6 digits: use exactly 6
            text = match.group(1) + "." + (match.group(2) + "000000")[:6] + match.group(3)
        try:
            return to_utc(datetime.fromisoformat(text))
        except ValueError:
            return None
    return None


def to_int(value: Any) -> int | None:
    """An int from a table value (Int32, Int64 ``EntityProperty``, numeric text) or None.

    Example:
        >>> to_int("3"), to_int(None), to_int("null")
        (3, None, None)
    """
    value = plain(value)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def to_bool(value: Any) -> bool | None:
    """A bool from a table value (bool or ``"true"``/``"false"`` text) or None.

    Example:
        >>> to_bool(True), to_bool("false"), to_bool(None)
        (True, False, None)
    """
    value = plain(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def to_text(value: Any) -> str | None:
    """A string column's value: text as stored (``""`` kept), None when absent.

    Example:
        >>> to_text(""), to_text(None), to_text(5)
        ('', None, '5')
    """
    value = plain(value)
    if value is None or isinstance(value, str):
        return value
    return str(value)


def raw_payload(value: Any) -> str | None:
    """A payload column as stored text; None when absent or ``""`` (``"null"`` is kept).

    Example:
        >>> raw_payload('"x"'), raw_payload(""), raw_payload("null")
        ('"x"', None, 'null')
    """
    value = to_text(value)
    return value if value else None
