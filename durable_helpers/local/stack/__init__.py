"""The demo stack as background processes: Azurite, the sidecar, the gateway, the sample workers.

``up`` starts what is not running yet (each in its own session, output in
``<data_dir>/logs/<service>.log``), waits until each answers (bounded), and records the pids in
``<data_dir>/stack.json``. ``down`` stops exactly those pids. ``status`` reads the state file and
checks every process. Ports already taken by another program are reported, never waited on.

The parts: ``config`` (settings and the state file), ``processes`` (start/stop/alive by pid),
``probes`` (does a service answer), ``services`` (what each service runs and how it is waited
for), ``lifecycle`` (up/down/status under a lock), ``report`` (what up and status print).
This module only gathers their public names.

Example:
    >>> from pathlib import Path
    >>> config = StackConfig(data_dir=Path("/tmp/hub"), sidecar_port=14001)
    >>> state = up(config)  # doctest: +SKIP
    >>> print(describe(status(config.data_dir)))  # doctest: +SKIP
    >>> down(config.data_dir)  # doctest: +SKIP
"""

from __future__ import annotations

from durable_helpers.local.azurite import DEFAULT_PORTS
from durable_helpers.local.stack.config import (
    BACKENDS,
    DEFAULT_DATA_DIR,
    PROJECT_ROOT,
    STATE_FILE,
    Service,
    StackConfig,
    StackError,
    StackState,
)
from durable_helpers.local.stack.lifecycle import all_running, down, status, up
from durable_helpers.local.stack.probes import grpc_port_answers, http_answers, sidecar_answers
from durable_helpers.local.stack.report import connection_help, describe
from durable_helpers.local.stack.services import SERVICES, answering, wanted_services

__all__ = [
    "BACKENDS",
    "DEFAULT_DATA_DIR",
    "DEFAULT_PORTS",
    "PROJECT_ROOT",
    "SERVICES",
    "STATE_FILE",
    "Service",
    "StackConfig",
    "StackError",
    "StackState",
    "all_running",
    "answering",
    "connection_help",
    "describe",
    "down",
    "grpc_port_answers",
    "http_answers",
    "sidecar_answers",
    "status",
    "up",
    "wanted_services",
]
