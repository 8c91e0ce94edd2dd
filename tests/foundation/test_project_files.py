"""The project's own files agree with each other: environment.yml, pyproject, lint, README."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _environment() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text())


def test_environment_installs_the_project_itself() -> None:
    env = _environment()
    assert "conda-forge" in env["channels"]
    deps = env["dependencies"]
    assert "pip" in deps, "conda warns when pip is used without being listed"
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    assert any(re.fullmatch(r"-e \.\[[a-z,]*notebooks[a-z,]*\]", line) for line in pip_section)


def test_environment_does_not_duplicate_python_dependencies() -> None:
    """Only python, nodejs and pip come from conda; every Python package comes via pyproject."""
    conda_packages = {
        re.split(r"[=<>!]", d)[0].strip().lower()
        for d in _environment()["dependencies"]
        if isinstance(d, str)
    }
    assert conda_packages == {"python", "nodejs", "pip"}
    pip_section = next(
        d["pip"] for d in _environment()["dependencies"] if isinstance(d, dict) and "pip" in d
    )
    assert all(line.startswith("-e .") for line in pip_section)


def test_environment_python_satisfies_requires_python() -> None:
    python = next(
        d for d in _environment()["dependencies"] if isinstance(d, str) and d.startswith("python")
    )
    version = tuple(int(x) for x in python.split("=")[1].split("."))
    minimum = re.search(r">=\s*(\d+)\.(\d+)", _pyproject()["project"]["requires-python"])
    assert minimum is not None
    assert version >= (int(minimum.group(1)), int(minimum.group(2)))


def test_durabletask_is_pinned_exactly() -> None:
    """We import durabletask's generated protocol modules: a new release may change them."""
    deps = _pyproject()["project"]["dependencies"]
    assert any(re.fullmatch(r"durabletask==\d+\.\d+\.\d+", d) for d in deps)


def test_azurite_is_pinned_exactly() -> None:
    import json

    package = json.loads((ROOT / "package.json").read_text())
    assert re.fullmatch(r"\d+\.\d+\.\d+", package["dependencies"]["azurite"])
    lock = json.loads((ROOT / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/azurite"]["version"] == package["dependencies"]["azurite"]


def test_durabletask_js_is_pinned_exactly() -> None:
    """The JavaScript sample worker (workers/js) runs on the SDK version it was tried with."""
    import json

    package = json.loads((ROOT / "package.json").read_text())
    version = package["dependencies"]["@microsoft/durabletask-js"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    lock = json.loads((ROOT / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/@microsoft/durabletask-js"]["version"] == version


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme
    assert "make demo" in readme
    assert re.search(r"^make test$", ci, re.MULTILINE)


def test_ruff_lint_and_format_are_clean() -> None:
    ruff = [sys.executable, "-m", "ruff"]
    lint = subprocess.run([*ruff, "check", str(ROOT)], capture_output=True, text=True, timeout=120)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = subprocess.run(
        [*ruff, "format", "--check", str(ROOT)], capture_output=True, text=True, timeout=120
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_no_generated_stubs_are_committed() -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, timeout=30
    ).stdout.split()
    generated = [f for f in tracked if f.endswith(("_pb2.py", "_pb2_grpc.py", "_pb2.pyi"))]
    assert generated == []


def test_the_sidecar_starts_without_pandas() -> None:
    """The package exports load lazily: the local task hub's server needs no pandas/pyarrow."""
    probe = (
        "import sys, durable_helpers, durable_helpers.local.serve\n"
        "heavy = sorted(m for m in ('pandas', 'pyarrow', 'matplotlib') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
        "assert durable_helpers.TaskHub.__name__ == 'TaskHub'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
