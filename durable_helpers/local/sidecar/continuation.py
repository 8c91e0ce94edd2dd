"""Continuation tokens of the sidecar's paged queries (instances, instance ids, entities).

A token is the Table service's continuation (next PartitionKey, next RowKey) as URL-safe base64
JSON: opaque to clients, and checked when it comes back.

Example:
    >>> decode_token(encode_token(("@counter@c1", "")))
    ('@counter@c1', '')
"""

from __future__ import annotations

import base64
import json


def encode_token(token: tuple[str, str]) -> str:
    """The continuation token of a Table continuation (next PartitionKey, next RowKey).

    Example:
        >>> encode_token(("a", ""))
        'WyJhIiwgIiJd'
    """
    return base64.urlsafe_b64encode(json.dumps(list(token)).encode()).decode()


def decode_token(value: str) -> tuple[str, str] | None:
    """The Table continuation of a token (None for none); ValueError for a foreign token.

    Example:
        >>> decode_token(""), decode_token("0")
        (None, None)
    """
    if not value or value == "0":
        return None
    try:
        pk, rk = json.loads(base64.urlsafe_b64decode(value.encode()))
        return str(pk), str(rk)
    except (ValueError, TypeError):
        raise ValueError(
            f"The continuation token {value[:40]!r} was not issued by this task hub; pass the "
            "token of the previous page unchanged, or none for the first page."
        ) from None
