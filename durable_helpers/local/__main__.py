"""``python -m durable_helpers.local up | down | status | serve | gateway | worker | samples``.

``up`` starts the demo stack in the background (Azurite, the sidecar on 4001, StartNew on 50051
and the HTTP API on 7071 in one gateway process, the Python and the JavaScript sample workers)
and returns once every part answers; ``down`` stops what ``up`` started; ``status`` says what
runs, where, and the log files. ``serve``, ``gateway`` and ``worker`` run one part in the
foreground (``up`` uses them; the JavaScript worker is ``node workers/js/worker.js``).

Example:
    $ python -m durable_helpers.local up --data-dir /tmp/hub --http-port 17071
    $ python -m durable_helpers.local status --data-dir /tmp/hub
    $ python -m durable_helpers.local down --data-dir /tmp/hub
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from durable_helpers.local import stack
from durable_helpers.storage import CONNECTION_ENV_VAR


def _ports(text: str) -> tuple[int, int, int]:
    try:
        ports = tuple(int(p) for p in text.split(","))
    except ValueError:
        ports = ()
    if len(ports) != 3 or not all(0 < p < 65536 for p in ports):
        raise argparse.ArgumentTypeError(
            f"expected three ports 'blob,queue,table' such as 10000,10001,10002, not {text!r}"
        )
    return ports  # type: ignore[return-value]


def _hub(text: str) -> str:
    from durable_helpers.schema import validate_hub_name

    try:
        return validate_hub_name(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"not a TCP port: {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m durable_helpers.local",
        description="The local task hub: Azurite + Durable Task sidecar + StartNew + HTTP API "
        "+ sample workers (Python, JavaScript).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def data_dir(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--data-dir",
            type=Path,
            default=stack.DEFAULT_DATA_DIR,
            help="state, logs and Azurite data (default: %(default)s)",
        )

    up = sub.add_parser("up", help="start the demo stack in the background")
    data_dir(up)
    up.add_argument("--hub", type=_hub, default="DurableFunctionsHub", help="task hub name")
    up.add_argument(
        "--in-memory", action="store_true", help="Azurite keeps nothing on disk (lost at 'down')"
    )
    up.add_argument(
        "--backend",
        choices=stack.BACKENDS,
        default="taskhub",
        help="taskhub: the local task hub on Azurite (default); memory: the SDK's "
        "in-memory backend, no Azurite",
    )
    up.add_argument(
        "--no-samples",
        action="store_true",
        help="do not start the sample workers (Python and JavaScript)",
    )
    up.add_argument(
        "--azurite-ports", type=_ports, default=stack.DEFAULT_PORTS, metavar="BLOB,QUEUE,TABLE"
    )
    up.add_argument("--sidecar-port", type=_port, default=4001)
    up.add_argument("--startnew-port", type=_port, default=50051)
    up.add_argument("--http-port", type=_port, default=7071)
    up.add_argument(
        "--timeout",
        type=_seconds,
        default=60.0,
        help="seconds to wait for each service (default: %(default)s)",
    )

    down = sub.add_parser("down", help="stop what 'up' started")
    data_dir(down)
    status = sub.add_parser("status", help="what runs, where, and the log files")
    data_dir(status)

    serve = sub.add_parser("serve", help="run the Durable Task sidecar in the foreground")
    serve.add_argument("--hub", type=_hub, default="DurableFunctionsHub")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=4001)
    serve.add_argument(
        "--connection",
        default=None,
        help="storage connection string (default: $AzureWebJobsStorage, else the local Azurite)",
    )
    serve.add_argument("--backend", choices=stack.BACKENDS, default="taskhub")
    serve.add_argument(
        "--journal-dir",
        default=None,
        help="a folder for the journal's files (what 'up' passes: <data-dir>/journal); "
        "none: $DURABLE_HELPERS_JOURNAL_DIR, else append blobs in the storage account",
    )

    gateway = sub.add_parser("gateway", help="run StartNew (gRPC) + the HTTP API")
    gateway.add_argument("--sidecar", default="127.0.0.1:4001")
    gateway.add_argument("--hub", type=_hub, default="DurableFunctionsHub")
    gateway.add_argument("--host", default="127.0.0.1")
    gateway.add_argument("--startnew-port", type=_port, default=50051)
    gateway.add_argument("--http-port", type=_port, default=7071)

    worker = sub.add_parser("worker", help="run the Python sample worker in the foreground")
    worker.add_argument("--sidecar", default="127.0.0.1:4001")
    worker.add_argument(
        "--state-dir", type=Path, default=None, help="where flaky activities count attempts"
    )
    worker.add_argument("--ready-file", type=Path, default=None)
    worker.add_argument("--connect-timeout", type=float, default=60.0)

    sub.add_parser("samples", help="list the sample orchestrations")
    return parser


def _up(args: argparse.Namespace) -> int:
    config = stack.StackConfig(
        data_dir=args.data_dir,
        hub=args.hub,
        azurite_ports=args.azurite_ports,
        sidecar_port=args.sidecar_port,
        startnew_port=args.startnew_port,
        http_port=args.http_port,
        in_memory=args.in_memory,
        backend=args.backend,
        samples=not args.no_samples,
        timeout=args.timeout,
    )
    print("Starting the local task hub...", flush=True)
    # SIGTERM (systemd, docker stop, kill) while starting: stop what was started, as Ctrl+C does.
    signal.signal(signal.SIGTERM, _interrupt)
    state = stack.up(config)
    for message in state.messages:
        print(message)
    print("The local task hub is up.")
    print(stack.describe(state, connect=True))
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, not {text!r}")
    return value


def _serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.backend == "memory":
        from durable_helpers.local.memory_sidecar import serve_memory

        serve_memory(host=args.host, port=args.port)
        return 0
    try:
        from durable_helpers.local.serve import serve
    except ImportError as error:
        raise stack.StackError(
            f"The local task hub sidecar is not available ({error}). Use '--backend memory' "
            "for the SDK's in-memory backend."
        ) from None
    serve(
        connection=args.connection or os.environ.get(CONNECTION_ENV_VAR),
        hub=args.hub,
        host=args.host,
        port=args.port,
        journal_dir=args.journal_dir,
    )
    return 0


def _gateway(args: argparse.Namespace) -> int:
    from durable_helpers.local.gateway import run_gateway

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    run_gateway(
        args.sidecar,
        host=args.host,
        startnew_port=args.startnew_port,
        http_port=args.http_port,
        hub=args.hub,
    )
    return 0


def _worker(args: argparse.Namespace) -> int:
    from durable_helpers.local.samples import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    run_worker(
        args.sidecar,
        args.state_dir,
        ready_file=args.ready_file,
        connect_timeout=args.connect_timeout,
    )
    return 0


def _samples(args: argparse.Namespace) -> int:
    import json

    from durable_helpers.local.samples import describe_samples

    for sample in describe_samples():
        if sample["kind"] == "orchestration":
            print(
                f"{sample['name']:<22} input {json.dumps(sample['input'])}\n"
                f"{'':<22} -> {sample['status']}: {json.dumps(sample['output'])}"
            )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (status: 0 running, 3 not running).

    Example:
        >>> main(["status", "--data-dir", "/tmp/no-stack-here"])  # doctest: +SKIP
        3
    """
    args = _parser().parse_args(argv)
    try:
        if args.command == "up":
            return _up(args)
        if args.command == "down":
            print("\n".join(stack.down(args.data_dir)))
            return 0
        if args.command == "status":
            state = stack.status(args.data_dir)
            print(stack.describe(state, probe=True))
            return 0 if stack.all_running(state) else 3
        return {"serve": _serve, "gateway": _gateway, "worker": _worker, "samples": _samples}[
            args.command
        ](args)
    except (stack.StackError, OSError, TimeoutError) as error:
        from durable_helpers.storage import mask_secrets

        print(f"error: {mask_secrets(str(error))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
