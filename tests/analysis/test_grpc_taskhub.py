"""GrpcTaskHub over real sidecars, and the analyses on frames from real orchestrations.

Two backends, both driven by the official durabletask SDK worker running the kit's samples:
- durabletask.testing's in-memory backend (GrpcTaskHub alone: paging, errors, analyses);
- the local task hub (LocalTaskHub over the session's Azurite): GrpcTaskHub and TaskHub must
  give the same frames for the same instances, and the analyses run on the table reader's frames.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from durabletask import task
from durabletask.client import OrchestrationStatus, TaskHubGrpcClient
from durabletask.testing.in_memory_backend import create_test_backend

from durable_helpers import GrpcTaskHub, InstanceNotFoundError, TaskHub, frames
from durable_helpers import analysis as da
from durable_helpers.local import samples
from durable_helpers.local.ports import free_ports

TIMEOUT = 30


def Middle(ctx: task.OrchestrationContext, _: Any) -> Any:
    """A sub-orchestration whose own sub-orchestration fails (two deep from Outer)."""
    return (
        yield ctx.call_sub_orchestrator(
            samples.FailingOrchestration, input={"failures": 9}, instance_id=ctx.instance_id + ":in"
        )
    )


def Outer(ctx: task.OrchestrationContext, _: Any) -> Any:
    return (yield ctx.call_sub_orchestrator(Middle, instance_id=ctx.instance_id + ":mid"))


#: instance id -> (orchestrator, input, expected status)
RUNS: dict[str, tuple[Callable, Any, OrchestrationStatus]] = {
    "hello": (samples.HelloSequence, None, OrchestrationStatus.COMPLETED),
    "retry": (
        samples.RetryFlaky,
        {"failures": 2, "retry_seconds": 0.5},
        OrchestrationStatus.COMPLETED,
    ),
    "outer": (Outer, None, OrchestrationStatus.FAILED),
    "eternal": (
        samples.EternalMonitor,
        {"max_iterations": 2, "interval_seconds": 0.5},
        OrchestrationStatus.COMPLETED,
    ),
    "fan": (samples.FanOutFanIn, [1, 2, 3], OrchestrationStatus.COMPLETED),
}
ALL_IDS = [*RUNS, "outer:mid", "outer:mid:in"]


@dataclass
class Ran:
    address: str
    ids: list[str]
    statuses: dict[str, str]

    def check_statuses(self, prefix: str = "") -> None:
        expected = {prefix + iid: run[2].name for iid, run in RUNS.items()}
        assert self.statuses == expected, "the sample runs did not end as expected"


def run_samples(address: str, state_dir: Path, prefix: str = "") -> Ran:
    """Run every orchestration of RUNS through a real SDK worker; note how each ended."""
    worker = samples.build_worker(address, state_dir=state_dir)
    worker.add_orchestrator(Middle)
    worker.add_orchestrator(Outer)
    worker.start()
    statuses = {}
    try:
        client = TaskHubGrpcClient(host_address=address)
        for iid, (orchestrator, data, _) in RUNS.items():
            client.schedule_new_orchestration(orchestrator, input=data, instance_id=prefix + iid)
        for iid in RUNS:
            try:
                state = client.wait_for_orchestration_completion(prefix + iid, timeout=TIMEOUT)
                statuses[prefix + iid] = state.runtime_status.name if state else "MISSING"
            except TimeoutError:
                statuses[prefix + iid] = "TIMED OUT"
    finally:
        worker.stop()
    return Ran(address, [prefix + i for i in ALL_IDS], statuses)


@pytest.fixture(scope="module")
def in_memory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ran]:
    port = free_ports(1)[0]
    backend = create_test_backend(port=port)
    try:
        yield run_samples(f"localhost:{port}", tmp_path_factory.mktemp("samples"))
    finally:
        backend.stop()


def check_shapes(instances: pd.DataFrame, history: pd.DataFrame) -> None:
    assert list(instances.columns[: len(frames.INSTANCE_COLUMNS)]) == list(frames.INSTANCE_COLUMNS)
    assert list(history.columns[: len(frames.HISTORY_COLUMNS)]) == list(frames.HISTORY_COLUMNS)
    assert str(history["Timestamp"].dtype) == "datetime64[ns, UTC]"
    assert str(history["EventId"].dtype) == "Int32"
    assert isinstance(instances["RuntimeStatus"].dtype, pd.CategoricalDtype)


def check_analyses(instances: pd.DataFrame, history: pd.DataFrame, prefix: str = "") -> None:
    """What the analyses must find in the sample runs, whatever the source."""
    c = da.calls(history)
    flaky = c[(c["InstanceId"] == prefix + "retry") & (c["Kind"] == "activity")]
    assert flaky["Attempt"].tolist() == [1, 2, 3]  # Python SDK retries: new TaskScheduled
    assert flaky["Outcome"].tolist() == ["failed", "failed", "completed"]
    assert (c[c["InstanceId"] == prefix + "retry"]["Kind"] == "timer").sum() == 2
    fan = c[c["InstanceId"] == prefix + "fan"]
    assert fan["Result"].tolist() == [1, 4, 9] and (fan["Outcome"] == "completed").all()

    f = da.failures(instances, history).set_index("InstanceId")
    top = f.loc[prefix + "outer"]
    assert (top.Depth, top.RootInstanceId, top.RootCallName) == (
        2,
        prefix + "outer:mid:in",
        "ChargeCard",
    )
    assert top.ErrorType.endswith("ValueError") and "Card declined" in top.ErrorMessage
    assert top.FailedCallName == "Middle" and top.FailedCallKind == "suborchestration"

    ep = da.episodes(history)
    hello = ep[ep["InstanceId"] == prefix + "hello"]
    assert hello["Episode"].tolist() == [1, 2, 3, 4]
    assert hello["EventsReplayed"].is_monotonic_increasing

    assert da.stuck(instances, history, older_than="1h").empty
    sizes = da.sizes(instances, history).set_index("InstanceId")
    assert sizes.loc[prefix + "hello", "Events"] == len(
        history[history.InstanceId == prefix + "hello"]
    )
    assert not sizes["HasLargePayload"].any()


def test_grpc_taskhub_over_the_in_memory_backend(in_memory: Ran) -> None:
    in_memory.check_statuses()
    with GrpcTaskHub(in_memory.address, timeout=10) as hub:
        instances = hub.instances(page_size=2)  # several QueryInstances pages
        assert sorted(instances["InstanceId"]) == sorted(in_memory.ids)
        assert len(hub.instances(limit=3)) == 3
        assert set(hub.instances(status="Failed")["InstanceId"]) == {
            "outer",
            "outer:mid",
            "outer:mid:in",
        }
        assert list(hub.instances(name="HelloSequence")["InstanceId"]) == ["hello"]
        assert hub.instances(limit=0).empty
        assert hub.instances(created_from="2999-01-01T00:00+01:00").empty
        assert len(hub.instances(created_to="2999-01-01")) == len(instances)
        with pytest.raises(ValueError, match="whole number"):
            hub.instances(limit=-3)  # the same checks as TaskHub (instance_filters)
        with pytest.raises(ValueError, match="no 'Unknown' status"):
            hub.instances(status="Unknown")
        history = hub.histories(instances["InstanceId"])
        check_shapes(instances, history)
        check_analyses(instances, history)
        one = hub.history("hello")
        assert one["EventType"].iloc[[0, 1, -1]].tolist() == [
            "OrchestratorStarted",
            "ExecutionStarted",
            "ExecutionCompleted",
        ]
        assert one["Sequence"].tolist() == list(range(len(one)))
        assert hub.instance("hello")["Output"] == [
            "Hello Tokyo!",
            "Hello Seattle!",
            "Hello London!",
        ]
        with pytest.raises(InstanceNotFoundError, match="nope"):
            hub.history("nope")
        assert hub.histories("hello")["InstanceId"].unique().tolist() == ["hello"]
        assert hub.histories(["nope", "hello"], missing="skip")["InstanceId"].unique().tolist() == [
            "hello"
        ]


def test_grpc_taskhub_says_clearly_when_nothing_listens() -> None:
    port = free_ports(1)[0]
    with (
        GrpcTaskHub(f"127.0.0.1:{port}", timeout=2) as hub,
        pytest.raises((ConnectionError, TimeoutError), match=str(port)),
    ):
        hub.instances()
    with pytest.raises(ValueError, match="host:port"):
        GrpcTaskHub("localhost")


# -- the local task hub: same frames from the tables and from the protocol -------------------


@pytest.fixture(scope="module")
def local_hub(
    connection_string: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Ran, str]]:
    sidecar = pytest.importorskip("durable_helpers.local.sidecar")
    hub = "A" + tmp_path_factory.mktemp("hub").name.replace("_", "").replace("-", "")[:20]
    with sidecar.LocalTaskHub(connection=connection_string, hub=hub, port=0) as local:
        yield run_samples(local.address, tmp_path_factory.mktemp("samples"), prefix="l-"), hub


#: Columns the protocol cannot carry (table service write time, generation counter).
NOT_IN_PROTOCOL = ["TableTimestamp", "Generation"]


def test_grpc_taskhub_and_taskhub_give_the_same_frames(
    local_hub: tuple[Ran, str], connection_string: str
) -> None:
    ran, hub_name = local_hub  # (compared whatever state the runs reached)
    tables = TaskHub(connection_string, hub=hub_name)
    with GrpcTaskHub(ran.address, timeout=10, hub_name=hub_name) as grpc_hub:
        from_grpc = grpc_hub.instances().sort_values("InstanceId", ignore_index=True)
        from_tables = tables.instances().sort_values("InstanceId", ignore_index=True)
        ids = list(from_tables["InstanceId"])
        assert set(RUNS) <= {i.removeprefix("l-") for i in ids} <= set(ALL_IDS)
        pd.testing.assert_frame_equal(
            from_grpc.drop(columns=NOT_IN_PROTOCOL), from_tables.drop(columns=NOT_IN_PROTOCOL)
        )
        assert (
            from_grpc["TableTimestamp"].isna().all() and from_tables["TableTimestamp"].notna().all()
        )

        hist_grpc = grpc_hub.histories(ids)
        hist_tables = tables.histories(ids)
        pd.testing.assert_frame_equal(
            hist_grpc.drop(columns=["TableTimestamp"]), hist_tables.drop(columns=["TableTimestamp"])
        )
        eternal = grpc_hub.history("l-eternal")
        assert eternal["ExecutionId"].nunique() == 1  # the current execution only
        assert eternal["ExecutionId"].iloc[0] == grpc_hub.instance("l-eternal")["ExecutionId"]


def test_analyses_on_frames_read_from_the_local_task_hub_tables(
    local_hub: tuple[Ran, str], connection_string: str, tmp_path: Path
) -> None:
    ran, hub_name = local_hub
    ran.check_statuses(prefix="l-")
    tables = TaskHub(connection_string, hub=hub_name)
    instances = tables.instances()
    history = tables.histories(ran.ids)
    check_shapes(instances, history)
    check_analyses(instances, history, prefix="l-")
    c = da.calls(history)
    assert c["Duration"].notna().all()  # the local task hub stamps every event
    flaky = c[(c["InstanceId"] == "l-retry") & (c["Kind"] == "activity")]
    assert (flaky["ScheduledTime"].diff().dropna() >= pd.Timedelta(seconds=0.5)).all()
    lat = da.latency(c)
    assert {"Hello", "FlakyActivity", "ChargeCard"} <= set(lat.index)
    assert lat.loc["FlakyActivity", "FailureRate"] == pytest.approx(2 / 3)
    # continue-as-new: the table keeps the current (second) execution; its one CheckStatus call
    eternal = tables.history("l-eternal")
    ec = da.calls(eternal)
    assert ec["Name"].tolist() == ["CheckStatus"] and ec["Result"].tolist() == ["check 2"]
    assert (
        eternal["ExecutionId"].iloc[0]
        == instances.set_index("InstanceId").loc["l-eternal", "ExecutionId"]
    )
    assert da.episodes(eternal)["Episode"].iloc[0] == 1
    good, bad = history[history.InstanceId == "l-hello"], history[history.InstanceId == "l-retry"]
    assert da.first_divergence(da.compare(good, bad)) == 0  # different orchestrators

    from durable_helpers import load_snapshot, plots
    from durable_helpers.snapshot import save_snapshot

    snap = load_snapshot(save_snapshot(tmp_path / "s", instances=instances, histories=history))
    pd.testing.assert_frame_equal(snap.history, history)
    pd.testing.assert_frame_equal(snap.instances, instances)
    ax = plots.timeline(history[history.InstanceId == "l-retry"])
    ax.figure.savefig(tmp_path / "retry.png")
    assert [t.get_text() for t in ax.texts] == ["#2", "#3"]
