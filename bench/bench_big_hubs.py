"""Benchmark: big task hubs: parallel scans, the bounded pool, the export, DuckDB vs pandas.

Starts its own Azurite (in memory, free ports) and writes a synthetic hub of ``--instances``
instances (``durable_helpers.synthetic``: schema rows written directly, about 16 History rows
each: 50,000 instances is about 800,000 rows), then measures, in the same run:

1. ``TaskHub.instances()`` (PartitionKey ranges, ``--workers`` threads) against today's
   sequential scan (one query followed page by page, the same frame built), straight to
   Azurite and through a local proxy that delays every request by ``--latency-ms`` (10 ms by
   default, SIMULATED: Azure answers after a network round trip, Azurite at once).
   Target with the delay: >= 4x.
2. ``TaskHub.histories()`` of ``--histories`` instances with the delay against a sequential
   loop of the raw queries. Target: >= 6x.
3. ``TaskHub.export()`` of the whole hub in a child process: its peak memory (target < 500 MB)
   and rows per second.
4. Latency per activity over the exported files: ``ExportDB.latency()`` (DuckDB) against
   ``analysis.latency(analysis.calls(...))`` on the same rows loaded with ``load_export``,
   each in its own child process: times and peak memory.

Azurite keeps a table in one in-memory collection (its LokiJS store) on one Node.js thread. With
the kit's preload (``azurite_keyed_lookups.cjs``) a query pinned to one partition uses the
PartitionKey index and a PartitionKey *range* query evaluates its filter on the range only, but
each page of a query still sorts every remaining match, so a sequential scan costs Azurite more
per page as it goes (Azure does not): the ratios against same-run peers are this emulator's on
this machine (Azurite, the delay proxy and the reader share its cores), not Azure's.

    .venv/bin/python bench/bench_big_hubs.py [--instances 50000] [--histories 5000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_reader import delay_proxy, timed

from durable_helpers import frames, schema
from durable_helpers.local.azurite import Azurite
from durable_helpers.local.ports import free_ports
from durable_helpers.storage import StorageAccount
from durable_helpers.synthetic import write_synthetic_hub
from durable_helpers.taskhub import TaskHub

HUB = "BigBenchHub"
ROOT = Path(__file__).resolve().parents[1]
ENTITIES_OUT = "PartitionKey lt '@' or PartitionKey ge 'A'"

CHILD = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
def hwm():  # VmHWM: peak RSS of this process (ru_maxrss keeps the parent's across exec)
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
import pandas, pyarrow.parquet, durable_helpers.taskhub, durable_helpers.export
start_rss = hwm()  # after the imports every child needs
{body}
print(json.dumps({{"peak_mb": hwm() / 1024,
                  "start_mb": start_rss / 1024, **out}}))
"""

EXPORT = """
from durable_helpers import TaskHub
t = time.perf_counter()
r = TaskHub({connection!r}, hub={hub!r}).export({path!r}, progress=False)
out = {{"seconds": time.perf_counter() - t, "instances": r.instances, "rows": r.history_rows,
        "files": r.files}}
"""

DUCKDB = """
from durable_helpers.engines.duckdb import ExportDB
t = time.perf_counter()
result = ExportDB({path!r}).latency()
p95 = result["P95"].dt.total_seconds().round(6).to_dict()
out = {{"seconds": time.perf_counter() - t, "p95": p95}}
"""

PANDAS = """
from durable_helpers import analysis
from durable_helpers.export import load_export
t = time.perf_counter()
history = load_export({path!r}).history
loaded = time.perf_counter()
result = analysis.latency(analysis.calls(history))
out = {{"seconds": time.perf_counter() - loaded, "load_seconds": loaded - t,
        "p95": result["P95"].dt.total_seconds().round(6).to_dict()}}
"""


def child(body: str) -> dict[str, Any]:
    """Run ``body`` in a fresh interpreter; its ``out`` dict plus its peak RSS in MB."""
    code = CHILD.format(root=str(ROOT), body=body.strip())
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=3600, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def sequential_instances(table: Any) -> Any:
    """Today's scan before ranges: one query, its continuation pages followed one by one."""
    return frames.instances_frame(list(table.query_entities(ENTITIES_OUT)))


def scans(connection: str, label: str, workers: int, repeat: int) -> float:
    hub = TaskHub(connection, hub=HUB)
    table = StorageAccount.from_connection(connection).tables.get_table_client(
        hub.names.instances_table
    )
    hub.instances(max_workers=workers)  # warm up connections
    seq = min(timed(sequential_instances, table) for _ in range(repeat))
    par = min(timed(lambda: hub.instances(max_workers=workers)) for _ in range(repeat))
    assert len(sequential_instances(table)) == len(hub.instances(max_workers=workers))
    print(f"   {label:<34} sequential {seq:7.2f} s   parallel ({workers}) {par:7.2f} s   "
          f"ratio {seq / par:5.2f}x")  # fmt: skip
    return seq / par


def histories(connection: str, ids: list[str], workers: int) -> float:
    hub = TaskHub(connection, hub=HUB)
    table = StorageAccount.from_connection(connection).tables.get_table_client(
        hub.names.history_table
    )

    def raw_loop() -> int:
        rows = 0
        for iid in ids:
            key = schema.odata_string(schema.escape_partition_key(iid))
            rows += len(list(table.query_entities(f"PartitionKey eq {key}")))
        return rows

    hub.histories(ids[:50], max_workers=workers, progress=False)  # warm up
    seq = timed(raw_loop)
    par = timed(lambda: hub.histories(ids, max_workers=workers, progress=False, missing="skip"))
    print(f"   sequential raw queries            {seq:7.2f} s")
    print(f"   TaskHub.histories() ({workers} workers)    {par:7.2f} s")
    return seq / par


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=50_000)
    parser.add_argument("--histories", type=int, default=5_000)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--latency-ms", type=float, default=10.0, help="simulated delay")
    parser.add_argument(
        "--azurite-ports",
        help="blob,queue,table ports of a running Azurite that already holds the hub this "
        "benchmark wrote (same --instances): reused, not written again",
    )
    args = parser.parse_args()

    ports = tuple(int(p) for p in args.azurite_ports.split(",")) if args.azurite_ports else None
    with (
        Azurite(ports=ports or free_ports(3), in_memory=True, stop_with_parent=True) as azurite,
        tempfile.TemporaryDirectory(prefix="bench-big-hubs-") as tmp,
    ):
        account = StorageAccount.from_connection(azurite.connection_string)
        t = time.perf_counter()
        if azurite.reused:
            print(f"reusing hub {HUB} in the Azurite on {azurite.ports} ({os.cpu_count()} CPUs)")
        else:
            rows = write_synthetic_hub(account, HUB, args.instances, seed=1, days=7)
            print(f"populated {args.instances} instances, {rows} History rows (sentinels "
                  f"included) in {time.perf_counter() - t:.0f} s (Azurite {azurite.ports}, "
                  f"{os.cpu_count()} CPUs)")  # fmt: skip

        with delay_proxy(azurite, args.latency_ms) as delayed:
            print(f"\n1. instances() of the whole hub, best of {args.repeat}:")
            scans(azurite.connection_string, "straight to Azurite", args.workers, args.repeat)
            ratio = scans(delayed, f"SIMULATED {args.latency_ms:g} ms per request",
                          args.workers, args.repeat)  # fmt: skip
            print(f"   target >= 4x with the delay: {'met' if ratio >= 4 else 'NOT met'}")

            ids = TaskHub(azurite.connection_string, hub=HUB).instances().InstanceId.tolist()
            sample = ids[:: max(1, len(ids) // args.histories)][: args.histories]
            print(f"\n2. histories() of {len(sample)} instances, SIMULATED "
                  f"{args.latency_ms:g} ms per request:")  # fmt: skip
            ratio = histories(delayed, sample, args.workers)
            print(f"   speed-up                          {ratio:7.2f}x "
                  f"(target >= 6x: {'met' if ratio >= 6 else 'NOT met'})")  # fmt: skip

        path = str(Path(tmp) / "export")
        exported = child(EXPORT.format(connection=azurite.connection_string, hub=HUB, path=path))
        per_second = exported["rows"] / exported["seconds"]
        print("\n3. export() of the whole hub (child process, straight to Azurite):")
        print(f"   {exported['instances']} instances, {exported['rows']} history rows, "
              f"{exported['files']} files in {exported['seconds']:.1f} s "
              f"= {per_second:,.0f} rows/s")  # fmt: skip
        print(f"   peak memory {exported['peak_mb']:.0f} MB (after its imports: "
              f"{exported['start_mb']:.0f} MB) (target < 500 MB: "
              f"{'met' if exported['peak_mb'] < 500 else 'NOT met'})")  # fmt: skip

        engine = child(DUCKDB.format(path=path))
        pandas = child(PANDAS.format(path=path))
        same = engine["p95"] == pandas["p95"]
        print(f"\n4. latency per activity over {exported['rows']} history rows:")
        print(f"   DuckDB ExportDB.latency() on the files   {engine['seconds']:7.2f} s, "
              f"peak {engine['peak_mb']:5.0f} MB")  # fmt: skip
        print(f"   pandas analysis.latency(calls())         {pandas['seconds']:7.2f} s, "
              f"peak {pandas['peak_mb']:5.0f} MB (after load_export: "
              f"{pandas['load_seconds']:.1f} s)")  # fmt: skip
        with_load = (pandas["seconds"] + pandas["load_seconds"]) / engine["seconds"]
        print(f"   ratio pandas/DuckDB time {pandas['seconds'] / engine['seconds']:5.2f}x, "
              f"with the load {with_load:5.2f}x; "
              f"memory {pandas['peak_mb'] / engine['peak_mb']:5.2f}x; "
              f"same P95s: {same}")  # fmt: skip


if __name__ == "__main__":
    main()
