"""The explorer's model (and its widgets, headless) against a real local task hub.

No browser: the model turns filters into ``instances()`` arguments, pages and sorts what the
real reader returns (TaskHub over Azurite, GrpcTaskHub over the sidecar), selects instances,
and runs management actions through the real durabletask client; the view is driven by
calling its buttons' handlers, its background reads awaited with a bound.
"""

from __future__ import annotations

import time
import uuid

import pandas as pd
import pytest
from durabletask.client import OrchestrationStatus

from durable_helpers import InstanceNotFoundError, TaskHub, explore
from durable_helpers.explorer import ExplorerModel, Filters, actions, view
from durable_helpers.local.ports import free_ports
from durable_helpers.storage import azurite_connection_string

NOW = pd.Timestamp("2026-12-01T10:00:00Z")
TIMEOUT = 30


def wait_until(condition, what: str, timeout: float = TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


# ---------------------------------------------------------------------------- filters


def test_filters_become_instances_arguments() -> None:
    assert Filters().arguments(NOW) == {"created_from": NOW - pd.Timedelta(hours=24)}
    f = Filters(statuses=("Completed", "Failed"), name=" Hello ", window="7d", id_prefix=" ab ")
    assert f.arguments(NOW) == {
        "status": ["Completed", "Failed"],
        "name": "Hello",
        "created_from": NOW - pd.Timedelta(days=7),
        "instance_id_prefix": "ab",
    }
    assert Filters(window="1h").arguments(NOW) == {"created_from": NOW - pd.Timedelta(hours=1)}
    assert Filters(window="all").arguments(NOW) == {}
    custom = Filters(window="custom", created_from="2026-11-30", created_to="2026-12-01 08:00")
    assert custom.arguments(NOW) == {"created_from": "2026-11-30", "created_to": "2026-12-01 08:00"}
    with pytest.raises(ValueError, match="window is one of"):
        Filters(window="yesterday").arguments(NOW)


@pytest.fixture(params=["tables", "grpc"])
def reader(request, ran):
    hub = ran.table_hub() if request.param == "tables" else ran.grpc_hub()
    yield hub
    if request.param == "grpc":
        hub.close()


def test_the_list_is_what_the_reader_returns_for_those_filters(reader, ran) -> None:
    now = pd.Timestamp.now(tz="UTC")
    model = ExplorerModel(reader, page_size=4, now=lambda: now)
    prefix = ran.ids["hello"].rsplit("-", 1)[0] + "-"
    model.with_filters(window="1h", id_prefix=prefix)
    assert model.arguments() == {
        "created_from": now - pd.Timedelta(hours=1),
        "instance_id_prefix": prefix,
        "limit": 5001,
    }
    model.refresh()
    everything = reader.instances(instance_id_prefix=prefix)
    assert set(model.instances["InstanceId"]) == set(everything["InstanceId"])
    assert len(everything) == len(ran.ids) + 2  # and the parent's two children

    model.with_filters(statuses=("Failed",))
    model.refresh()
    assert model.instances["InstanceId"].tolist() == [ran.ids["fail"]]

    model.with_filters(statuses=(), name="HelloSequence")
    model.refresh()
    hello = {ran.ids["hello"], ran.ids["parent"] + ":0001", ran.ids["parent"] + ":0002"}
    assert set(model.instances["InstanceId"]) == hello

    model.with_filters(name="", window="custom", created_from="2099-01-01")
    model.refresh()
    assert model.instances.empty and model.pages == 1 and model.page_rows().empty


def test_counts_paging_and_sorting(reader, ran) -> None:
    prefix = ran.ids["hello"].rsplit("-", 1)[0] + "-"
    model = ExplorerModel(reader, page_size=4)
    model.with_filters(window="all", id_prefix=prefix)
    model.refresh()
    counts = model.counts()
    assert counts.to_dict() == {"Completed": 8, "Failed": 1}
    assert model.pages == 3
    seen = []
    for page in range(model.pages):
        assert model.set_page(page) == page
        seen += model.page_rows()["InstanceId"].tolist()
    assert len(seen) == len(set(seen)) == 9
    assert model.set_page(99) == 2 and model.set_page(-1) == 0
    created = model.sorted_instances()["CreatedTime"]
    assert created.is_monotonic_decreasing
    model.set_sort("created", descending=False)
    assert model.sorted_instances()["CreatedTime"].is_monotonic_increasing
    model.set_sort("duration", descending=True)
    durations = model.sorted_instances()["Duration"]
    assert durations.dropna().is_monotonic_decreasing
    with pytest.raises(ValueError, match="sort is one of"):
        model.set_sort("name")
    small = ExplorerModel(reader, max_instances=2)
    small.with_filters(window="all", id_prefix=prefix)
    small.refresh()
    assert small.truncated and len(small.instances) == 2


def test_selection_reads_the_instance_its_children_and_its_failure(reader, ran) -> None:
    model = ExplorerModel(reader)
    sel = model.select(ran.ids["hello"])
    assert sel.value("RuntimeStatus") == "Completed"
    pd.testing.assert_frame_equal(sel.history, reader.history(ran.ids["hello"]))
    assert sel.failure() is None and sel.sub_orchestrations().empty

    parent = model.select(ran.ids["parent"])
    children = parent.sub_orchestrations()
    assert children["InstanceId"].tolist() == [
        ran.ids["parent"] + ":0001",
        ran.ids["parent"] + ":0002",
    ]
    assert children["Outcome"].astype(str).tolist() == ["completed", "completed"]
    child = model.select(children["InstanceId"][0])
    assert child.parent_id() == ran.ids["parent"]

    failure = model.select(ran.ids["fail"]).failure()
    assert failure is not None
    assert "Card declined for order 42" in failure["message"]
    assert failure["call"]["name"] == "ChargeCard" and failure["call"]["kind"] == "activity"
    assert "ValueError" in failure["call"]["type"]
    assert failure["stack"], "the stack trace of the failed activity"
    with pytest.raises(InstanceNotFoundError):
        model.select("no-such-instance-" + uuid.uuid4().hex)


# ---------------------------------------------------------------------------- management


def test_read_only_refuses_every_action(ran) -> None:
    model = ExplorerModel(ran.table_hub())
    assert model.read_only
    for action in actions.ACTIONS:
        with pytest.raises(actions.ReadOnlyError, match="manage=client"):
            model.ask(action, ran.ids["hello"])


def test_actions_ask_first_and_check_their_parameters(ran) -> None:
    model = ExplorerModel(ran.table_hub(), manage=ran.client)
    pending = model.ask("terminate", "abc", reason="stuck since Monday")
    assert pending.question == "Terminate instance 'abc' (reason: stuck since Monday)?"
    with pytest.raises(ValueError, match="needs an event name"):
        model.ask("raise_event", "abc", event_name=" ")
    with pytest.raises(ValueError, match="event data is JSON"):
        model.ask("raise_event", "abc", event_name="Approval", event_data="{oops")
    with pytest.raises(ValueError, match="unknown action"):
        model.ask("delete_everything", "abc")
    with pytest.raises(ValueError, match="takes"):
        model.ask("purge", "abc", reason="x")


def _status(hub: TaskHub, iid: str) -> str:
    try:
        return str(hub.instance(iid)["RuntimeStatus"])
    except InstanceNotFoundError:
        return "gone"


def test_actions_call_the_client(ran) -> None:
    hub = ran.table_hub()
    model = ExplorerModel(hub, manage=ran.client)
    iid = "act-" + uuid.uuid4().hex[:8]
    ran.client.schedule_new_orchestration(
        "ApprovalWorkflow", input={"timeout_seconds": 120}, instance_id=iid
    )
    ran.client.wait_for_orchestration_start(iid, timeout=TIMEOUT)
    wait_until(lambda: _status(hub, iid) == "Running", f"{iid} running")

    result = model.confirm(model.ask("suspend", iid, reason="lunch"))
    assert result.ok and result.message == f"Suspended {iid!r}.", result
    wait_until(lambda: _status(hub, iid) == "Suspended", f"{iid} suspended")
    assert model.confirm(model.ask("resume", iid)).ok
    wait_until(lambda: _status(hub, iid) == "Running", f"{iid} resumed")
    raised = model.confirm(
        model.ask("raise_event", iid, event_name="Approval", event_data='{"approved": true}')
    )
    assert raised.ok, raised
    state = ran.client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state.runtime_status == OrchestrationStatus.COMPLETED
    assert state.serialized_output and '"Approved"' in state.serialized_output

    restarted = model.confirm(model.ask("restart", iid, new_instance_id=True))
    assert restarted.ok and restarted.new_instance_id not in (None, iid), restarted
    ran.client.wait_for_orchestration_start(restarted.new_instance_id, timeout=TIMEOUT)
    assert model.confirm(model.ask("terminate", restarted.new_instance_id, reason="test")).ok
    done = ran.client.wait_for_orchestration_completion(restarted.new_instance_id, timeout=TIMEOUT)
    assert done.runtime_status == OrchestrationStatus.TERMINATED

    purged = model.confirm(model.ask("purge", iid))
    assert purged.ok, purged
    assert _status(hub, iid) == "gone"

    failing = "rew-" + uuid.uuid4().hex[:8]
    ran.client.schedule_new_orchestration(
        "FailingOrchestration", input={"failures": 1}, instance_id=failing
    )
    first = ran.client.wait_for_orchestration_completion(failing, timeout=TIMEOUT)
    assert first.runtime_status == OrchestrationStatus.FAILED
    assert model.confirm(model.ask("rewind", failing, reason="card fixed")).ok
    wait_until(lambda: _status(hub, failing) == "Completed", f"{failing} completed after rewind")

    missing = model.confirm(model.ask("terminate", "missing-" + uuid.uuid4().hex[:8]))
    assert not missing.ok and missing.message.startswith("Terminate failed for 'missing-")


# ---------------------------------------------------------------------------- the widgets


def _texts(widget) -> str:
    """Every description/value text of a widget tree (what a user would read)."""
    parts = []
    stack = [widget]
    while stack:
        node = stack.pop()
        for attr in ("description", "value"):
            value = getattr(node, attr, None)
            if isinstance(value, str):
                parts.append(value)
        stack.extend(getattr(node, "children", ()))
    return "\n".join(parts)


def _buttons(widget, css: str) -> list:
    found, stack = [], [widget]
    while stack:
        node = stack.pop()
        if css in getattr(node, "_dom_classes", ()):
            found.append(node)
        stack.extend(getattr(node, "children", ()))
    return found


def test_the_view_reads_in_the_background_and_opens_an_instance(ran) -> None:
    v = explore(ran.table_hub(), page_size=50)
    v.jobs.wait(TIMEOUT)
    v.window.value = "all"
    v.jobs.wait(TIMEOUT)
    v.status_buttons["Completed"].value = True
    v.jobs.wait(TIMEOUT)
    ids = [b.description for b in _buttons(v.table, "dh-open")]
    assert ran.ids["hello"] in ids and ran.ids["fail"] not in ids
    assert "read-only" in v.header.value and not _buttons(v, "dh-action-terminate")
    hello = next(b for b in _buttons(v.table, "dh-open") if b.description == ran.ids["hello"])
    hello.click()
    v.jobs.wait(TIMEOUT)
    tabs = _buttons(v.detail, "dh-tabs")[0]
    assert tabs.titles[1] == f"History ({len(v.model.selection.history)})"
    sequence = _buttons(v.detail, "dh-sequence")[0].outputs[0]["data"]["text/markdown"]
    assert sequence.startswith("```mermaid\nsequenceDiagram") and "Hello [1]" in sequence
    assert "TaskScheduled" in _buttons(v.detail, "dh-history")[0].outputs[0]["data"]["text/html"]
    v.close()


def test_the_view_shows_errors_as_messages(connection_string) -> None:
    missing = explore(TaskHub(connection_string, hub="NoSuchHub" + uuid.uuid4().hex[:6]))
    missing.jobs.wait(TIMEOUT)
    assert "dh-error" in missing.status_line.value and "No task hub" in missing.status_line.value
    port = free_ports(3)
    down = TaskHub(azurite_connection_string("127.0.0.1", *port), retry_total=0)
    dead = explore(down)
    dead.jobs.wait(TIMEOUT)
    assert "Cannot reach storage account" in dead.status_line.value, dead.status_line.value
    assert "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq" not in (
        dead.status_line.value
    )
    dead.window.value = "custom"
    dead.created_from.value = "not a date"
    assert "created_from takes a datetime" in dead.status_line.value
    missing.close()
    dead.close()


def test_auto_refresh_picks_up_new_instances(ran, monkeypatch) -> None:
    monkeypatch.setattr(view, "AUTO_REFRESH_SECONDS", 0.5)
    v = explore(ran.table_hub(), page_size=100)
    v.jobs.wait(TIMEOUT)
    iid = "auto-" + uuid.uuid4().hex[:8]
    v.auto.value = True
    try:
        ran.client.schedule_new_orchestration("HelloSequence", instance_id=iid)
        wait_until(lambda: iid in set(v.model.instances["InstanceId"]), f"{iid} in the list")
    finally:
        v.auto.value = False
    v.close()
