"""``up``, ``down`` and ``status`` of the stack, under one lock per data folder.

``up`` starts what is not running yet (each service in its own session, output in
``<data_dir>/logs/<service>.log``), waits until each answers (bounded), and records the pids in
``<data_dir>/stack.json``; on a failure it stops what it started. ``down`` stops exactly the
recorded pids. ``status`` reads the state file. Calls :mod:`~durable_helpers.local.stack.services`
to start and probe, :mod:`~durable_helpers.local.stack.processes` to stop.

Example:
    >>> status(Path("/tmp/no-stack-here")) is None
    True
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from durable_helpers.local.stack.config import DEFAULT_DATA_DIR, StackConfig, StackError, StackState
from durable_helpers.local.stack.processes import stop_pid
from durable_helpers.local.stack.services import (
    SAMPLE_WORKERS,
    SERVICES,
    STARTERS,
    Waiter,
    check_ports,
    node_program,
    wanted_services,
)


def _preflight(config: StackConfig, state: StackState) -> None:
    """Fail before starting anything when a port of a service still to start is taken."""
    if config.backend == "taskhub" and "sidecar" not in state.services:
        import importlib.util

        if importlib.util.find_spec("durable_helpers.local.serve") is None:
            raise StackError(
                "The local task hub sidecar (durable_helpers.local.serve) is not installed in "
                "this checkout yet. Use '--backend memory' for the SDK's in-memory backend."
            )
    for name in wanted_services(config):
        service = state.services.get(name)
        if service is not None and (service.running() or not service.owned):
            continue
        check_ports(config, name)
        if name == "jsworker":
            node_program()


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
            waiters.append(STARTERS[name](config, state))
            started.append(name)
            state.save()
        for wait in waiters:
            wait()
    except BaseException:
        for name in reversed(started):
            service = state.services.pop(name, None)
            if service and service.owned and service.pid:
                stop_pid(service.pid, service.marker)
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
        elif service.pid and stop_pid(service.pid, service.marker):
            lines.append(f"{name}: stopped (pid {service.pid}).")
        else:
            lines.append(f"{name}: was not running.")
    with contextlib.suppress(FileNotFoundError):
        state.path.unlink()
    for name in SAMPLE_WORKERS:
        with contextlib.suppress(FileNotFoundError):
            state.config.ready_file(name).unlink()
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
