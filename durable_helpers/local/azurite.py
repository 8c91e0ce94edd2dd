"""Azurite, the local Azure Storage emulator: find it, start it, wait for it, stop it.

Azurite comes from npm (``npm ci`` in the project folder puts it in ``node_modules``). This module
starts it bound to 127.0.0.1 with telemetry off and its access log silenced (unless a log file is
asked for), waits until the blob, queue and table services answer, reuses one that already runs on
the same ports, and stops the one it started by pid. The Azurite it starts from Node preloads
``azurite_keyed_lookups.cjs``, which keeps point lookups by key from scanning every entity that
shares a RowKey, so a task hub does not get slower as its tables fill.

Example:
    >>> with Azurite(in_memory=True, ports=free_ports(3)) as azurite:  # doctest: +SKIP
    ...     TableServiceClient.from_connection_string(azurite.connection_string)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from durable_helpers.storage import AZURITE_ACCOUNT, AZURITE_HOST, azurite_connection_string

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("blob", "queue", "table")
DEFAULT_PORTS = (10000, 10001, 10002)
#: Preloaded into a Node-run Azurite (see the module docstring).
KEYED_LOOKUPS = Path(__file__).with_name("azurite_keyed_lookups.cjs")


class AzuriteError(RuntimeError):
    """Azurite could not be found, started or reached; the message says what to do."""


def find_azurite() -> list[str]:
    """The command that runs Azurite: ``$AZURITE_BIN``, the project's node_modules, or PATH.

    Example:
        >>> find_azurite()[-1].endswith("azurite")  # doctest: +SKIP
        True
    """
    explicit = os.environ.get("AZURITE_BIN")
    if explicit:
        return [explicit]
    node = shutil.which("node")
    local = PROJECT_ROOT / "node_modules" / "azurite" / "dist" / "src" / "azurite.js"
    if local.exists():
        if node is None:
            raise AzuriteError(
                "Node.js is not on PATH, and Azurite needs it. Install Node.js 20 "
                "(Debian: apt-get install nodejs npm), then run 'npm ci' in the project folder."
            )
        return [node, str(local)]
    on_path = shutil.which("azurite")
    if on_path:
        return [on_path]
    raise AzuriteError(
        f"Azurite is not installed. Run 'npm ci' in {PROJECT_ROOT} (or 'make setup'); "
        "it installs the pinned azurite package into node_modules."
    )


def _probe(host: str, port: int, timeout: float = 1.0) -> str | None:
    """Return the HTTP Server header if something answers HTTP on host:port, else None."""
    url = f"http://{host}:{port}/{AZURITE_ACCOUNT}?comp=list"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.headers.get("Server", "")
    except urllib.error.HTTPError as error:  # Azurite answers 400/403 to an unsigned request
        return error.headers.get("Server", "") if error.headers else ""
    except (OSError, ValueError):
        return None


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM us when the parent process dies.

    Test sessions use this so that a killed pytest leaves no orphaned emulator behind.
    """
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


@dataclass
class Azurite:
    """One Azurite emulator serving blob, queue and table on ``host``.

    ``data_dir`` keeps the data on disk (the default folder is ``.local-taskhub/azurite`` in the
    project); ``in_memory=True`` keeps nothing. ``start()`` reuses an Azurite that already answers
    on the same ports and then does not own it (``stop()`` leaves it running).
    ``stop_with_parent=True`` (Linux) ends the emulator when the starting process dies, even
    by ``kill -9``: what test sessions want, and what ``local up`` must not use.
    ``keyed_lookups=False`` starts Azurite without the preload of ``azurite_keyed_lookups.cjs``
    (the module docstring says what it does).

    Example:
        >>> azurite = Azurite(in_memory=True, ports=free_ports(3)).start()  # doctest: +SKIP
        >>> azurite.stop()  # doctest: +SKIP
    """

    host: str = AZURITE_HOST
    ports: tuple[int, int, int] = DEFAULT_PORTS
    data_dir: Path | None = None
    in_memory: bool = False
    log_file: Path | None = None
    startup_timeout: float = 30.0
    stop_with_parent: bool = False
    keyed_lookups: bool = True
    process: subprocess.Popen | None = field(default=None, repr=False)
    reused: bool = False

    @property
    def connection_string(self) -> str:
        """The development connection string for this emulator's ports."""
        blob, queue, table = self.ports
        return azurite_connection_string(self.host, blob, queue, table)

    @property
    def pid(self) -> int | None:
        """The pid of the Azurite process this object started (None when reused)."""
        return self.process.pid if self.process else None

    def answering(self) -> bool:
        """True when all three services answer HTTP as Azurite."""
        return all("azurite" in (_probe(self.host, p) or "").lower() for p in self.ports)

    def command(self) -> list[str]:
        """The full command line that starts this emulator."""
        blob, queue, table = self.ports
        found = find_azurite()
        if self.keyed_lookups and KEYED_LOOKUPS.exists() and Path(found[0]).name.startswith("node"):
            found = [found[0], "--require", str(KEYED_LOOKUPS), *found[1:]]
        args = [
            *found,
            "--blobHost", self.host, "--blobPort", str(blob),
            "--queueHost", self.host, "--queuePort", str(queue),
            "--tableHost", self.host, "--tablePort", str(table),
            "--disableTelemetry", "--skipApiVersionCheck", "--loose",
        ]  # fmt: skip
        if self.log_file is None:
            args.append("--silent")  # the access log would go nowhere; skip formatting it
        if self.in_memory:
            args.append("--inMemoryPersistence")
        else:
            data_dir = self.data_dir or PROJECT_ROOT / ".local-taskhub" / "azurite"
            data_dir.mkdir(parents=True, exist_ok=True)
            args += ["--location", str(data_dir)]
        return args

    def start(self) -> Azurite:
        """Start Azurite (or reuse the one on these ports) and wait until it answers."""
        if self.answering():
            self.reused = True
            return self
        taken = [p for p in self.ports if _port_in_use(self.host, p)]
        if taken:
            raise AzuriteError(
                f"Port(s) {taken} on {self.host} are taken by something that is not Azurite. "
                "Stop that program, or choose other ports (for example "
                "'python -m durable_helpers.local up --azurite-ports 20000,20001,20002')."
            )
        command = self.command()
        log = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=PROJECT_ROOT,
                start_new_session=True,
                preexec_fn=_die_with_parent if self.stop_with_parent else None,
            )
        finally:
            if log is not subprocess.DEVNULL:
                log.close()
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AzuriteError(
                    f"Azurite exited at start with code {self.process.returncode}"
                    + (f"; see {self.log_file}" if self.log_file else "")
                    + f". Command: {' '.join(command)}"
                )
            if self.answering():
                return self
            time.sleep(0.1)
        self.stop()
        raise AzuriteError(
            f"Azurite did not answer on {self.host}:{self.ports} "
            f"within {self.startup_timeout:.0f} s."
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the Azurite this object started; a reused one is left running."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout)
        self.process = None

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
