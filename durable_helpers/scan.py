"""Fast reads of big tables: PartitionKey ranges read concurrently, a bounded pool, throttling.

This module owns *how* the reader talks to Azure Table storage when there is a lot to read; it
knows nothing of the task hub layout (``schema`` does) and builds no frames (``frames`` does).

- :func:`read_pages`: one query, page by page (continuation tokens followed), each page retried
  with exponential backoff when Storage throttles (HTTP 503 ServerBusy, 429), honouring
  ``Retry-After``; the page is asked for again from its own continuation token, so nothing is
  read twice.
- :func:`scan`: the same rows in the same order as one query, read faster: the first page is
  read as before (a small table costs one request, as it always did); when there is more, the
  rest of the key space is split into PartitionKey ranges (:func:`key_ranges`) read in parallel
  and concatenated in key order.
- :func:`bounded_map`: ``pool.map`` with at most ``max_workers`` calls in flight, results in
  input order, used by ``histories()`` and the export.
- :func:`pooled_transport`: an HTTP transport whose connection pool holds as many connections
  as the pool has threads (the SDK's default pool keeps 10 and drops the rest with warnings).

Example:
    >>> [str(r) for r in key_ranges("a", "b", split_points="05")]
    ["['a', 'a0')", "['a0', 'a5')", "['a5', 'b')"]
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, TypeVar

from azure.core.exceptions import HttpResponseError

from durable_helpers import schema
from durable_helpers.table_query import query_page

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: Concurrent requests per reader by default. A storage account serves 20,000 entities/s and a
#: partition 2,000/s (Azure's scalability targets); 16 requests of 1,000 rows in flight stay well
#: inside that while hiding a 20-50 ms round trip. Raise it on a fast link, lower it when
#: Storage throttles others sharing the account.
DEFAULT_MAX_WORKERS = 16
#: Upper bound of ``max_workers`` (and the size of the HTTP connection pool).
MAX_WORKERS = 64
#: Rows per page Azure Table storage returns at most.
PAGE_SIZE = 1000
#: First characters that split the key space into ranges: instance ids are mostly GUIDs (hex,
#: either case) or words; every other key still falls into one of the ranges between them.
SPLIT_POINTS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
#: HTTP statuses Storage uses for throttling (ServerBusy, OperationTimedOut, TooManyRequests).
THROTTLING_STATUSES = frozenset({429, 503})


def check_workers(max_workers: Any) -> int:
    """``max_workers`` as an int from 1 to :data:`MAX_WORKERS`, or a ValueError saying so.

    Example:
        >>> check_workers(8)
        8
    """
    if isinstance(max_workers, bool) or not isinstance(max_workers, int):
        raise ValueError(
            f"max_workers is a whole number from 1 to {MAX_WORKERS}, not {max_workers!r}"
        )
    if not 1 <= max_workers <= MAX_WORKERS:
        raise ValueError(f"max_workers is from 1 to {MAX_WORKERS}, not {max_workers}")
    return max_workers


# ------------------------------------------------------------------------------------ ranges


@dataclass(frozen=True)
class KeyRange:
    """PartitionKeys ``low <= key < high``; None means unbounded on that side.

    ``after_row`` (a RowKey) leaves out the rows of PartitionKey ``low`` up to and including that
    RowKey: the range then resumes right after a row already read. ``exclusive`` leaves out
    PartitionKey ``low`` itself.

    Example:
        >>> KeyRange("a", "b").odata()
        "PartitionKey ge 'a' and PartitionKey lt 'b'"
        >>> KeyRange("a", after_row="1").odata()
        "(PartitionKey eq 'a' and RowKey gt '1') or (PartitionKey gt 'a')"
    """

    low: str | None = None
    high: str | None = None
    after_row: str | None = None
    exclusive: bool = False

    def odata(self) -> str:
        """The range as an OData condition ("" when unbounded on both sides)."""
        upper = f"PartitionKey lt {schema.odata_string(self.high)}" if self.high is not None else ""
        if self.after_row is not None:
            low = schema.odata_string(self.low or "")
            rest = " and ".join(p for p in (f"PartitionKey gt {low}", upper) if p)
            row = schema.odata_string(self.after_row)
            return f"(PartitionKey eq {low} and RowKey gt {row}) or ({rest})"
        op = "gt" if self.exclusive else "ge"
        lower = f"PartitionKey {op} {schema.odata_string(self.low)}" if self.low else ""
        return " and ".join(p for p in (lower, upper) if p)

    def __str__(self) -> str:
        return f"[{self.low!r}, {self.high!r})"


def key_ranges(
    low: str | None = None, high: str | None = None, *, split_points: Sequence[str] = SPLIT_POINTS
) -> list[KeyRange]:
    """``[low, high)`` cut into consecutive ranges at ``low`` + each split point (in key order).

    The ranges cover ``[low, high)`` exactly, without gaps or overlaps, so reading them one after
    the other returns the rows of the whole range in key order.

    Example:
        >>> [str(r) for r in key_ranges(split_points="m")]
        ["[None, 'm')", "['m', None)"]
    """
    base = low or ""
    cuts = sorted({base + p for p in split_points})
    cuts = [c for c in cuts if c > base and (high is None or c < high)]
    bounds: list[str | None] = [low, *cuts, high]
    return [KeyRange(a, b) for a, b in pairwise(bounds)]


_HEX_LOWER = frozenset("0123456789abcdef")
_HEX_UPPER = frozenset("0123456789ABCDEF")


def split_points_for(rows: Sequence[Any], prefix: str = "") -> str:
    """The split points for keys like those of ``rows`` (entities) after ``prefix``: the 16
    hex digits when they look like GUIDs/hex ids (the Durable Functions default), else all of
    :data:`SPLIT_POINTS`. Either way the ranges cover every key; this only decides how evenly.

    Example:
        >>> split_points_for([{"PartitionKey": "0a3f9e21"}, {"PartitionKey": "0b77c0de"}])
        '0123456789abcdef'
    """
    chars: set[str] = set()
    for row in rows:
        key = row.get("PartitionKey") or ""
        chars.update(key[len(prefix) : len(prefix) + 8] if key.startswith(prefix) else "?")
    if chars and chars <= _HEX_LOWER:
        return "0123456789abcdef"
    if chars and chars <= _HEX_UPPER:
        return "0123456789ABCDEF"
    return SPLIT_POINTS


# ------------------------------------------------------------------------------------ retries


def _retry_after(error: HttpResponseError) -> float | None:
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None) or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


def is_throttling(error: BaseException) -> bool:
    """True for Storage's "slow down" answers (HTTP 503 ServerBusy, 429).

    Example:
        >>> is_throttling(HttpResponseError("busy")), is_throttling(ValueError())
        (False, False)
    """
    return isinstance(error, HttpResponseError) and error.status_code in THROTTLING_STATUSES


@dataclass(frozen=True)
class Backoff:
    """How throttled requests are retried: ``attempts`` tries, waits doubling from ``first``
    seconds up to ``cap`` (with jitter), or what the server's ``Retry-After`` asks.

    Example:
        >>> Backoff(first=0.5).delay(2, None) <= 2.0
        True
    """

    attempts: int = 8
    first: float = 0.5
    cap: float = 30.0

    def delay(self, attempt: int, error: HttpResponseError | None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        asked = _retry_after(error) if error is not None else None
        if asked is not None:
            return min(asked, self.cap)
        return min(self.cap, self.first * 2**attempt) * random.uniform(0.5, 1.0)

    def run(self, call: Callable[[], T], what: str = "request") -> T:
        """``call()``, retried while Storage throttles; other errors pass through."""
        for attempt in range(self.attempts):
            try:
                return call()
            except HttpResponseError as error:
                if not is_throttling(error) or attempt == self.attempts - 1:
                    raise
                wait = self.delay(attempt, error)
                log.info(
                    "storage throttled %s (HTTP %s); retry %d in %.2f s",
                    what,
                    error.status_code,
                    attempt + 1,
                    wait,
                )
                time.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover


DEFAULT_BACKOFF = Backoff()


# ------------------------------------------------------------------------------------ reading


def read_pages(
    table: Any,
    query_filter: str | None,
    *,
    page_size: int | None = PAGE_SIZE,
    continuation: Any = None,
    backoff: Backoff = DEFAULT_BACKOFF,
) -> Iterator[tuple[list[Any], Any]]:
    """Pages of one query as ``(entities, continuation)``; the last page's continuation is None.

    A throttled page is asked for again from the same continuation token (see :class:`Backoff`).

    Example:
        >>> for rows, token in read_pages(table, "PartitionKey ge 'a'"):  # doctest: +SKIP
        ...     print(len(rows), token)
    """
    token = continuation
    while True:

        def fetch(start: Any = token) -> tuple[list[Any], Any]:
            return query_page(table, query_filter, page_size=page_size, token=start)

        rows, token = backoff.run(fetch, f"query of {getattr(table, 'table_name', 'a table')}")
        yield rows, token
        if not token:
            return


def query(
    table: Any,
    query_filter: str | None,
    *,
    page_size: int | None = None,
    first_page_only: bool = False,
    backoff: Backoff = DEFAULT_BACKOFF,
) -> list[Any]:
    """Every row of one query (or its first page), throttled pages retried.

    Example:
        >>> query(table, "PartitionKey eq 'abc'")  # doctest: +SKIP
    """
    rows: list[Any] = []
    for page, _ in read_pages(table, query_filter, page_size=page_size, backoff=backoff):
        rows.extend(page)
        if first_page_only:
            break
    return rows


def _and(*conditions: str | None) -> str:
    parts = [c for c in conditions if c]
    if len(parts) == 1:
        return parts[0]
    return " and ".join(f"({c})" for c in parts)


def range_pages(
    table: Any,
    query_filter: str | None,
    key_range: KeyRange,
    *,
    continuation: Any = None,
    backoff: Backoff = DEFAULT_BACKOFF,
) -> Iterator[tuple[list[Any], Any]]:
    """:func:`read_pages` of ``query_filter`` restricted to ``key_range``.

    Example:
        >>> next(range_pages(table, None, KeyRange("a", "b")))  # doctest: +SKIP
    """
    return read_pages(
        table, _and(query_filter, key_range.odata()), continuation=continuation, backoff=backoff
    )


def scan(
    table: Any,
    query_filter: str | None,
    *,
    low: str | None = None,
    high: str | None = None,
    max_workers: int = DEFAULT_MAX_WORKERS,
    backoff: Backoff = DEFAULT_BACKOFF,
) -> list[Any]:
    """Every row of ``query_filter`` with ``low <= PartitionKey < high``, in table order.

    Same rows, same order as one query followed through its continuation pages. The first page
    is read alone; if the table has more, the keys after it are split into ranges
    (:func:`key_ranges`) read by up to ``max_workers`` threads.

    Example:
        >>> scan(hub_table, "RuntimeStatus eq 'Failed'", max_workers=16)  # doctest: +SKIP
    """
    workers = check_workers(max_workers)
    whole = KeyRange(low, high)
    pages = range_pages(table, query_filter, whole, backoff=backoff)
    first, token = next(pages)
    if not token or workers == 1:
        return first + [row for page, _ in pages for row in page]
    pages.close()
    ranges = key_ranges(low, high, split_points=split_points_for(first, low or ""))
    if first:  # tokens are opaque: resume right after the last row read instead
        last_key, last_row = first[-1]["PartitionKey"], first[-1].get("RowKey") or ""
        ranges = [r for r in ranges if r.high is None or r.high > last_key]
        ranges[0] = KeyRange(last_key, ranges[0].high, after_row=last_row)
    # (an empty first page with a token, as Azure sends while it scans a filter: all ranges)

    def read(index: int) -> list[Any]:
        part = range_pages(table, query_filter, ranges[index], backoff=backoff)
        return [row for page, _ in part for row in page]

    rows = first
    for part in bounded_map(read, range(len(ranges)), max_workers=workers):
        rows.extend(part)
    return rows


# ------------------------------------------------------------------------------------ pool


def bounded_map(
    fn: Callable[[T], R], items: Iterable[T], *, max_workers: int = DEFAULT_MAX_WORKERS
) -> Iterator[R]:
    """``fn`` over ``items`` in up to ``max_workers`` threads; results in input order.

    At most ``2 * max_workers`` calls are submitted ahead of the one being consumed, so a long
    input does not pile up finished results in memory. An error is raised when its result is
    reached; the calls not started yet are then cancelled.

    Example:
        >>> list(bounded_map(lambda x: x * x, range(5), max_workers=2))
        [0, 1, 4, 9, 16]
    """
    workers = check_workers(max_workers)
    ahead = 2 * workers
    pending: list[Future[R]] = []
    source = iter(items)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dh-scan") as pool:
        try:
            for item in source:
                pending.append(pool.submit(fn, item))
                if len(pending) >= ahead:
                    yield pending.pop(0).result()
            while pending:
                yield pending.pop(0).result()
        finally:
            for future in pending:
                future.cancel()


# ------------------------------------------------------------------------------------ transport


def pooled_transport(
    *,
    connection_timeout: float | None = None,
    read_timeout: float | None = None,
    connection_verify: bool | str | None = None,
) -> Any:
    """An azure-core requests transport keeping up to :data:`MAX_WORKERS` connections per host.

    Pass it as ``transport=`` to the SDK clients read by many threads at once. requests reads
    proxies, CA bundles and ``~/.netrc`` from the environment on every request (a tenth of the
    CPU of reading one history); when no proxy and no netrc is set, this transport reads the
    environment once instead: a ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` becomes its
    ``connection_verify`` (unless one is given).

    Example:
        >>> type(pooled_transport(read_timeout=60)).__name__
        'RequestsTransport'
    """
    from azure.core.pipeline.transport import RequestsTransport
    from requests.adapters import HTTPAdapter
    from urllib3 import Retry

    from durable_helpers.direct_session import DirectSession

    session = DirectSession()  # plain reads skip requests' preparation when trust_env is off
    adapter = HTTPAdapter(
        pool_connections=8,
        pool_maxsize=MAX_WORKERS,
        max_retries=Retry(total=False, redirect=False, raise_on_status=False),
    )
    for scheme in ("http://", "https://"):
        session.mount(scheme, adapter)
    if not _proxies_or_netrc():
        session.trust_env = False
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if connection_verify is None and bundle:
            connection_verify = bundle
    options = {
        k: v
        for k, v in (
            ("connection_timeout", connection_timeout),
            ("read_timeout", read_timeout),
            ("connection_verify", connection_verify),
        )
        if v is not None
    }
    return RequestsTransport(session=session, session_owner=False, **options)


def _proxies_or_netrc() -> bool:
    """True when requests would take proxies or credentials from the environment."""
    import urllib.request
    from pathlib import Path

    if urllib.request.getproxies() or os.environ.get("NETRC"):
        return True
    return any(Path(n).expanduser().exists() for n in ("~/.netrc", "~/_netrc"))


def with_pooled_transport(client_options: dict[str, Any]) -> dict[str, Any]:
    """``client_options`` with a :func:`pooled_transport` added, unless one was passed.

    The transport gets the timeouts of the options (``storage.DEFAULT_CLIENT_OPTIONS`` first).

    Example:
        >>> sorted(with_pooled_transport({"read_timeout": 5}))
        ['read_timeout', 'transport']
    """
    if "transport" in client_options:
        return client_options
    from durable_helpers.storage import DEFAULT_CLIENT_OPTIONS

    merged = {**DEFAULT_CLIENT_OPTIONS, **client_options}
    transport = pooled_transport(
        connection_timeout=merged.get("connection_timeout"),
        read_timeout=merged.get("read_timeout"),
        connection_verify=merged.get("connection_verify"),
    )
    return {**client_options, "transport": transport}
