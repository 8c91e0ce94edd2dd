"""The fault tests' workload: five-step chains, run by the real SDK worker (in or out of process).

``python chains.py HOST:PORT`` runs a worker with them registered until it is killed.
"""

from __future__ import annotations

import sys
import threading
import time

from durabletask import task
from durabletask.worker import TaskHubGrpcWorker

STEPS = 5


def Step(ctx, value: int) -> int:
    time.sleep(0.1)  # long enough that a fault lands while most chains are in flight
    return value + 1


def FiveStepChain(ctx: task.OrchestrationContext, start: int):
    value = start
    for _ in range(STEPS):
        value = yield ctx.call_activity(Step, input=value)
    return value


def register(worker: TaskHubGrpcWorker) -> TaskHubGrpcWorker:
    """Register the workload on ``worker`` and return it."""
    worker.add_orchestrator(FiveStepChain)
    worker.add_activity(Step)
    return worker


if __name__ == "__main__":
    register(TaskHubGrpcWorker(host_address=sys.argv[1])).start()
    print("worker started", flush=True)
    threading.Event().wait()
