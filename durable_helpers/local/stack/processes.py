"""Background processes by pid: start one in its own session, tell if it lives, stop it.

Knows nothing of the stack's services; :mod:`durable_helpers.local.stack.services` decides what
to run. Calls only the standard library (``/proc`` for zombies and command lines).

Example:
    >>> alive(os.getpid())
    True
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path


def alive(pid: int, marker: str = "") -> bool:
    """True when ``pid`` runs (not a zombie) and, if ``marker`` is given, its command has it.

    Example:
        >>> alive(os.getpid(), marker="no-such-program-name")
        False
    """
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


def log_tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a log file, indented (empty when it cannot be read).

    Example:
        >>> log_tail(Path("/nonexistent.log"))
        ''
    """
    with contextlib.suppress(OSError):
        text = path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join("    " + line for line in text)
    return ""


def stop_pid(pid: int, marker: str, timeout: float = 10.0) -> bool:
    """SIGTERM the process group of ``pid`` (its own session), SIGKILL after ``timeout``.

    Returns False when ``pid`` was not running (or is another program now).

    Example:
        >>> stop_pid(2**22 + 1, "durable_helpers.local")
        False
    """
    if not alive(pid, marker):
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
            if not alive(pid):
                return True
            time.sleep(0.1)
    return not alive(pid)


def spawn(
    logs: Path, name: str, command: list[str], *, cwd: Path, env: dict[str, str]
) -> tuple[subprocess.Popen, Path]:
    """Start ``command`` in its own session, its output appended to ``<logs>/<name>.log``.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> process, log = spawn(folder / "logs", "x", ["true"], cwd=folder, env={})
        >>> process.wait(), log.name
        (0, 'x.log')
    """
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{name}.log"
    with open(log_path, "ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {name} ===\n".encode())
        log.flush()
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
    return process, log_path
