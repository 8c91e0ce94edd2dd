"""Every notebook runs headless, top to bottom, against the local task hub."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from nbharness import (
    NOTEBOOK_TIMEOUT,
    NOTEBOOKS,
    TOTAL_BUDGET,
    LocalStack,
    execute_notebook,
    output_text,
)

from durable_helpers.storage import AZURITE_KEY

#: What a notebook's text says happens, as patterns its outputs must show (a story that runs
#: without error but shows something else fails here).
STORY: dict[str, tuple[str, ...]] = {
    # the transfer saw 100 and left 70; the deposit that waited ran after it
    "03_patterns": (r'"from_balance": 70\.0', r"\{'alice': 75\.0, 'bob': 50\.0\}"),
    # the lock outlived its terminated owner, stuck found it, the clean released it
    "07_entities": (
        r"@counter@stock orphaned-lock: locked by \w+, which is Terminated",
        r"orphaned locks released: [1-9]",
        r"retired has a row: False",
    ),
}


@pytest.mark.slow
@pytest.mark.timeout(NOTEBOOK_TIMEOUT + 60)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(
    path: Path,
    local_stack: LocalStack,
    err_dir: Path,
    notebook_timings: dict[str, float],
    venv_kernel: str,
) -> None:
    result = execute_notebook(path, local_stack.env(), err_dir)
    notebook_timings[path.stem] = result.seconds
    slow = [(i, round(s)) for i, s in enumerate(result.cell_seconds) if s > 60]
    assert not slow, f"cells over a minute (index, seconds): {slow}"
    outputs = json.dumps([cell.get("outputs", []) for cell in result.notebook.cells])
    assert AZURITE_KEY not in outputs and "AccountKey=" not in outputs, "a secret was printed"
    shown = output_text(result.notebook)
    missing = [pattern for pattern in STORY.get(path.stem, ()) if not re.search(pattern, shown)]
    assert not missing, f"{path.name} did not show what its text says: {missing}"


@pytest.mark.slow
def test_whole_set_within_budget(notebook_timings: dict[str, float]) -> None:
    if len(notebook_timings) < len(NOTEBOOKS):
        pytest.skip("only meaningful when every notebook ran in this session")
    total = sum(notebook_timings.values())
    assert total < TOTAL_BUDGET, f"notebooks took {total:.0f} s in all: {notebook_timings}"
