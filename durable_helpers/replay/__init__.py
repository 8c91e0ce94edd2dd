"""Replay check: will changed orchestrator code break the instances that are running now?

``check(history, orchestrator)`` runs one instance's recorded history (a History frame) through
new orchestrator code the way the SDK worker replays it, with the SDK's own executor, without a
server and without running activities; ``check_many(histories, orchestrator)`` does it for every
instance of a frame. See docs/replay.md for what it can and cannot see.

Modules: ``checker`` (the two calls), ``history_input`` (frames -> executions),
``durabletask_style`` + ``sdk_executor`` (the ``durabletask`` SDK; the only user of its private
names), ``functions_style`` (``azure-functions-durable`` apps), ``result`` (what is reported).

Example:
    >>> from durable_helpers import replay
    >>> sorted(replay.__all__)[:3]
    ['Divergence', 'ReplayResult', 'check']
"""

from durable_helpers.replay.checker import check, check_many, detect_sdk
from durable_helpers.replay.result import Divergence, ReplayResult

__all__ = ["Divergence", "ReplayResult", "check", "check_many", "detect_sdk"]
