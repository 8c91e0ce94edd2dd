"""A worker process for the worker-loss test: ``python worker_proc.py HOST:PORT``."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from durabletask.worker import TaskHubGrpcWorker
from local_entities import register_entities
from local_orchestrations import register

if __name__ == "__main__":
    worker = register_entities(register(TaskHubGrpcWorker(host_address=sys.argv[1])))
    worker.start()
    print("worker started", flush=True)
    threading.Event().wait()
