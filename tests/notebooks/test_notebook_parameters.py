"""06_your_task_hub is parameterised: its `parameters` cell is plain settings, and papermill can
run it headless with other values (the way a user points it at a real storage account)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import nbformat
import pytest
from durabletask.client import TaskHubGrpcClient
from nbharness import CELL_TIMEOUT, NOTEBOOKS_DIR, LocalStack, failing_cell_report

from durable_helpers.notebook_env import sdk_logger
from durable_helpers.storage import AZURITE_KEY, CONNECTION_ENV_VAR

NOTEBOOK = NOTEBOOKS_DIR / "06_your_task_hub.ipynb"
EXPECTED_PARAMETERS = {
    "connection_setting": str,
    "hub_name": str,
    "hours": float,
    "until": str,
    "use_azure_login": bool,
    "stuck_after": str,
    "max_instances": int,
}


def parameters_cell() -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "06 needs exactly one cell tagged 'parameters'"
    return tagged[0]


def parse_parameters(source: str) -> dict[str, object]:
    """The cell's assignments as {name: literal value}; anything else fails the test."""
    values: dict[str, object] = {}
    for node in ast.parse(source).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1, ast.unparse(node)
        target = node.targets[0]
        assert isinstance(target, ast.Name), ast.unparse(node)
        values[target.id] = ast.literal_eval(node.value)
    return values


def test_parameters_cell_is_plain_settings() -> None:
    values = parse_parameters(parameters_cell().source)
    assert set(values) == set(EXPECTED_PARAMETERS)
    for name, kind in EXPECTED_PARAMETERS.items():
        assert isinstance(values[name], kind), (name, values[name])
    # The connection comes from an environment variable: the cell holds its NAME, not a secret.
    assert values["connection_setting"] == CONNECTION_ENV_VAR
    assert values["hub_name"] == "DurableFunctionsHub"


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_papermill_runs_it_with_other_parameters(
    local_stack: LocalStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import papermill

    # Something to find: one completed and one failed instance.
    with TaskHubGrpcClient(host_address=local_stack.endpoints.sidecar, logger=sdk_logger()) as c:
        ids = [
            c.schedule_new_orchestration("HelloSequence"),
            c.schedule_new_orchestration("FailingOrchestration", input={"failures": 5}),
        ]
        for instance_id in ids:
            c.wait_for_orchestration_completion(instance_id, timeout=30)

    # The kernel inherits this process's environment: the connection only under another name.
    for name, value in local_stack.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("NOTEBOOK_TEST_STORAGE", local_stack.endpoints.connection)
    monkeypatch.delenv(CONNECTION_ENV_VAR)
    output = tmp_path / "06-papermill.ipynb"
    try:
        papermill.execute_notebook(
            str(NOTEBOOK),
            str(output),
            parameters={
                "connection_setting": "NOTEBOOK_TEST_STORAGE",
                "hub_name": local_stack.endpoints.hub,
                "hours": 1.0,
                "stuck_after": "2s",
                "max_instances": 500,
            },
            kernel_name="python3",
            cwd=str(NOTEBOOKS_DIR),
            execution_timeout=CELL_TIMEOUT,
            progress_bar=False,
        )
    except papermill.PapermillExecutionError:
        executed = nbformat.read(output, as_version=4)
        pytest.fail(f"papermill run failed in {failing_cell_report(executed)}\n{output}")

    executed = nbformat.read(output, as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "NOTEBOOK_TEST_STORAGE" in injected[0].source
    text = json.dumps([c.get("outputs", []) for c in executed.cells])
    assert "is not set" not in text, "the notebook fell back to Azurite instead of the parameter"
    assert "instances created between" in text
    assert ids[1] in text, "the failed instance should be listed"
    assert AZURITE_KEY not in text and "AccountKey=" not in text
