"""Fault runs: chains in flight through a real sidecar process over a real Azurite, one fault.

``FaultRun`` owns the processes of one run (an Azurite that keeps its data on disk, so that it can
be stopped and started again; a sidecar subprocess, ``python -m durable_helpers.local.serve``; an
SDK worker in this process or in a subprocess), starts the chains, lets a fault function act on
the processes while the chains run, then waits (bounded) for every chain and checks every
history partition. ``bench/bench_faults.py`` prints the same runs as figures.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from durabletask.client import OrchestrationStatus, TaskHubGrpcClient
from durabletask.worker import TaskHubGrpcWorker

sys.path.insert(0, str(Path(__file__).resolve().parent))

import chains

from durable_helpers import schema
from durable_helpers.local.azurite import Azurite
from durable_helpers.local.ports import free_ports
from durable_helpers.local.sidecar.rest import RestStorage
from durable_helpers.local.stack.probes import PROBE_CHANNEL_OPTIONS

ROOT = Path(__file__).resolve().parents[2]
CHAINS = Path(chains.__file__)
QUIET = logging.getLogger("fault-run.sdk")
QUIET.setLevel(logging.CRITICAL)


def wait_port(address: str, timeout: float = 30) -> None:
    """Block until a gRPC server answers on ``address`` (raises after ``timeout`` seconds)."""
    channel = grpc.insecure_channel(address, options=PROBE_CHANNEL_OPTIONS)
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        raise TimeoutError(f"no gRPC server answered on {address} within {timeout:.0f} s") from None
    finally:
        channel.close()


@dataclass
class Outcome:
    """What a fault run ended with: per instance status, and the histories found torn."""

    total: int
    statuses: dict[str, str]
    torn: dict[str, str]
    seconds: float

    @property
    def completed(self) -> int:
        return sum(1 for s in self.statuses.values() if s == "COMPLETED")

    def summary(self, name: str) -> str:
        stuck = sorted(i for i, s in self.statuses.items() if s != "COMPLETED")
        text = (
            f"{name}: {self.completed}/{self.total} completed, {len(self.torn)} torn histories, "
            f"{self.seconds:.1f} s"
        )
        if stuck:
            text += f"; not completed: {[(i, self.statuses[i]) for i in stuck[:5]]}"
        if self.torn:
            text += f"; torn: {list(self.torn.items())[:3]}"
        return text


@dataclass
class FaultRun:
    """One run: ``with FaultRun(tmp_path) as run: outcome = run.chains(60, fault)``."""

    folder: Path
    worker_in_process: bool = True
    worker_command: tuple[str, ...] = (sys.executable, str(CHAINS))  # + the sidecar address
    sidecar_args: tuple[str, ...] = ()
    journal: str = "folder"  # the sidecar's journal: "folder" (as 'up' runs it) or "blob"
    azurite_in_memory: bool = False  # for runs that never restart Azurite (the soak)
    hub: str = field(default_factory=lambda: "F" + uuid.uuid4().hex[:10])
    azurite: Azurite | None = None
    sidecar: subprocess.Popen | None = None
    worker: TaskHubGrpcWorker | None = None
    worker_proc: subprocess.Popen | None = None
    port: int = 0

    # -- processes -------------------------------------------------------------------------

    def __enter__(self) -> FaultRun:
        self.azurite = Azurite(
            ports=free_ports(3),  # type: ignore[arg-type]
            data_dir=None if self.azurite_in_memory else self.folder / "azurite",
            in_memory=self.azurite_in_memory,
            log_file=self.folder / "azurite.log",
            stop_with_parent=True,
        ).start()
        self.port = free_ports(1)[0]
        self.start_sidecar()
        self.start_worker()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_worker()
        if self.sidecar is not None and self.sidecar.poll() is None:
            self.sidecar.kill()
            self.sidecar.wait(10)
        if self.azurite is not None:
            with contextlib.suppress(ProcessLookupError):
                if self.azurite.pid:
                    os.killpg(self.azurite.pid, signal.SIGCONT)  # in case a test left it stopped
            self.azurite.stop()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sidecar_log(self) -> Path:
        return self.folder / "sidecar.log"

    def start_sidecar(self) -> None:
        assert self.azurite is not None
        env = {**os.environ, "AzureWebJobsStorage": self.azurite.connection_string}
        command = [sys.executable, "-m", "durable_helpers.local.serve"]
        command += ["--hub", self.hub, "--port", str(self.port), *self.sidecar_args]
        if self.journal == "folder":
            command += ["--journal-dir", str(self.folder / "journal")]
        with open(self.sidecar_log, "ab") as out:
            self.sidecar = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        try:
            wait_port(self.address)
        except TimeoutError as error:
            state = "running" if self.sidecar.poll() is None else f"exit {self.sidecar.poll()}"
            tail = self.sidecar_log.read_text(errors="replace")[-2000:]
            raise TimeoutError(f"{error}; the sidecar is {state}; its log ends:\n{tail}") from None

    def kill_sidecar(self) -> None:
        """``kill -9`` the sidecar process."""
        assert self.sidecar is not None
        os.kill(self.sidecar.pid, signal.SIGKILL)
        self.sidecar.wait(10)

    def start_worker(self) -> None:
        if self.worker_in_process:
            worker = TaskHubGrpcWorker(host_address=self.address, logger=QUIET)
            self.worker = chains.register(worker)
            self.worker.start()
        else:
            self.worker_proc = subprocess.Popen(
                [*self.worker_command, self.address],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

    def kill_worker(self) -> None:
        """``kill -9`` the worker subprocess."""
        assert self.worker_proc is not None
        self.worker_proc.kill()
        self.worker_proc.wait(10)

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
        if self.worker_proc is not None and self.worker_proc.poll() is None:
            self.worker_proc.kill()
            self.worker_proc.wait(10)

    def stall_azurite(self, seconds: float) -> None:
        """SIGSTOP Azurite for ``seconds``, then SIGCONT (sockets stay open, nothing answers)."""
        assert self.azurite is not None and self.azurite.pid
        os.killpg(self.azurite.pid, signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            os.killpg(self.azurite.pid, signal.SIGCONT)

    def restart_azurite(self, down_seconds: float) -> None:
        """Stop Azurite cleanly (SIGTERM), keep it down ``down_seconds``, start it again."""
        assert self.azurite is not None
        self.azurite.stop()
        time.sleep(down_seconds)
        self.azurite.start()

    # -- the workload ----------------------------------------------------------------------

    def chains(
        self, n: int, fault: Callable[[FaultRun], None], *, timeout: float = 45
    ) -> tuple[Outcome, int]:
        """Start ``n`` chains, run ``fault`` once they are in flight, wait for all of them.

        Returns the outcome and how many chains had completed when the fault began.
        """
        client = TaskHubGrpcClient(host_address=self.address, logger=QUIET)
        started = time.monotonic()
        try:
            ids = [
                client.schedule_new_orchestration(
                    chains.FiveStepChain, input=i, instance_id=f"chain-{i:03d}"
                )
                for i in range(n)
            ]
            time.sleep(0.5)  # every chain is running its first steps
            done_before = sum(
                1
                for i in ids
                if client.get_orchestration_state(i).runtime_status == OrchestrationStatus.COMPLETED
            )
            fault(self)
            statuses = self._wait_all(client, ids, started + timeout)
        finally:
            client.close()
        seconds = time.monotonic() - started
        rest = RestStorage.from_connection_string(self.azurite.connection_string)  # type: ignore[union-attr]
        torn = {}
        for instance_id in ids:
            problem = history_problem(rest, self.hub, instance_id, chains.STEPS)
            if problem:
                torn[instance_id] = problem
        return Outcome(n, statuses, torn, seconds), done_before

    def _wait_all(
        self, client: TaskHubGrpcClient, ids: list[str], deadline: float
    ) -> dict[str, str]:
        statuses: dict[str, str] = {}
        for instance_id in ids:
            while True:
                left = deadline - time.monotonic()
                try:
                    state = client.wait_for_orchestration_completion(
                        instance_id, timeout=max(1, int(left))
                    )
                    statuses[instance_id] = state.runtime_status.name if state else "MISSING"
                    break
                except TimeoutError:
                    statuses[instance_id] = "TIMED OUT (still running)"
                    break
                except grpc.RpcError as error:  # the sidecar is restarting: ask again
                    if time.monotonic() > deadline:
                        statuses[instance_id] = f"RPC {error.code().name}"
                        break
                    time.sleep(0.5)
        return statuses


def history_rows(rest: RestStorage, hub: str, instance_id: str) -> list[dict]:
    """An instance's History partition, sorted by RowKey."""
    pk = schema.escape_partition_key(instance_id)
    table = schema.hub_names(hub).history_table
    rows = rest.query_all(table, f"PartitionKey eq {schema.odata_string(pk)}")
    return sorted(rows, key=lambda r: r["RowKey"])


def torn(rows: list[dict]) -> str | None:
    """What makes a History partition torn, or None: rows without their sentinel, a gap or a
    duplicate in RowKeys, rows of two executions, not exactly one ExecutionStarted."""
    if not rows:
        return "no History rows"
    sentinels = [r for r in rows if schema.is_sentinel(r)]
    events = [r for r in rows if not schema.is_sentinel(r)]
    if not sentinels:
        return f"{len(events)} rows without their sentinel"
    keys = [r["RowKey"] for r in events]
    if keys != [schema.row_key(i) for i in range(len(events))]:
        return f"RowKeys not contiguous: {keys}"
    executions = {r.get("ExecutionId") for r in rows}
    if len(executions) != 1:
        return f"rows of {len(executions)} executions"
    if [r["EventType"] for r in events].count("ExecutionStarted") != 1:
        return "not exactly one ExecutionStarted"
    return None


def history_problem(rest: RestStorage, hub: str, instance_id: str, steps: int) -> str | None:
    """What is wrong with a finished chain's History partition and Instances row, or None.

    Torn (see ``torn``), or not the events a finished chain of ``steps`` activities has.
    """
    names = schema.hub_names(hub)
    pk = schema.escape_partition_key(instance_id)
    rows = history_rows(rest, hub, instance_id)
    problem = torn(rows)
    if problem:
        return problem
    events = [r for r in rows if not schema.is_sentinel(r)]
    kinds = [r["EventType"] for r in events]
    scheduled = sorted(r["EventId"] for r in events if r["EventType"] == "TaskScheduled")
    completed = sorted(r["TaskScheduledId"] for r in events if r["EventType"] == "TaskCompleted")
    if len(set(scheduled)) != steps or completed != scheduled:
        return f"tasks scheduled {scheduled}, completed {completed}"
    if kinds.count("ExecutionStarted") != 1 or kinds.count("ExecutionCompleted") != 1:
        return f"event types {kinds}"
    row = rest.get_entity(names.instances_table, pk, "")
    if row is None or row.get("RuntimeStatus") != "Completed":
        return f"Instances row {None if row is None else row.get('RuntimeStatus')}"
    return None
