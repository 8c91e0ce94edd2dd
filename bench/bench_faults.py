"""Fault runs as figures: chains in flight through the local task hub while something breaks.

The runs of ``tests/faults`` (same harness: a disk-backed Azurite, a sidecar subprocess, the
real SDK worker and client), printed as figures instead of asserted: for each fault, how many of
the chains completed and how many History partitions are torn (rows without their sentinel, a
gap in RowKeys, rows of two executions, events missing), and how long the run took. A
fault-free run of the same chains is the peer.

Run: ``.venv/bin/python bench/bench_faults.py [--chains 60] [--timeout 90]``
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "faults"))

from harness import FaultRun  # noqa: E402


def _kill_worker(run: FaultRun) -> None:
    run.kill_worker()
    time.sleep(1)
    run.start_worker()


def _kill_sidecar_twice(run: FaultRun) -> None:
    for _ in range(2):
        run.kill_sidecar()
        run.start_sidecar()
        time.sleep(1)


FAULTS = [
    ("no fault (peer)", True, lambda run: None),
    ("Azurite stopped cleanly for 10 s, started again", True, lambda run: run.restart_azurite(10)),
    ("Azurite stalled (SIGSTOP 10 s, SIGCONT)", True, lambda run: run.stall_azurite(10)),
    ("worker killed (kill -9) and restarted", False, _kill_worker),
    ("sidecar killed with kill -9 twice", True, _kill_sidecar_twice),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chains", type=int, default=60, help="five-step chains in flight")
    parser.add_argument("--timeout", type=float, default=90, help="seconds to wait for all")
    parser.add_argument(
        "--journal",
        choices=["folder", "blob", "both"],
        default="both",
        help="where the sidecar keeps its journal (folder: as 'local up' runs it)",
    )
    args = parser.parse_args()
    journals = ["folder", "blob"] if args.journal == "both" else [args.journal]
    print(f"{args.chains} five-step chains in flight, one fault each run")
    for (name, in_process, fault), journal in itertools.product(FAULTS, journals):
        with (
            tempfile.TemporaryDirectory(prefix="bench-faults-") as folder,
            FaultRun(Path(folder), worker_in_process=in_process, journal=journal) as run,
        ):
            outcome, before = run.chains(args.chains, fault, timeout=args.timeout)
        print(
            f"  {name:50s} journal {journal:6s} completed {outcome.completed}/{outcome.total}, "
            f"torn histories {len(outcome.torn)}, {outcome.seconds:5.1f} s "
            f"({before} had completed when the fault began)",
            flush=True,
        )


if __name__ == "__main__":
    main()
