"""Benchmark: the local task hub sidecar against the SDK's in-memory backend, same worker code.

Both servers run in their own process (the same treatment for both; the SDK worker and client
run in this process): ``durabletask.testing.create_test_backend`` (everything in memory, nothing
persisted) and ``durable_helpers.local.serve`` (everything persisted in Azurite: journal,
History, Instances). Workload: the seed's chain (``HelloSequence``: activity ``Hello`` with
Tokyo, Seattle, London), N orchestrations started at once, waited for.

Prints, each as a ratio against a peer measured in the same run:

1. orchestrations/second for both at ``--n`` (300 and 2,000 by default) orchestrations, in
   ``--rounds`` (3) interleaved rounds, and the median of the rounds' ratios sidecar / in-memory
   (target >= 0.5; the goal beyond is 1.0), with the sidecar making its table writes in its own
   process instead of its helper processes (``DURABLE_HELPERS_TABLE_WRITES=thread``) as a second
   peer;
2. the sidecar on a hub pre-filled with ``--prefill`` (10,000) finished instances (rows written
   directly through ``durable_helpers.schema``, not through the sidecar) against an empty hub,
   runs interleaved (target >= 0.8);
3. the sidecar's peak memory (VmHWM) after ``--memory-n`` (10,000) orchestrations
   (target < 150 MB), with the rate of its first and last thousand.

The fault runs (completed / total, torn histories) are ``bench/bench_faults.py``.

Run: ``.venv/bin/python bench/bench_sidecar.py [--n 300 2000] [--rounds 3] [--prefill 10000]
[--memory-n 10000] [--worker-threads N]`` (0 skips a part; ``--worker-threads`` sets the SDK
worker's thread pool, the same for both peers)
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from durabletask import task
from durabletask.client import OrchestrationStatus, TaskHubGrpcClient
from durabletask.worker import ConcurrencyOptions, TaskHubGrpcWorker

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "bench"))

from bench_reader import populate  # noqa: E402

from durable_helpers.local.azurite import Azurite  # noqa: E402
from durable_helpers.local.ports import free_ports  # noqa: E402
from durable_helpers.local.stack.probes import grpc_port_answers  # noqa: E402
from durable_helpers.storage import StorageAccount  # noqa: E402

#: Threads of the SDK worker (both peers get the same worker); None: the SDK's default
#: (CPU count + 4). Set with --worker-threads.
WORKER_THREADS: list[int | None] = [None]
QUIET = logging.getLogger("bench_sidecar.sdk")
QUIET.setLevel(logging.ERROR)  # the worker warns of its own stream cancelled at stop


def Hello(ctx, name: str) -> str:
    return f"Hello {name}!"


def HelloSequence(ctx: task.OrchestrationContext, _):
    results = []
    for city in ("Tokyo", "Seattle", "London"):
        results.append((yield ctx.call_activity(Hello, input=city)))
    return results


IN_MEMORY_SERVER = """
import sys, threading
from durabletask.testing import create_test_backend
backend = create_test_backend(port=int(sys.argv[1]))
threading.Event().wait()
"""


def _wait_port(address: str, timeout: float = 60) -> None:
    if not grpc_port_answers(address, timeout=timeout):
        raise TimeoutError(f"no gRPC server answered on {address} within {timeout:.0f} s")


def _run(address: str, n: int, chunk: int | None = None, on_chunk=None) -> list[float]:
    """Start n chains (``chunk`` at a time; all at once by default), wait for all.

    Returns orchestrations per second of the whole run, then of each chunk (``on_chunk(done,
    rate)`` is called after each).
    """
    options = ConcurrencyOptions(maximum_thread_pool_workers=WORKER_THREADS[0])
    worker = TaskHubGrpcWorker(host_address=address, logger=QUIET, concurrency_options=options)
    worker.add_orchestrator(HelloSequence)
    worker.add_activity(Hello)
    worker.start()
    client = TaskHubGrpcClient(host_address=address, logger=QUIET)
    try:
        # warm up (connections, first dispatch)
        warm = client.schedule_new_orchestration(HelloSequence)
        client.wait_for_orchestration_completion(warm, timeout=60)
        rates = []
        start = time.perf_counter()
        for first in range(0, n, chunk or n):
            began = time.perf_counter()
            size = min(chunk or n, n - first)
            ids = [client.schedule_new_orchestration(HelloSequence) for _ in range(size)]
            for instance_id in ids:
                state = client.wait_for_orchestration_completion(instance_id, timeout=600)
                assert state is not None and state.runtime_status == OrchestrationStatus.COMPLETED
            rates.append(size / (time.perf_counter() - began))
            if on_chunk is not None:
                on_chunk(first + size, rates[-1])
        return [n / (time.perf_counter() - start), *rates]
    finally:
        client.close()
        worker.stop()


def _memory_mb(pid: int, field: str = "VmHWM") -> float:
    """VmHWM (peak resident) or VmRSS of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _start_sidecar(
    port: int,
    connection: str,
    hub: str,
    log: Path | None = None,
    journal: str = "folder",
    table_writes: str = "process",
) -> subprocess.Popen:
    env = {
        **os.environ,
        "AzureWebJobsStorage": connection,
        "DURABLE_HELPERS_TABLE_WRITES": table_writes,
    }
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    command = [sys.executable, "-m", "durable_helpers.local.serve", "--hub", hub]
    if journal == "folder":  # as 'local up' runs it; "blob": the journal in Azurite
        command += ["--journal-dir", tempfile.mkdtemp(prefix="bench-journal-")]
    proc = subprocess.Popen(
        [*command, "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    if log:
        out.close()
    _wait_port(f"127.0.0.1:{port}")
    return proc


def _in_memory(port: int, n: int) -> float:
    peer = subprocess.Popen([sys.executable, "-c", IN_MEMORY_SERVER, str(port)], cwd=ROOT)
    try:
        _wait_port(f"127.0.0.1:{port}")
        return _run(f"127.0.0.1:{port}", n)[0]
    finally:
        peer.kill()
        peer.wait()


def _sidecar(
    port: int,
    connection: str,
    hub: str,
    n: int,
    journal: str = "folder",
    table_writes: str = "process",
) -> float:
    side = _start_sidecar(port, connection, hub, journal=journal, table_writes=table_writes)
    try:
        return _run(f"127.0.0.1:{port}", n)[0]
    finally:
        side.terminate()
        side.wait(30)


def throughput(connection: str, sizes: list[int], journals: list[str], rounds: int = 3) -> None:
    """Part 1: the seed chain through the sidecar and the in-memory backend, same worker.

    Each round runs every peer once, in the same order; the ratio printed for a peer is the
    median of its per-round ratios to the in-memory backend (one run of 300 swings by +-10% on a
    shared machine).
    """
    peers = [(journal, "process") for journal in journals]
    if "folder" in journals:  # the peer of the row writer processes: the sidecar's threads
        peers.append(("folder", "thread"))
    for n in sizes:
        print(
            f"seed chain (HelloSequence x Tokyo/Seattle/London), {n} orchestrations, "
            f"{rounds} rounds"
        )
        in_memory: list[float] = []
        rates: dict[tuple[str, str], list[float]] = {peer: [] for peer in peers}
        for round_ in range(rounds):
            in_memory.append(_in_memory(free_ports(1)[0], n))
            for journal, writes in peers:
                hub = f"BenchHub{n}{journal}{writes}{round_}"
                rate = _sidecar(free_ports(1)[0], connection, hub, n, journal, writes)
                rates[journal, writes].append(rate)
        print(
            f"  in-memory backend (durabletask.testing, nothing persisted): "
            f"{_rates(in_memory)} orch/s"
        )
        for (journal, writes), got in rates.items():
            where = "journal in a folder" if journal == "folder" else "journal in Azurite blobs"
            if writes == "thread":
                where += ", table writes in the sidecar's process (TABLE_WRITES=thread)"
            print(f"  local task hub sidecar, {where}: {_rates(got)} orch/s")
            ratios = [side / memory for side, memory in zip(got, in_memory, strict=True)]
            target = " (target >= 0.5)" if writes == "process" else ""
            print(
                f"    ratio sidecar / in-memory: {statistics.median(ratios):.2f}{target}"
                f" (rounds: {', '.join(f'{r:.2f}' for r in ratios)})",
                flush=True,
            )


def _rates(rates: list[float]) -> str:
    return ", ".join(f"{rate:.1f}" for rate in rates)


def flatness(connection: str, prefill: int, n: int, rounds: int = 2) -> None:
    """Part 2: the sidecar on a hub holding ``prefill`` finished instances vs an empty hub."""
    account = StorageAccount.from_connection(connection)
    began = time.perf_counter()
    populate(account, prefill, hub="BenchFullHub")
    print(
        f"pre-filled hub BenchFullHub with {prefill} finished seed chains (rows written directly) "
        f"in {time.perf_counter() - began:.0f} s"
    )
    full, empty = [], []
    for r in range(rounds):  # interleaved, so that both see the same machine load
        port_full, port_empty = free_ports(2)
        full.append(_sidecar(port_full, connection, "BenchFullHub", n))
        empty.append(_sidecar(port_empty, connection, f"BenchEmptyHub{r}", n))
    print(f"seed chain, {n} orchestrations, {rounds} interleaved rounds (best of each)")
    print(f"  empty hub:                         {max(empty):8.1f} orch/s  ({empty})")
    print(f"  hub holding {prefill} instances: {max(full):8.1f} orch/s  ({full})")
    print(f"  ratio pre-filled / empty: {max(full) / max(empty):.2f} (target >= 0.8)", flush=True)


def memory(connection: str, n: int) -> None:
    """Part 3: the sidecar's peak memory after ``n`` orchestrations."""
    port = free_ports(1)[0]
    log = Path(tempfile.mkdtemp(prefix="bench-sidecar-")) / "sidecar.log"
    rss = _start_sidecar(port, connection, "BenchMemHub", log)

    def progress(done: int, rate: float) -> None:
        print(
            f"  after {done}: {rate:.1f} orch/s in the last chunk, "
            f"VmRSS {_memory_mb(rss.pid, 'VmRSS'):.0f} MB, VmHWM {_memory_mb(rss.pid):.0f} MB",
            flush=True,
        )

    try:
        idle = _memory_mb(rss.pid, "VmRSS")
        rates = _run(f"127.0.0.1:{port}", n, chunk=1000, on_chunk=progress)
        peak = _memory_mb(rss.pid, "VmHWM")
        after = _memory_mb(rss.pid, "VmRSS")
        helpers = [_memory_mb(pid) for pid in _children(rss.pid)]
    finally:
        rss.terminate()
        rss.wait(30)
    handed_out_again = log.read_text(errors="replace").count("within its lease")
    print(
        f"sidecar peak memory (VmHWM) after {n} orchestrations: {peak:.0f} MB "
        f"(target < 150 MB); {rates[0]:.1f} orch/s in that run"
    )
    print(
        f"  per thousand: first {rates[1]:.1f} orch/s, last {rates[-1]:.1f} orch/s "
        f"(ratio {rates[-1] / rates[1]:.2f})"
    )
    print(
        f"  resident right after start: {idle:.0f} MB, after the run: {after:.0f} MB "
        f"(growth {after - idle:+.0f} MB).",
        flush=True,
    )
    print(
        f"  its {len(helpers)} row writer processes: peak {max(helpers, default=0):.0f} MB each "
        f"at most, {peak + sum(helpers):.0f} MB with the sidecar"
    )
    print(f"  work items handed out again after their lease ran out: {handed_out_again}")


def _children(pid: int) -> list[int]:
    """The process ids of ``pid``'s children (the sidecar's row writer processes)."""
    found = []
    for thread_dir in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (thread_dir / "children").read_text().split()]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--n", type=int, nargs="*", default=[300, 2000], help="orchestrations per throughput run"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds of each throughput run"
    )
    parser.add_argument("--prefill", type=int, default=10_000, help="instances in the full hub")
    parser.add_argument("--flat-n", type=int, default=300, help="orchestrations per flatness run")
    parser.add_argument("--memory-n", type=int, default=10_000, help="orchestrations, RSS run")
    parser.add_argument(
        "--journal",
        choices=["folder", "blob", "both"],
        default="both",
        help="where the sidecar keeps its journal in part 1 (folder: as 'local up' runs it; "
        "blob: append blobs in Azurite); parts 2 and 3 use a folder",
    )
    parser.add_argument(
        "--worker-threads",
        type=int,
        help="threads of the SDK worker, the same for both peers (default: the SDK's, CPUs + 4)",
    )
    args = parser.parse_args()
    WORKER_THREADS[0] = args.worker_threads
    journals = ["folder", "blob"] if args.journal == "both" else [args.journal]
    print(f"SDK worker threads: {args.worker_threads or f'the SDK default ({os.cpu_count()} + 4)'}")

    with Azurite(ports=free_ports(3), in_memory=True) as azurite:  # type: ignore[arg-type]
        connection = azurite.connection_string
        throughput(connection, [n for n in args.n if n], journals, args.rounds)
        if args.prefill and args.flat_n:
            flatness(connection, args.prefill, args.flat_n)
        if args.memory_n:
            memory(connection, args.memory_n)


if __name__ == "__main__":
    main()
