"""durable_helpers: explore Durable Functions task hubs from Python and Jupyter.

The names below are imported on first use, so ``python -m durable_helpers.local serve`` (which
needs none of pandas) starts small.

Example:
    >>> import durable_helpers
    >>> durable_helpers.TaskHub.__name__
    'TaskHub'
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "TaskHub": "taskhub",
    "HubNotFoundError": "taskhub",
    "InstanceNotFoundError": "taskhub",
    "EntityNotFoundError": "entity_frames",
    "GrpcTaskHub": "grpc_taskhub",
    "Snapshot": "snapshot",
    "load_snapshot": "snapshot",
    "explore": "explorer",
}

__all__ = [
    "EntityNotFoundError",
    "GrpcTaskHub",
    "HubNotFoundError",
    "InstanceNotFoundError",
    "Snapshot",
    "TaskHub",
    "__version__",
    "explore",
    "load_snapshot",
]

if TYPE_CHECKING:
    from .entity_frames import EntityNotFoundError
    from .explorer import explore
    from .grpc_taskhub import GrpcTaskHub
    from .snapshot import Snapshot, load_snapshot
    from .taskhub import HubNotFoundError, InstanceNotFoundError, TaskHub


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
