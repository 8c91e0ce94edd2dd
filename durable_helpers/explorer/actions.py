"""Management actions of the explorer, over a durabletask ``TaskHubGrpcClient``.

Each action is prepared first (`prepare`: checked parameters and the question to confirm), then
run (`run`: one client call, its result or its error as an `ActionResult`, never an exception).
This module calls only the client it is given; the explorer shows its buttons only when it was
opened with one (``explore(hub, manage=client)``).

Example:
    >>> prepare("terminate", "abc", reason="stuck").question
    "Terminate instance 'abc' (reason: stuck)?"
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from durable_helpers.storage import mask_secrets

#: action -> (button label, parameters it takes, what it does).
ACTIONS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "raise_event": ("Raise event", ("event_name", "event_data"), "Raise event {event_name!r} on"),
    "suspend": ("Suspend", ("reason",), "Suspend"),
    "resume": ("Resume", ("reason",), "Resume"),
    "terminate": ("Terminate", ("reason",), "Terminate"),
    "rewind": ("Rewind", ("reason",), "Rewind"),
    "restart": ("Restart", ("new_instance_id",), "Restart"),
    "purge": ("Purge", (), "Purge (delete the history and state of)"),
}


class ReadOnlyError(PermissionError):
    """The explorer was opened without a management client."""


@dataclass(frozen=True)
class PendingAction:
    """A checked action waiting for confirmation."""

    action: str
    instance_id: str
    params: dict[str, Any] = field(default_factory=dict)
    question: str = ""


@dataclass(frozen=True)
class ActionResult:
    """What an action did: ``ok`` and a message to show (the error, when it failed)."""

    ok: bool
    message: str
    action: str = ""
    instance_id: str = ""
    new_instance_id: str | None = None


def prepare(action: str, instance_id: str, **params: Any) -> PendingAction:
    """Check ``action`` and its parameters; the question to ask before running it.

    ``raise_event`` takes ``event_name`` (required) and ``event_data`` (JSON text, or empty for
    none); ``suspend``/``resume``/``terminate``/``rewind`` an optional ``reason``; ``restart``
    ``new_instance_id`` (bool). A ValueError says what is wrong.

    Example:
        >>> prepare("raise_event", "abc", event_name="Approval", event_data='{"ok": true}').params
        {'event_name': 'Approval', 'event_data': {'ok': True}}
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; one of {list(ACTIONS)}")
    if not isinstance(instance_id, str) or not instance_id:
        raise ValueError("select an instance first")
    _, allowed, verb = ACTIONS[action]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"{action} takes {list(allowed) or 'no parameters'}, not {unknown}")
    checked: dict[str, Any] = {}
    detail = ""
    if action == "raise_event":
        name = str(params.get("event_name") or "").strip()
        if not name:
            raise ValueError("raise_event needs an event name (e.g. Approval)")
        raw = params.get("event_data")
        data = None
        if isinstance(raw, str) and raw.strip():
            try:
                data = json.loads(raw)
            except ValueError as error:
                raise ValueError(
                    f'event data is JSON text (e.g. {{"approved": true}}), not {raw!r}: {error}'
                ) from None
        elif raw is not None and not isinstance(raw, str):
            data = raw
        checked = {"event_name": name, "event_data": data}
        verb = verb.format(event_name=name)
        if data is not None:
            detail = f" with data {json.dumps(data)[:200]}"
    elif action == "restart":
        checked = {"new_instance_id": bool(params.get("new_instance_id", False))}
        detail = " with a new instance id" if checked["new_instance_id"] else ""
    elif "reason" in allowed:
        reason = str(params.get("reason") or "").strip()
        checked = {"reason": reason or None}
        detail = f" (reason: {reason})" if reason else ""
    question = f"{verb} instance {instance_id!r}{detail}?"
    return PendingAction(action, instance_id, checked, question)


def run(client: Any, pending: PendingAction) -> ActionResult:
    """Run a prepared action with ``client``; the error (masked) is the message if it fails.

    Example:
        >>> run(client, prepare("suspend", "abc")).message              # doctest: +SKIP
        "Suspended 'abc'."
    """
    iid, p = pending.instance_id, pending.params
    new_id = None
    try:
        if pending.action == "raise_event":
            client.raise_orchestration_event(iid, p["event_name"], data=p["event_data"])
            message = f"Raised event {p['event_name']!r} on {iid!r}."
        elif pending.action == "suspend":
            client.suspend_orchestration(iid, reason=p["reason"])
            message = f"Suspended {iid!r}."
        elif pending.action == "resume":
            client.resume_orchestration(iid, reason=p["reason"])
            message = f"Resumed {iid!r}."
        elif pending.action == "terminate":
            client.terminate_orchestration(iid, output=p["reason"])
            message = f"Terminated {iid!r}."
        elif pending.action == "rewind":
            client.rewind_orchestration(iid, reason=p["reason"])
            message = f"Rewound {iid!r}: it runs again from its last good state."
        elif pending.action == "restart":
            new_id = client.restart_orchestration(
                iid, restart_with_new_instance_id=p["new_instance_id"]
            )
            message = f"Restarted {iid!r} as {new_id!r}."
        elif pending.action == "purge":
            result = client.purge_orchestration(iid)
            count = getattr(result, "deleted_instance_count", None)
            message = f"Purged {iid!r}" + (f" ({count} instance(s) deleted)." if count else ".")
        else:  # prepare() only makes known actions
            raise ValueError(f"unknown action {pending.action!r}")
    except Exception as error:
        return ActionResult(False, _error_text(pending, error), pending.action, iid)
    return ActionResult(True, message, pending.action, iid, new_id)


def _error_text(pending: PendingAction, error: Exception) -> str:
    detail = error.details() if callable(getattr(error, "details", None)) else str(error)
    code = error.code() if callable(getattr(error, "code", None)) else None
    name = getattr(code, "name", None) or type(error).__name__
    label = ACTIONS.get(pending.action, (pending.action,))[0]
    return mask_secrets(f"{label} failed for {pending.instance_id!r}: {name}: {detail}")
