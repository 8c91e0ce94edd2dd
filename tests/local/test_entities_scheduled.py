"""The SDK's scheduled tasks (``durabletask.scheduled``) on the local task hub.

They are entities (``@schedule@<id>``) that signal themselves with a delay, start the target
orchestration, and are managed through an orchestration that calls them.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from durabletask.client import OrchestrationQuery, OrchestrationStatus, TaskHubGrpcClient
from durabletask.scheduled import (
    ScheduleCreationOptions,
    ScheduledTaskClient,
    ScheduleQuery,
    ScheduleStatus,
    ScheduleUpdateOptions,
)
from durabletask.worker import TaskHubGrpcWorker
from local_entities import register_entities, wait_until
from local_orchestrations import register

from durable_helpers.local.sidecar import LocalTaskHub


@pytest.fixture(scope="module")
def worker(sidecar: LocalTaskHub) -> Iterator[TaskHubGrpcWorker]:
    w = register_entities(register(TaskHubGrpcWorker(host_address=sidecar.address)))
    w.configure_scheduled_tasks()
    w.start()
    try:
        yield w
    finally:
        w.stop()


def _runs(client: TaskHubGrpcClient, schedule_id: str) -> list:
    query = OrchestrationQuery(instance_id_prefix=f"{schedule_id}-", fetch_inputs_and_outputs=True)
    return sorted(client.get_all_orchestration_states(query), key=lambda s: s.created_at)


@pytest.mark.slow
def test_a_schedule_runs_at_its_interval_and_can_be_paused_resumed_updated_deleted(client):
    schedules = ScheduledTaskClient(client, operation_timeout=60)
    schedule_id = "s" + uuid.uuid4().hex[:8]
    handle = schedules.create_schedule(
        ScheduleCreationOptions(
            schedule_id=schedule_id,
            orchestration_name="entity_started",
            interval=timedelta(seconds=2),
            orchestration_input=7,
        )
    )
    described = handle.describe()
    assert described.status == ScheduleStatus.ACTIVE
    assert described.interval == timedelta(seconds=2)
    assert described.orchestration_name == "entity_started"
    runs = wait_until(lambda: len(r := _runs(client, schedule_id)) >= 3 and r, 30, "three runs")
    # Each run's id carries its scheduled time: one interval apart, and none started early.
    planned = [datetime.fromisoformat(r.instance_id[len(schedule_id) + 1 :]) for r in runs]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(planned)]
    assert all(abs(gap - 2) < 0.01 for gap in gaps), gaps
    for run, when in zip(runs, planned, strict=True):
        created = (
            run.created_at.replace(tzinfo=when.tzinfo)
            if run.created_at.tzinfo is None
            else run.created_at
        )
        assert created >= when - timedelta(milliseconds=300), (run.instance_id, created)
    done = client.wait_for_orchestration_completion(runs[0].instance_id, timeout=30)
    assert done.runtime_status == OrchestrationStatus.COMPLETED
    assert done.serialized_output == '{"started_with": 7}'
    listed = schedules.list_schedules(ScheduleQuery(schedule_id_prefix=schedule_id))
    assert [d.schedule_id for d in listed] == [schedule_id]
    assert schedules.get_schedule("nope" + schedule_id) is None

    handle.pause()
    assert handle.describe().status == ScheduleStatus.PAUSED
    paused_at = len(_runs(client, schedule_id))
    time.sleep(4.5)
    assert len(_runs(client, schedule_id)) <= paused_at + 1  # one run may already be starting
    paused_runs = len(_runs(client, schedule_id))
    handle.resume()
    assert handle.describe().status == ScheduleStatus.ACTIVE
    wait_until(lambda: len(_runs(client, schedule_id)) > paused_runs, 30, "a run after resume")

    handle.update(ScheduleUpdateOptions(interval=timedelta(seconds=3)))
    assert handle.describe().interval == timedelta(seconds=3)
    listed = schedules.list_schedules(
        ScheduleQuery(schedule_id_prefix=schedule_id, status=ScheduleStatus.ACTIVE)
    )
    assert len(listed) == 1

    handle.delete()
    wait_until(lambda: schedules.get_schedule(schedule_id) is None, 30, "the delete")
    assert schedules.list_schedules(ScheduleQuery(schedule_id_prefix=schedule_id)) == []
