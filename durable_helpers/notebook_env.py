"""Where the notebooks find the task hub: endpoints from environment variables, local defaults.

Every notebook starts with ``env = notebook_env.endpoints()``. Nothing here prints a secret: the
storage connection is kept out of ``repr`` and every message goes through ``mask_secrets``.

=============================  ===========================================  =====================
environment variable           what                                         default
=============================  ===========================================  =====================
``AzureWebJobsStorage``        storage connection string or account URL     the local Azurite
``DURABLE_TASKHUB``            task hub name                                ``DurableFunctionsHub``
``DURABLE_SIDECAR_ADDRESS``    Durable Task gRPC sidecar (host:port)        ``127.0.0.1:4001``
``DURABLE_STARTNEW_ADDRESS``   the prototype's StartNew service (host:port) ``127.0.0.1:50051``
``DURABLE_HTTP_BASE``          HTTP management API base URL                 ``http://127.0.0.1:7071``
=============================  ===========================================  =====================

Example:
    >>> env = endpoints({"DURABLE_SIDECAR_ADDRESS": "127.0.0.1:14001"})
    >>> env.sidecar
    '127.0.0.1:14001'
    >>> "AccountKey" in repr(env)
    False
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlparse

from durable_helpers.storage import CONNECTION_ENV_VAR, azurite_connection_string, mask_secrets

T = TypeVar("T")

HUB_ENV_VAR = "DURABLE_TASKHUB"
SIDECAR_ENV_VAR = "DURABLE_SIDECAR_ADDRESS"
STARTNEW_ENV_VAR = "DURABLE_STARTNEW_ADDRESS"
HTTP_ENV_VAR = "DURABLE_HTTP_BASE"

DEFAULT_HUB = "DurableFunctionsHub"
DEFAULT_SIDECAR = "127.0.0.1:4001"
DEFAULT_STARTNEW = "127.0.0.1:50051"
DEFAULT_HTTP = "http://127.0.0.1:7071"

HOW_TO_START = (
    "Start the local task hub first: 'make demo', or 'python -m durable_helpers.local up' in the "
    "project folder (stop it later with 'python -m durable_helpers.local down'). To use another "
    f"stack, set {CONNECTION_ENV_VAR}, {SIDECAR_ENV_VAR}, {STARTNEW_ENV_VAR} and {HTTP_ENV_VAR}."
)


class StackNotRunning(RuntimeError):
    """A service of the local task hub does not answer; the message says how to start it."""


def _host_port(address: str) -> tuple[str, int]:
    if "://" in address:
        parsed = urlparse(address)
        default = 443 if parsed.scheme in ("https", "grpcs") else 80
        return parsed.hostname or "127.0.0.1", parsed.port or default
    host, _, port = address.rpartition(":")
    return host or "127.0.0.1", int(port)


def _answers(address: str, timeout: float = 1.0) -> bool:
    host, port = _host_port(address)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _table_endpoint(connection: str) -> str | None:
    """The table service address of a connection string or account URL (None if unknown)."""
    if connection.startswith(("http://", "https://")):
        parsed = urlparse(connection)
        return f"{parsed.scheme}://{parsed.hostname}:{parsed.port or 443}"
    parts = dict(p.split("=", 1) for p in connection.split(";") if "=" in p)
    if "TableEndpoint" in parts:
        return parts["TableEndpoint"]
    if parts.get("UseDevelopmentStorage", "").lower() == "true":
        return "http://127.0.0.1:10002"
    if "AccountName" in parts:
        suffix = parts.get("EndpointSuffix", "core.windows.net")
        return f"https://{parts['AccountName']}.table.{suffix}"
    return None


@dataclass(frozen=True)
class Endpoints:
    """The addresses of one task hub stack. ``connection`` is never shown.

    Example:
        >>> env = endpoints({})
        >>> env.http, env.hub
        ('http://127.0.0.1:7071', 'DurableFunctionsHub')
    """

    connection: str = field(repr=False)
    hub: str = DEFAULT_HUB
    sidecar: str = DEFAULT_SIDECAR
    startnew: str = DEFAULT_STARTNEW
    http: str = DEFAULT_HTTP
    connection_from: str = "local Azurite (default)"

    @property
    def storage(self) -> str:
        """Where the tables are, with secrets masked (safe to print).

        Example:
            >>> endpoints({}).storage
            'http://127.0.0.1:10002/devstoreaccount1 (local Azurite (default))'
        """
        table = _table_endpoint(self.connection) or "(unrecognised connection)"
        return f"{mask_secrets(table)} ({self.connection_from})"

    def services(self) -> dict[str, str]:
        """Each service of the stack and its address (no secrets).

        Example:
            >>> sorted(endpoints({}).services())
            ['http', 'sidecar', 'startnew', 'storage']
        """
        table = _table_endpoint(self.connection)
        return {
            "storage": mask_secrets(table) if table else "(unrecognised connection)",
            "sidecar": self.sidecar,
            "startnew": self.startnew,
            "http": self.http,
        }

    def status(self, timeout: float = 1.0) -> dict[str, bool]:
        """Whether each service accepts a TCP connection right now.

        Example:
            >>> endpoints({"DURABLE_HTTP_BASE": "http://127.0.0.1:9"}).status()["http"]
            False
        """
        return {name: _answers(address, timeout) for name, address in self.services().items()}

    def require(self, *names: str, timeout: float = 2.0) -> None:
        """Raise :class:`StackNotRunning` (with how to start it) unless the services answer.

        With no names, every service must answer.

        Example:
            >>> try:
            ...     endpoints({"DURABLE_HTTP_BASE": "http://127.0.0.1:9"}).require("http")
            ... except StackNotRunning as error:
            ...     print(str(error)[:41])
            Not answering: http (http://127.0.0.1:9).
        """
        services = self.services()
        wanted = names or tuple(services)
        down = [n for n in wanted if not _answers(services[n], timeout)]
        if down:
            where = ", ".join(f"{n} ({services[n]})" for n in down)
            raise StackNotRunning(f"Not answering: {where}. {HOW_TO_START}")

    def as_env(self) -> dict[str, str]:
        """These endpoints as environment variables (contains the connection: do not print).

        Example:
            >>> endpoints({}).as_env()["DURABLE_TASKHUB"]
            'DurableFunctionsHub'
        """
        return {
            CONNECTION_ENV_VAR: self.connection,
            HUB_ENV_VAR: self.hub,
            SIDECAR_ENV_VAR: self.sidecar,
            STARTNEW_ENV_VAR: self.startnew,
            HTTP_ENV_VAR: self.http,
        }


def endpoints(environ: Mapping[str, str] | None = None) -> Endpoints:
    """Read the stack's endpoints from ``environ`` (default ``os.environ``), with local defaults.

    Example:
        >>> endpoints({"DURABLE_TASKHUB": "MyHub"}).hub
        'MyHub'
    """
    env = os.environ if environ is None else environ
    connection = env.get(CONNECTION_ENV_VAR)
    source = f"from {CONNECTION_ENV_VAR}"
    if not connection:
        connection, source = azurite_connection_string(), "local Azurite (default)"
    return Endpoints(
        connection=connection,
        hub=env.get(HUB_ENV_VAR) or DEFAULT_HUB,
        sidecar=env.get(SIDECAR_ENV_VAR) or DEFAULT_SIDECAR,
        startnew=env.get(STARTNEW_ENV_VAR) or DEFAULT_STARTNEW,
        http=(env.get(HTTP_ENV_VAR) or DEFAULT_HTTP).rstrip("/"),
        connection_from=source,
    )


def wait_for(
    check: Callable[[], T | None],
    *,
    timeout: float = 60.0,
    interval: float = 0.5,
    what: str = "the condition",
    progress: Callable[[float, T | None], Any] | None = None,
) -> T:
    """Call ``check`` until it returns something truthy; return it. Raise ``TimeoutError`` after
    ``timeout`` seconds. ``progress(elapsed_seconds, last_value)`` is called after every try.

    Example:
        >>> calls = iter([None, None, "done"])
        >>> wait_for(lambda: next(calls), interval=0.01)
        'done'
    """
    start = time.monotonic()
    value: T | None = None
    while True:
        value = check()
        elapsed = time.monotonic() - start
        if progress is not None:
            progress(elapsed, value)
        if value:
            return value
        if elapsed >= timeout:
            raise TimeoutError(f"Gave up waiting for {what} after {timeout:.0f} s.")
        time.sleep(interval)


def follow_status(
    status_url: str,
    *,
    timeout: float = 60.0,
    interval: float = 0.5,
    show: Callable[[str], Any] | None = print,
) -> dict[str, Any]:
    """GET a ``statusQueryGetUri`` until it answers 200 (finished); return the status body.

    Durable Functions answers 202 while the instance runs and 200 once it has finished. Each
    answer is shown as one line (``show=None`` to stay quiet). Raises ``TimeoutError`` after
    ``timeout`` seconds and ``RuntimeError`` on any other HTTP status.

    Example:
        >>> follow_status(payload["StatusQueryGetUri"], timeout=30)  # doctest: +SKIP
        HTTP 202  runtimeStatus=Running
        HTTP 200  runtimeStatus=Completed
    """
    import httpx

    last: list[str] = []

    def check() -> dict[str, Any] | None:
        answer = httpx.get(status_url, timeout=10)
        if answer.status_code not in (200, 202):
            raise RuntimeError(f"HTTP {answer.status_code} from the status URL: {answer.text}")
        body = answer.json()
        line = f"HTTP {answer.status_code}  runtimeStatus={body.get('runtimeStatus')}"
        if show is not None and (not last or line != last[-1]):
            show(line)
        last.append(line)
        return body if answer.status_code == 200 else None

    return wait_for(check, timeout=timeout, interval=interval, what=f"{status_url} to answer 200")


def sdk_logger(name: str = "durabletask-notebook", level: int | str = "ERROR") -> Any:
    """A logger for the durabletask SDK's client and worker that only shows real problems.

    The SDK logs every work item at INFO, which buries a notebook's output; pass this as
    ``logger=`` to ``TaskHubGrpcClient`` / ``TaskHubGrpcWorker``.

    Example:
        >>> sdk_logger().level == logging.ERROR
        True
    """
    logger = logging.getLogger(name)
    logger.setLevel(level)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    logger.propagate = False
    return logger
