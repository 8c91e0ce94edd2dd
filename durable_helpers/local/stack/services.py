"""The stack's services: which run, how each is started, waited for and probed.

One starter per service (Azurite, the sidecar, the gateway, the Python and the JavaScript sample
workers) spawns its
process (:mod:`~durable_helpers.local.stack.processes`), records it in the
:class:`~durable_helpers.local.stack.config.StackState` and returns a waiter that blocks
(bounded) until the service answers (:mod:`~durable_helpers.local.stack.probes`).

Example:
    >>> wanted_services(StackConfig(backend="memory", samples=False))
    ['sidecar', 'gateway']
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from durable_helpers.local.azurite import Azurite, AzuriteError
from durable_helpers.local.ports import port_taken
from durable_helpers.local.stack.config import (
    PROJECT_ROOT,
    Service,
    StackConfig,
    StackError,
    StackState,
)
from durable_helpers.local.stack.probes import grpc_port_answers, http_answers, sidecar_answers
from durable_helpers.local.stack.processes import log_tail, spawn

SERVICES = ("azurite", "sidecar", "gateway", "worker", "jsworker")
SAMPLE_WORKERS = ("worker", "jsworker")
JS_WORKER = PROJECT_ROOT / "workers" / "js" / "worker.js"
JS_SDK = PROJECT_ROOT / "node_modules" / "@microsoft" / "durabletask-js"
#: The oldest Node.js the JavaScript worker is tried with (the SDK declares 22; 20 works).
MIN_NODE_MAJOR = 20

Waiter = Callable[[], None]


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
        names = [name for name in names if name not in SAMPLE_WORKERS]
    return names


def service_ports(config: StackConfig, name: str) -> list[tuple[int, str, str]]:
    """The ports service ``name`` listens on, as ``(port, what, option)`` (Azurite: none here).

    Example:
        >>> service_ports(StackConfig(), "sidecar")
        [(4001, 'Durable Task sidecar', '--sidecar-port')]
    """
    ports = {
        "sidecar": [(config.sidecar_port, "Durable Task sidecar", "--sidecar-port")],
        "gateway": [
            (config.startnew_port, "StartNew gRPC channel", "--startnew-port"),
            (config.http_port, "HTTP management API", "--http-port"),
        ],
    }
    return ports.get(name, [])


def check_ports(config: StackConfig, name: str) -> None:
    """Raise StackError when a port of service ``name`` is taken by another program.

    Example:
        >>> check_ports(StackConfig(sidecar_port=1), "worker")
    """
    for port, what, option in service_ports(config, name):
        if port_taken(config.host, port):
            raise StackError(
                f"Port {port} on {config.host} ({what}) is taken by another program. Stop it, "
                f"or choose another port with {option} <port>."
            )


def _spawn_python(
    config: StackConfig, name: str, args: list[str], env: dict[str, str] | None = None
) -> tuple[subprocess.Popen, Path]:
    """``python -m durable_helpers.local <args>`` from this checkout, in the data folder."""
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PROJECT_ROOT), environment.get("PYTHONPATH", "")) if p
    )
    environment["PYTHONUNBUFFERED"] = "1"
    environment.update(env or {})
    command = [sys.executable, "-m", "durable_helpers.local", *args]
    return spawn(config.data_dir / "logs", name, command, cwd=config.data_dir, env=environment)


def _wait(what: str, process: subprocess.Popen, log: Path, check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(
                f"The {what} exited at start (code {process.returncode}); see {log}:\n"
                + log_tail(log)
            )
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.2)
    raise StackError(
        f"The {what} did not answer within {timeout:.0f} s; see {log}:\n" + log_tail(log)
    )


def _http_check_url(config: StackConfig) -> str:
    return f"http://{config.host}:{config.http_port}/runtime/webhooks/durabletask/instances?top=1"


def _gateway_answers(config: StackConfig, http_timeout: float, grpc_timeout: float) -> bool:
    return http_answers(_http_check_url(config), timeout=http_timeout) and grpc_port_answers(
        f"{config.host}:{config.startnew_port}", timeout=grpc_timeout
    )


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
        raise StackError(f"{error}\n{log_tail(log)}") from None
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
    check_ports(config, "sidecar")
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
    if config.backend == "taskhub":  # the journal in files beside Azurite's: see journal_segments
        args += ["--journal-dir", str(config.data_dir / "journal")]
    env = {"AzureWebJobsStorage": config.connection_string} if config.backend == "taskhub" else {}
    process, log = _spawn_python(config, "sidecar", args, env)
    state.services["sidecar"] = Service(
        "sidecar", process.pid, address, str(log), marker="durable_helpers.local serve"
    )
    return lambda: _wait("sidecar", process, log, lambda: sidecar_answers(address), config.timeout)


def _start_gateway(config: StackConfig, state: StackState) -> Waiter:
    check_ports(config, "gateway")
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
    process, log = _spawn_python(config, "gateway", args)
    endpoint = f"{config.host}:{config.startnew_port},http://{config.host}:{config.http_port}"
    state.services["gateway"] = Service(
        "gateway", process.pid, endpoint, str(log), marker="durable_helpers.local gateway"
    )
    return lambda: _wait(
        "gateway", process, log, lambda: _gateway_answers(config, 2.0, 2.0), config.timeout
    )


def _fresh_ready_file(config: StackConfig, name: str) -> Path:
    ready = config.ready_file(name)
    ready.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        ready.unlink()
    return ready


def _start_worker(config: StackConfig, state: StackState) -> Waiter:
    ready = _fresh_ready_file(config, "worker")
    args = [
        "worker",
        "--sidecar",
        f"{config.host}:{config.sidecar_port}",
        "--state-dir",
        str(config.data_dir / "samples-state"),
        "--ready-file",
        str(ready),
    ]
    process, log = _spawn_python(config, "worker", args)
    state.services["worker"] = Service(
        "worker", process.pid, "samples", str(log), marker="durable_helpers.local worker"
    )
    return lambda: _wait("sample worker", process, log, ready.exists, config.timeout)


def node_program() -> str:
    """The ``node`` the JavaScript worker runs with; StackError saying what to do when unusable.

    Example:
        >>> node_program().endswith("node")  # doctest: +SKIP
        True
    """
    node = shutil.which("node")
    if node is None:
        raise StackError(
            "Node.js is missing: the JavaScript sample worker needs Node 20 or newer (Debian: "
            "apt-get install nodejs npm). Install it, or start without the sample workers "
            "(--no-samples)."
        )
    try:
        version = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
        major = int(version.lstrip("v").split(".")[0])
    except (OSError, subprocess.SubprocessError, ValueError) as error:
        raise StackError(
            f"{node} --version failed ({error}); reinstall Node.js 20 or newer."
        ) from None
    if major < MIN_NODE_MAJOR:
        raise StackError(
            f"Node.js {version} is too old for the JavaScript sample worker (Node 20 or newer); "
            "upgrade it, or start without the sample workers (--no-samples)."
        )
    if not JS_SDK.is_dir():
        raise StackError(
            f"The JavaScript SDK is not installed ({JS_SDK} is missing): run 'make setup' (or "
            "'npm ci') in the project folder, or start without the sample workers "
            "(--no-samples)."
        )
    return node


def _start_js_worker(config: StackConfig, state: StackState) -> Waiter:
    node = node_program()
    ready = _fresh_ready_file(config, "jsworker")
    command = [
        node,
        str(JS_WORKER),
        "--sidecar",
        f"{config.host}:{config.sidecar_port}",
        "--state-dir",
        str(config.data_dir / "samples-state-js"),
        "--ready-file",
        str(ready),
        "--connect-timeout",
        str(config.timeout),
    ]
    process, log = spawn(
        config.data_dir / "logs", "jsworker", command, cwd=config.data_dir, env=dict(os.environ)
    )
    state.services["jsworker"] = Service(
        "jsworker", process.pid, "samples (JavaScript)", str(log), marker=str(JS_WORKER)
    )
    return lambda: _wait("JavaScript sample worker", process, log, ready.exists, config.timeout)


STARTERS: dict[str, Callable[[StackConfig, StackState], Waiter]] = {
    "azurite": _start_azurite,
    "sidecar": _start_sidecar,
    "gateway": _start_gateway,
    "worker": _start_worker,
    "jsworker": _start_js_worker,
}


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
        return _gateway_answers(config, http_timeout=3.0, grpc_timeout=1.0)
    return config.ready_file(name).exists()
