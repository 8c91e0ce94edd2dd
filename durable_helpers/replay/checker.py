"""``check`` and ``check_many``: recorded histories through new orchestrator code.

Picks the SDK style (``durabletask`` or the Functions-app ``azure-functions-durable``), splits
the frame into executions (``history_input``) and hands each to that style's checker. No I/O.

Example:
    >>> import pandas as pd
    >>> check(pd.DataFrame(), lambda ctx, _: None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: not a History frame: columns ['InstanceId', 'EventType', 'EventId'] are missing...
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Literal

import pandas as pd

from durable_helpers.replay import durabletask_style
from durable_helpers.replay.history_input import RecordedExecution, check_frame, iter_histories
from durable_helpers.replay.result import VERDICTS, ReplayResult
from durable_helpers.replay.sdk_executor import DEFAULT_MAXIMUM_TIMER_INTERVAL

Sdk = Literal["auto", "durabletask", "functions"]
#: check_many shows a progress bar from this many instances on (unless told).
PROGRESS_THRESHOLD = 200


def detect_sdk(orchestrator: Callable[..., Any]) -> str:
    """``"functions"`` for an ``azure-functions-durable`` orchestrator, else ``"durabletask"``.

    Functions-app orchestrators take one argument (the ``DurableOrchestrationContext``) or are
    what ``df.Orchestrator.create`` returns; ``durabletask`` ones take ``(ctx, input)``.

    Example:
        >>> detect_sdk(lambda ctx, order: None), detect_sdk(lambda context: None)
        ('durabletask', 'functions')
    """
    if not callable(orchestrator):
        raise TypeError(
            f"orchestrator must be the orchestrator function (a generator function), "
            f"got {type(orchestrator).__name__}"
        )
    if hasattr(orchestrator, "orchestrator_function"):
        return "functions"
    user = getattr(orchestrator, "_function", None)  # a FunctionBuilder of df.DFApp
    if user is not None and hasattr(user, "get_user_function"):
        return "functions"
    try:
        params = [
            p
            for p in inspect.signature(orchestrator).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        return "durabletask"
    return "functions" if len(params) == 1 else "durabletask"


def _checker(sdk: str, orchestrator: Callable[..., Any]) -> Callable[..., ReplayResult]:
    style = detect_sdk(orchestrator) if sdk == "auto" else sdk
    if style == "durabletask":
        return durabletask_style.check_recorded
    if style == "functions":
        from durable_helpers.replay import functions_style

        return functions_style.check_recorded
    raise ValueError(f"sdk must be 'auto', 'durabletask' or 'functions', not {sdk!r}")


def _one(
    checker: Callable[..., ReplayResult],
    rec: RecordedExecution,
    orchestrator: Callable[..., Any],
    options: dict[str, Any],
) -> ReplayResult:
    return checker(rec, orchestrator, **options)


def check(
    history: pd.DataFrame,
    orchestrator: Callable[..., Any],
    *,
    name: str | None = None,
    sdk: Sdk = "auto",
    maximum_timer_interval: timedelta | None = DEFAULT_MAXIMUM_TIMER_INTERVAL,
    versioning: Any = None,
) -> ReplayResult:
    """Replay one instance's recorded history through ``orchestrator``, as the worker would.

    ``history`` is a History frame of one instance (``TaskHub.history``,
    ``GrpcTaskHub.history``, a snapshot's history filtered to one id); its current execution is
    replayed. ``orchestrator`` is the new code: a ``durabletask`` orchestrator ``(ctx, input)``
    or, with ``sdk="functions"`` (detected from a one-argument function), an
    ``azure-functions-durable`` one. ``name`` is the name the code is registered under (default:
    the history's orchestrator name; a different name means the worker would not know the
    instance, which the result reports). ``maximum_timer_interval`` and ``versioning`` are the
    worker's settings (``TaskHubGrpcWorker(maximum_timer_interval=...)``,
    ``use_versioning(...)``): long timers are recorded in chunks of that interval.

    The result's ``verdict`` is ``"ok"``, ``"diverges"`` or ``"breaks"``; ``divergence`` is the
    first point where code and history part (row, what the history holds, what the code did,
    the SDK's error text); ``next_actions``/``waiting_for``/``custom_status`` say what the code
    would do next. Nothing runs but the orchestrator function: no server, no activities.

    Limits (docs/replay.md): activity code is not run, so a changed activity is not seen;
    inputs are compared only where the history stores them; nondeterminism that happens to
    replay (``datetime.now()``, random numbers) is invisible; what an instance waits for is not
    in its history, so a changed event name at the current waiting point shows only in
    ``waiting_for``; JavaScript/.NET orchestrators are not supported.

    Example:
        >>> from durable_helpers.replay_samples import order_approval
        >>> print(replay.check(hub.history("order-1"), order_approval("reorder")))  # doctest: +SKIP
        order-1 (OrderApproval, durabletask): BREAKS
          different name at row 2 (TaskScheduled): history holds call_activity('Validate', ...
    """
    executions = list(iter_histories(history))
    if len(executions) != 1:
        raise ValueError(
            f"check() takes the history of one instance; this frame holds {len(executions)} "
            "instances: use replay.check_many(frame, orchestrator), or filter the frame "
            "(frame[frame.InstanceId == id])"
        )
    options = {
        "name": name,
        "maximum_timer_interval": maximum_timer_interval,
        "versioning": versioning,
    }
    return _one(_checker(sdk, orchestrator), executions[0], orchestrator, options)


def check_many(
    histories: pd.DataFrame,
    orchestrator: Callable[..., Any],
    *,
    name: str | None = None,
    sdk: Sdk = "auto",
    progress: bool | None = None,
    maximum_timer_interval: timedelta | None = DEFAULT_MAXIMUM_TIMER_INTERVAL,
    versioning: Any = None,
) -> pd.DataFrame:
    """``check`` for every instance of a History frame: one row per instance.

    ``name`` keeps only instances of that orchestrator (a ``hub.histories(...)`` frame may hold
    sub-orchestrations too); without it every instance is replayed through ``orchestrator``.
    ``progress`` shows a tqdm bar (default: from 200 instances on). An instance whose rows
    cannot be replayed (a partial history, an unknown EventType) gets a row with no Verdict,
    Kind ``"unreadable history"`` and the reason in Error, instead of stopping the whole
    check. Columns: InstanceId,
    ExecutionId, Name, Verdict (category ok/diverges/breaks), Kind, Sequence, RowKey,
    EventType, History, Code, ErrorType, Error, NextActions, WaitingFor, CustomStatus, Notes.

    Example:
        >>> running = hub.instances(status=["Running", "Pending", "Suspended"],
        ...                         name="OrderApproval")  # doctest: +SKIP
        >>> found = replay.check_many(hub.histories(running.InstanceId), order_v2)  # doctest: +SKIP
        >>> found.Verdict.value_counts()  # doctest: +SKIP
    """
    check_frame(histories)
    checker = _checker(sdk, orchestrator)
    options = {"maximum_timer_interval": maximum_timer_interval, "versioning": versioning}
    rows: list[dict[str, Any]] = []

    def unreadable(instance_id: str, error: ValueError) -> None:
        rows.append(_unreadable_row(instance_id, error))

    executions = iter_histories(histories, on_error=unreadable)
    if name is not None:
        executions = (r for r in executions if r.name == name)
    total = histories["InstanceId"].nunique()
    show = progress if progress is not None else total >= PROGRESS_THRESHOLD
    if show:
        from tqdm.auto import tqdm

        executions = tqdm(executions, total=total, desc="replay check", unit="inst")
    for rec in executions:
        rows.append(_one(checker, rec, orchestrator, options).to_dict())
    return results_frame(rows)


def _unreadable_row(instance_id: str, error: ValueError) -> dict[str, Any]:
    """A row for an instance whose history cannot be replayed: no verdict, the reason."""
    row = ReplayResult(instance_id, None, None, "", "ok").to_dict()
    row.update(Verdict=None, Kind="unreadable history", Error=str(error))
    return row


def results_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """``check_many``'s frame from ``ReplayResult.to_dict()`` rows (typed, even when empty).

    Example:
        >>> results_frame([]).columns[:4].tolist()
        ['InstanceId', 'ExecutionId', 'Name', 'Verdict']
    """
    columns = list(ReplayResult("", None, None, "", "ok").to_dict())
    frame = pd.DataFrame(rows, columns=columns)
    for column in ("InstanceId", "ExecutionId", "Name", "Kind", "RowKey", "EventType"):
        frame[column] = frame[column].astype("string")
    for column in ("History", "Code", "ErrorType", "Error"):
        frame[column] = frame[column].astype("string")
    frame["Sequence"] = frame["Sequence"].astype("Int64")
    frame["Verdict"] = pd.Categorical(frame["Verdict"], categories=list(VERDICTS))
    return frame
