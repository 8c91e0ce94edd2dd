"""Faults under load: 60 five-step chains in flight, one fault; every chain completes, none torn.

Each test runs its own Azurite (data on disk, so it can be stopped and started again), a sidecar
subprocess and the real SDK worker and client (see ``harness.py``); the storage faults and the
sidecar kill run with the journal in a folder (as ``up`` runs it) and in Azurite's blobs. Each
takes well under a minute; the figures they assert are also printed by ``bench/bench_faults.py``.
"""

from __future__ import annotations

import time

import pytest
from harness import FaultRun

CHAINS = 60
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def _assert_all_completed(run: FaultRun, outcome, done_before: int, name: str) -> None:
    assert done_before < CHAINS // 2, f"{name}: the fault came too late ({done_before} done)"
    log = run.sidecar_log.read_text()[-3000:]
    assert outcome.completed == CHAINS and not outcome.torn, (
        f"{outcome.summary(name)}\n--- sidecar log (tail) ---\n{log}"
    )


JOURNALS = pytest.mark.parametrize("journal", ["folder", "blob"])


@JOURNALS
def test_azurite_stopped_for_10_s_and_started_again(tmp_path, journal):
    with FaultRun(tmp_path, journal=journal) as run:
        outcome, before = run.chains(CHAINS, lambda r: r.restart_azurite(10))
        _assert_all_completed(run, outcome, before, "Azurite stopped 10 s")


@JOURNALS
def test_azurite_stalled_by_sigstop_for_10_s(tmp_path, journal):
    with FaultRun(tmp_path, journal=journal) as run:
        outcome, before = run.chains(CHAINS, lambda r: r.stall_azurite(10))
        _assert_all_completed(run, outcome, before, "Azurite stalled 10 s")


def test_worker_killed_and_restarted(tmp_path):
    def kill_worker(r: FaultRun) -> None:
        r.kill_worker()
        time.sleep(1)
        r.start_worker()

    with FaultRun(tmp_path, worker_in_process=False) as run:
        outcome, before = run.chains(CHAINS, kill_worker)
        _assert_all_completed(run, outcome, before, "worker killed")


@JOURNALS
def test_sidecar_killed_with_kill_9_twice(tmp_path, journal):
    def kill_twice(r: FaultRun) -> None:
        for _ in range(2):
            r.kill_sidecar()
            r.start_sidecar()
            time.sleep(1)

    with FaultRun(tmp_path, journal=journal) as run:
        outcome, before = run.chains(CHAINS, kill_twice)
        _assert_all_completed(run, outcome, before, "sidecar kill -9 twice")
