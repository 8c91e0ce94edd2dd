"""What the notebooks rely on from the local task hub, checked directly with clear messages
(a notebook failing deep inside a cell is harder to read)."""

from __future__ import annotations

import pytest
from durabletask import task
from durabletask.client import TaskHubGrpcClient
from durabletask.worker import TaskHubGrpcWorker
from nbharness import LocalStack

from durable_helpers import TaskHub
from durable_helpers.notebook_env import sdk_logger


def notebook_echo(ctx: task.ActivityContext, value: str) -> str:
    return value


def notebook_orchestration(ctx: task.OrchestrationContext, value: str):
    return (yield ctx.call_activity(notebook_echo, input=value))


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_a_worker_in_a_notebook_gets_its_own_orchestrations(local_stack: LocalStack) -> None:
    """03_patterns and 04_investigation register their own orchestrations in a worker in the
    notebook, next to the stack's sample worker. Both declare work item filters, so the
    sidecar sends each worker only the names it registered."""
    worker = TaskHubGrpcWorker(host_address=local_stack.endpoints.sidecar, logger=sdk_logger())
    worker.add_orchestrator(notebook_orchestration)
    worker.add_activity(notebook_echo)
    worker.use_work_item_filters()
    worker.start()
    try:
        with TaskHubGrpcClient(
            host_address=local_stack.endpoints.sidecar, logger=sdk_logger()
        ) as client:
            states = []
            for n in range(5):  # several: a worker that takes everything would get some
                instance_id = client.schedule_new_orchestration(
                    notebook_orchestration, input=f"{n}"
                )
                states.append(client.wait_for_orchestration_completion(instance_id, timeout=30))
    finally:
        worker.stop()
    failures = [s.failure_details.message for s in states if s.failure_details]
    assert not failures, (
        f"Another worker took work items it cannot run ({failures[0]!r}). "
        "The sample worker must declare what it handles: "
        "durable_helpers.local.samples.build_worker should call worker.use_work_item_filters()."
    )
    assert [s.serialized_output for s in states] == [f'"{n}"' for n in range(5)]


def test_queue_depths_can_be_read(local_stack: LocalStack) -> None:
    """06_your_task_hub shows the control and work-item queue depths (also when all are empty)."""
    queues = TaskHub(local_stack.endpoints.connection, hub=local_stack.endpoints.hub).queues()
    assert {"Queue", "Kind", "ApproximateMessageCount", "OldestMessageAge"} <= set(queues)
