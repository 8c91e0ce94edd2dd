"""Benchmark: ``replay.check_many`` against the SDK worker's own replay of the same histories.

Histories: the order workload (``durable_helpers.workload``: fan-out, retries, failures, stuck
instances) really run by the SDK worker on a local task hub (Azurite + sidecar, free ports) and
read back with ``TaskHub.histories``; ``--orders`` of them (default 200) are recorded, then
cloned under new instance ids up to ``--instances`` (default 1,000) so the run stays short
(``--orders 1000`` records them all).

Peer, measured in the same run on the same histories: what ``TaskHubGrpcWorker`` does with a
work item, minus the network: parse the ``OrchestratorRequest`` bytes the sidecar would send
(past events = the history, new event = one OrchestratorStarted) and run the SDK's
``_OrchestrationExecutor`` over it. The kit's time is ``check_many`` from the History frame to
the result frame (frame -> events, the executor with the probe, the report). Prints time per
instance for both (best of ``--repeat`` interleaved runs) and the ratio kit / peer (target:
within 1.5x).

    .venv/bin/python bench/bench_replay.py [--orders 200] [--instances 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
import time
import uuid
from pathlib import Path

import durabletask.internal.orchestrator_service_pb2 as pb
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from durable_helpers import TaskHub, replay  # noqa: E402
from durable_helpers.local.azurite import Azurite  # noqa: E402
from durable_helpers.local.ports import free_ports  # noqa: E402
from durable_helpers.local.sidecar import LocalTaskHub  # noqa: E402
from durable_helpers.replay.history_input import split_histories  # noqa: E402
from durable_helpers.replay.sdk_executor import execute_request  # noqa: E402
from durable_helpers.workload import OrderWorkload, ProcessOrder  # noqa: E402

logging.getLogger("durabletask-worker").setLevel(logging.WARNING)
logging.getLogger("durabletask-client").setLevel(logging.WARNING)


def record(orders: int) -> pd.DataFrame:
    """Run ``orders`` orders on a fresh local task hub and read their histories."""
    azurite = Azurite(ports=free_ports(3), in_memory=True, stop_with_parent=True)  # type: ignore[arg-type]
    azurite.start()
    try:
        hub = "Bench" + uuid.uuid4().hex[:8]
        with LocalTaskHub(connection=azurite.connection_string, hub=hub, port=0) as sidecar:
            with OrderWorkload(sidecar.address, orders=orders, stuck=4) as run:
                ids = run.start(progress=False)
                print(f"running {orders} orders on the local task hub ...", flush=True)
                print(f"  {dict(run.wait(timeout=600, progress=False))}", flush=True)
            return TaskHub(azurite.connection_string, hub=hub).histories(ids, progress=False)
    finally:
        azurite.stop()


def _renamed(histories: pd.DataFrame, suffix: str) -> pd.DataFrame:
    """A copy under ids ``<id><suffix>``; failure texts that quote the id quote the new one (the
    SDK puts the instance id into an activity failure's message, so a replay compares it)."""
    copy = histories.assign(InstanceId=histories.InstanceId + suffix)
    for old in dict.fromkeys(histories.InstanceId):
        rows = copy.InstanceId == old + suffix
        for column in ("Reason", "FailureMessage"):
            copy.loc[rows, column] = copy.loc[rows, column].str.replace(old, old + suffix)
        copy.loc[rows, "FailureDetails"] = copy.loc[rows, "FailureDetails"].map(
            lambda d, old=old: (
                {**d, "ErrorMessage": str(d.get("ErrorMessage")).replace(old, old + suffix)}
                if isinstance(d, dict)
                else d
            )
        )
    return copy


def clone(histories: pd.DataFrame, instances: int) -> pd.DataFrame:
    """The recorded histories repeated under new ids until there are ``instances`` of them."""
    ids = list(dict.fromkeys(histories.InstanceId))
    copies = -(-instances // len(ids))
    parts = [histories, *(_renamed(histories, f"~{n}") for n in range(1, copies))]
    frame = pd.concat(parts, ignore_index=True)
    keep = list(dict.fromkeys(frame.InstanceId))[:instances]
    return frame[frame.InstanceId.isin(keep)].reset_index(drop=True)


def work_items(frame: pd.DataFrame) -> list[bytes]:
    """What the sidecar would send the worker for each instance's next event, serialized."""
    items = []
    for rec in split_histories(frame):
        now = pb.HistoryEvent(eventId=-1, orchestratorStarted=pb.OrchestratorStartedEvent())
        now.timestamp.GetCurrentTime()
        request = pb.OrchestratorRequest(
            instanceId=rec.instance_id, pastEvents=rec.events, newEvents=[now]
        )
        items.append(request.SerializeToString())
    return items


def peer(items: list[bytes]) -> None:
    for raw in items:
        request = pb.OrchestratorRequest.FromString(raw)
        execute_request(request, "ProcessOrder", ProcessOrder)


def kit(frame: pd.DataFrame) -> pd.DataFrame:
    return replay.check_many(frame, ProcessOrder, progress=False)


def best(fn, *args, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        gc.collect()
        began = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - began)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    frame = clone(record(args.orders), args.instances)
    items = work_items(frame)
    n = len(items)
    print(f"{n} histories, {len(frame)} events ({len(frame) / n:.1f} per instance)")
    found = kit(frame)
    print(
        f"verdicts of ProcessOrder on its own histories: {found.Verdict.value_counts().to_dict()}"
    )
    kit_times, peer_times = [], []
    for _ in range(args.repeat):  # interleaved, so both see the same machine load
        peer_times += best(peer, items, repeat=1)
        kit_times += best(kit, frame, repeat=1)
    k, p = min(kit_times), min(peer_times)
    print(f"SDK worker replay (peer):  {p / n * 1e6:8.1f} us per instance  ({p:.3f} s)")
    print(f"replay.check_many (kit):   {k / n * 1e6:8.1f} us per instance  ({k:.3f} s)")
    print(f"ratio kit / peer: {k / p:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
