"""What ``up`` and ``status`` print: each service, its state, endpoint and log; how to connect.

Reads a :class:`~durable_helpers.local.stack.config.StackState`; probes services through
:func:`~durable_helpers.local.stack.services.answering` only when asked (``probe=True``).

Example:
    >>> describe(None)
    'The local task hub is not running (no state file).'
"""

from __future__ import annotations

from durable_helpers.local.stack.config import DEFAULT_DATA_DIR, StackConfig, StackState
from durable_helpers.local.stack.services import answering, wanted_services


def describe(state: StackState | None, *, connect: bool = False, probe: bool = False) -> str:
    """Human-readable lines: each service, its state, endpoint and log file.

    ``probe=True`` also checks that each running service answers on its endpoint.

    Example:
        >>> describe(None)
        'The local task hub is not running (no state file).'
    """
    if state is None:
        return "The local task hub is not running (no state file)."
    config = state.config
    labels = {
        "azurite": lambda: (
            "Azurite (storage)  blob/queue/table ports "
            + ", ".join(str(p) for p in config.azurite_ports)
        ),
        "sidecar": lambda: f"Sidecar (Durable Task gRPC)  {config.host}:{config.sidecar_port}",
        "gateway": lambda: (
            f"StartNew gRPC  {config.host}:{config.startnew_port};  HTTP API  "
            f"http://{config.host}:{config.http_port}"
            "/runtime/webhooks/durabletask"
        ),
        "worker": lambda: "Sample worker (HelloSequence, FanOutFanIn, ApprovalWorkflow, ...)",
        "jsworker": lambda: (
            "JavaScript sample worker (DurableFunctionsOrchestratorJS, FanOutFanInJS, ...)"
        ),
    }
    lines = [
        f"Task hub {config.hub!r}  (data folder {config.data_dir}, backend "
        f"{config.backend}{', Azurite in memory' if config.in_memory else ''})"
    ]
    sidecar_down = probe and not answering(config, "sidecar")
    for name in wanted_services(config):
        service = state.services.get(name)
        if service is None:
            condition = "not started"
        elif not service.owned:
            condition = "running (not started by up)"
        elif service.running():
            condition = f"running, pid {service.pid}"
            if probe and name == "gateway" and sidecar_down:
                condition += " (it answers only when the sidecar does)"
            elif probe and not answering(config, name):
                condition += ", but NOT answering (see its log)"
        else:
            condition = f"STOPPED (pid {service.pid} is gone)"
        log = f"\n      log: {service.log}" if service else ""
        lines.append(f"  {labels[name]()}\n      {condition}{log}")
    if connect:
        lines += connection_help(config)
    return "\n".join(lines)


def connection_help(config: StackConfig) -> list[str]:
    """How to connect to the stack (the Azurite key is the public development one).

    Example:
        >>> connection_help(StackConfig())[1].strip().startswith("durabletask")
        True
    """
    lines = [
        "How to connect:",
        "  durabletask SDK:  TaskHubGrpcClient(host_address="
        f'"{config.host}:{config.sidecar_port}")',
        f'  prototype client: grpc.insecure_channel("localhost:{config.startnew_port}") + '
        "DurableTaskServiceStub.StartNew",
        f"  HTTP:             curl -X POST http://{config.host}:{config.http_port}/runtime/"
        "webhooks/durabletask/orchestrators/HelloSequence",
    ]
    if config.backend == "taskhub":
        lines += [
            f'  tables:           TaskHub(connection, hub="{config.hub}") with the Azurite '
            "development connection string:",
            f'  AzureWebJobsStorage="{config.connection_string}"',
        ]
    lines.append(
        "Stop it with: python -m durable_helpers.local down"
        + (
            ""
            if config.data_dir == DEFAULT_DATA_DIR.resolve()
            else f" --data-dir {config.data_dir}"
        )
    )
    return lines
