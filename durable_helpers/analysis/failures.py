"""`failures`: failed instances with their root cause, followed into sub-orchestrations."""

from __future__ import annotations

import pandas as pd

from ._common import (
    HISTORY_DTYPES,
    INSTANCE_DTYPES,
    conform,
    failure_get,
    innermost,
)
from .calls import calls as _calls

FAILURE_COLUMNS = [
    "InstanceId",
    "Name",
    "ExecutionId",
    "CreatedTime",
    "CompletedTime",
    "FailedCallKind",
    "FailedCallName",
    "FailedCallEventId",
    "FailedCallAttempt",
    "Depth",
    "RootInstanceId",
    "RootCallKind",
    "RootCallName",
    "ErrorType",
    "ErrorMessage",
    "StackTrace",
    "OuterErrorType",
    "OuterErrorMessage",
]

_MAX_DEPTH = 20


def failures(instances: pd.DataFrame, histories: pd.DataFrame) -> pd.DataFrame:
    """Failed instances with the root cause of each failure.

    For every instance whose ``RuntimeStatus`` is Failed: the call that made it fail (the last
    failed activity or sub-orchestration of the failed execution that was not retried). When
    that call is a sub-orchestration whose child history is in ``histories`` (found through the
    call's ``TargetInstanceId``), the search continues in the child, as deep as it goes;
    ``Depth`` counts the hops and ``RootInstanceId`` names the instance where the chain ends.
    The error columns describe the root cause: the innermost failure of the root's
    FailureDetails (following ``InnerFailure``), else its FailureType/FailureMessage (legacy
    Reason/Details). When the orchestrator code failed by itself (no failed call), the
    execution's own failure is the root. Instances without history rows get the error text of
    their ``Output``. ``OuterErrorType``/``OuterErrorMessage`` are the failed instance's own
    failure as recorded on its ExecutionCompleted event.

    Output columns: InstanceId, Name, ExecutionId, CreatedTime, CompletedTime, FailedCallKind,
    FailedCallName, FailedCallEventId, FailedCallAttempt, Depth (Int32), RootInstanceId,
    RootCallKind, RootCallName, ErrorType, ErrorMessage, StackTrace, OuterErrorType,
    OuterErrorMessage.

    Example:
        >>> f = failures(hub.instances(), hub.histories(ids))            # doctest: +SKIP
        >>> f.groupby(["RootCallName", "ErrorType"]).size()              # doctest: +SKIP
    """
    inst = conform(
        instances,
        INSTANCE_DTYPES,
        [
            "InstanceId",
            "Name",
            "RuntimeStatus",
            "ExecutionId",
            "CreatedTime",
            "CompletedTime",
            "Output",
        ],
    )
    failed = inst[inst["RuntimeStatus"].astype("string") == "Failed"].reset_index(drop=True)
    records = _failure_records(histories)

    # Level 0: the failed instance's own record (its current execution when known).
    rec = records.drop_duplicates("InstanceId", keep="last")
    rec = dict(zip(rec["InstanceId"], rec.to_dict("records"), strict=True))
    out = [_resolve(row, rec) for row in failed.to_dict("records")]
    frame = pd.DataFrame(out, columns=FAILURE_COLUMNS)
    for col in FAILURE_COLUMNS:
        if col in ("CreatedTime", "CompletedTime"):
            frame[col] = pd.to_datetime(frame[col], utc=True).astype("datetime64[ns, UTC]")
        elif col in ("FailedCallEventId", "FailedCallAttempt", "Depth"):
            frame[col] = pd.array(frame[col], dtype="Int32")
        else:
            frame[col] = frame[col].astype("string")
    return frame


def _failure_records(histories: pd.DataFrame) -> pd.DataFrame:
    """Per failed execution in ``histories``: its failing call and its own failure."""
    h = conform(histories, HISTORY_DTYPES, list(HISTORY_DTYPES))
    et = h["EventType"].astype("string")
    status = h["OrchestrationStatus"].astype("string")
    ends = h[(et == "ExecutionCompleted") & (status == "Failed")][
        [
            "InstanceId",
            "ExecutionId",
            "FailureType",
            "FailureMessage",
            "FailureStackTrace",
            "FailureDetails",
            "Result",
        ]
    ].rename(
        columns={
            "FailureType": "OwnType",
            "FailureMessage": "OwnMessage",
            "FailureStackTrace": "OwnStack",
            "FailureDetails": "OwnDetails",
            "Result": "OwnResult",
        }
    )
    if ends.empty:
        return ends.assign(
            Kind=None,
            CallName=None,
            EventId=None,
            Attempt=None,
            TargetInstanceId=None,
            FailureType=None,
            FailureMessage=None,
            FailureStackTrace=None,
            FailureDetails=None,
        )
    keys = ends[["InstanceId", "ExecutionId"]].astype("string")
    subset = (
        h.merge(keys, on=["InstanceId", "ExecutionId"], how="inner") if len(keys) < len(h) else h
    )
    c = _calls(subset)
    bad = c[(c["Outcome"] == "failed") & ~c["Retried"]].sort_values("CompletedTime", kind="stable")
    last = bad.drop_duplicates(["InstanceId", "ExecutionId"], keep="last")[
        [
            "InstanceId",
            "ExecutionId",
            "Kind",
            "Name",
            "EventId",
            "Attempt",
            "TargetInstanceId",
            "FailureType",
            "FailureMessage",
            "FailureStackTrace",
            "FailureDetails",
        ]
    ].rename(columns={"Name": "CallName"})
    ends = ends.astype({"InstanceId": "string", "ExecutionId": "string"})
    last = last.astype({"InstanceId": "string", "ExecutionId": "string"})
    return ends.merge(last, on=["InstanceId", "ExecutionId"], how="left")


def _error(details, ftype, fmessage, fstack) -> tuple:
    """(type, message, stack) of the innermost failure, falling back to the split columns."""
    inner = innermost(details)
    if inner:
        return (
            failure_get(inner, "ErrorType") or _v(ftype),
            failure_get(inner, "ErrorMessage") or _v(fmessage),
            failure_get(inner, "StackTrace") or _v(fstack),
        )
    return _v(ftype), _v(fmessage), _v(fstack)


def _v(value):
    return (
        None
        if value is None or value is pd.NA or (isinstance(value, float) and value != value)
        else value
    )


def _resolve(row: dict, rec: dict[str, dict]) -> list:
    """One output row for a failed instance (a short walk down the sub-orchestration chain)."""
    iid = row["InstanceId"]
    base = [iid, *(_v(row[c]) for c in ("Name", "ExecutionId", "CreatedTime", "CompletedTime"))]
    top = rec.get(iid)
    if top is None:
        out = _v(row["Output"])
        text = out if isinstance(out, str) else (None if out is None else str(out))
        etype, _, emsg = (text or "").partition(": ") if text and ": " in text else (None, "", text)
        return [*base, None, None, None, None, 0, iid, None, None, etype, emsg, None, etype, emsg]
    outer_type, outer_msg, _ = _error(
        top["OwnDetails"], top["OwnType"], top["OwnMessage"], top["OwnStack"]
    )
    if _v(outer_msg) is None and isinstance(_v(top["OwnResult"]), str):
        outer_msg = top["OwnResult"]
    current_id, current, depth = iid, top, 0
    while (
        _v(current["Kind"]) == "suborchestration"
        and _v(current["TargetInstanceId"]) in rec
        and depth < _MAX_DEPTH
    ):
        current_id = current["TargetInstanceId"]
        current = rec[current_id]
        depth += 1
    if _v(current["Kind"]) is not None:
        etype, emsg, stack = _error(
            current["FailureDetails"],
            current["FailureType"],
            current["FailureMessage"],
            current["FailureStackTrace"],
        )
        root_kind, root_name = current["Kind"], current["CallName"]
    else:
        etype, emsg, stack = _error(
            current["OwnDetails"], current["OwnType"], current["OwnMessage"], current["OwnStack"]
        )
        if emsg is None and isinstance(_v(current["OwnResult"]), str):
            emsg = current["OwnResult"]
        root_kind, root_name = "orchestrator", None
    return [
        *base,
        _v(top["Kind"]),
        _v(top["CallName"]),
        _v(top["EventId"]),
        _v(top["Attempt"]),
        depth,
        current_id,
        _v(root_kind),
        _v(root_name),
        etype,
        emsg,
        stack,
        outer_type,
        outer_msg,
    ]
