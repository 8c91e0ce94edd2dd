"""Real histories of every sample pattern (retries, timers, sub-orchestrations, continue-as-new,
events, large payloads from blobs, a failed instance), written by the real SDK worker through
the local task hub and read back by each reader, replay through their own code; other code
does not; bad input gives clear errors."""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest
from durabletask.client import OrchestrationStatus

from durable_helpers import GrpcTaskHub, load_snapshot, replay
from durable_helpers.local import samples
from durable_helpers.replay_samples import (
    ORCHESTRATOR,
    order_approval_functions,
    order_worker,
    start_orders,
)

BIG = "x" * 40_000  # over 60 KiB in UTF-16: input and result go to large-message blobs
RUNS = {
    "hello": ("HelloSequence", ["Tokyo", "Seattle", "London"]),
    "large": ("HelloSequence", [BIG]),
    "fan": ("FanOutFanIn", [1, 2, 3]),
    "approved": ("ApprovalWorkflow", {"timeout_seconds": 60}),
    "timed_out": ("ApprovalWorkflow", {"timeout_seconds": 1}),
    "retry": ("RetryFlaky", {"failures": 2, "max_attempts": 4, "retry_seconds": 0.5}),
    "failing": ("FailingOrchestration", {"failures": 1}),
    "parent": ("ParentOrchestration", ["Tokyo", "Seattle"]),
    "eternal": ("EternalMonitor", {"max_iterations": 3, "interval_seconds": 0.5}),
    "timer": ("TimerDemo", {"seconds": 1}),
    "waiting": ("ApprovalWorkflow", {"timeout_seconds": 300}),
    "suspended": ("ApprovalWorkflow", {"timeout_seconds": 300}),
}
STILL_RUNNING = ("waiting", "suspended")
FUNCTIONS = {f.__name__: f for f in samples.ORCHESTRATORS}


@pytest.fixture(scope="module")
def recorded(sidecar, client, reader, tmp_path_factory):
    """Every sample run to its end (``waiting`` to its approval wait) by the samples worker."""
    worker = samples.build_worker(sidecar.address, tmp_path_factory.mktemp("samples-state"))
    worker.start()
    try:
        ids = {
            key: client.schedule_new_orchestration(name, input=data, instance_id=f"rec-{key}")
            for key, (name, data) in RUNS.items()
        }
        deadline = time.monotonic() + 120
        while client.get_orchestration_state(ids["approved"]).serialized_custom_status is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        client.raise_orchestration_event(ids["approved"], "Approval", data={"approved": True})
        states = {
            key: client.wait_for_orchestration_completion(iid, timeout=90)
            for key, iid in ids.items()
            if key not in STILL_RUNNING
        }
        for key in STILL_RUNNING:
            while client.get_orchestration_state(ids[key]).serialized_custom_status is None:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        client.suspend_orchestration(ids["suspended"])
        while (
            client.get_orchestration_state(ids["suspended"]).runtime_status
            != OrchestrationStatus.SUSPENDED
        ):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        worker.stop()
    assert states["failing"].runtime_status == OrchestrationStatus.FAILED
    assert states["retry"].runtime_status == OrchestrationStatus.COMPLETED
    return ids, reader.histories(list(ids.values()))


def test_every_pattern_replays_through_its_own_code(recorded):
    ids, histories = recorded
    found = replay.check_many(histories, FUNCTIONS["HelloSequence"], name="HelloSequence")
    assert set(found.InstanceId) == {ids["hello"], ids["large"]}  # name= keeps only those
    for key, (name, _) in RUNS.items():
        one = histories[histories.InstanceId == ids[key]]
        result = replay.check(one, FUNCTIONS[name])
        assert result.verdict == "ok", f"{key}: {result}"


def test_the_histories_hold_what_the_patterns_are_about(recorded):
    ids, h = recorded
    types = {key: set(h[h.InstanceId == iid].EventType) for key, iid in ids.items()}
    assert {"TimerCreated", "TimerFired", "TaskFailed"} <= types["retry"]
    assert "SubOrchestrationInstanceCompleted" in types["parent"]
    assert "EventRaised" in types["approved"] and "TimerFired" in types["timed_out"]
    large = h[(h.InstanceId == ids["large"]) & (h.EventType == "TaskCompleted")]
    assert large.ResultRaw.str.len().max() > 40_000  # fetched from its blob by the reader


def test_a_failed_instance_replays_and_a_different_failure_does_not(recorded):
    ids, h = recorded
    failed = h[h.InstanceId == ids["failing"]]
    assert replay.check(failed, FUNCTIONS["FailingOrchestration"]).verdict == "ok"

    def fails_otherwise(ctx, options):
        yield ctx.call_activity("Hello", input="Tokyo")
        yield ctx.call_activity("ChargeCard", input={"failures": 1, "order": 42})
        return "never"

    # the activity failure reaches this code as well, unhandled, with the same message
    assert replay.check(failed, fails_otherwise).verdict == "ok"

    def catches_it(ctx, options):
        greeting = yield ctx.call_activity("Hello", input="Tokyo")
        try:
            yield ctx.call_activity("ChargeCard", input={"failures": 1, "order": 42})
        except Exception:
            return [greeting, "declined"]

    result = replay.check(failed, catches_it)
    assert result.verdict == "diverges"
    assert result.divergence.kind == "different result"


def test_continue_as_new_replays_the_current_execution_only(recorded, reader):
    ids, _ = recorded
    everything = reader.history(ids["eternal"], execution="all")
    # rows of earlier executions the current one has not overwritten (as in Durable Functions)
    older = everything.ExecutionId.nunique() - 1
    assert older >= 1
    result = replay.check(everything, FUNCTIONS["EternalMonitor"])
    assert result.verdict == "ok"
    assert result.execution_id == everything.ExecutionId.iloc[-1]
    assert any(f"{older} earlier execution" in note for note in result.notes)


def test_a_suspended_instance_replays(recorded):
    ids, h = recorded
    one = h[h.InstanceId == ids["suspended"]]
    assert "ExecutionSuspended" in set(one.EventType)
    result = replay.check(one, FUNCTIONS["ApprovalWorkflow"])
    assert result.verdict == "ok", str(result)
    # TimerDemo also creates one timer first, but not for the same time: the SDK does not
    # compare fire times (a real worker would go on); the check does.
    other = replay.check(one, FUNCTIONS["TimerDemo"])
    assert other.verdict == "diverges"
    assert (other.divergence.kind, other.divergence.event_type) == (
        "different timer",
        "TimerCreated",
    )


def test_a_waiting_instance_reports_what_it_waits_for(recorded):
    ids, h = recorded
    result = replay.check(h[h.InstanceId == ids["waiting"]], FUNCTIONS["ApprovalWorkflow"])
    assert result.verdict == "ok"
    assert result.waiting_for == ("approval",)  # the SDK matches event names case-insensitively
    assert result.custom_status == "WaitingForApproval"
    assert result.next_actions == ()  # its timer is already in the history


def test_other_code_does_not_replay_these_histories(recorded):
    ids, h = recorded
    found = replay.check_many(h, FUNCTIONS["FanOutFanIn"])
    verdicts = found.set_index("InstanceId").Verdict
    assert verdicts[ids["fan"]] == "ok"
    assert verdicts[ids["hello"]] == "breaks"
    assert found.Verdict.value_counts()["breaks"] >= 8
    broken = found.set_index("InstanceId").loc[ids["timer"]]
    assert broken.Kind == "different action" and broken.EventType == "TimerCreated"
    assert "NonDeterminismError" in broken.ErrorType


def test_every_reader_gives_the_same_verdicts(recorded, sidecar, tmp_path):
    ids, h = recorded
    keys = ["hello", "approved", "parent", "failing"]
    wanted = [ids[k] for k in keys]
    from_tables = replay.check_many(h[h.InstanceId.isin(wanted)], FUNCTIONS["HelloSequence"])
    with GrpcTaskHub(sidecar.address) as grpc_hub:
        from_grpc = replay.check_many(grpc_hub.histories(wanted), FUNCTIONS["HelloSequence"])
    from durable_helpers.snapshot import save_snapshot

    path = save_snapshot(tmp_path / "snap", instances=pd.DataFrame(), histories=h)
    snap = load_snapshot(path).history
    from_snapshot = replay.check_many(
        snap[snap.InstanceId.isin(wanted)], FUNCTIONS["HelloSequence"]
    )
    columns = ["InstanceId", "Verdict", "Kind", "Sequence", "EventType"]

    def tidy(found):
        return found[columns].sort_values("InstanceId").reset_index(drop=True)

    expected = tidy(from_tables)
    assert tidy(from_grpc).equals(expected)
    assert tidy(from_snapshot).equals(expected)
    verdicts = expected.set_index("InstanceId").Verdict
    assert verdicts[ids["hello"]] == "ok"
    assert (verdicts.drop(ids["hello"]) == "breaks").all()


def test_functions_app_ports_replay_local_histories(sidecar, client, reader):
    worker = order_worker(sidecar.address)
    worker.start()
    try:
        ids = start_orders(client, 2, prefix="fn")
    finally:
        worker.stop()
    h = reader.histories(ids)
    assert h[h.EventType == "TaskScheduled"].EventId.min() == 1  # the SDK's 1-based ids
    v1 = replay.check_many(h, order_approval_functions())
    assert v1.Verdict.tolist() == ["ok", "ok"], v1.to_dict("records")
    assert all(n and "0-based" in n[0] for n in v1.Notes)
    assert v1.WaitingFor.tolist() == [["Approval"], ["Delivered"]]
    reordered = replay.check_many(h, order_approval_functions("reorder"))
    assert reordered.Verdict.tolist() == ["breaks", "breaks"]
    assert set(reordered.Kind) == {"different name"}
    assert set(reordered.ErrorType) == {"NonDeterministicOrchestrationException"}
    assert reordered.Sequence.tolist() == [2, 2]
    assert ORCHESTRATOR in set(h.Name.dropna())


# ------------------------------------------------------------------------------ bad input
def _seedless_history():
    return pd.DataFrame(
        {
            "InstanceId": ["a", "a"],
            "ExecutionId": ["e", "e"],
            "Sequence": [0, 1],
            "EventType": ["OrchestratorStarted", "ExecutionStarted"],
            "EventId": [-1, -1],
            "Name": [None, "Orch"],
            "InputRaw": [None, json.dumps({"n": 1})],
        }
    )


def test_bad_frames_get_clear_errors(reader):
    orch = FUNCTIONS["HelloSequence"]
    with pytest.raises(TypeError, match="expected a History frame"):
        replay.check("abc", orch)
    with pytest.raises(ValueError, match="looks like an Instances frame"):
        replay.check(reader.instances(), orch)
    with pytest.raises(ValueError, match="empty"):
        replay.check(_seedless_history().iloc[0:0], orch)
    with pytest.raises(ValueError, match="check_many"):
        two = pd.concat([_seedless_history(), _seedless_history().assign(InstanceId="b")])
        replay.check(two, orch)
    partial = _seedless_history().iloc[:1]
    with pytest.raises(ValueError, match="no ExecutionStarted row"):
        replay.check(partial, orch)
    odd = _seedless_history().assign(EventType=["OrchestratorStarted", "Nonsense"])
    with pytest.raises(ValueError, match="unknown EventType 'Nonsense'"):
        replay.check(odd, orch)
    with pytest.raises(TypeError, match="orchestrator must be"):
        replay.check(_seedless_history(), "HelloSequence")
    with pytest.raises(ValueError, match="sdk must be"):
        replay.check(_seedless_history(), orch, sdk="dotnet")


def test_check_many_reports_an_unreadable_history_and_checks_the_rest():
    good = _seedless_history()
    partial = _seedless_history().assign(InstanceId="b").iloc[:1]
    found = replay.check_many(pd.concat([partial, good]), lambda ctx, data: data["n"])
    by_id = found.set_index("InstanceId")
    assert pd.isna(by_id.loc["b", "Verdict"]) and by_id.loc["b", "Kind"] == "unreadable history"
    assert "no ExecutionStarted row" in by_id.loc["b", "Error"]
    assert by_id.loc["a", "Verdict"] == "ok"


def test_an_orchestrator_that_raises_is_a_result_not_a_traceback():
    def explodes(ctx, data):
        raise KeyError(f"no field {data['n']}")
        yield  # pragma: no cover

    result = replay.check(_seedless_history(), explodes)
    assert result.verdict == "breaks"
    assert result.divergence.kind == "orchestrator error"
    assert result.divergence.event_type == "ExecutionStarted"
    assert "KeyError" in result.divergence.code and "no field 1" in result.divergence.error

    def explodes_functions(context):
        raise RuntimeError("boom")
        yield  # pragma: no cover

    result = replay.check(_seedless_history(), explodes_functions)
    assert result.verdict == "breaks" and result.divergence.kind == "orchestrator error"
    assert "boom" in result.divergence.error


def test_code_registered_under_another_name_breaks():
    result = replay.check(_seedless_history(), FUNCTIONS["HelloSequence"], name="Renamed")
    assert result.verdict == "breaks"
    assert result.divergence.kind == "not registered"
    assert "'Orch' orchestrator was not registered" in result.divergence.error


def test_a_new_instance_reports_its_first_actions():
    def first(ctx, data):
        ctx.set_custom_status({"step": 1})
        return (yield ctx.call_activity("Hello", input=data["n"]))

    result = replay.check(_seedless_history(), first)
    assert result.verdict == "ok"
    assert result.next_actions == ("call_activity('Hello', input=1) [id 1]",)
    assert result.custom_status == {"step": 1}
    assert "OK" in str(result) and "ok" in result._repr_html_()


def test_long_timers_replay_with_the_workers_timer_interval(sidecar, client, reader):
    """A worker with a short ``maximum_timer_interval`` records a long timer in chunks; the
    check replays it faithfully when told the same interval."""
    from datetime import timedelta

    from durabletask.worker import TaskHubGrpcWorker

    worker = TaskHubGrpcWorker(
        host_address=sidecar.address, maximum_timer_interval=timedelta(seconds=1)
    )
    worker.add_orchestrator(samples.TimerDemo)
    worker.use_work_item_filters()
    worker.start()
    try:
        iid = client.schedule_new_orchestration("TimerDemo", input={"seconds": 2.5})
        state = client.wait_for_orchestration_completion(iid, timeout=60)
    finally:
        worker.stop()
    assert state.runtime_status == OrchestrationStatus.COMPLETED
    history = reader.history(iid)
    assert (history.EventType == "TimerCreated").sum() == 3  # 1 s + 1 s + 0.5 s
    told = replay.check(history, samples.TimerDemo, maximum_timer_interval=timedelta(seconds=1))
    assert told.verdict == "ok", str(told)
    # A worker with the default interval (3 days) would not replay these chunks the same way.
    untold = replay.check(history, samples.TimerDemo)
    assert untold.verdict == "diverges"
