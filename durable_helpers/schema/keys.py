"""Table keys and OData literals: PartitionKey escaping, History RowKeys, prefix ranges.

Owns the provider's ``^`` escaping of instance ids into PartitionKeys, the 16-hex RowKeys of
History rows (and the ``sentinel`` / ``""`` RowKeys), OData string and datetime literals, and
the PartitionKey range that selects every id with a given prefix. Calls ``values`` (UTC).
"""

from __future__ import annotations

from datetime import datetime

from durable_helpers.schema.values import to_utc

ESCAPE_CHAR = "^"
_ESCAPE_OFFSET = 0xC0  # 'À'
_ESCAPES = {"^": "^^", "/": "^0", "\\": "^1", "#": "^2", "?": "^3"}
_UNESCAPES = {"^": "^", "0": "/", "1": "\\", "2": "#", "3": "?"}
SENTINEL_ROW_KEY = "sentinel"
INSTANCE_ROW_KEY = ""


#: ``str.translate`` table of the escapes: the five special characters and every control
#: character (U+0000-U+001F, U+007F-U+009F, which become ``^`` + chr(0xC0 + code)).
_ESCAPE_TABLE = {
    **{code: ESCAPE_CHAR + chr(_ESCAPE_OFFSET + code) for code in range(0x20)},
    **{code: ESCAPE_CHAR + chr(_ESCAPE_OFFSET + code) for code in range(0x7F, 0xA0)},
    **{ord(ch): esc for ch, esc in _ESCAPES.items()},
}


def escape_partition_key(instance_id: str) -> str:
    """Escape an instance id into a PartitionKey the way the provider does (``^`` scheme).

    ``^`` -> ``^^``, ``/`` -> ``^0``, ``\\`` -> ``^1``, ``#`` -> ``^2``, ``?`` -> ``^3``, and a
    control character (U+0000-U+001F, U+007F-U+009F) -> ``^`` + chr(0xC0 + code).

    Example:
        >>> escape_partition_key("a/b#c^d")
        'a^0b^2c^^d'
    """
    return instance_id.translate(_ESCAPE_TABLE)


def unescape_partition_key(key: str) -> str:
    """Reverse :func:`escape_partition_key` (a dangling trailing ``^`` is kept as it is).

    Example:
        >>> unescape_partition_key("a^0b^2c^^d")
        'a/b#c^d'
    """
    if ESCAPE_CHAR not in key:
        return key
    out = []
    i, n = 0, len(key)
    while i < n:
        ch = key[i]
        if ch != ESCAPE_CHAR or i + 1 == n:
            out.append(ch)
            i += 1
            continue
        nxt = key[i + 1]
        plain = _UNESCAPES.get(nxt)
        if plain is None:
            code = ord(nxt)
            plain = nxt if code < _ESCAPE_OFFSET else chr(code - _ESCAPE_OFFSET)
        out.append(plain)
        i += 2
    return "".join(out)


def row_key(sequence: int) -> str:
    """The History RowKey of event number ``sequence``: 16 upper-case hex digits.

    Example:
        >>> row_key(10)
        '000000000000000A'
    """
    sequence = int(sequence)
    if sequence < 0:
        raise ValueError(f"a history sequence number is >= 0, not {sequence}")
    return f"{sequence:016X}"


def parse_row_key(key: str) -> int:
    """The sequence number of a History RowKey (raises ValueError for ``sentinel`` and junk).

    Example:
        >>> parse_row_key("000000000000000F")
        15
    """
    if not isinstance(key, str) or len(key) != 16:
        raise ValueError(f"not a history RowKey (16 hex digits): {key!r}")
    try:
        return int(key, 16)
    except ValueError:
        raise ValueError(f"not a history RowKey (16 hex digits): {key!r}") from None


def odata_string(value: str) -> str:
    """An OData string literal: single-quoted, embedded quotes doubled (no injection possible).

    Example:
        >>> odata_string("it's")
        "'it''s'"
    """
    if not isinstance(value, str):
        raise TypeError(f"expected a str for an OData string literal, got {type(value).__name__}")
    return "'" + value.replace("'", "''") + "'"


def odata_datetime(value: datetime) -> str:
    """An OData datetime literal in UTC.

    Example:
        >>> from datetime import timezone
        >>> odata_datetime(datetime(2026, 1, 2, tzinfo=timezone.utc))
        "datetime'2026-01-02T00:00:00.000000Z'"
    """
    utc = to_utc(value)  # the year is zero-padded by hand: strftime's %Y gives "1" for year 1
    return f"datetime'{utc.year:04d}-" + utc.strftime("%m-%dT%H:%M:%S.%fZ") + "'"


def prefix_range(prefix: str) -> tuple[str, str] | None:
    """PartitionKey range ``[low, high)`` holding every escaped key that starts with ``prefix``'s
    escaped form (as the provider's instance-id-prefix query does), or None for an empty prefix.

    Example:
        >>> prefix_range("ab")
        ('ab', 'ac')
    """
    low = escape_partition_key(prefix)
    if not low:
        return None
    last = ord(low[-1])
    if last >= 0x10FFFF:
        return None
    nxt = last + 1
    if 0xD800 <= nxt <= 0xDFFF:  # skip the surrogate block
        nxt = 0xE000
    return low, low[:-1] + chr(nxt)
