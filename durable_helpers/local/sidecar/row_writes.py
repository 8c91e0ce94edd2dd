"""The write-behind's table requests, in the sidecar or in helper processes of its own.

:func:`write_rows` writes journaled row ops (``h``: a History transaction per batch, ``i``: the
Instances row, upserted) with a :class:`~.rest.RestStorage`. The sidecar's hot path
(completions, dispatch, the journal) shares one interpreter lock with the write-behind, whose
requests cost as much Python CPU as the rest of a completion: measured on two cores, moving
them to other processes gave the seed chain about 12% more orchestrations a second (an A/B of
three rounds; ``bench/bench_sidecar.py`` prints both).

:class:`RowWriterProcesses` is a callable that does :func:`write_rows` in child processes
(``python -m durable_helpers.local.sidecar.row_writer_main``, at most ``size`` of them, started
in the background by ``warm`` or when first needed). Each answers once the rows are written, or
with the error, which is raised here: the :class:`~.table_writer.TableWriter` retries as it does
for a write in the sidecar. A child that dies or hangs is replaced and the rows written again
(upserts: idempotent). The account's key reaches a child through its stdin, never its command
line or environment; a child ends when its stdin closes, so also when the sidecar is killed.

Choose with ``DURABLE_HELPERS_TABLE_WRITES``: ``process`` (the default on POSIX systems) or
``thread`` (in the sidecar's process, the default on Windows).

Example:
    >>> rest = RestStorage.from_connection_string(conn)  # doctest: +SKIP
    >>> write = RowWriterProcesses(rest, "MyHub")  # doctest: +SKIP
    >>> write([{"t": "i", "pk": "a", "e": {"PartitionKey": "a", "RowKey": ""}}])  # doctest: +SKIP
    >>> write.close()  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping
from typing import IO, Any

from durable_helpers import schema
from durable_helpers.local.sidecar.rest import RestStorage

#: How the write-behind reaches the tables (``DURABLE_HELPERS_TABLE_WRITES``).
TABLE_WRITES_ENV = "DURABLE_HELPERS_TABLE_WRITES"
#: Seconds a child may take over one write before it is taken for hung and replaced (its own
#: requests give up well before: 30 s each, 3 attempts).
ANSWER_TIMEOUT = 150.0


#: The default: helper processes where their pipes can be waited on with ``select`` (POSIX).
DEFAULT_TABLE_WRITES = "thread" if sys.platform == "win32" else "process"


def table_writes_from_env(default: str = DEFAULT_TABLE_WRITES) -> str:
    """``process`` or ``thread``, from ``DURABLE_HELPERS_TABLE_WRITES``.

    Example:
        >>> table_writes_from_env() in ("process", "thread")
        True
    """
    value = (os.environ.get(TABLE_WRITES_ENV) or default).strip().lower()
    if value not in ("process", "thread"):
        raise ValueError(f"{TABLE_WRITES_ENV} must be 'process' or 'thread', not {value!r}")
    if value == "process" and sys.platform == "win32":
        raise ValueError(f"{TABLE_WRITES_ENV}=process needs a POSIX system; use 'thread'")
    return value


def is_row_op(op: Mapping[str, Any]) -> bool:
    """True for the ops :func:`write_rows` writes (History batches, an upserted Instances row).

    Example:
        >>> is_row_op({"t": "h"}), is_row_op({"t": "i", "ins": 1}), is_row_op({"t": "purge"})
        (True, False, False)
    """
    return op["t"] == "h" or (op["t"] == "i" and not op.get("ins"))


def write_rows(rest: RestStorage, names: schema.HubNames, ops: Iterable[Mapping[str, Any]]) -> None:
    """Write row ops in order: each History batch as one transaction, Instances rows upserted.

    Example:
        >>> write_rows(rest, schema.hub_names("MyHub"), ops)  # doctest: +SKIP
    """
    for op in ops:
        if op["t"] == "h":
            for batch in op["batches"]:
                rest.table_batch(names.history_table, [("upsert", e) for e in batch])
        elif is_row_op(op):
            rest.upsert_entity(names.instances_table, op["e"])
        else:
            raise ValueError(f"not a row op: {op['t']!r}")


class RowWriteFailed(RuntimeError):
    """A child could not write the rows (the message says why); the write-behind retries."""


class _Child:
    """One helper process and its pipes."""

    def __init__(self, rest: RestStorage, hub: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "durable_helpers.local.sidecar.row_writer_main"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin: IO[bytes] = self.proc.stdin
        self.stdout: IO[bytes] = self.proc.stdout
        self.send((rest, hub))

    def send(self, obj: Any) -> None:
        pickle.dump(obj, self.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        self.stdin.flush()

    def receive(self, timeout: float) -> Any:
        ready, _, _ = select.select([self.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError(f"no answer in {timeout:.0f} s")
        return pickle.load(self.stdout)

    def end(self) -> None:
        for pipe in (self.stdin, self.stdout):
            with contextlib.suppress(OSError):
                pipe.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


class RowWriterProcesses:
    """``write(ops)``: :func:`write_rows` done by one of at most ``size`` child processes (and
    ``insert(entity)``, a start's Instances row).

    Thread-safe: a caller takes an idle child (or starts one, up to ``size``; else waits for one).

    Example:
        >>> write = RowWriterProcesses(rest, "MyHub")  # doctest: +SKIP
        >>> write(ops)  # doctest: +SKIP
    """

    def __init__(self, rest: RestStorage, hub: str, *, size: int = 3) -> None:
        self._rest, self._hub, self.size = rest, hub, size
        self._idle: list[_Child] = []
        self._started = 0
        self._closed = False
        self._cv = threading.Condition()
        #: Children started so far (replacements included).
        self.spawned = 0

    def __call__(self, ops: list[Mapping[str, Any]]) -> None:
        """Write the row ops (see :func:`write_rows`); raises what the child's write raised."""
        self._ask(("rows", ops))

    def insert(self, entity: Mapping[str, Any]) -> bool:
        """Insert an Instances row; False when it exists (a start's check, off the sidecar's
        interpreter lock). A child that dies meanwhile is replaced and asked again once."""
        try:
            return bool(self._ask(("insert", entity)))
        except RowWriteFailed:
            return bool(self._ask(("insert", entity)))

    def _ask(self, request: tuple[str, Any]) -> Any:
        child = self._take()
        try:
            child.send(request)
            ok, value = child.receive(ANSWER_TIMEOUT)
        except (OSError, EOFError, pickle.UnpicklingError, TimeoutError) as error:
            code = child.proc.poll()
            self._drop(child)
            ended = f"ended (exit code {code})" if code is not None else f"gave {error!r}"
            raise RowWriteFailed(f"the table writer process {ended}; writing again") from None
        self._give_back(child)
        if not ok:
            raise value
        return value

    def warm(self) -> None:
        """Start the children in the background, one after another, so that no write waits for
        one to start (and the first burst of work does not share the CPU with their imports).

        Example:
            >>> RowWriterProcesses(rest, "MyHub").warm()  # doctest: +SKIP
        """

        def start() -> None:
            for _ in range(self.size):
                with self._cv:
                    if self._closed or self._started >= self.size:
                        return
                    self._started += 1
                try:
                    child = self._spawn()
                except Exception:  # a write starts one then, and says why it cannot
                    return
                self._give_back(child)

        threading.Thread(target=start, name="row-writer-warm", daemon=True).start()

    def pids(self) -> list[int]:
        """The idle children's process ids (for tests)."""
        with self._cv:
            return [child.proc.pid for child in self._idle]

    def close(self) -> None:
        """End the children (each finishes the write it has)."""
        with self._cv:
            self._closed = True
            idle, self._idle = self._idle, []
            self._cv.notify_all()
        for child in idle:
            child.end()

    def _take(self) -> _Child:
        with self._cv:
            while True:
                if self._closed:
                    raise RowWriteFailed("the table writer is closed")
                if self._idle:
                    return self._idle.pop()
                if self._started < self.size:
                    self._started += 1
                    break
                self._cv.wait()
        return self._spawn()

    def _spawn(self) -> _Child:
        """Start a child (its place among ``size`` already counted in ``_started``)."""
        try:
            child = _Child(self._rest, self._hub)
        except BaseException:
            with self._cv:
                self._started -= 1
                self._cv.notify()
            raise
        self.spawned += 1
        return child

    def _give_back(self, child: _Child) -> None:
        with self._cv:
            if not self._closed:
                self._idle.append(child)
                self._cv.notify()
                return
        child.end()

    def _drop(self, child: _Child) -> None:
        with self._cv:
            self._started -= 1
            self._cv.notify()
        with contextlib.suppress(OSError):
            child.proc.kill()
        child.end()


def serve_child(stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """The child's loop (:mod:`~.row_writer_main`): read the account and hub, then do each
    request (``("rows", ops)`` or ``("insert", entity)``) and answer ``(True, result)`` or
    ``(False, error)``, until ``stdin`` ends.

    Example:
        >>> serve_child(sys.stdin.buffer, sys.stdout.buffer)  # doctest: +SKIP
    """
    try:
        rest, hub = pickle.load(stdin)
    except EOFError:  # the sidecar ended before it said anything
        return
    names = schema.hub_names(hub)
    while True:
        try:
            kind, payload = pickle.load(stdin)
        except EOFError:
            return
        try:
            if kind == "insert":
                answer: tuple[bool, Any] = (
                    True,
                    rest.insert_entity(names.instances_table, payload),
                )
            else:
                write_rows(rest, names, payload)
                answer = (True, None)
        except Exception as error:  # raised again in the sidecar, which retries or reports it
            answer = (False, error)
        try:
            data = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # an error that does not pickle: its type and message
            error = answer[1]
            data = pickle.dumps((False, RowWriteFailed(f"{type(error).__name__}: {error}")))
        stdout.write(data)
        stdout.flush()
