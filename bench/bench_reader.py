"""Benchmark: TaskHub.history()/histories() against raw azure-data-tables reads of the same rows.

Starts its own Azurite (in memory, free ports), writes N instances of the seed's Hello chain
(16 events + sentinel each) through durable_helpers.schema, then measures, in the same run:

1. ``TaskHub.history(id)`` vs ``list(table.query_entities("PartitionKey eq '<id>'"))`` for the
   same partitions: the ratio is the decode + frame overhead (target: <= 1.20).
2. ``TaskHub.histories(ids)`` (parallel, one frame) vs a sequential loop of the raw queries
   (target: >= 3x faster).

3. The same as 2, through a local TCP proxy that delays every request by ``--latency-ms``
   (default 10): Azurite answers in microseconds of network time, a storage account in Azure
   answers after a network round trip; this shows what the thread pool buys there. Labelled as
   simulated in the output; 0 skips it.

Calls are interleaved and repeated; the best of ``--repeat`` rounds is reported.

    .venv/bin/python bench/bench_reader.py [--instances 500] [--sample 100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from durable_helpers import schema
from durable_helpers.local.azurite import Azurite
from durable_helpers.local.ports import free_ports
from durable_helpers.storage import StorageAccount, azurite_connection_string, retry_idempotent
from durable_helpers.taskhub import TaskHub

HUB = "BenchHub"
T0 = datetime(2026, 11, 26, 12, 0, tzinfo=schema.UTC)
OUTPUT = '["Hello Tokyo!","Hello Seattle!","Hello London!"]'
EVENTS = [  # the seed's Hello chain: EventType, EventId, IsPlayed, ms offset, columns
    ("OrchestratorStarted", -1, False, 250, {}),
    ("ExecutionStarted", -1, True, 100, {"Name": "HelloSequence", "Version": "", "Input": "null"}),
    ("TaskScheduled", 0, False, 260, {"Name": "Hello", "Version": ""}),
    ("OrchestratorCompleted", -1, False, 265, {}),
    ("OrchestratorStarted", -1, False, 540, {}),
    ("TaskCompleted", -1, True, 500, {"TaskScheduledId": 0, "Result": '"Hello Tokyo!"'}),
    ("TaskScheduled", 1, False, 545, {"Name": "Hello", "Version": ""}),
    ("OrchestratorCompleted", -1, False, 546, {}),
    ("OrchestratorStarted", -1, False, 690, {}),
    ("TaskCompleted", -1, True, 650, {"TaskScheduledId": 1, "Result": '"Hello Seattle!"'}),
    ("TaskScheduled", 2, False, 695, {"Name": "Hello", "Version": ""}),
    ("OrchestratorCompleted", -1, False, 696, {}),
    ("OrchestratorStarted", -1, False, 860, {}),
    ("TaskCompleted", -1, True, 820, {"TaskScheduledId": 2, "Result": '"Hello London!"'}),
    ("ExecutionCompleted", 3, False, 865, {"OrchestrationStatus": "Completed", "Result": OUTPUT}),
    ("OrchestratorCompleted", -1, False, 866, {}),
]  # fmt: skip


def chain(instance_id: str, execution_id: str, start: datetime) -> list[dict]:
    rows = [
        schema.history_entity(
            instance_id,
            execution_id,
            seq,
            etype,
            event_id=eid,
            is_played=played,
            timestamp=start + timedelta(milliseconds=at),
            **cols,
        )
        for seq, (etype, eid, played, at, cols) in enumerate(EVENTS)
    ]
    done = start + timedelta(seconds=1)
    rows.append(schema.sentinel_entity(instance_id, execution_id, checkpoint_completed=done))
    return rows


def populate(account: StorageAccount, count: int, hub: str = HUB) -> list[str]:
    """Write ``count`` finished seed chains into ``hub`` (rows through ``schema``); their ids."""
    names = schema.hub_names(hub)
    account.tables.create_table(names.history_table)
    account.tables.create_table(names.instances_table)
    account.blobs.create_container(names.largemessages_container)
    history = account.tables.get_table_client(names.history_table)
    instances = account.tables.get_table_client(names.instances_table)
    ids = [uuid.uuid4().hex for _ in range(count)]

    def write(index_and_id: tuple[int, str]) -> None:
        retry_idempotent(lambda: write_once(index_and_id))

    def write_once(index_and_id: tuple[int, str]) -> None:
        index, iid = index_and_id
        start = T0 + timedelta(seconds=index)
        execution = uuid.uuid4().hex
        history.submit_transaction([("upsert", e) for e in chain(iid, execution, start)])
        instances.upsert_entity(
            schema.instance_entity(
                iid,
                Name="HelloSequence",
                Version="",
                RuntimeStatus="Completed",
                CreatedTime=start,
                LastUpdatedTime=start + timedelta(seconds=1),
                CompletedTime=start + timedelta(seconds=1),
                ExecutionId=execution,
                TaskHubName=hub,
                CustomStatus="null",
                Output=OUTPUT,
            )
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, enumerate(ids)))
    return ids


def _pump(source: socket.socket, target: socket.socket, delay: float) -> None:
    try:
        while data := source.recv(65536):
            if delay:
                time.sleep(delay)
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _delay_proxy(port: int, target_port: int, delay: float, ready: Any) -> None:
    """Forward 127.0.0.1:port to target_port, delaying each client->server chunk by ``delay``."""
    server = socket.create_server(("127.0.0.1", port), backlog=128)
    ready.set()
    while True:
        client, _ = server.accept()
        upstream = socket.create_connection(("127.0.0.1", target_port))
        for args in ((client, upstream, delay), (upstream, client, 0.0)):
            threading.Thread(target=_pump, args=args, daemon=True).start()


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=500)
    parser.add_argument("--sample", type=int, default=100, help="ids timed one by one")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--latency-ms", type=float, default=10.0, help="simulated; 0 = skip")
    args = parser.parse_args()

    with Azurite(ports=free_ports(3), in_memory=True) as azurite:
        account = StorageAccount.from_connection(azurite.connection_string)
        t = time.perf_counter()
        ids = populate(account, args.instances)
        print(f"populated {len(ids)} instances x {len(EVENTS)} events "
              f"in {time.perf_counter() - t:.1f} s (Azurite on {azurite.ports}, "
              f"{os.cpu_count()} CPUs)")  # fmt: skip
        hub = TaskHub(azurite.connection_string, hub=HUB)
        table = account.tables.get_table_client(hub.names.history_table)

        def raw_one(iid: str) -> list:
            key = schema.odata_string(schema.escape_partition_key(iid))
            return list(table.query_entities(f"PartitionKey eq {key}"))

        def raw_all(all_ids: list[str]) -> list:
            return [raw_one(i) for i in all_ids]

        # warm up both paths (connections, imports, JIT-less caches)
        for iid in ids[:20]:
            raw_one(iid)
            hub.history(iid)
        frame = hub.history(ids[0])
        assert len(frame) == 16 and len(raw_one(ids[0])) == 17

        sample = ids[: args.sample]
        best_raw = best_hist = float("inf")
        for _ in range(args.repeat):
            raw_total = hist_total = 0.0
            for n, iid in enumerate(sample):  # interleaved, alternating which goes first
                if n % 2:
                    hist_total += timed(hub.history, iid)
                    raw_total += timed(raw_one, iid)
                else:
                    raw_total += timed(raw_one, iid)
                    hist_total += timed(hub.history, iid)
            best_raw, best_hist = min(best_raw, raw_total), min(best_hist, hist_total)
        per_raw, per_hist = best_raw / len(sample) * 1e3, best_hist / len(sample) * 1e3
        ratio = best_hist / best_raw
        print(f"\n1. one instance ({len(EVENTS)} events), mean over {len(sample)} ids, "
              f"best of {args.repeat}:")  # fmt: skip
        print(f"   raw azure-data-tables query     {per_raw:7.2f} ms")
        print(f"   TaskHub.history()               {per_hist:7.2f} ms")
        print(f"   ratio history/raw               {ratio:7.2f}  (target <= 1.20: "
              f"{'met' if ratio <= 1.20 else 'NOT met'})")  # fmt: skip

        best_seq = best_par = float("inf")
        for _ in range(args.repeat):
            best_seq = min(best_seq, timed(raw_all, ids))
            best_par = min(
                best_par,
                timed(lambda: hub.histories(ids, max_workers=args.workers, progress=False)),
            )
        frame = hub.histories(ids, max_workers=args.workers, progress=False)
        assert len(frame) == len(ids) * len(EVENTS)
        speedup = best_seq / best_par
        print(f"\n2. {len(ids)} instances, best of {args.repeat}:")
        print(f"   sequential raw queries          {best_seq:7.2f} s")
        print(f"   TaskHub.histories() ({args.workers} workers) {best_par:7.2f} s  "
              f"-> one frame of {len(frame)} rows")  # fmt: skip
        print(f"   speed-up                        {speedup:7.2f}x (target >= 3x: "
              f"{'met' if speedup >= 3 else 'NOT met'})")  # fmt: skip

        if args.latency_ms > 0:
            latency_section(azurite, ids, args)


@contextlib.contextmanager
def delay_proxy(azurite: Azurite, latency_ms: float) -> Iterator[str]:
    """A connection string whose table endpoint is a proxy delaying each request (a child
    process forwarding to ``azurite``'s table port), for as long as the block runs."""
    (proxy_port,) = free_ports(1)
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    blob, queue, table_port = azurite.ports
    proxy = context.Process(
        target=_delay_proxy,
        args=(proxy_port, table_port, latency_ms / 1000, ready),
        daemon=True,
    )
    proxy.start()
    try:
        if not ready.wait(10):
            raise RuntimeError("the delay proxy did not start")
        yield azurite_connection_string(blob_port=blob, queue_port=queue, table_port=proxy_port)
    finally:
        proxy.terminate()
        proxy.join(5)


def latency_section(azurite: Azurite, ids: list[str], args: argparse.Namespace) -> None:
    """Section 3: the comparison of section 2 with a simulated network delay per request."""
    with delay_proxy(azurite, args.latency_ms) as connection:
        hub = TaskHub(connection, hub=HUB)
        table = StorageAccount.from_connection(connection).tables.get_table_client(
            hub.names.history_table
        )

        def raw_all() -> list:
            out = []
            for iid in ids:
                key = schema.odata_string(schema.escape_partition_key(iid))
                out.append(list(table.query_entities(f"PartitionKey eq {key}")))
            return out

        def parallel() -> Any:
            return hub.histories(ids, max_workers=args.workers, progress=False)

        parallel()  # warm up the connection pool
        best_seq = min(timed(raw_all) for _ in range(args.repeat))
        best_par = min(timed(parallel) for _ in range(args.repeat))
        speedup = best_seq / best_par
        print(f"\n3. as 2, with a SIMULATED {args.latency_ms:g} ms delay per request "
              "(local proxy; Azure-like latency):")  # fmt: skip
        print(f"   sequential raw queries          {best_seq:7.2f} s")
        print(f"   TaskHub.histories() ({args.workers} workers) {best_par:7.2f} s")
        print(f"   speed-up                        {speedup:7.2f}x (target >= 3x: "
              f"{'met' if speedup >= 3 else 'NOT met'})")  # fmt: skip


if __name__ == "__main__":
    main()
