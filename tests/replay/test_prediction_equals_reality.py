"""Prediction equals reality: instances run to their waiting points with v1 on the local task
hub, ``check_many`` predicts what each v2 change does to them, then the v2 code really runs them
through a real SDK worker and the test compares what happened with what was predicted.

Reality is judged without the checker. Each instance is first woken by an event nobody waits
for (``Nudge``): the episode that follows replays its recorded history through the deployed
code and can only schedule what the replay itself left over (v1 control instances, nudged the
same way, schedule nothing). The instance "breaks" when it really fails with the SDK's
NonDeterminismError, "diverges" when that episode schedules something, and is "ok" when it
schedules nothing; then the events it waits for are sent, and an "ok" one must complete.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pandas as pd
import pytest
from durabletask.client import OrchestrationStatus

from durable_helpers import replay
from durable_helpers.replay_samples import (
    CHANGES,
    finish_orders,
    order_approval,
    order_worker,
    start_orders,
)

ACTION_ROWS = {
    "TaskScheduled",
    "TimerCreated",
    "SubOrchestrationInstanceCreated",
    "EventSent",
    "ExecutionCompleted",
}
# Two instances per change: order 0 waits for Approval, order 1 (approved) for Delivered.
PER_CHANGE = 2


def _running(address: str, change: str | None) -> Iterator[None]:
    worker = order_worker(address, change)
    worker.start()
    try:
        yield
    finally:
        worker.stop()


def _history(reader, iid: str) -> pd.DataFrame:
    return reader.history(iid)


def _nudge(client, reader, iids: list[str], recorded: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Wake each instance with an event it does not wait for; its history after the episode."""
    for iid in iids:
        client.raise_orchestration_event(iid, "Nudge", data=None)
    after = {}
    for iid in iids:
        before = int((recorded.InstanceId == iid).sum())
        deadline = time.monotonic() + 60
        while True:
            history = _history(reader, iid)
            if len(history) > before and history.EventType.iloc[-1] in (
                "OrchestratorCompleted",
                "ExecutionCompleted",
            ):
                break
            assert time.monotonic() < deadline, f"{iid}: no episode after the nudge in 60 s"
            time.sleep(0.05)
        after[iid] = history
    return after


def _next_episode_actions(history: pd.DataFrame, recorded: int) -> list[tuple[str, str]]:
    """(EventType, Name) of the actions in the first episode after the recorded rows."""
    after = history.iloc[recorded:]
    actions = []
    for row in after.itertuples():
        if row.EventType == "OrchestratorCompleted":
            break
        if row.EventType in ACTION_ROWS:
            actions.append((row.EventType, None if pd.isna(row.Name) else row.Name))
    return actions


@pytest.fixture(scope="module")
def runs(sidecar, client, reader):
    """Everything the tests compare: recorded histories, predictions, real outcomes."""
    ids: dict[str, list[str]] = {}
    gen = _running(sidecar.address, None)
    next(gen)
    try:
        for change in ["control", *CHANGES]:
            ids[change] = start_orders(client, PER_CHANGE, prefix=change)
        recorded = reader.histories([i for change in ids.values() for i in change])
        nudged = _nudge(client, reader, ids["control"], recorded)
        control = finish_orders(client, ids["control"])
    finally:
        gen.close()
    assert all(s.runtime_status == OrchestrationStatus.COMPLETED for s in control.values())
    for iid, history in nudged.items():  # the nudge itself makes v1 do nothing
        assert _next_episode_actions(history, int((recorded.InstanceId == iid).sum())) == []
    predictions = {
        change: replay.check_many(
            recorded[recorded.InstanceId.isin(ids[change])], order_approval(change)
        ).set_index("InstanceId")
        for change in CHANGES
    }
    states, woken = {}, {}
    for change in CHANGES:
        gen = _running(sidecar.address, change)
        next(gen)
        try:
            woken.update(_nudge(client, reader, ids[change], recorded))
            states.update(finish_orders(client, ids[change]))
        finally:
            gen.close()
    return ids, recorded, predictions, states, woken


def _reality(iid, state, recorded_rows, woken) -> str:
    if state.runtime_status == OrchestrationStatus.FAILED:
        failure = state.failure_details
        assert failure is not None and "NonDeterminismError" in failure.error_type, (
            f"{iid} failed, but not with the SDK's non-determinism error: {failure}"
        )
        return "breaks"
    head = woken.iloc[: len(recorded_rows)][["EventType", "Name"]].astype(object)
    assert head.equals(recorded_rows[["EventType", "Name"]].astype(object).reset_index(drop=True))
    if _next_episode_actions(woken, len(recorded_rows)):
        return "diverges"
    assert state.runtime_status == OrchestrationStatus.COMPLETED, f"{iid} is safe but: {state}"
    return "ok"


@pytest.mark.slow
@pytest.mark.timeout(280)
def test_every_prediction_matches_what_the_real_worker_did(runs):
    ids, recorded, predictions, states, woken = runs
    compared = []
    for change in CHANGES:
        for iid in ids[change]:
            rows = recorded[recorded.InstanceId == iid].reset_index(drop=True)
            real = _reality(iid, states[iid], rows, woken[iid])
            predicted = predictions[change].loc[iid, "Verdict"]
            compared.append((change, iid, predicted, real))
    wrong = [c for c in compared if c[2] != c[3]]
    assert not wrong, f"predictions that reality contradicts (change, id, predicted, real): {wrong}"
    # The changes were chosen so that every verdict occurs: a checker that says "ok" to
    # everything, or "breaks" to everything, fails above.
    assert {c[2] for c in compared} == {"ok", "diverges", "breaks"}


@pytest.mark.slow
def test_divergent_actions_are_the_ones_the_real_worker_scheduled(runs):
    ids, recorded, predictions, _, woken = runs
    checked = 0
    for change in CHANGES:
        for iid in ids[change]:
            found = predictions[change].loc[iid]
            if found.Verdict != "diverges":
                continue
            rows = recorded[recorded.InstanceId == iid]
            real = _next_episode_actions(woken[iid], len(rows))
            names = {name for _, name in real}
            predicted = [n for n in names if n and f"'{n}'" in found.Code]
            assert predicted, f"{iid}: predicted {found.Code!r}, the worker scheduled {real}"
            checked += 1
    assert checked, "no diverging instance to compare"


@pytest.mark.slow
def test_breaks_point_at_the_row_the_real_failure_names(runs):
    ids, recorded, predictions, states, _ = runs
    for change in CHANGES:
        for iid in ids[change]:
            found = predictions[change].loc[iid]
            if found.Verdict != "breaks":
                continue
            message = states[iid].failure_details.message
            # the SDK's own text, from the check's replay and from the real worker's
            assert found.Error and found.Error.split(" but ")[0] in message, (iid, found.Error)
            row = recorded[(recorded.InstanceId == iid) & (recorded.Sequence == found.Sequence)]
            assert row.EventType.item() == found.EventType
