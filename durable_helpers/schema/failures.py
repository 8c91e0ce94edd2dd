"""Failures: the parts (type, message, stack) of a failure in either generation's columns.

Owns ``split_failure`` (FailureDetails JSON of DTFx 2.x / isolated, or the legacy Reason / Details
columns of DF 2.x, or a failed execution's Result) and ``failed_output``, the Output text DTFx
writes for a Failed instance. Calls ``columns`` and ``values``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from durable_helpers.schema.columns import FAILURE_EVENT_TYPES
from durable_helpers.schema.values import decode_payload, to_json, to_text


def failed_output(error_type: str, error_message: str) -> str:
    """The Output text of a Failed instance row: DTFx writes ``FailureDetails.ToString()``.

    Example:
        >>> failed_output("builtins.ValueError", "kaputt")
        'builtins.ValueError: kaputt'
    """
    return f"{error_type}: {error_message}"


def _exception_class(details: Mapping[str, Any]) -> str | None:
    for key in ("ClassName", "ErrorType", "errorType", "$type", "type"):
        value = details.get(key)
        if isinstance(value, str) and value:
            return value.split(",")[0].strip() if key == "$type" else value
    return None


def split_failure(
    event_type: str | None,
    *,
    failure_details: Any = None,
    reason: str | None = None,
    details: str | None = None,
    result: Any = None,
    orchestration_status: str | None = None,
) -> tuple[str | None, str | None, str | None]:
    """``(FailureType, FailureMessage, FailureStackTrace)`` of a history event, or three Nones.

    From the FailureDetails JSON (DTFx 2.x / isolated: ErrorType, ErrorMessage, StackTrace), else
    from the legacy columns (DF 2.x: Reason = message, Details = serialized .NET exception with
    ClassName/Message/StackTraceString, or plain text), else, for a failed ExecutionCompleted, from
    its Result text. Only failure events get parts (a suspend Reason is not a failure).

    Example:
        >>> split_failure("TaskFailed", failure_details={"ErrorType": "System.Exception",
        ...               "ErrorMessage": "boom", "StackTrace": "at X"})
        ('System.Exception', 'boom', 'at X')
        >>> split_failure("TaskFailed", reason="Activity function 'Hello' failed: boom",
        ...               details="at Hello()")
        (None, "Activity function 'Hello' failed: boom", 'at Hello()')
    """
    if isinstance(failure_details, Mapping) and failure_details:
        fd = failure_details
        return (
            _exception_class(fd),
            to_text(fd.get("ErrorMessage", fd.get("errorMessage", fd.get("Message")))),
            to_text(fd.get("StackTrace", fd.get("stackTrace", fd.get("StackTraceString")))),
        )
    failed_execution = event_type in ("ExecutionCompleted", "ExecutionFailed") and (
        orchestration_status == "Failed"
    )
    if event_type not in FAILURE_EVENT_TYPES and not failed_execution:
        return None, None, None
    ftype = message = stack = None
    decoded = decode_payload(details) if details else None
    if isinstance(decoded, Mapping):
        ftype = _exception_class(decoded)
        message = to_text(decoded.get("Message", decoded.get("message")))
        stack = to_text(decoded.get("StackTraceString", decoded.get("stack")))
    elif details:
        stack = details
    if reason:
        message = reason if message is None else message
    if message is None and failed_execution and result is not None:
        message = result if isinstance(result, str) else to_json(result)
    return ftype, message, stack
