"""The demo orchestrations the notebooks use, as a Durable Task SDK worker.

Every sample is deterministic: its output depends only on its input (and, for the flaky and
failing activities, on how many attempts were already made for that instance, which is counted in
files under ``state_dir`` so the count survives a worker restart).

| Orchestration          | Input (JSON, keys optional)        | Output
|------------------------|------------------------------------|-------------------------------------
| `HelloSequence`        | cities, default                    | `["Hello Tokyo!", "Hello Seattle!",
|                        | `["Tokyo", "Seattle", "London"]`   | "Hello London!"]` (`Hello` chained)
| `FanOutFanIn`          | numbers, default `[1, 2, 3, 4, 5]` | `{"squares": [1, 4, 9, 16, 25],
|                        |                                    | "total": 55}` (`Square`, parallel)
| `ApprovalWorkflow`     | `{"timeout_seconds": 300}`;        | `{"outcome": "Approved",
|                        | custom status while waiting:       | "approval": <data>}` after event
|                        | `"WaitingForApproval"`             | `Approval`; `"Rejected"` if data is
|                        |                                    | `false`/`{"approved": false}`;
|                        |                                    | timeout: `{"outcome": "TimedOut"}`
| `RetryFlaky`           | `{"failures": 2,                   | `{"attempts": 3}`; Failed when
|                        | "max_attempts": 5,                 | failures >= max_attempts
|                        | "retry_seconds": 1}`               |
| `FailingOrchestration` | `{"failures": 1}`                  | Failed: `ChargeCard` raises
|                        |                                    | `ValueError: Card declined for
|                        |                                    | order 42 (attempt 1 of 1 that
|                        |                                    | fail)`; after a rewind: Completed,
|                        |                                    | `["Hello Tokyo!", "Charged order
|                        |                                    | 42"]`
| `ParentOrchestration`  | cities, default                    | same as HelloSequence, from one
|                        | `["Tokyo", "Seattle", "London"]`   | `HelloSequence` child per city
|                        |                                    | (child ids `<parent>:0001`, ...)
| `EternalMonitor`       | `{"max_iterations": 3,             | `{"iterations": 3, "checks":
|                        | "interval_seconds": 1}`            | ["check 1", "check 2", "check 3"]}`
|                        |                                    | (continue-as-new per iteration)
| `TimerDemo`            | `{"seconds": 2}`                   | `{"waited_seconds": 2}` (a durable
|                        |                                    | timer)

The flaky and failing activities count attempts per orchestration instance in small files under
the worker's state folder (``--state-dir``; default ``$DURABLE_HELPERS_SAMPLES_STATE`` or
``<tmp>/durable-helpers-samples``; ``up`` uses ``<data-dir>/samples-state``), so the count
survives a worker restart. A restart with the *same* instance id therefore continues the count.

Activities: ``Hello`` (city -> ``"Hello {city}!"``), ``Square`` (n -> n*n), ``FlakyActivity``,
``ChargeCard``, ``CheckStatus`` (n -> ``"check {n}"``).

Entities (:mod:`durable_helpers.local.sample_entities`): ``Counter`` (``@counter@<key>``: add,
reset, get, delete), ``BankAccount`` (``@bankaccount@<key>``: deposit, withdraw, balance) and
the orchestration `Transfer`, which locks both accounts in a critical section to move money.

Run it as a process: ``python -m durable_helpers.local worker --sidecar 127.0.0.1:4001``.

Example:
    >>> [row["name"] for row in describe_samples() if row["kind"] == "orchestration"][:2]
    ['HelloSequence', 'FanOutFanIn']
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Generator
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
from durabletask import task
from durabletask.grpc_options import GrpcChannelOptions
from durabletask.worker import TaskHubGrpcWorker

from durable_helpers.local.limits import MAX_GRPC_MESSAGE_BYTES
from durable_helpers.local.sample_entities import ENTITIES, ENTITY_ORCHESTRATORS

log = logging.getLogger(__name__)

STATE_DIR_ENV_VAR = "DURABLE_HELPERS_SAMPLES_STATE"
DEFAULT_CITIES = ["Tokyo", "Seattle", "London"]

# Where the flaky/failing activities count their attempts; set by build_worker().
_state_dir: Path | None = None


def default_state_dir() -> Path:
    """The folder attempt counters live in: ``$DURABLE_HELPERS_SAMPLES_STATE`` or a temp folder.

    Example:
        >>> default_state_dir().name
        'durable-helpers-samples'
    """
    explicit = os.environ.get(STATE_DIR_ENV_VAR)
    if explicit:
        return Path(explicit)
    return Path(tempfile.gettempdir()) / "durable-helpers-samples"


def next_attempt(key: str, state_dir: Path | None = None) -> int:
    """Count one more attempt for ``key`` and return its number (1, 2, ...).

    The counter is a small file under ``state_dir`` updated under an exclusive lock, so several
    worker threads or processes agree and the count survives a worker restart.

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> next_attempt("abc", folder), next_attempt("abc", folder)
        (1, 2)
    """
    folder = Path(state_dir or _state_dir or default_state_dir()) / "attempts"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".count")
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            handle.seek(0)
            text = handle.read().strip()
            count = (int(text) if text.isdigit() else 0) + 1
            handle.seek(0)
            handle.truncate()
            handle.write(str(count))
            handle.flush()
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    return count


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


# ---------------------------------------------------------------------------------- activities
def Hello(ctx: task.ActivityContext, city: str) -> str:
    """Activity: ``"Tokyo"`` -> ``"Hello Tokyo!"``.

    Example:
        >>> Hello(None, "Tokyo")
        'Hello Tokyo!'
    """
    return f"Hello {city}!"


def Square(ctx: task.ActivityContext, number: float) -> float:
    """Activity: ``n`` -> ``n * n``.

    Example:
        >>> Square(None, 3)
        9
    """
    return number * number


def FlakyActivity(ctx: task.ActivityContext, data: Any) -> dict[str, int]:
    """Activity: fails its first ``failures`` attempts for this orchestration, then succeeds.

    Example:
        >>> client.schedule_new_orchestration("RetryFlaky", input={"failures": 2})  # doctest: +SKIP
    """
    failures = int(_as_dict(data).get("failures", 2))
    attempt = next_attempt(f"flaky/{ctx.orchestration_id}/{ctx.task_id}")
    if attempt <= failures:
        raise RuntimeError(f"Transient failure on attempt {attempt} (fails {failures} times)")
    return {"attempts": attempt}


def ChargeCard(ctx: task.ActivityContext, data: Any) -> str:
    """Activity: declines the card for the first ``failures`` attempts of this orchestration.

    Example:
        >>> client.schedule_new_orchestration("FailingOrchestration")  # doctest: +SKIP
    """
    options = _as_dict(data)
    failures = int(options.get("failures", 1))
    order = options.get("order", 42)
    attempt = next_attempt(f"charge/{ctx.orchestration_id}")
    if attempt <= failures:
        raise ValueError(
            f"Card declined for order {order} (declined attempt {attempt} of {failures})"
        )
    return f"Charged order {order}"


def CheckStatus(ctx: task.ActivityContext, iteration: int) -> str:
    """Activity: ``n`` -> ``"check n"``.

    Example:
        >>> CheckStatus(None, 2)
        'check 2'
    """
    return f"check {iteration}"


# ------------------------------------------------------------------------------ orchestrations
Gen = Generator[task.Task[Any], Any, Any]


def HelloSequence(ctx: task.OrchestrationContext, cities: Any) -> Gen:
    """The seed's chain: ``Hello`` for each city, in order.

    Example:
        >>> client.schedule_new_orchestration("HelloSequence", input=["Tokyo"])  # doctest: +SKIP
    """
    results = []
    for city in cities if isinstance(cities, list) and cities else DEFAULT_CITIES:
        results.append((yield ctx.call_activity(Hello, input=city)))
    return results


def FanOutFanIn(ctx: task.OrchestrationContext, numbers: Any) -> Gen:
    """``Square`` for every number in parallel, then the total.

    Example:
        >>> client.schedule_new_orchestration("FanOutFanIn", input=[1, 2, 3])  # doctest: +SKIP
    """
    items = numbers if isinstance(numbers, list) and numbers else [1, 2, 3, 4, 5]
    squares = yield task.when_all([ctx.call_activity(Square, input=n) for n in items])
    return {"squares": squares, "total": sum(squares)}


def ApprovalWorkflow(ctx: task.OrchestrationContext, options: Any) -> Gen:
    """Waits for an ``Approval`` event or a timeout (``timeout_seconds``, default 300).

    Example:
        >>> options = {"timeout_seconds": 60}
        >>> client.schedule_new_orchestration("ApprovalWorkflow", input=options)  # doctest: +SKIP
    """
    timeout = float(_as_dict(options).get("timeout_seconds", 300))
    ctx.set_custom_status("WaitingForApproval")
    approval = ctx.wait_for_external_event("Approval")
    timer = ctx.create_timer(ctx.current_utc_datetime + timedelta(seconds=timeout))
    winner = yield task.when_any([approval, timer])
    if winner is timer:
        ctx.set_custom_status("TimedOut")
        return {"outcome": "TimedOut"}
    data = approval.get_result()
    rejected = data is False or (isinstance(data, dict) and data.get("approved") is False)
    outcome = "Rejected" if rejected else "Approved"
    ctx.set_custom_status(outcome)
    return {"outcome": outcome, "approval": data}


def RetryFlaky(ctx: task.OrchestrationContext, options: Any) -> Gen:
    """Calls ``FlakyActivity`` with a retry policy; completes once an attempt succeeds.

    Example:
        >>> client.schedule_new_orchestration("RetryFlaky", input={"failures": 2})  # doctest: +SKIP
    """
    opts = _as_dict(options)
    policy = task.RetryPolicy(
        first_retry_interval=timedelta(seconds=float(opts.get("retry_seconds", 1))),
        max_number_of_attempts=int(opts.get("max_attempts", 5)),
        backoff_coefficient=1.0,
    )
    data = {"failures": int(opts.get("failures", 2))}
    return (yield ctx.call_activity(FlakyActivity, input=data, retry_policy=policy))


def FailingOrchestration(ctx: task.OrchestrationContext, options: Any) -> Gen:
    """Greets Tokyo, then ``ChargeCard`` fails (no retry): the orchestration fails.

    Example:
        >>> client.schedule_new_orchestration("FailingOrchestration", input=None)  # doctest: +SKIP
    """
    greeting = yield ctx.call_activity(Hello, input="Tokyo")
    opts = _as_dict(options)
    data = {"failures": int(opts.get("failures", 1)), "order": opts.get("order", 42)}
    charged = yield ctx.call_activity(ChargeCard, input=data)
    return [greeting, charged]


def ParentOrchestration(ctx: task.OrchestrationContext, cities: Any) -> Gen:
    """One ``HelloSequence`` sub-orchestration per city, in parallel; the greetings in order.

    Example:
        >>> client.schedule_new_orchestration("ParentOrchestration")  # doctest: +SKIP
    """
    items = cities if isinstance(cities, list) and cities else DEFAULT_CITIES
    children = [ctx.call_sub_orchestrator(HelloSequence, input=[city]) for city in items]
    results = yield task.when_all(children)
    return [greeting for result in results for greeting in result]


def EternalMonitor(ctx: task.OrchestrationContext, state: Any) -> Gen:
    """Checks, sleeps ``interval_seconds``, and continues as new until ``max_iterations``.

    Example:
        >>> options = {"max_iterations": 3}
        >>> client.schedule_new_orchestration("EternalMonitor", input=options)  # doctest: +SKIP
    """
    opts = _as_dict(state)
    iteration = int(opts.get("iteration", 0)) + 1
    maximum = int(opts.get("max_iterations", 3))
    checks = [*opts.get("checks", []), (yield ctx.call_activity(CheckStatus, input=iteration))]
    ctx.set_custom_status({"iteration": iteration, "max_iterations": maximum})
    if iteration >= maximum:
        return {"iterations": iteration, "checks": checks}
    interval = float(opts.get("interval_seconds", 1))
    yield ctx.create_timer(ctx.current_utc_datetime + timedelta(seconds=interval))
    ctx.continue_as_new({**opts, "iteration": iteration, "checks": checks})
    return None


def TimerDemo(ctx: task.OrchestrationContext, options: Any) -> Gen:
    """Sleeps on a durable timer for ``seconds`` (default 2).

    Example:
        >>> client.schedule_new_orchestration("TimerDemo", input={"seconds": 2})  # doctest: +SKIP
    """
    seconds = float(_as_dict(options).get("seconds", 2))
    yield ctx.create_timer(ctx.current_utc_datetime + timedelta(seconds=seconds))
    return {"waited_seconds": seconds if seconds % 1 else int(seconds)}


ORCHESTRATORS = (
    HelloSequence,
    FanOutFanIn,
    ApprovalWorkflow,
    RetryFlaky,
    FailingOrchestration,
    ParentOrchestration,
    EternalMonitor,
    TimerDemo,
)
ACTIVITIES = (Hello, Square, FlakyActivity, ChargeCard, CheckStatus)

_SAMPLES: list[dict[str, Any]] = [
    {
        "name": "HelloSequence",
        "kind": "orchestration",
        "input": ["Tokyo", "Seattle", "London"],
        "output": ["Hello Tokyo!", "Hello Seattle!", "Hello London!"],
        "status": "Completed",
        "description": "Function chaining: activity Hello for each city, one after the other.",
    },
    {
        "name": "FanOutFanIn",
        "kind": "orchestration",
        "input": [1, 2, 3, 4, 5],
        "output": {"squares": [1, 4, 9, 16, 25], "total": 55},
        "status": "Completed",
        "description": "Fan-out/fan-in: activity Square for every number in parallel, then sum.",
    },
    {
        "name": "ApprovalWorkflow",
        "kind": "orchestration",
        "input": {"timeout_seconds": 300},
        "output": {"outcome": "Approved", "approval": {"approved": True, "by": "Ada"}},
        "status": "Completed",
        "description": "Human interaction: waits for the event 'Approval' (data as the output) "
        "or times out with {'outcome': 'TimedOut'}; data false or {'approved': false} "
        "gives 'Rejected'.",
        "event": {"name": "Approval", "data": {"approved": True, "by": "Ada"}},
    },
    {
        "name": "RetryFlaky",
        "kind": "orchestration",
        "input": {"failures": 2, "max_attempts": 5, "retry_seconds": 1},
        "output": {"attempts": 3},
        "status": "Completed",
        "description": "Retry policy: FlakyActivity fails its first `failures` attempts "
        "(counted per instance in files, so a worker restart keeps the count).",
    },
    {
        "name": "FailingOrchestration",
        "kind": "orchestration",
        "input": {"failures": 1},
        "output": None,
        "status": "Failed",
        "description": "Fails with 'Card declined for order 42 (declined attempt 1 of 1)' "
        "from activity ChargeCard; after a rewind ChargeCard succeeds and the output is "
        "['Hello Tokyo!', 'Charged order 42'].",
        "output_after_rewind": ["Hello Tokyo!", "Charged order 42"],
    },
    {
        "name": "ParentOrchestration",
        "kind": "orchestration",
        "input": ["Tokyo", "Seattle", "London"],
        "output": ["Hello Tokyo!", "Hello Seattle!", "Hello London!"],
        "status": "Completed",
        "description": "Sub-orchestrations: one HelloSequence child per city, in parallel.",
    },
    {
        "name": "EternalMonitor",
        "kind": "orchestration",
        "input": {"max_iterations": 3, "interval_seconds": 1},
        "output": {"iterations": 3, "checks": ["check 1", "check 2", "check 3"]},
        "status": "Completed",
        "description": "Eternal orchestration: CheckStatus, a timer, continue-as-new; stops "
        "after max_iterations.",
    },
    {
        "name": "TimerDemo",
        "kind": "orchestration",
        "input": {"seconds": 2},
        "output": {"waited_seconds": 2},
        "status": "Completed",
        "description": "Durable timer: sleeps `seconds`, then completes.",
    },
    {"name": "Hello", "kind": "activity", "input": "Tokyo", "output": "Hello Tokyo!"},
    {"name": "Square", "kind": "activity", "input": 3, "output": 9},
    {
        "name": "FlakyActivity",
        "kind": "activity",
        "input": {"failures": 2},
        "output": {"attempts": 3},
        "description": "Raises RuntimeError on its first `failures` attempts per orchestration.",
    },
    {
        "name": "ChargeCard",
        "kind": "activity",
        "input": {"failures": 1, "order": 42},
        "output": "Charged order 42",
        "description": "Raises ValueError on its first `failures` attempts per orchestration.",
    },
    {"name": "CheckStatus", "kind": "activity", "input": 1, "output": "check 1"},
    {
        "name": "Transfer",
        "kind": "orchestration",
        "input": {"from": "alice", "to": "bob", "amount": 30},
        "output": {"transferred": True, "from_balance": 70, "to_balance": 30},
        "status": "Completed",
        "stateful": True,
        "description": "Critical section: locks BankAccount 'from' and 'to', then moves "
        "`amount` (output shown for balances 100 and 0); when 'from' holds less, nothing "
        "moves and the output says transferred: false.",
    },
    {
        "name": "Counter",
        "kind": "entity",
        "input": 5,
        "output": 5,
        "description": "Function entity @counter@<key>: 'add' (input, default 1), 'reset', "
        "'get', 'delete'; shown: 'add' 5 on a new counter.",
    },
    {
        "name": "BankAccount",
        "kind": "entity",
        "input": 100,
        "output": 100,
        "description": "Class entity @bankaccount@<key>: 'deposit', 'withdraw' (raises "
        "ValueError 'Insufficient funds' rather than overdraw), 'balance'; shown: 'deposit' 100.",
    },
]


def describe_samples() -> list[dict[str, Any]]:
    """Names, example inputs and expected outputs of every sample (one dict per function).

    ``pandas.DataFrame(describe_samples())`` makes it a table.

    Example:
        >>> next(s for s in describe_samples() if s["name"] == "HelloSequence")["output"]
        ['Hello Tokyo!', 'Hello Seattle!', 'Hello London!']
    """
    return [dict(sample) for sample in _SAMPLES]


def build_worker(
    sidecar: str, state_dir: str | os.PathLike[str] | None = None
) -> TaskHubGrpcWorker:
    """A (not yet started) SDK worker connected to ``sidecar`` with every sample registered.

    It asks only for the samples' own work items (work item filters), so orchestrations,
    activities and entities that other workers register (a notebook's, a test's) are left to
    them.

    Example:
        >>> worker = build_worker("127.0.0.1:4001")
        >>> worker.start()  # doctest: +SKIP
        >>> worker.stop()  # doctest: +SKIP
    """
    global _state_dir
    _state_dir = Path(state_dir) if state_dir else default_state_dir()
    _state_dir.mkdir(parents=True, exist_ok=True)
    # Large messages as the sidecar sends them, so the demo copes with multi-MB payloads.
    options = GrpcChannelOptions(max_receive_message_length=MAX_GRPC_MESSAGE_BYTES)
    worker = TaskHubGrpcWorker(host_address=sidecar, channel_options=options)
    for orchestrator in (*ORCHESTRATORS, *ENTITY_ORCHESTRATORS):
        worker.add_orchestrator(orchestrator)
    for activity in ACTIVITIES:
        worker.add_activity(activity)
    for entity in ENTITIES:
        worker.add_entity(entity)
    worker.use_work_item_filters()
    return worker


def wait_for_sidecar(address: str, timeout: float = 30.0) -> None:
    """Block until a Durable Task sidecar answers ``Hello`` at ``address`` (or raise TimeoutError).

    Example:
        >>> wait_for_sidecar("127.0.0.1:4001", timeout=5)  # doctest: +SKIP
    """
    from durabletask.internal import orchestrator_service_pb2_grpc as stubs
    from google.protobuf import empty_pb2

    from durable_helpers.local.stack.probes import PROBE_CHANNEL_OPTIONS

    with grpc.insecure_channel(address, options=PROBE_CHANNEL_OPTIONS) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout)
            stubs.TaskHubSidecarServiceStub(channel).Hello(empty_pb2.Empty(), timeout=timeout)
        except (grpc.FutureTimeoutError, grpc.RpcError) as error:
            raise TimeoutError(
                f"No Durable Task sidecar answered at {address} within {timeout:.0f} s. "
                "Start one with 'python -m durable_helpers.local up' (or 'serve')."
            ) from error


def run_worker(
    sidecar: str,
    state_dir: str | os.PathLike[str] | None = None,
    *,
    ready_file: str | os.PathLike[str] | None = None,
    stop: threading.Event | None = None,
    connect_timeout: float = 30.0,
) -> None:
    """Run the sample worker until ``stop`` is set (or SIGTERM/Ctrl+C); blocking.

    Waits for the sidecar first, then writes ``ready_file`` (if given) once the worker runs.

    Example:
        >>> run_worker("127.0.0.1:4001")  # doctest: +SKIP
    """
    import signal

    stop = stop or threading.Event()
    wait_for_sidecar(sidecar, timeout=connect_timeout)
    worker = build_worker(sidecar, state_dir)
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    worker.start()
    log.info("sample worker connected to %s", sidecar)
    try:
        if ready_file:
            Path(ready_file).write_text(str(os.getpid()))
        stop.wait()
    finally:
        with contextlib.suppress(Exception):
            worker.stop()
        if ready_file:
            with contextlib.suppress(OSError):
                Path(ready_file).unlink()


def sample_json(name: str) -> str:
    """The example input of sample ``name`` as JSON text (for StartNew's ``input`` field).

    Example:
        >>> sample_json("TimerDemo")
        '{"seconds": 2}'
    """
    for sample in _SAMPLES:
        if sample["name"] == name:
            return json.dumps(sample["input"])
    raise KeyError(f"No sample named {name!r}; see describe_samples().")
