"""The notebook explorer: click through a task hub, open an instance, see it as a diagram.

`explore` builds an ipywidgets view (`view.ExplorerView`) over `model.ExplorerModel`, which
holds the filters, paging and selection and calls the reader (`TaskHub` or `GrpcTaskHub`) and,
only when given one, a management client (`actions`). ipywidgets is the standard widget library
of Jupyter: JupyterLab (through jupyterlab_widgets), Notebook 7 and VS Code's Jupyter extension
render it without anything else to install, and it is already a dependency of the notebooks.

Example:
    >>> from durable_helpers import explore, TaskHub
    >>> explore(TaskHub())                                              # doctest: +SKIP
    >>> explore(hub, manage=TaskHubGrpcClient(host_address="localhost:4001"))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from durable_helpers.explorer.model import ExplorerModel, Filters, Selection

if TYPE_CHECKING:
    from durable_helpers.explorer.view import ExplorerView

__all__ = ["ExplorerModel", "Filters", "Selection", "explore"]


def explore(
    hub: Any,
    manage: Any = None,
    *,
    page_size: int = 15,
    max_instances: int = 5000,
    title: str | None = None,
) -> ExplorerView:
    """An explorer widget over ``hub`` (`TaskHub` or `GrpcTaskHub`); read-only by default.

    Filters (status, orchestrator name, created-time window, id prefix), a paged list sortable
    by created time and duration, a count per status and auto-refresh; selecting an instance
    shows its summary (failure and stack trace included), history, timeline, sequence diagram
    and sub-orchestrations. Pass ``manage=`` a ``durabletask.client.TaskHubGrpcClient`` to get
    buttons for raise event, suspend, resume, terminate, rewind, restart and purge (each asks
    for confirmation first). ``view.model`` is the state behind it, usable in code.

    Example:
        >>> view = explore(hub)                                         # doctest: +SKIP
        >>> view                                                        # doctest: +SKIP
    """
    from durable_helpers.explorer.view import ExplorerView

    model = ExplorerModel(hub, manage, page_size=page_size, max_instances=max_instances)
    return ExplorerView(model, title=title)
