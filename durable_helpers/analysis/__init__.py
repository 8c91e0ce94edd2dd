"""Analyses over history and instance frames (docs/frames.md): frames in, frames out, no I/O.

Example:
    >>> from durable_helpers import analysis as da
    >>> c = da.calls(history)                                           # doctest: +SKIP
    >>> da.latency(c)                                                   # doctest: +SKIP
"""

from .calls import CALL_COLUMNS, calls
from .compare import compare, first_divergence
from .episodes import episodes
from .failures import failures
from .stats import LARGE_PAYLOAD_BYTES, latency, sizes, status_over_time
from .stuck import stuck

__all__ = [
    "CALL_COLUMNS",
    "LARGE_PAYLOAD_BYTES",
    "calls",
    "compare",
    "episodes",
    "failures",
    "first_divergence",
    "latency",
    "sizes",
    "status_over_time",
    "stuck",
]
