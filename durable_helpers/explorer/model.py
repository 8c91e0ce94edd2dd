"""The explorer's state without any widget: filters, the instance list, paging, the selection.

`ExplorerModel` turns the filters into the arguments of ``hub.instances()`` (any reader of the
kit: `TaskHub` over tables, `GrpcTaskHub` over a sidecar), sorts and pages what came back, and
reads one instance's row and history when it is selected. It may call the reader and, through
`durable_helpers.explorer.actions`, a management client; it never touches a widget, so every
step is testable without a browser (and everything it shows is one call away in code).

Example:
    >>> f = Filters(statuses=("Completed",), window="1h")
    >>> sorted(f.arguments(pd.Timestamp("2026-12-01T10:00Z")))
    ['created_from', 'status']
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from durable_helpers import analysis, schema
from durable_helpers.explorer import actions
from durable_helpers.storage import mask_secrets

#: Runtime statuses offered as filters, in lifecycle order (not DF's Unknown: no reader
#: can filter on it).
STATUSES = tuple(s for s in schema.RUNTIME_STATUSES if s != "Unknown")
#: Created-time windows: key -> (label, length; None = no bound, "custom" = from/to given).
WINDOWS: dict[str, tuple[str, Any]] = {
    "1h": ("last hour", pd.Timedelta(hours=1)),
    "24h": ("last 24 hours", pd.Timedelta(hours=24)),
    "7d": ("last 7 days", pd.Timedelta(days=7)),
    "all": ("any time", None),
    "custom": ("custom range", "custom"),
}
#: Sort keys: key -> (label, column).
SORTS = {"created": ("created time", "CreatedTime"), "duration": ("duration", "Duration")}


def describe_error(error: BaseException) -> str:
    """One line saying what went wrong, secrets masked (what the widget shows, not a traceback).

    Example:
        >>> describe_error(ValueError("bad AccountKey=abc123=="))
        'ValueError: bad AccountKey=***'
    """
    text = str(error).strip() or repr(error)
    return mask_secrets(f"{type(error).__name__}: {text}")


@dataclass(frozen=True)
class Filters:
    """What the instance list shows. Empty values mean "no filter on that field".

    ``window`` is a key of `WINDOWS`; with ``"custom"``, ``created_from``/``created_to`` (a
    datetime or ISO string, naive = UTC) bound the created time.

    Example:
        >>> Filters(window="custom", created_from="2026-12-01").arguments(None)
        {'created_from': '2026-12-01'}
    """

    statuses: tuple[str, ...] = ()
    name: str = ""
    window: str = "24h"
    created_from: Any = None
    created_to: Any = None
    id_prefix: str = ""

    def arguments(self, now: pd.Timestamp | None) -> dict[str, Any]:
        """The keyword arguments of ``hub.instances()`` for these filters at time ``now``.

        Example:
            >>> Filters(name=" HelloSequence ", id_prefix="ab").arguments(None)
            {'name': 'HelloSequence', 'instance_id_prefix': 'ab'}
        """
        if self.window not in WINDOWS:
            raise ValueError(f"window is one of {list(WINDOWS)}, not {self.window!r}")
        args: dict[str, Any] = {}
        if self.statuses:
            args["status"] = list(self.statuses)
        if self.name.strip():
            args["name"] = self.name.strip()
        length = WINDOWS[self.window][1]
        if length == "custom":
            if self.created_from not in (None, ""):
                args["created_from"] = self.created_from
            if self.created_to not in (None, ""):
                args["created_to"] = self.created_to
        elif length is not None and now is not None:
            args["created_from"] = pd.Timestamp(now) - length
        if self.id_prefix.strip():
            args["instance_id_prefix"] = self.id_prefix.strip()
        return args


@dataclass
class Selection:
    """One selected instance: its Instances row and its history frame, with what the tabs show.

    Example:
        >>> sel = Selection("abc", instance=None, history=pd.DataFrame())
        >>> sel.sub_orchestrations().empty
        True
    """

    instance_id: str
    instance: pd.Series | None
    history: pd.DataFrame
    calls: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __post_init__(self) -> None:
        if self.calls.empty and len(self.history):
            self.calls = analysis.calls(self.history)

    def value(self, column: str) -> Any:
        """A column of the instance row (None when missing or null).

        Example:
            >>> Selection("a", pd.Series({"Name": "X"}), pd.DataFrame()).value("Name")
            'X'
        """
        if self.instance is None or column not in self.instance.index:
            return None
        value = self.instance[column]
        if not isinstance(value, (list, dict)) and pd.isna(value):
            return None
        return value

    def sub_orchestrations(self) -> pd.DataFrame:
        """The children this instance started: InstanceId, Name, Outcome, Duration.

        Example:
            >>> Selection("a", None, pd.DataFrame()).sub_orchestrations().columns.tolist()
            ['InstanceId', 'Name', 'Outcome', 'Duration']
        """
        columns = ["InstanceId", "Name", "Outcome", "Duration"]
        if self.calls.empty:
            return pd.DataFrame(columns=columns)
        subs = self.calls[self.calls["Kind"] == "suborchestration"]
        subs = subs[subs["TargetInstanceId"].notna()]
        out = subs[["TargetInstanceId", "Name", "Outcome", "Duration"]].set_axis(columns, axis=1)
        return out.reset_index(drop=True)

    def parent_id(self) -> str | None:
        """The id of the orchestration that started this one as a sub-orchestration, if any.

        Example:
            >>> Selection("a", None, pd.DataFrame()).parent_id() is None
            True
        """
        if "ParentInstance" not in self.history:
            return None
        for value in self.history["ParentInstance"]:
            if isinstance(value, dict):
                inner = value.get("OrchestrationInstance") or {}
                if isinstance(inner, dict) and inner.get("InstanceId"):
                    return str(inner["InstanceId"])
        return None

    def failure(self) -> dict[str, Any] | None:
        """How the instance failed: type, message, stack trace, and the call that failed first.

        Example:
            >>> Selection("a", None, pd.DataFrame()).failure() is None
            True
        """
        h = self.history
        ended = h[h["EventType"] == "ExecutionCompleted"] if len(h) else h
        failed = ended[ended["OrchestrationStatus"] == "Failed"] if len(ended) else ended
        status = self.value("RuntimeStatus")
        if not len(failed) and status != "Failed":
            return None
        info: dict[str, Any] = {"type": None, "message": None, "stack": None, "call": None}
        if len(failed):
            row = failed.iloc[-1]
            for key, col in (
                ("type", "FailureType"),
                ("message", "FailureMessage"),
                ("stack", "FailureStackTrace"),
            ):
                info[key] = row[col] if col in row.index and pd.notna(row[col]) else None
        if info["message"] is None and self.value("Output") is not None:
            info["message"] = str(self.value("Output"))
        calls = self.calls
        if not calls.empty:
            bad = calls[calls["Outcome"] == "failed"]
            if len(bad):
                first = bad.iloc[0]
                info["call"] = {
                    "kind": str(first["Kind"]),
                    "name": first["Name"],
                    "type": first["FailureType"],
                    "message": first["FailureMessage"],
                    "stack": first["FailureStackTrace"],
                }
                if info["stack"] is None and pd.notna(first["FailureStackTrace"]):
                    info["stack"] = first["FailureStackTrace"]
        return info


class ExplorerModel:
    """The explorer over one reader (``hub``), optionally with a management client.

    ``manage`` is a ``durabletask.client.TaskHubGrpcClient`` (or anything with its methods);
    None means read-only: `ask` refuses every action. ``max_instances`` bounds one read of the
    list (the count then says "at least"); ``now`` is the clock (for tests).

    Example:
        >>> model = ExplorerModel(hub)                                  # doctest: +SKIP
        >>> model.filters = Filters(statuses=("Completed",))            # doctest: +SKIP
        >>> model.refresh(); model.page_rows()                          # doctest: +SKIP
        >>> model.select(model.page_rows().InstanceId[0]).history       # doctest: +SKIP
    """

    def __init__(
        self,
        hub: Any,
        manage: Any = None,
        *,
        page_size: int = 15,
        max_instances: int = 5000,
        now: Callable[[], pd.Timestamp] | None = None,
    ) -> None:
        for method in ("instances", "history"):
            if not callable(getattr(hub, method, None)):
                raise TypeError(
                    f"explore() needs a reader with .instances() and .history() (TaskHub or "
                    f"GrpcTaskHub), not {type(hub).__name__}"
                )
        if page_size < 1 or max_instances < 1:
            raise ValueError("page_size and max_instances are at least 1")
        self.hub = hub
        self.manage = manage
        self.page_size = int(page_size)
        self.max_instances = int(max_instances)
        self.now = now or (lambda: pd.Timestamp.now(tz="UTC"))
        self.filters = Filters()
        self.sort = "created"
        self.descending = True
        self.page = 0
        self.instances: pd.DataFrame = pd.DataFrame(columns=["InstanceId", "RuntimeStatus"])
        self.truncated = False
        self.read_at: pd.Timestamp | None = None
        self.selection: Selection | None = None

    @property
    def read_only(self) -> bool:
        """True when no management client was given.

        Example:
            >>> ExplorerModel.read_only.__doc__.split()[0]
            'True'
        """
        return self.manage is None

    # ------------------------------------------------------------------------ the list

    def arguments(self) -> dict[str, Any]:
        """The arguments the next `refresh` passes to ``hub.instances()``.

        Example:
            >>> ExplorerModel(hub).arguments()["limit"]                 # doctest: +SKIP
            5001
        """
        args = self.filters.arguments(self.now())
        args["limit"] = self.max_instances + 1  # one more, to know that there are more
        return args

    def refresh(self) -> pd.DataFrame:
        """Read the instance list with the current filters (errors propagate; see the view).

        Example:
            >>> ExplorerModel(hub).refresh()                            # doctest: +SKIP
        """
        frame = self.hub.instances(**self.arguments())
        self.truncated = len(frame) > self.max_instances
        self.instances = frame.head(self.max_instances).reset_index(drop=True)
        self.read_at = self.now()
        self.page = min(self.page, self.pages - 1)
        return self.instances

    def counts(self) -> pd.Series:
        """Instances per runtime status in the last read (statuses with none left out).

        Example:
            >>> ExplorerModel(hub).counts()                             # doctest: +SKIP
            Completed    3
        """
        status = self.instances["RuntimeStatus"].astype("string")
        counts = status.value_counts()
        order = [s for s in STATUSES if s in counts.index]
        order += [s for s in counts.index if s not in order]
        return counts.reindex(order).astype(int).rename("Instances")

    def set_sort(self, key: str, descending: bool = True) -> None:
        """Sort the list by ``"created"`` or ``"duration"``; back to the first page.

        Example:
            >>> m = ExplorerModel(hub); m.set_sort("duration", descending=False)  # doctest: +SKIP
        """
        if key not in SORTS:
            raise ValueError(f"sort is one of {list(SORTS)}, not {key!r}")
        self.sort, self.descending, self.page = key, bool(descending), 0

    def sorted_instances(self) -> pd.DataFrame:
        """The last read, sorted (unknown durations last, then by id for a stable order).

        Example:
            >>> ExplorerModel(hub).sorted_instances()                   # doctest: +SKIP
        """
        column = SORTS[self.sort][1]
        frame = self.instances
        if column not in frame or frame.empty:
            return frame.reset_index(drop=True)
        return frame.sort_values(
            [column, "InstanceId"],
            ascending=[not self.descending, True],
            na_position="last",
            kind="stable",
        ).reset_index(drop=True)

    @property
    def pages(self) -> int:
        """How many pages the last read fills (at least 1).

        Example:
            >>> ExplorerModel(hub).pages                                # doctest: +SKIP
            1
        """
        return max(1, -(-len(self.instances) // self.page_size))

    def set_page(self, page: int) -> int:
        """Go to ``page`` (0-based; clamped to the pages there are); returns the page shown.

        Example:
            >>> ExplorerModel(hub).set_page(99)                         # doctest: +SKIP
            0
        """
        self.page = max(0, min(int(page), self.pages - 1))
        return self.page

    def page_rows(self) -> pd.DataFrame:
        """The rows of the current page, sorted.

        Example:
            >>> ExplorerModel(hub).page_rows()                          # doctest: +SKIP
        """
        start = self.page * self.page_size
        return self.sorted_instances().iloc[start : start + self.page_size].reset_index(drop=True)

    # ------------------------------------------------------------------------ selection

    def select(self, instance_id: str) -> Selection:
        """Read one instance's row and history (the reader's errors propagate).

        Example:
            >>> ExplorerModel(hub).select("abc").history                # doctest: +SKIP
        """
        reader = getattr(self.hub, "instance", None)
        instance = reader(instance_id) if callable(reader) else None
        history = self.hub.history(instance_id)
        self.selection = Selection(instance_id, instance, history)
        return self.selection

    def clear_selection(self) -> None:
        """Forget the selected instance.

        Example:
            >>> ExplorerModel(hub).clear_selection()                    # doctest: +SKIP
        """
        self.selection = None

    # ------------------------------------------------------------------------ management

    def ask(self, action: str, instance_id: str, **params: Any) -> actions.PendingAction:
        """Prepare ``action`` on ``instance_id``: a question to confirm, run by `confirm`.

        Raises `actions.ReadOnlyError` when the explorer has no management client, and
        ValueError for an unknown action or a bad parameter (e.g. event data that is not JSON).

        Example:
            >>> pending = model.ask("terminate", "abc", reason="stuck")  # doctest: +SKIP
            >>> pending.question                                        # doctest: +SKIP
            "Terminate instance 'abc' (reason: stuck)?"
        """
        if self.manage is None:
            raise actions.ReadOnlyError(
                "This explorer is read-only: open it with explore(hub, manage=client) "
                "(a durabletask TaskHubGrpcClient) to manage instances."
            )
        return actions.prepare(action, instance_id, **params)

    def confirm(self, pending: actions.PendingAction) -> actions.ActionResult:
        """Run a confirmed action with the management client; never raises (see the result).

        Example:
            >>> model.confirm(model.ask("suspend", "abc")).ok           # doctest: +SKIP
            True
        """
        if self.manage is None:
            raise actions.ReadOnlyError("This explorer is read-only.")
        return actions.run(self.manage, pending)

    def wait_for_change(
        self, instance_id: str, status: Any, timeout: float = 10.0, interval: float = 0.5
    ) -> Any:
        """Poll the instance until its runtime status is no longer ``status`` (at most
        ``timeout`` seconds); the status last seen. Actions are queued work: a terminate or a
        resume shows in the tables a moment after the client call returned.

        Example:
            >>> model.wait_for_change("abc", "Running")                 # doctest: +SKIP
            'Terminated'
        """
        reader = getattr(self.hub, "instance", None)
        seen = status
        if not callable(reader):
            return seen
        deadline = time.monotonic() + timeout
        while True:
            try:
                seen = str(reader(instance_id)["RuntimeStatus"])
            except KeyError:  # purged (InstanceNotFoundError)
                return None
            if seen != status or time.monotonic() >= deadline:
                return seen
            time.sleep(interval)

    def with_filters(self, **changes: Any) -> Filters:
        """Change some filters (back to the first page) and return the new filters.

        Example:
            >>> ExplorerModel(hub).with_filters(name="HelloSequence")   # doctest: +SKIP
        """
        self.filters = replace(self.filters, **changes)
        self.page = 0
        return self.filters
