"""The stack's settings and its state file: StackConfig, Service, StackState, StackError.

Owns what ``up`` records in ``<data_dir>/stack.json`` (the config it ran with and one entry per
service: pid, endpoint, log) and how that file is written and read back. Calls only
:mod:`durable_helpers.local.stack.processes` (is a recorded pid still alive).

Example:
    >>> StackConfig(data_dir=Path("/tmp/hub")).ready_file("worker")
    PosixPath('/tmp/hub/run/worker.ready')
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from durable_helpers.local.azurite import DEFAULT_PORTS
from durable_helpers.local.stack.processes import alive
from durable_helpers.storage import azurite_connection_string

PROJECT_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_DATA_DIR = PROJECT_ROOT / ".local-taskhub"
STATE_FILE = "stack.json"
BACKENDS = ("taskhub", "memory")


class StackError(RuntimeError):
    """The stack could not be started or stopped; the message says why and what to do.

    Example:
        >>> str(StackError("Port 7071 is taken"))
        'Port 7071 is taken'
    """


@dataclass
class StackConfig:
    """Where and how the stack runs. Ports default to the Functions/Azurite ones.

    Example:
        >>> StackConfig().http_port
        7071
    """

    data_dir: Path = DEFAULT_DATA_DIR
    hub: str = "DurableFunctionsHub"
    host: str = "127.0.0.1"
    azurite_ports: tuple[int, int, int] = DEFAULT_PORTS
    sidecar_port: int = 4001
    startnew_port: int = 50051
    http_port: int = 7071
    in_memory: bool = False
    backend: str = "taskhub"
    samples: bool = True
    timeout: float = 60.0

    def check(self) -> None:
        """Raise StackError for settings no stack can run with (shared ports, bad timeout).

        Example:
            >>> StackConfig(http_port=4001).check()
            Traceback (most recent call last):
            ...
            durable_helpers.local.stack.config.StackError: Port 4001 is given twice ...
        """
        if self.backend not in BACKENDS:
            raise StackError(f"Unknown backend {self.backend!r}; use one of {BACKENDS}.")
        options = [
            ("--sidecar-port", self.sidecar_port),
            ("--startnew-port", self.startnew_port),
            ("--http-port", self.http_port),
        ]
        if self.backend == "taskhub":
            options += [("--azurite-ports", p) for p in self.azurite_ports]
        seen: dict[int, str] = {}
        for option, port in options:
            if port in seen:
                raise StackError(
                    f"Port {port} is given twice ({seen[port]} and {option}); every service "
                    "needs a port of its own."
                )
            seen[port] = option
        if not (isinstance(self.timeout, (int, float)) and 0 < self.timeout < float("inf")):
            raise StackError(f"--timeout is a number of seconds above 0, not {self.timeout!r}.")

    @property
    def connection_string(self) -> str:
        """The Azurite development connection string for ``azurite_ports``."""
        return azurite_connection_string(self.host, *self.azurite_ports)

    def ready_file(self, service: str) -> Path:
        """The file a worker service writes once it runs (and removes when it stops)."""
        return self.data_dir / "run" / f"{service}.ready"

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (paths as strings)."""
        data = asdict(self)
        data["data_dir"] = str(self.data_dir)
        data["azurite_ports"] = list(self.azurite_ports)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StackConfig:
        """The inverse of :meth:`to_json` (unknown keys ignored)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["data_dir"] = Path(known.get("data_dir", DEFAULT_DATA_DIR))
        known["azurite_ports"] = tuple(known.get("azurite_ports", DEFAULT_PORTS))
        return cls(**known)


@dataclass
class Service:
    """One background process of the stack (``owned`` False: found running, not ours).

    Example:
        >>> Service("worker", None, "samples", "/tmp/worker.log").running()
        False
    """

    name: str
    pid: int | None
    endpoint: str
    log: str
    owned: bool = True
    marker: str = ""

    def running(self) -> bool:
        """True when the recorded pid is alive and still the same program."""
        return self.pid is not None and alive(self.pid, self.marker)


@dataclass
class StackState:
    """What ``up`` started: the config and the services, as stored in ``stack.json``.

    Example:
        >>> StackState(StackConfig(data_dir=Path("/tmp/hub"))).path
        PosixPath('/tmp/hub/stack.json')
    """

    config: StackConfig
    services: dict[str, Service] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)

    @property
    def path(self) -> Path:
        """The state file."""
        return self.config.data_dir / STATE_FILE

    def save(self) -> None:
        """Write the state file (atomically)."""
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        data = {
            "config": self.config.to_json(),
            "services": {name: asdict(s) for name, s in self.services.items()},
        }
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(self.path)

    @classmethod
    def load(cls, data_dir: Path) -> StackState | None:
        """The state in ``data_dir``, or None when there is none."""
        path = Path(data_dir) / STATE_FILE
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
            config = StackConfig.from_json(data.get("config", {}))
            config.data_dir = Path(data_dir)
            services = {n: Service(**s) for n, s in data.get("services", {}).items()}
        except (ValueError, TypeError, AttributeError) as error:
            raise StackError(
                f"The state file {path} is damaged ({type(error).__name__}: {error}), so the "
                "services it lists cannot be found. Delete it, stop leftover processes by hand "
                "if any ('ps aux | grep durable_helpers.local'; Azurite: 'ps aux | grep "
                "azurite'), then run 'up' again."
            ) from None
        return cls(config, services)
