"""Benchmark: the local task hub sidecar against the SDK's in-memory backend, same worker code.

Both servers run in their own process (the same treatment for both; the SDK worker and client
run in this process): ``durabletask.testing.create_test_backend`` (everything in memory, nothing
persisted) and ``durable_helpers.local.serve`` (everything persisted in Azurite: journal,
History, Instances). Workload: the seed's chain (``HelloSequence``: activity ``Hello`` with
Tokyo, Seattle, London), N orchestrations started at once, waited for.

Prints orchestrations/second for both and the ratio (sidecar / in-memory; target >= 1.0), then
the sidecar's peak memory (VmHWM) after 2,000 orchestrations (target < 200 MB).

Run: ``.venv/bin/python bench/bench_sidecar.py [--n 300] [--memory-n 2000]``
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
from durabletask import task
from durabletask.client import OrchestrationStatus, TaskHubGrpcClient
from durabletask.worker import TaskHubGrpcWorker

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from durable_helpers.local.azurite import Azurite  # noqa: E402
from durable_helpers.local.ports import free_ports  # noqa: E402

QUIET = logging.getLogger("bench_sidecar.sdk")
QUIET.setLevel(logging.WARNING)


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
    channel = grpc.insecure_channel(address)
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    finally:
        channel.close()


def _run(address: str, n: int) -> float:
    """Start n chains at once, wait for all; orchestrations per second."""
    worker = TaskHubGrpcWorker(host_address=address, logger=QUIET)
    worker.add_orchestrator(HelloSequence)
    worker.add_activity(Hello)
    worker.start()
    client = TaskHubGrpcClient(host_address=address, logger=QUIET)
    try:
        # warm up (connections, first dispatch)
        warm = client.schedule_new_orchestration(HelloSequence)
        client.wait_for_orchestration_completion(warm, timeout=60)
        start = time.perf_counter()
        ids = [client.schedule_new_orchestration(HelloSequence) for _ in range(n)]
        for instance_id in ids:
            state = client.wait_for_orchestration_completion(instance_id, timeout=600)
            assert state is not None and state.runtime_status == OrchestrationStatus.COMPLETED
        return n / (time.perf_counter() - start)
    finally:
        client.close()
        worker.stop()


def _memory_mb(pid: int, field: str = "VmHWM") -> float:
    """VmHWM (peak resident) or VmRSS of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _start_sidecar(port: int, connection: str, hub: str) -> subprocess.Popen:
    env = {**os.environ, "AzureWebJobsStorage": connection}
    proc = subprocess.Popen(
        [sys.executable, "-m", "durable_helpers.local.serve", "--hub", hub, "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_port(f"127.0.0.1:{port}")
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=300, help="orchestrations per throughput run")
    parser.add_argument("--memory-n", type=int, default=2000, help="orchestrations for the RSS run")
    args = parser.parse_args()

    with Azurite(ports=free_ports(3), in_memory=True) as azurite:  # type: ignore[arg-type]
        port_mem, port_side, port_rss = free_ports(3)

        peer = subprocess.Popen([sys.executable, "-c", IN_MEMORY_SERVER, str(port_mem)], cwd=ROOT)
        try:
            _wait_port(f"127.0.0.1:{port_mem}")
            in_memory = _run(f"127.0.0.1:{port_mem}", args.n)
        finally:
            peer.kill()
            peer.wait()

        side = _start_sidecar(port_side, azurite.connection_string, "BenchHub")
        try:
            sidecar = _run(f"127.0.0.1:{port_side}", args.n)
        finally:
            side.terminate()
            side.wait(30)

        print(f"seed chain (HelloSequence x Tokyo/Seattle/London), {args.n} orchestrations")
        print(
            f"  in-memory backend (durabletask.testing, nothing persisted): {in_memory:8.1f} orch/s"
        )
        print(
            f"  local task hub sidecar (everything persisted in Azurite):   {sidecar:8.1f} orch/s"
        )
        print(f"  ratio sidecar / in-memory: {sidecar / in_memory:.2f} (target >= 1.0)")

        if args.memory_n:
            rss = _start_sidecar(port_rss, azurite.connection_string, "BenchMemHub")
            try:
                idle = _memory_mb(rss.pid, "VmRSS")
                rate = _run(f"127.0.0.1:{port_rss}", args.memory_n)
                peak = _memory_mb(rss.pid, "VmHWM")
                after = _memory_mb(rss.pid, "VmRSS")
            finally:
                rss.terminate()
                rss.wait(30)
            print(
                f"sidecar peak memory (VmHWM) after {args.memory_n} orchestrations: {peak:.0f} MB "
                f"(target < 200 MB); {rate:.1f} orch/s in that run"
            )
            print(
                f"  resident right after start: {idle:.0f} MB, after the run: {after:.0f} MB "
                f"(growth {after - idle:+.0f} MB). Most of the idle figure is the import of the "
                "durable_helpers package (its __init__ imports pandas/pyarrow)."
            )


if __name__ == "__main__":
    main()
