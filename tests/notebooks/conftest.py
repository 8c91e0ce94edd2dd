"""Fixtures of the notebook tests: one local task hub for the session, a place for failures."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from nbharness import LocalStack, python3_kernel_program, start_stack, stop_stack


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The whole local task hub on free ports, in-memory Azurite, a temporary data folder."""
    data_dir = tmp_path_factory.mktemp("local-taskhub")
    stack = start_stack(data_dir)
    try:
        yield stack
    finally:
        stop_stack(data_dir, stack.log)


@pytest.fixture(scope="session")
def err_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where executed copies of failing notebooks (``<name>-err.ipynb``) are saved."""
    return tmp_path_factory.mktemp("notebook-errors")


@pytest.fixture(scope="session")
def notebook_timings() -> Iterator[dict[str, float]]:
    """Each notebook's run time in this session; the total is printed at the end."""
    timings: dict[str, float] = {}
    yield timings
    if timings:
        lines = [f"  {name}: {seconds:6.1f} s" for name, seconds in timings.items()]
        total = sum(timings.values())
        print("\nNotebook run times:\n" + "\n".join(lines) + f"\n  total: {total:6.1f} s")


@pytest.fixture(scope="session")
def venv_kernel() -> str:
    """Fail early if the 'python3' kernel would start another interpreter than this venv's."""
    program = python3_kernel_program()
    assert Path(program).resolve() == Path(sys.executable).resolve(), (
        f"kernel 'python3' runs {program}, not {sys.executable}; a globally registered "
        "kernel spec shadows the venv's (see 'jupyter kernelspec list')"
    )
    return program
