"""The explorer's management rows: raise event, suspend, resume, terminate, rewind, restart, purge.

Shown only when the explorer has a management client. A button first asks (the model's
`ExplorerModel.ask` checks the parameters and words the question); Confirm runs the action in
the view's background jobs and shows its result or its error. Calls only the model.

Example:
    >>> management_panel(view, view.model.selection)                    # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import ipywidgets as w

from durable_helpers.explorer.actions import ACTIONS, ActionResult
from durable_helpers.explorer.model import Selection
from durable_helpers.explorer.summary import esc


def management_panel(view: Any, sel: Selection) -> list[w.Widget]:
    """The Manage rows under the tabs (empty when read-only): inputs, buttons, confirmation.

    ``view`` is the `ExplorerView`: actions run in its background jobs, and after one the list
    is read again and the instance reopened.

    Example:
        >>> management_panel(view, view.model.selection)                # doctest: +SKIP
    """
    if view.model.read_only:
        return []
    reason = w.Text(placeholder="reason / output (optional)")
    event_name = w.Text(placeholder="event name, e.g. Approval")
    event_data = w.Text(placeholder='event data (JSON), e.g. {"approved": true}')
    new_id = w.Checkbox(description="restart with a new id", indent=False)
    question = w.HTML()
    result = view.action_result  # kept across the reopen that follows an action
    confirm = w.Button(description="Confirm", button_style="danger")
    confirm.add_class("dh-confirm")
    cancel = w.Button(description="Cancel")
    confirm_box = w.HBox([question, confirm, cancel])
    confirm_box.layout.display = "none"

    def ask(action: str) -> None:
        values = {
            "reason": reason.value,
            "event_name": event_name.value,
            "event_data": event_data.value,
            "new_instance_id": new_id.value,
        }
        params = {k: values[k] for k in ACTIONS[action][1]}
        try:
            view.pending = view.model.ask(action, sel.instance_id, **params)
        except (ValueError, PermissionError) as error:
            result.value = f"<span style='color:#b00'>{esc(error)}</span>"
            return
        question.value = f"<b>{esc(view.pending.question)}</b>&nbsp;"
        result.value = ""
        confirm_box.layout.display = "flex"

    def run(_: Any) -> None:
        pending, view.pending = view.pending, None
        confirm_box.layout.display = "none"
        if pending is None:
            return
        result.value = f"⏳ {esc(pending.question)}"
        view.jobs.start("action", lambda: view.model.confirm(pending), after)

    def after(outcome: ActionResult) -> None:
        color = "#2ca02c" if outcome.ok else "#b00"
        result.value = f"<span style='color:{color}'>{esc(outcome.message)}</span>"
        if outcome.ok and outcome.action == "purge":
            view.close_detail()
        elif outcome.ok:
            changed = None if outcome.new_instance_id else sel.value("RuntimeStatus")
            target = outcome.new_instance_id or outcome.instance_id
            view.open_instance(target, keep_message=True, changed_from=changed)
        view.refresh()

    def cancel_it(_: Any) -> None:
        view.pending = None
        confirm_box.layout.display = "none"
        result.value = "Cancelled."

    confirm.on_click(run)
    cancel.on_click(cancel_it)
    buttons = []
    for action, (label, _, _) in ACTIONS.items():
        button = w.Button(description=label, layout=w.Layout(width="auto"))
        button.add_class(f"dh-action-{action}")
        button.on_click(lambda _, a=action: ask(a))
        buttons.append(button)
    return [
        w.HTML("<b>Manage</b> (asks before it does anything)"),
        w.HBox([reason, event_name, event_data, new_id], layout=w.Layout(flex_flow="row wrap")),
        w.HBox(buttons, layout=w.Layout(flex_flow="row wrap")),
        confirm_box,
        result,
    ]
