"""The committed notebooks carry no outputs, no execution counts and clean metadata."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from durable_helpers.storage import AZURITE_KEY

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"
EXPECTED = [
    "01_quickstart",
    "02_history_as_dataframes",
    "03_patterns",
    "04_investigation",
    "05_management",
    "06_your_task_hub",
    "07_entities",
    "08_safe_deployments",
    "09_big_task_hubs",
]
COMMITTED = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))


def test_the_numbered_notebooks_are_there() -> None:
    assert [p.stem for p in COMMITTED if p.stem[:2].isdigit()] == EXPECTED


@pytest.mark.parametrize("path", COMMITTED, ids=[p.stem for p in COMMITTED])
def test_committed_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [
        index
        for index, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count"))
    ]
    assert not dirty, (
        f"{path.name}: cells {dirty} have outputs or execution counts; clear them before "
        "committing (Jupyter: Edit > Clear Outputs of All Cells; or "
        "'jupyter nbconvert --clear-output --inplace')"
    )
    run_metadata = [
        index
        for index, cell in enumerate(nb.cells)
        if {"execution", "collapsed", "scrolled"} & set(cell.get("metadata", {}))
    ]
    assert not run_metadata, f"{path.name}: cells {run_metadata} carry run metadata"


@pytest.mark.parametrize("path", COMMITTED, ids=[p.stem for p in COMMITTED])
def test_metadata_is_clean(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    assert set(nb.metadata) <= {"kernelspec", "language_info"}, sorted(nb.metadata)
    assert nb.cells[0].cell_type == "markdown", "a notebook opens with a story, not code"


@pytest.mark.parametrize("path", COMMITTED, ids=[p.stem for p in COMMITTED])
def test_no_secrets_in_sources(path: Path) -> None:
    text = json.dumps(nbformat.read(path, as_version=4))
    assert AZURITE_KEY not in text
    assert "AccountKey=" not in text
    assert "SharedAccessSignature=" not in text
