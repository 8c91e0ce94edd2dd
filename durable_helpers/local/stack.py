"""The demo stack as background processes: Azurite, the sidecar, the gateway, the sample worker.

``up`` starts what is not running yet (each in its own session, output in
``<data_dir>/logs/<service>.log``), waits until each answers (bounded), and records the pids in
``<data_dir>/stack.json``. ``down`` stops exactly those pids. ``status`` reads the state file and
checks every process. Ports already taken by another program are reported, never waited on.

Example:
    >>> config = StackConfig(data_dir=Path("/tmp/hub"), sidecar_port=14001)
    >>> state = up(config)  # doctest: +SKIP
    >>> print(describe(status(config.data_dir)))  # doctest: +SKIP
    >>> down(config.data_dir)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from durable_helpers.local.azurite import DEFAULT_PORTS, Azurite, AzuriteError
from durable_helpers.local.ports import port_taken
from durable_helpers.storage import azurite_connection_string

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIR = PROJECT_ROOT / ".local-taskhub"
STATE_FILE = "stack.json"
SERVICES = ("azurite", "sidecar", "gateway", "worker")
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
            durable_helpers.local.stack.StackError: Port 4001 is given twice ...
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
        return self.pid is not None and _alive(self.pid, self.marker)


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


# ----------------------------------------------------------------------------- process helpers
def _alive(pid: int, marker: str = "") -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError, IndexError):
        if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            return False
    if marker:
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            return marker in cmdline
    return True


def _log_tail(path: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        text = path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join("    " + line for line in text)
    return ""


def _stop_pid(pid: int, marker: str, timeout: float = 10.0) -> bool:
    """SIGTERM the process group of ``pid`` (its own session), SIGKILL after ``timeout``."""
    if not _alive(pid, marker):
        return False
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return True
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _alive(pid):
                return True
            time.sleep(0.1)
    return not _alive(pid)


def _spawn(
    config: StackConfig, name: str, args: list[str], env: dict[str, str] | None = None
) -> tuple[subprocess.Popen, Path]:
    logs = config.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{name}.log"
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PROJECT_ROOT), environment.get("PYTHONPATH", "")) if p
    )
    environment["PYTHONUNBUFFERED"] = "1"
    environment.update(env or {})
    with open(log_path, "ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {name} ===\n".encode())
        log.flush()
        process = subprocess.Popen(
            [sys.executable, "-m", "durable_helpers.local", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=config.data_dir,
            env=environment,
            start_new_session=True,
        )
    return process, log_path


def _wait(what: str, process: subprocess.Popen, log: Path, check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(
                f"The {what} exited at start (code {process.returncode}); see {log}:\n"
                + _log_tail(log)
            )
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.2)
    raise StackError(
        f"The {what} did not answer within {timeout:.0f} s; see {log}:\n" + _log_tail(log)
    )


def sidecar_answers(address: str, timeout: float = 2.0) -> bool:
    """True when a Durable Task sidecar answers ``Hello`` at ``address``.

    Example:
        >>> sidecar_answers("127.0.0.1:1", timeout=0.2)
        False
    """
    import grpc
    from durabletask.internal import orchestrator_service_pb2_grpc as stubs
    from google.protobuf import empty_pb2

    with grpc.insecure_channel(address) as channel:
        try:
            stubs.TaskHubSidecarServiceStub(channel).Hello(empty_pb2.Empty(), timeout=timeout)
        except grpc.RpcError:
            return False
    return True


def http_answers(url: str, timeout: float = 2.0) -> bool:
    """True when ``url`` answers HTTP 200.

    Example:
        >>> http_answers("http://127.0.0.1:1/", timeout=0.2)
        False
    """
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def grpc_port_answers(address: str, timeout: float = 2.0) -> bool:
    """True when an HTTP/2 (gRPC) server accepts a channel at ``address``.

    Example:
        >>> grpc_port_answers("127.0.0.1:1", timeout=0.2)
        False
    """
    import grpc

    with grpc.insecure_channel(address) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            return False
    return True


def _http_check_url(config: StackConfig) -> str:
    return f"http://{config.host}:{config.http_port}/runtime/webhooks/durabletask/instances?top=1"


# --------------------------------------------------------------------------------- operations
def _check_port(config: StackConfig, port: int, what: str, option: str) -> None:
    if port_taken(config.host, port):
        raise StackError(
            f"Port {port} on {config.host} ({what}) is taken by another program. Stop it, or "
            f"choose another port with {option} <port>."
        )


Waiter = Callable[[], None]


def _start_azurite(config: StackConfig, state: StackState) -> Waiter:
    log = config.data_dir / "logs" / "azurite.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    azurite = Azurite(
        host=config.host,
        ports=config.azurite_ports,
        data_dir=config.data_dir / "azurite",
        in_memory=config.in_memory,
        log_file=log,
        startup_timeout=config.timeout,
    )
    try:
        azurite.start()
    except AzuriteError as error:
        raise StackError(f"{error}\n{_log_tail(log)}") from None
    endpoint = ",".join(str(p) for p in config.azurite_ports)
    if azurite.reused:
        state.messages.append(
            f"Azurite already answers on ports {endpoint}; using it (down leaves it running)."
        )
        state.services["azurite"] = Service("azurite", None, endpoint, str(log), owned=False)
    else:
        state.services["azurite"] = Service(
            "azurite", azurite.pid, endpoint, str(log), marker="azurite"
        )
    return lambda: None  # Azurite.start() already waited until it answers


def _start_sidecar(config: StackConfig, state: StackState) -> Waiter:
    _check_port(config, config.sidecar_port, "Durable Task sidecar", "--sidecar-port")
    address = f"{config.host}:{config.sidecar_port}"
    args = [
        "serve",
        "--hub",
        config.hub,
        "--host",
        config.host,
        "--port",
        str(config.sidecar_port),
        "--backend",
        config.backend,
    ]
    env = {"AzureWebJobsStorage": config.connection_string} if config.backend == "taskhub" else {}
    process, log = _spawn(config, "sidecar", args, env)
    state.services["sidecar"] = Service(
        "sidecar", process.pid, address, str(log), marker="durable_helpers.local serve"
    )
    return lambda: _wait("sidecar", process, log, lambda: sidecar_answers(address), config.timeout)


def _start_gateway(config: StackConfig, state: StackState) -> Waiter:
    _check_port(config, config.startnew_port, "StartNew gRPC channel", "--startnew-port")
    _check_port(config, config.http_port, "HTTP management API", "--http-port")
    args = [
        "gateway",
        "--sidecar",
        f"{config.host}:{config.sidecar_port}",
        "--hub",
        config.hub,
        "--host",
        config.host,
        "--startnew-port",
        str(config.startnew_port),
        "--http-port",
        str(config.http_port),
    ]
    process, log = _spawn(config, "gateway", args)
    endpoint = f"{config.host}:{config.startnew_port},http://{config.host}:{config.http_port}"
    state.services["gateway"] = Service(
        "gateway", process.pid, endpoint, str(log), marker="durable_helpers.local gateway"
    )
    return lambda: _wait(
        "gateway",
        process,
        log,
        lambda: (
            http_answers(_http_check_url(config))
            and grpc_port_answers(f"{config.host}:{config.startnew_port}")
        ),
        config.timeout,
    )


def _start_worker(config: StackConfig, state: StackState) -> Waiter:
    ready = config.data_dir / "run" / "worker.ready"
    ready.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        ready.unlink()
    args = [
        "worker",
        "--sidecar",
        f"{config.host}:{config.sidecar_port}",
        "--state-dir",
        str(config.data_dir / "samples-state"),
        "--ready-file",
        str(ready),
    ]
    process, log = _spawn(config, "worker", args)
    state.services["worker"] = Service(
        "worker", process.pid, "samples", str(log), marker="durable_helpers.local worker"
    )
    return lambda: _wait("sample worker", process, log, ready.exists, config.timeout)


_STARTERS = {
    "azurite": _start_azurite,
    "sidecar": _start_sidecar,
    "gateway": _start_gateway,
    "worker": _start_worker,
}


def wanted_services(config: StackConfig) -> list[str]:
    """The services ``up`` runs for ``config``, in start order.

    Example:
        >>> wanted_services(StackConfig(backend="memory", samples=False))
        ['sidecar', 'gateway']
    """
    names = list(SERVICES)
    if config.backend == "memory":
        names.remove("azurite")
    if not config.samples:
        names.remove("worker")
    return names


def _preflight(config: StackConfig, state: StackState) -> None:
    """Fail before starting anything when a port of a service still to start is taken."""
    if config.backend == "taskhub" and "sidecar" not in state.services:
        import importlib.util

        if importlib.util.find_spec("durable_helpers.local.serve") is None:
            raise StackError(
                "The local task hub sidecar (durable_helpers.local.serve) is not installed in "
                "this checkout yet. Use '--backend memory' for the SDK's in-memory backend."
            )
    ports = {
        "sidecar": [(config.sidecar_port, "Durable Task sidecar", "--sidecar-port")],
        "gateway": [
            (config.startnew_port, "StartNew gRPC channel", "--startnew-port"),
            (config.http_port, "HTTP management API", "--http-port"),
        ],
    }
    for name in wanted_services(config):
        service = state.services.get(name)
        if service is not None and (service.running() or not service.owned):
            continue
        for port, what, option in ports.get(name, []):
            _check_port(config, port, what, option)


@contextlib.contextmanager
def _locked(data_dir: Path, timeout: float = 120.0) -> Any:
    """Hold ``<data_dir>/stack.lock`` so two ``up``/``down`` runs do not interleave."""
    import fcntl

    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / "stack.lock", "a") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StackError(
                        f"Another 'up' or 'down' is running on {data_dir}; try again later."
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def up(config: StackConfig) -> StackState:
    """Start every service that is not running yet; idempotent. Raises :class:`StackError`.

    When a stack already runs in ``config.data_dir`` its recorded settings win (ports, hub),
    and only the services that died are started again. On a failure, what this call started
    is stopped again.

    Example:
        >>> state = up(StackConfig(data_dir=Path("/tmp/hub")))  # doctest: +SKIP
        >>> state.services["gateway"].running()  # doctest: +SKIP
        True
    """
    config.check()
    config.data_dir = Path(config.data_dir).resolve()
    with _locked(config.data_dir):
        return _up(config)


def _up(config: StackConfig) -> StackState:
    previous = StackState.load(config.data_dir)
    state = StackState(config)
    if previous is not None:
        alive = {n: s for n, s in previous.services.items() if s.owned and s.running()}
        if alive:
            if previous.config.to_json() != config.to_json():
                state.messages.append(
                    "A stack already runs from this data folder; keeping its settings "
                    "(run 'down' first to change them)."
                )
            config = previous.config
            state = StackState(config, dict(alive))
            for name, service in previous.services.items():
                if not service.owned:
                    state.services[name] = service
    _preflight(config, state)
    # Azurite first (it is waited for at once); the others start together and are waited for
    # in order: the worker and the gateway find the sidecar by themselves once it answers.
    started: list[str] = []
    try:
        waiters: list[Waiter] = []
        for name in wanted_services(config):
            service = state.services.get(name)
            if service is not None and (service.running() or not service.owned):
                continue
            waiters.append(_STARTERS[name](config, state))
            started.append(name)
            state.save()
        for wait in waiters:
            wait()
    except BaseException:
        for name in reversed(started):
            service = state.services.pop(name, None)
            if service and service.owned and service.pid:
                _stop_pid(service.pid, service.marker)
        if state.services:
            state.save()
        else:
            with contextlib.suppress(FileNotFoundError):
                state.path.unlink()
        raise
    if not started:
        state.messages.append("Everything is already running.")
    state.save()
    return state


def down(data_dir: Path = DEFAULT_DATA_DIR) -> list[str]:
    """Stop what ``up`` started from ``data_dir`` (by pid); returns one line per service.

    Example:
        >>> down(Path("/tmp/no-stack-here"))
        ['Nothing to stop: no stack was started from /tmp/no-stack-here.']
    """
    if StackState.load(Path(data_dir)) is None:
        return [f"Nothing to stop: no stack was started from {data_dir}."]
    with _locked(Path(data_dir)):
        return _down(Path(data_dir))


def _down(data_dir: Path) -> list[str]:
    state = StackState.load(data_dir)
    if state is None:
        return [f"Nothing to stop: no stack was started from {data_dir}."]
    lines = []
    for name in reversed(SERVICES):
        service = state.services.get(name)
        if service is None:
            continue
        if not service.owned:
            lines.append(f"{name}: not started by 'up', left running.")
        elif service.pid and _stop_pid(service.pid, service.marker):
            lines.append(f"{name}: stopped (pid {service.pid}).")
        else:
            lines.append(f"{name}: was not running.")
    with contextlib.suppress(FileNotFoundError):
        state.path.unlink()
    with contextlib.suppress(FileNotFoundError):
        (state.config.data_dir / "run" / "worker.ready").unlink()
    return lines


def status(data_dir: Path = DEFAULT_DATA_DIR) -> StackState | None:
    """The recorded stack in ``data_dir`` (None when ``up`` never ran there or after ``down``).

    Example:
        >>> status(Path("/tmp/no-stack-here")) is None
        True
    """
    return StackState.load(Path(data_dir))


def all_running(state: StackState | None) -> bool:
    """True when every service the stack wants is running (or reused).

    Example:
        >>> all_running(None)
        False
    """
    if state is None:
        return False
    for name in wanted_services(state.config):
        service = state.services.get(name)
        if service is None or (service.owned and not service.running()):
            return False
    return True


def answering(config: StackConfig, name: str) -> bool:
    """True when service ``name`` of the stack answers on its endpoint (a quick probe).

    Example:
        >>> answering(StackConfig(sidecar_port=1), "sidecar")
        False
    """
    if name == "azurite":
        return Azurite(host=config.host, ports=config.azurite_ports).answering()
    if name == "sidecar":
        return sidecar_answers(f"{config.host}:{config.sidecar_port}", timeout=1.0)
    if name == "gateway":
        return http_answers(_http_check_url(config), timeout=3.0) and grpc_port_answers(
            f"{config.host}:{config.startnew_port}", timeout=1.0
        )
    return (config.data_dir / "run" / "worker.ready").exists()


def describe(state: StackState | None, *, connect: bool = False, probe: bool = False) -> str:
    """Human-readable lines: each service, its state, endpoint and log file.

    ``probe=True`` also checks that each running service answers on its endpoint.

    Example:
        >>> describe(None)
        'The local task hub is not running (no state file).'
    """
    if state is None:
        return "The local task hub is not running (no state file)."
    config = state.config
    labels = {
        "azurite": lambda: (
            "Azurite (storage)  blob/queue/table ports "
            + ", ".join(str(p) for p in config.azurite_ports)
        ),
        "sidecar": lambda: f"Sidecar (Durable Task gRPC)  {config.host}:{config.sidecar_port}",
        "gateway": lambda: (
            f"StartNew gRPC  {config.host}:{config.startnew_port};  HTTP API  "
            f"http://{config.host}:{config.http_port}"
            "/runtime/webhooks/durabletask"
        ),
        "worker": lambda: "Sample worker (HelloSequence, FanOutFanIn, ApprovalWorkflow, ...)",
    }
    lines = [
        f"Task hub {config.hub!r}  (data folder {config.data_dir}, backend "
        f"{config.backend}{', Azurite in memory' if config.in_memory else ''})"
    ]
    sidecar_down = probe and not answering(config, "sidecar")
    for name in wanted_services(config):
        service = state.services.get(name)
        if service is None:
            condition = "not started"
        elif not service.owned:
            condition = "running (not started by up)"
        elif service.running():
            condition = f"running, pid {service.pid}"
            if probe and name == "gateway" and sidecar_down:
                condition += " (it answers only when the sidecar does)"
            elif probe and not answering(config, name):
                condition += ", but NOT answering (see its log)"
        else:
            condition = f"STOPPED (pid {service.pid} is gone)"
        log = f"\n      log: {service.log}" if service else ""
        lines.append(f"  {labels[name]()}\n      {condition}{log}")
    if connect:
        lines += connection_help(config)
    return "\n".join(lines)


def connection_help(config: StackConfig) -> list[str]:
    """How to connect to the stack (the Azurite key is the public development one).

    Example:
        >>> connection_help(StackConfig())[1].strip().startswith("durabletask")
        True
    """
    lines = [
        "How to connect:",
        "  durabletask SDK:  TaskHubGrpcClient(host_address="
        f'"{config.host}:{config.sidecar_port}")',
        f'  prototype client: grpc.insecure_channel("localhost:{config.startnew_port}") + '
        "DurableTaskServiceStub.StartNew",
        f"  HTTP:             curl -X POST http://{config.host}:{config.http_port}/runtime/"
        "webhooks/durabletask/orchestrators/HelloSequence",
    ]
    if config.backend == "taskhub":
        lines += [
            f'  tables:           TaskHub(connection, hub="{config.hub}") with the Azurite '
            "development connection string:",
            f'  AzureWebJobsStorage="{config.connection_string}"',
        ]
    lines.append(
        "Stop it with: python -m durable_helpers.local down"
        + (
            ""
            if config.data_dir == DEFAULT_DATA_DIR.resolve()
            else f" --data-dir {config.data_dir}"
        )
    )
    return lines
