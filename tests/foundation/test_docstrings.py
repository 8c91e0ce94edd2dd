"""Every docstring example in durable_helpers runs (those needing a live service say +SKIP)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import durable_helpers

MODULES = sorted(
    info.name for info in pkgutil.walk_packages(durable_helpers.__path__, prefix="durable_helpers.")
)


def test_every_module_is_found() -> None:
    assert {"durable_helpers.schema", "durable_helpers.local.sidecar.engine"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
