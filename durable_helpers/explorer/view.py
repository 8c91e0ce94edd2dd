"""The explorer's widgets (ipywidgets): a thin view over `ExplorerModel`.

Every read and every action runs in a background thread, so the kernel never freezes; the status
line says what is being read, and an error (hub missing, storage down) is shown there as a
message instead of a traceback. Widgets are updated from those threads only through their traits
(ipywidgets sends the changes from any thread). This module may call the model, the plots and
`durable_helpers.mermaid`; it reads nothing itself.

Example:
    >>> from durable_helpers import explore
    >>> explore(hub)                                                    # doctest: +SKIP
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as w
import pandas as pd

from durable_helpers import mermaid
from durable_helpers.explorer.actions import PendingAction
from durable_helpers.explorer.manage_panel import management_panel
from durable_helpers.explorer.model import (
    STATUSES,
    WINDOWS,
    ExplorerModel,
    Selection,
    describe_error,
)
from durable_helpers.explorer.summary import esc as _esc
from durable_helpers.explorer.summary import status_badge as _status_badge
from durable_helpers.explorer.summary import summary_html
from durable_helpers.explorer.summary import utc_time as _time
from durable_helpers.instance_filters import InstanceFilter

#: Seconds between two reads while auto-refresh is on.
AUTO_REFRESH_SECONDS = 5.0
#: The history columns the History tab shows (``hub.history(id)`` has them all).
HISTORY_COLUMNS = (
    "Sequence",
    "EventType",
    "EventId",
    "Name",
    "TaskScheduledId",
    "Timestamp",
    "Input",
    "Result",
    "Duration",
    "FailureType",
    "FailureMessage",
)
_COLUMNS = "minmax(16em, 2.2fr) minmax(10em, 1.4fr) 8.5em 12.5em 7em"


class _Background:
    """Runs jobs in daemon threads; only the latest job of a channel may update the view."""

    def __init__(self, on_error: Callable[[str], None]) -> None:
        self._tokens: dict[str, int] = {}
        self._lock = threading.Lock()
        self._on_error = on_error
        self.threads: list[threading.Thread] = []

    def start(self, channel: str, job: Callable[[], Any], done: Callable[[Any], None]) -> None:
        with self._lock:
            token = self._tokens.get(channel, 0) + 1
            self._tokens[channel] = token

        def target() -> None:
            try:
                result = job()
            except Exception as error:
                if self._tokens.get(channel) == token:
                    self._on_error(describe_error(error))
                return
            if self._tokens.get(channel) == token:
                try:
                    done(result)
                except Exception as error:  # a view bug must show, not vanish in a thread
                    self._on_error(describe_error(error))

        thread = threading.Thread(target=target, name=f"explorer-{channel}", daemon=True)
        self.threads = [t for t in self.threads if t.is_alive()] + [thread]
        thread.start()

    def wait(self, timeout: float = 30.0) -> None:
        """Wait for the running jobs (tests and headless notebooks)."""
        for thread in list(self.threads):
            thread.join(timeout)


class ExplorerView(w.VBox):
    """The explorer widget. Build it with `durable_helpers.explore`.

    Example:
        >>> view = explore(hub)                                         # doctest: +SKIP
        >>> view.model.page_rows()                                      # doctest: +SKIP
    """

    def __init__(self, model: ExplorerModel, *, title: str | None = None) -> None:
        super().__init__()
        self.model = model
        self.jobs = _Background(self._show_error)
        self._auto_stop = threading.Event()
        self._auto_thread: threading.Thread | None = None
        self.pending: PendingAction | None = None
        self.add_class("dh-explorer")

        mode = "read-only" if model.read_only else '<b style="color:#d62728">management enabled</b>'
        self.header = w.HTML(
            f"<b>{_esc(title or 'Task hub explorer')}</b> · {_esc(repr(model.hub))} · {mode}"
        )
        self.status_buttons = {s: w.ToggleButton(description=s, value=False) for s in STATUSES}
        for status, button in self.status_buttons.items():
            button.layout = w.Layout(width="auto")
            button.add_class(f"dh-status-{status}")
            button.observe(self._on_filter, "value")
        self.name_box = w.Combobox(placeholder="orchestration name", ensure_option=False)
        self.name_box.layout = w.Layout(width="16em")
        self.window = w.Dropdown(
            options=[(label, key) for key, (label, _) in WINDOWS.items()],
            value=model.filters.window,
            description="Created",
        )
        self.window.layout = w.Layout(width="15em")
        self.created_from = w.Text(placeholder="from, e.g. 2026-12-01 08:00 (UTC)")
        self.created_to = w.Text(placeholder="to (empty: now)")
        self.custom_box = w.HBox([self.created_from, self.created_to])
        self.custom_box.layout.display = "none"
        self.prefix_box = w.Text(placeholder="instance id prefix")
        self.prefix_box.layout = w.Layout(width="14em")
        self.refresh_button = w.Button(description="Refresh", icon="refresh")
        self.refresh_button.add_class("dh-refresh")
        self.auto = w.ToggleButton(description=f"Auto-refresh {AUTO_REFRESH_SECONDS:g} s")
        self.sort = w.Dropdown(
            options=[
                ("newest first", ("created", True)),
                ("oldest first", ("created", False)),
                ("longest first", ("duration", True)),
                ("shortest first", ("duration", False)),
            ],
            value=(model.sort, model.descending),
            description="Sort",
        )
        self.sort.layout = w.Layout(width="16em")
        self.counts = w.HTML()
        self.status_line = w.HTML()
        self.status_line.add_class("dh-status-line")
        self.table = w.GridBox(layout=w.Layout(grid_template_columns=_COLUMNS, grid_gap="1px 8px"))
        self.table.add_class("dh-table")
        self.prev_button = w.Button(description="◀ Previous", layout=w.Layout(width="auto"))
        self.next_button = w.Button(description="Next ▶", layout=w.Layout(width="auto"))
        self.page_label = w.HTML()
        self.detail = w.VBox()
        self.action_result = w.HTML()
        self.action_result.add_class("dh-action-result")
        self.detail.add_class("dh-detail")

        for box in (self.name_box, self.prefix_box, self.created_from, self.created_to):
            box.continuous_update = False
            box.observe(self._on_filter, "value")
        self.window.observe(self._on_window, "value")
        self.sort.observe(self._on_sort, "value")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.auto.observe(self._on_auto, "value")
        self.prev_button.on_click(lambda _: self._go(-1))
        self.next_button.on_click(lambda _: self._go(+1))

        filters_row = w.HBox(
            [self.name_box, self.window, self.prefix_box, self.refresh_button, self.auto],
            layout=w.Layout(flex_flow="row wrap"),
        )
        self.children = [
            self.header,
            w.HBox(list(self.status_buttons.values()), layout=w.Layout(flex_flow="row wrap")),
            filters_row,
            self.custom_box,
            w.HBox([self.sort, self.counts]),
            self.status_line,
            self.table,
            w.HBox([self.prev_button, self.page_label, self.next_button]),
            self.detail,
        ]
        self.refresh()

    # ------------------------------------------------------------------------ status line

    def _busy(self, text: str) -> None:
        self.status_line.value = f'<span style="color:#555">⏳ {_esc(text)}</span>'

    def _show_error(self, message: str) -> None:
        self.status_line.value = (
            f'<div class="dh-error" style="color:#b00;border-left:3px solid #b00;'
            f'padding-left:6px">⚠ {_esc(message)}</div>'
        )

    def _done(self, text: str) -> None:
        self.status_line.value = f'<span style="color:#555">{_esc(text)}</span>'

    # ------------------------------------------------------------------------ the list

    def _collect_filters(self) -> None:
        self.model.with_filters(
            statuses=tuple(s for s, b in self.status_buttons.items() if b.value),
            name=self.name_box.value or "",
            window=self.window.value,
            created_from=self.created_from.value.strip() or None,
            created_to=self.created_to.value.strip() or None,
            id_prefix=self.prefix_box.value or "",
        )

    def _on_filter(self, _change: Any = None) -> None:
        self.refresh()

    def _on_window(self, change: dict[str, Any]) -> None:
        self.custom_box.layout.display = "flex" if change["new"] == "custom" else "none"
        self.refresh()

    def _on_sort(self, change: dict[str, Any]) -> None:
        key, descending = change["new"]
        self.model.set_sort(key, descending)
        self._render_list()

    def _go(self, step: int) -> None:
        self.model.set_page(self.model.page + step)
        self._render_list()

    def refresh(self) -> None:
        """Read the instance list again (in the background) with the filters as set."""
        try:
            self._collect_filters()
            InstanceFilter.of(**self.model.arguments())  # a bad date says so at once
        except ValueError as error:
            self._show_error(describe_error(error))
            return
        self._busy(f"Reading instances of {self.model.hub!r}…")
        self.jobs.start("list", self.model.refresh, lambda _: self._render_list(read=True))

    def _render_list(self, read: bool = False) -> None:
        model = self.model
        rows = model.page_rows()
        header = ["Instance", "Name", "Status", "Created (UTC)", "Duration"]
        cells: list[w.Widget] = [w.HTML(f"<b>{h}</b>") for h in header]
        selected = model.selection.instance_id if model.selection else None
        for row in rows.itertuples(index=False):
            iid = str(row.InstanceId)
            button = w.Button(
                description=iid,
                tooltip=f"open {iid}",
                button_style="info" if iid == selected else "",
                layout=w.Layout(width="auto", justify_content="flex-start"),
            )
            button.add_class("dh-open")
            button.on_click(lambda _, i=iid: self.open_instance(i))
            cells += [
                button,
                w.HTML(_esc(row.Name)),
                w.HTML(_status_badge(row.RuntimeStatus)),
                w.HTML(_time(row.CreatedTime)),
                w.HTML(_esc(mermaid.format_duration(getattr(row, "Duration", None)))),
            ]
        self.table.children = cells
        total = len(model.instances)
        at_least = "at least " if model.truncated else ""
        self.page_label.value = (
            f"&nbsp;page {model.page + 1} of {model.pages} · {at_least}{total} instances&nbsp;"
        )
        self.prev_button.disabled = model.page == 0
        self.next_button.disabled = model.page >= model.pages - 1
        counts = model.counts()
        self.counts.value = "&nbsp;&nbsp;" + (
            " ".join(f"{_status_badge(s)} {n}" for s, n in counts.items()) or "no instances"
        )
        names = sorted(set(model.instances.get("Name", pd.Series(dtype=str)).dropna()))
        if names != list(self.name_box.options):
            self.name_box.options = names
        if read:
            when = _time(model.read_at)
            self._done(f"{at_least}{total} instances, read at {when} UTC")

    # ------------------------------------------------------------------------ detail

    def open_instance(
        self, instance_id: str, keep_message: bool = False, changed_from: Any = None
    ) -> None:
        """Select ``instance_id``: read its row and history in the background, show the tabs.

        With ``changed_from`` (a status, after an action) wait a little for the status to move.
        """
        if not keep_message:
            self.action_result.value = ""
        self._busy(f"Reading the history of {instance_id}…")
        self.pending = None

        def read() -> tuple[Selection, bytes | None, Any]:
            if changed_from is not None:
                self.model.wait_for_change(instance_id, changed_from)
            return self._prepare_detail(self.model.select(instance_id))

        self.jobs.start("detail", read, self._show_detail)

    def _prepare_detail(self, sel: Selection) -> tuple[Selection, bytes | None, Any]:
        """The slow parts of the tabs (timeline PNG, diagram), built in the background thread."""
        png = None
        if len(sel.history):
            from matplotlib.figure import Figure

            from durable_helpers import plots

            fig = Figure(figsize=(10, 3), layout="constrained")
            ax = fig.subplots()
            plots.timeline(sel.history, ax=ax)
            lanes = len(ax.get_yticks())
            fig.set_size_inches(10, max(2.5, 0.3 * lanes + 1.5) if lanes <= 60 else 20)
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", dpi=80)
            png = buffer.getvalue()
        return sel, png, mermaid.sequence(sel.history)

    def _show_detail(self, prepared: tuple[Selection, bytes | None, Any]) -> None:
        sel, png, diagram = prepared
        history_out = w.Output()
        history_out.add_class("dh-history")
        shown = [c for c in HISTORY_COLUMNS if c in sel.history.columns]
        with pd.option_context("display.max_rows", 200, "display.max_columns", 20):
            history_out.append_display_data(sel.history[shown])
        sequence_out = w.Output()
        sequence_out.add_class("dh-sequence")
        sequence_out.append_display_data(diagram)
        timeline = (
            w.Image(value=png, format="png", layout=w.Layout(max_width="100%"))
            if png
            else w.HTML("<i>no events yet</i>")
        )
        subs = sel.sub_orchestrations()
        tabs = w.Tab(
            children=[
                w.HTML(summary_html(sel)),
                history_out,
                timeline,
                sequence_out,
                self._links(sel, subs),
            ],
            titles=[
                "Summary",
                f"History ({len(sel.history)})",
                "Timeline",
                "Sequence diagram",
                f"Sub-orchestrations ({len(subs)})",
            ],
        )
        tabs.add_class("dh-tabs")
        name = sel.value("Name") or "?"
        title = w.HTML(
            f"<h4 style='margin:6px 0'>{_esc(name)} <code>{_esc(sel.instance_id)}</code> "
            f"{_status_badge(sel.value('RuntimeStatus'))}</h4>"
        )
        close = w.Button(description="Close", layout=w.Layout(width="auto"))
        close.on_click(lambda _: self.close_detail())
        top = [w.HBox([title, close])]
        parent = sel.parent_id()
        if parent:
            back = w.Button(description=f"↑ parent {parent}", layout=w.Layout(width="auto"))
            back.add_class("dh-parent")
            back.on_click(lambda _: self.open_instance(parent))
            top.append(back)
        self.detail.children = [*top, tabs, *management_panel(self, sel)]
        self._done(f"{sel.instance_id}: {len(sel.history)} history events")
        self._render_list()

    def close_detail(self) -> None:
        """Close the selected instance's tabs."""
        self.model.clear_selection()
        self.detail.children = []
        self._render_list()

    def _links(self, sel: Selection, subs: pd.DataFrame) -> w.Widget:
        if subs.empty:
            return w.HTML("<i>This orchestration started no sub-orchestrations.</i>")
        items: list[w.Widget] = []
        for row in subs.itertuples(index=False):
            child = str(row.InstanceId)
            link = w.Button(description=child, tooltip=f"open {child}")
            link.layout = w.Layout(width="auto")
            link.add_class("dh-sub")
            link.on_click(lambda _, c=child: self.open_instance(c))
            took = mermaid.format_duration(row.Duration)
            items.append(
                w.HBox(
                    [
                        link,
                        w.HTML(
                            f"&nbsp;{_esc(row.Name)} · {_esc(row.Outcome)}"
                            f"{' · ' + _esc(took) if took else ''}"
                        ),
                    ]
                )
            )
        return w.VBox(items)

    # ------------------------------------------------------------------------ auto-refresh

    def _on_auto(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self._auto_stop.clear()
            self._auto_thread = threading.Thread(
                target=self._auto_loop, name="explorer-auto", daemon=True
            )
            self._auto_thread.start()
        else:
            self._auto_stop.set()

    def _auto_loop(self) -> None:
        while not self._auto_stop.wait(AUTO_REFRESH_SECONDS):
            self.refresh()

    def close(self) -> None:
        """Stop auto-refresh and close the widgets."""
        stop = getattr(self, "_auto_stop", None)
        if stop is not None:
            stop.set()
        super().close()
