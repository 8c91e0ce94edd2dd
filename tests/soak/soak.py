"""Soak: the order workload through the local task hub while workers and the sidecar are killed.

Orders of :mod:`durable_helpers.workload` (activities, a fan-out, retries with timers, external
events) arrive at ``--rate`` per second through a sidecar subprocess over a disk-backed Azurite;
the worker (a subprocess) is killed with ``kill -9`` and restarted every ``--kill-worker-every``
seconds, and the sidecar is killed with ``kill -9`` once, half-way through the arrivals. At the
end every order must have ended where the workload says it ends (Completed; Failed when out of
stock, declined, or out of retries; Running when it waits for a manager's approval), no History
partition may be torn, and the sidecar's memory should stay flat (sampled as it runs).

Two allowances, both because ``ChargePayment`` counts its attempts in the worker process: an
order meant to succeed on its second attempt fails all three when each attempt runs in a new
worker process (killed in between), and an order meant to fail all three completes when one
attempt ran twice in the same process (an activity is delivered at least once: after the
sidecar's ``kill -9``, one whose completion was lost is handed out again). Such orders are
counted apart (``retries_reset``, ``attempt_repeated``), after checking their History.

The full soak (10,000 orders) takes a while and is not run in CI; ``tests/soak/test_soak.py``
runs a short version.

Run: ``.venv/bin/python tests/soak/soak.py [--orders 10000] [--rate 15]
[--kill-worker-every 30] [--azurite-in-memory] [--worker-threads 32]``. One worker with
the SDK's default pool (CPUs + 4 threads) runs about 4 orders per second, because
``ChargePayment`` waits 0.2-2.5 s; 32 threads keep up with 15 per second. On a disk-backed
Azurite, a hub of several thousand orders makes Azurite's own saves (its whole table file,
every 5 s) take most of its CPU; ``--azurite-in-memory`` takes that out of the measurement.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "faults"))
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
from durabletask.client import OrchestrationQuery, TaskHubGrpcClient  # noqa: E402
from harness import QUIET, FaultRun, history_rows, torn  # noqa: E402

from durable_helpers.local.sidecar.rest import RestStorage  # noqa: E402
from durable_helpers.workload import APPROVAL_LIMIT, ProcessOrder, make_orders  # noqa: E402

WORKER = (
    "import sys, threading\n"
    "from durable_helpers.workload import OrderWorkload\n"
    "threads = int(sys.argv[1]) if len(sys.argv) > 2 else None  # [threads] address\n"
    "OrderWorkload(sys.argv[-1], worker_threads=threads).start_worker()\n"
    "threading.Event().wait()\n"
)
TERMINAL = {"Completed", "Failed", "Terminated"}


def expected_status(order: dict) -> str:
    """Where the workload says an order ends (see ``ProcessOrder``)."""
    if any(line.get("out_of_stock") for line in order["lines"]):
        return "Failed"
    if order["total"] > APPROVAL_LIMIT:
        return "Running"  # waits for ManagerApproval, which nobody sends
    if order["transient_failures"] >= 3 or order["declined"]:
        return "Failed"
    return "Completed"


@dataclass
class SoakOutcome:
    """What a soak ended with."""

    orders: int
    statuses: Counter = field(default_factory=Counter)
    wrong: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (expected, got)
    torn: dict[str, str] = field(default_factory=dict)
    retries_reset: int = 0  # failed on transient errors only because attempt counts restarted
    attempt_repeated: int = 0  # completed because a charge attempt ran twice (redelivered)
    worker_kills: int = 0
    sidecar_kills: int = 0
    rss_mb: list[float] = field(default_factory=list)  # sidecar VmRSS samples
    seconds: float = 0.0

    def summary(self) -> str:
        rss = (
            f"sidecar RSS {self.rss_mb[0]:.0f} -> max {max(self.rss_mb):.0f} -> "
            f"last {self.rss_mb[-1]:.0f} MB"
            if self.rss_mb
            else "no RSS samples"
        )
        return (
            f"{self.orders} orders in {self.seconds:.0f} s, {self.worker_kills} worker kills, "
            f"{self.sidecar_kills} sidecar kill: {dict(self.statuses)}; "
            f"{self.retries_reset} failed as their retries ran in new worker processes, "
            f"{self.attempt_repeated} completed as a charge attempt ran twice, "
            f"{len(self.wrong)} not where the workload says they end "
            f"{list(self.wrong.items())[:5]}; {len(self.torn)} torn histories "
            f"{list(self.torn.items())[:3]}; {rss}"
        )


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def soak(
    folder: Path,
    orders: int,
    *,
    rate: float = 15.0,
    kill_worker_every: float = 30.0,
    timeout: float = 3600.0,
    stuck: int = 4,
    azurite_in_memory: bool = False,
    worker_threads: int | None = None,
) -> SoakOutcome:
    """Run the soak in ``folder`` (Azurite's data and the logs); see the module docstring."""
    inputs = make_orders(orders, seed=11, stuck=stuck)
    prefix = "soak-"
    ids = {f"{prefix}{o['id']}": o for o in inputs}
    outcome = SoakOutcome(orders)
    command = (sys.executable, "-c", WORKER)
    if worker_threads:
        command += (str(worker_threads),)  # the harness adds the sidecar's address
    with FaultRun(
        folder,
        worker_in_process=False,
        worker_command=command,
        azurite_in_memory=azurite_in_memory,
    ) as run:
        client = TaskHubGrpcClient(host_address=run.address, logger=QUIET)
        began = time.monotonic()
        deadline = began + timeout
        next_kill = began + kill_worker_every
        next_sample = began
        pending = list(ids.items())
        expected_end = {iid: expected_status(o) for iid, o in ids.items()}
        finished: dict[str, str] = {}
        try:
            while time.monotonic() < deadline:
                now = time.monotonic()
                due = len(ids) if not rate else min(len(ids), int((now - began) * rate) + 1)
                while pending and len(ids) - len(pending) < due:
                    iid, order = pending[0]
                    try:
                        client.schedule_new_orchestration(
                            ProcessOrder, input=order, instance_id=iid
                        )
                    except grpc.RpcError as error:
                        if error.code() != grpc.StatusCode.ALREADY_EXISTS:
                            break  # the sidecar is restarting: try again shortly
                        # else: started before the sidecar died, the answer was lost
                    pending.pop(0)
                if not outcome.sidecar_kills and len(pending) <= len(ids) // 2:
                    run.kill_sidecar()
                    run.start_sidecar()
                    outcome.sidecar_kills += 1
                if now >= next_kill:
                    run.kill_worker()
                    run.start_worker()
                    outcome.worker_kills += 1
                    next_kill = now + kill_worker_every
                if now >= next_sample:
                    outcome.rss_mb.append(_rss_mb(run.sidecar.pid))  # type: ignore[union-attr]
                    next_sample = now + 5
                    if not pending:
                        finished = _statuses(client, prefix)
                        if all(
                            finished.get(i) in TERMINAL or expected_end[i] == "Running" for i in ids
                        ):
                            break
                time.sleep(0.05)
            finished = _statuses(client, prefix)
        finally:
            client.close()
        outcome.seconds = time.monotonic() - began
        rest = RestStorage.from_connection_string(run.azurite.connection_string)  # type: ignore[union-attr]
        for iid in ids:
            got = finished.get(iid, "Missing")
            outcome.statuses[got] += 1
            if got != expected_end[iid]:
                if _retries_reset(rest, run.hub, iid, ids[iid], got):
                    outcome.retries_reset += 1
                elif _attempt_repeated(rest, run.hub, iid, ids[iid], got):
                    outcome.attempt_repeated += 1
                else:
                    outcome.wrong[iid] = (expected_end[iid], got)
            problem = torn(history_rows(rest, run.hub, iid))
            if problem:
                outcome.torn[iid] = problem
    return outcome


def _retries_reset(rest: RestStorage, hub: str, iid: str, order: dict, got: str) -> bool:
    """True when an order failed on the transient payment error alone (see the docstring)."""
    if got != "Failed" or not order["transient_failures"]:
        return False
    row = rest.get_entity(f"{hub}Instances", iid, "") or {}
    return "Payment gateway timed out" in str(row.get("Output"))


def _attempt_repeated(rest: RestStorage, hub: str, iid: str, order: dict, got: str) -> bool:
    """True when an order meant to fail all three charge attempts completed because one attempt
    ran twice: an activity is delivered at least once (here: handed out again after the sidecar's
    ``kill -9`` lost its completion), and the worker counts each run. Its History then shows the
    orchestration saw fewer failures than the order has."""
    if got != "Completed" or order["declined"] or order["transient_failures"] < 3:
        return False
    failed = sum(1 for r in history_rows(rest, hub, iid) if r.get("EventType") == "TaskFailed")
    return failed < order["transient_failures"]


def _statuses(client: TaskHubGrpcClient, prefix: str) -> dict[str, str]:
    for _ in range(20):
        try:
            states = client.get_all_orchestration_states(
                OrchestrationQuery(instance_id_prefix=prefix)
            )
            return {s.instance_id: s.runtime_status.name.title() for s in states}
        except Exception:  # the sidecar is restarting
            time.sleep(0.5)
    return {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=15.0, help="orders started per second")
    parser.add_argument("--kill-worker-every", type=float, default=30.0)
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument(
        "--azurite-in-memory",
        action="store_true",
        help="Azurite keeps nothing on disk (its saves of a big hub's tables cost no CPU)",
    )
    parser.add_argument(
        "--worker-threads",
        type=int,
        default=32,
        help="the worker's thread pool (its activities wait on I/O; the SDK default is CPUs + 4)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="soak-") as folder:
        outcome = soak(
            Path(folder),
            args.orders,
            rate=args.rate,
            kill_worker_every=args.kill_worker_every,
            timeout=args.timeout,
            azurite_in_memory=args.azurite_in_memory,
            worker_threads=args.worker_threads,
        )
    print(outcome.summary())
    ok = not outcome.wrong and not outcome.torn
    print("soak passed" if ok else "soak FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
