"""`make lab`, the JupyterLab half of `make demo`, run exactly as the README tells a user to.

The other half (`local up`) has its own tests in tests/stack. This one catches what only the real
command line shows, e.g. Jupyter refusing to start as root on a container or CI machine.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from durable_helpers.local.ports import free_ports

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.skipif(
    not (PROJECT_ROOT / ".venv" / "bin" / "jupyter").exists(),
    reason="`make lab` serves from the project's .venv, which `make setup` creates",
)
def test_make_lab_serves_the_notebooks_on_localhost(tmp_path):
    port = free_ports(1)[0]
    token = secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    args = f"--no-browser --ServerApp.port_retries=0 --IdentityProvider.token={token}"
    log = tmp_path / "make-lab.log"
    with open(log, "wb") as out:
        make = subprocess.Popen(
            ["make", "--no-print-directory", "lab", f"JUPYTER_PORT={port}", f"JUPYTER_ARGS={args}"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        contents = _wait_for_json(f"http://127.0.0.1:{port}/api/contents?token={token}", make, log)
        names = {item["name"] for item in contents["content"]}
        assert "01_quickstart.ipynb" in names, names
    finally:
        os.killpg(make.pid, signal.SIGTERM)
        try:
            make.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(make.pid, signal.SIGKILL)
            make.wait(5)


def _wait_for_json(url: str, process: subprocess.Popen, log: Path, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"`make lab` exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return json.load(response)
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    pytest.fail(f"`make lab` did not answer in {timeout:.0f} s:\n{log.read_text()[-3000:]}")
