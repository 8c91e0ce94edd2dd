"""01_quickstart in a real JupyterLab, driven in headless Chromium: Run > Run All Cells.

Needs Debian's chromium at /usr/bin/chromium (``apt-get install chromium``; ``make test`` does it
as root). Skipped only when chromium is missing and CI is not set; on CI it must run.
Never runs ``playwright install``: Playwright drives the system's Chromium.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbharness import NOTEBOOKS_DIR, LocalStack

from durable_helpers.local.ports import free_ports

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
JUPYTER = Path(sys.executable).with_name("jupyter")
QUICKSTART = NOTEBOOKS_DIR / "01_quickstart.ipynb"
#: What the rendered last output of 01_quickstart must show.
EXPECTED_LAST_OUTPUT = re.compile(
    r"DurableFunctionsOrchestratorJS \w+: Completed\s+output: .*Hello London!.*\s+"
    r"rows that agree with the 2019 run: 16 of 16"
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _need_chromium() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("CI", "").lower() in {"", "0", "false", "no"}:
        pytest.skip(
            "the browser test needs Debian's chromium at /usr/bin/chromium "
            "('sudo apt-get install chromium', or 'make browser'); CI is not set, so skipped"
        )
    pytest.fail("CI is set but /usr/bin/chromium is missing: run 'make browser' in CI setup")


def _wait_for_http(url: str, timeout: float, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {process.returncode}; see {log}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"jupyter lab did not answer at {url.split('?')[0]} in {timeout:.0f} s")


@contextlib.contextmanager
def _jupyterlab(notebook_dir: Path, env: dict[str, str], home: Path) -> Iterator[str]:
    """Start JupyterLab on a free port with a random token; yield the base URL with token."""
    port = free_ports(1)[0]
    token = secrets.token_hex(16)
    settings = home / "lab-settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # Every cell in the DOM, so the last cell's output can be read without scrolling tricks.
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    apputils = home / "lab-settings" / "@jupyterlab" / "apputils-extension"
    apputils.mkdir(parents=True)
    (apputils / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    lab_env = {
        **env,
        "JUPYTERLAB_SETTINGS_DIR": str(home / "lab-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "lab-workspaces"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
    }
    log = home / "jupyterlab.log"
    with open(log, "wb") as out:
        command = [
            str(JUPYTER), "lab", "--no-browser",
            "--ip", "127.0.0.1", "--port", str(port),
            f"--IdentityProvider.token={token}",
            "--ServerApp.port_retries=0",
            "--ServerApp.terminals_enabled=False",
            "--LabApp.extension_manager=readonly",
            f"--notebook-dir={notebook_dir}",
        ]  # fmt: skip
        if os.geteuid() == 0:
            command.append("--allow-root")
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=lab_env,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for_http(f"{base}/api/status?token={token}", 60, process, log)
        yield f"{base}/lab/tree/{{name}}?token={token}"
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def run_all_in_jupyterlab(
    notebook: Path, env: dict[str, str], home: Path, *, timeout_s: float = 150
) -> tuple[str, str]:
    """Open ``notebook`` (a copy in ``home``) in JupyterLab, Run > Run All Cells, wait for the
    last code cell's output; return (its text, the whole notebook's text)."""
    from playwright.sync_api import expect, sync_playwright

    work = home / "notebooks"
    work.mkdir()
    shutil.copy(notebook, work / notebook.name)  # the browser's autosave must not touch git
    cells_in_file = nbformat.read(notebook, as_version=4).cells
    code_cells = sum(1 for c in cells_in_file if c.cell_type == "code")
    with _jupyterlab(work, env, home) as url_template, sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(url_template.format(name=notebook.name), timeout=60_000)
            # The notebook is open and its kernel is idle.
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
            page.wait_for_selector(
                ".jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status='idle']",
                timeout=60_000,
            )
            expect(page.locator(".jp-StatusBar-Widget", has_text="Idle").first).to_be_visible(
                timeout=60_000
            )
            cells = page.locator(".jp-NotebookPanel .jp-CodeCell")
            expect(cells).to_have_count(code_cells, timeout=10_000)
            started = cells.locator(".jp-InputArea-prompt", has_text=re.compile(r"\[(\*|\d+)\]"))
            for _attempt in range(3):
                # Run > Run All Cells. A click that lands while the kernel is still being
                # attached runs nothing (the prompts stay "[ ]"), so check that cells started.
                page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
                page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
                try:
                    expect(started.first).to_be_visible(timeout=10_000)
                    break
                except AssertionError:
                    continue
            last = cells.last
            prompt = last.locator(".jp-InputArea-prompt")
            expect(prompt).to_have_text(re.compile(r"\[\d+\]"), timeout=timeout_s * 1000)
            output = last.locator(".jp-OutputArea")
            whole = page.locator(".jp-NotebookPanel .jp-Notebook").inner_text()
            return output.inner_text(), whole
        except Exception:
            shot = home / "jupyterlab-failure.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot of the failure: {shot}; server log: {home / 'jupyterlab.log'}")
            raise
        finally:
            browser.close()


@pytest.fixture
def browser_home(tmp_path: Path) -> Path:
    return tmp_path


@pytest.mark.timeout(300)
def test_quickstart_in_jupyterlab(local_stack: LocalStack, browser_home: Path) -> None:
    _need_chromium()
    last_output, everything = run_all_in_jupyterlab(QUICKSTART, local_stack.env(), browser_home)
    assert "Traceback" not in everything, everything[-3000:]
    assert EXPECTED_LAST_OUTPUT.search(last_output), last_output[-2000:]


@pytest.mark.timeout(180)
def test_browser_harness_on_a_trivial_notebook(browser_home: Path) -> None:
    """The browser machinery itself, independent of the local task hub."""
    _need_chromium()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# trivial"),
        nbformat.v4.new_code_cell("import sys\nanswer = 6 * 7"),
        nbformat.v4.new_code_cell("print('answer', answer, 'from', sys.executable)"),
    ]
    path = browser_home / "trivial.ipynb"
    nbformat.write(nb, path)
    (browser_home / "src").mkdir()
    source = browser_home / "src" / "trivial.ipynb"
    path.rename(source)
    last_output, _ = run_all_in_jupyterlab(source, dict(os.environ), browser_home, timeout_s=60)
    assert "answer 42" in last_output
    assert str(Path(sys.executable).parent) in last_output.replace("\n", "")


def test_missing_chromium_skips_locally_but_fails_on_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium"):
        _need_chromium()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        _need_chromium()
