"""The explorer in a real JupyterLab, driven in headless Chromium, on the local task hub.

A notebook (made here) starts a HelloSequence and a waiting ApprovalWorkflow through the real SDK
client and shows ``explore(hub, manage=client)``. The tests click as a user would: pick the
status Completed, open the HelloSequence instance, read its history rows, see its sequence
diagram rendered by JupyterLab's Mermaid as an SVG; and press Terminate on the waiting instance,
confirm, and see it Terminated. Every step leaves a screenshot; a failure prints where they are.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbharness import LocalStack
from test_notebook_browser import CHROMIUM, CHROMIUM_ARGS, JUPYTER, _jupyterlab, _need_chromium

from durable_helpers import TaskHub

pytestmark = [pytest.mark.browser, pytest.mark.slow]
WAIT_MS = 60_000

SETUP = """\
from durabletask.client import TaskHubGrpcClient

from durable_helpers import TaskHub, explore, notebook_env

env = notebook_env.endpoints()
env.require()
hub = TaskHub(env.connection, hub=env.hub)
client = TaskHubGrpcClient(host_address=env.sidecar)
client.schedule_new_orchestration("HelloSequence", instance_id={hello!r})
client.wait_for_orchestration_completion({hello!r}, timeout=45)
client.schedule_new_orchestration(
    "ApprovalWorkflow", input={{"timeout_seconds": 600}}, instance_id={waiting!r}
)
client.wait_for_orchestration_start({waiting!r}, timeout=45)
print("ready")
"""


#: Where a failing test's screenshots are copied (pytest's own tmp folders rotate); with
#: DURABLE_HELPERS_KEEP_SCREENSHOTS=1 a passing test's too, to look at the explorer.
KEPT = Path(tempfile.gettempdir()) / "durable-helpers-browser-failures"
KEEP_ALWAYS = os.environ.get("DURABLE_HELPERS_KEEP_SCREENSHOTS") == "1"


class Steps:
    """Screenshots of each step, in ``folder``; `failed` keeps them and says where."""

    def __init__(self, page, folder: Path) -> None:
        self.page, self.folder, self.count = page, folder, 0
        folder.mkdir(parents=True, exist_ok=True)

    def failed(self, name: str) -> None:
        self.shot("failure")
        self.keep(name)

    def keep(self, name: str) -> None:
        kept = KEPT / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
        shutil.copytree(self.folder, kept, dirs_exist_ok=True)
        print(f"screenshots of every step: {kept}")

    def shot(self, name: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def explorer_page(local_stack: LocalStack, tmp_path: Path) -> Iterator[tuple]:
    """JupyterLab with the explorer notebook run; yields (page, steps, ids)."""
    _need_chromium()
    from playwright.sync_api import expect, sync_playwright

    ids = {"hello": f"hello-{uuid.uuid4().hex[:8]}", "waiting": f"wait-{uuid.uuid4().hex[:8]}"}
    work = tmp_path / "notebooks"
    work.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nb.cells = [
        nbformat.v4.new_code_cell(SETUP.format(**ids)),
        nbformat.v4.new_code_cell("view = explore(hub, manage=client, page_size=50)\nview"),
    ]
    nbformat.write(nb, work / "explorer.ipynb")
    shots = tmp_path / "screenshots"
    with _jupyterlab(work, local_stack.env(), tmp_path) as url, sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        steps = Steps(page, shots)
        try:
            page.goto(url.format(name="explorer.ipynb"), timeout=WAIT_MS)
            page.wait_for_selector(
                ".jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status='idle']",
                timeout=WAIT_MS,
            )
            select = page.locator(".jp-Dialog button", has_text=re.compile(r"^Select$"))
            with contextlib.suppress(Exception):  # JupyterLab may ask which kernel to start
                select.click(timeout=5_000)
            started = page.locator(".jp-InputArea-prompt", has_text=re.compile(r"\[(\*|\d+)\]"))
            for _attempt in range(3):  # a click while the kernel attaches runs nothing
                page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
                page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
                try:
                    expect(started.first).to_be_visible(timeout=10_000)
                    break
                except AssertionError:
                    continue
            expect(page.locator(".dh-explorer")).to_be_visible(timeout=WAIT_MS)
            expect(page.locator(".dh-status-line")).to_contain_text(
                "instances, read at", timeout=WAIT_MS
            )
            steps.shot("explorer-open")
            yield page, steps, ids
        except Exception:
            steps.failed("explorer-setup")
            print(f"server log: {tmp_path / 'jupyterlab.log'}")
            raise
        finally:
            browser.close()


def _svg_of(img_src: str) -> str:
    assert img_src.startswith("data:image/svg+xml"), img_src[:80]
    return urllib.parse.unquote(img_src.split(",", 1)[1])


@pytest.mark.timeout(300)
def test_pick_completed_open_hello_see_rows_and_diagram(explorer_page) -> None:
    from playwright.sync_api import expect

    page, steps, ids = explorer_page
    try:
        page.locator("button.dh-status-Completed").click()
        hello = page.locator("button.dh-open", has_text=ids["hello"])
        expect(hello).to_be_visible(timeout=WAIT_MS)
        expect(page.locator("button.dh-open", has_text=ids["waiting"])).to_have_count(0)
        steps.shot("completed-picked")
        hello.click()
        tabs = page.locator(".dh-tabs")
        expect(tabs).to_be_visible(timeout=WAIT_MS)
        expect(page.locator(".dh-detail")).to_contain_text(ids["hello"])
        steps.shot("instance-summary")
        tabs.locator(".lm-TabBar-tab", has_text="History").click()
        history = page.locator(".dh-history")
        expect(history).to_contain_text("TaskScheduled", timeout=WAIT_MS)
        expect(history).to_contain_text("Hello London!")
        assert history.locator("tbody tr").count() == 16  # the seed's 16 rows
        steps.shot("history-rows")
        tabs.locator(".lm-TabBar-tab", has_text="Sequence diagram").click()
        img = page.locator(".dh-sequence .jp-RenderedMermaid img")
        expect(img).to_be_visible(timeout=WAIT_MS)
        svg = _svg_of(img.get_attribute("src") or "")
        steps.shot("sequence-diagram")
        if KEEP_ALWAYS:
            steps.keep("explorer-passed")
        assert 'aria-roledescription="sequence"' in svg
        assert len(re.findall(r'class="messageText"', svg)) == 6  # 3 calls, 3 results
        for city in ("Tokyo", "Seattle", "London"):
            assert f"Hello {city}!" in svg
    except Exception:
        steps.failed("explorer-" + ids["hello"])
        raise


@pytest.mark.timeout(300)
def test_terminate_a_waiting_instance_with_confirmation(explorer_page, local_stack) -> None:
    from playwright.sync_api import expect

    page, steps, ids = explorer_page
    waiting = ids["waiting"]
    try:
        page.locator("button.dh-status-Running").click()
        row = page.locator("button.dh-open", has_text=waiting)
        expect(row).to_be_visible(timeout=WAIT_MS)
        row.click()
        expect(page.locator(".dh-detail")).to_contain_text("Running", timeout=WAIT_MS)
        steps.shot("waiting-open")
        page.locator("button.dh-action-terminate").click()
        question = page.locator(".dh-detail", has_text=f"Terminate instance '{waiting}'?")
        expect(question).to_be_visible(timeout=10_000)
        steps.shot("confirm-asked")
        hub = TaskHub(local_stack.endpoints.connection, hub=local_stack.endpoints.hub)
        assert str(hub.instance(waiting)["RuntimeStatus"]) == "Running"  # nothing before Confirm
        page.locator("button.dh-confirm").click()
        expect(page.locator(".dh-action-result")).to_contain_text(
            f"Terminated '{waiting}'.", timeout=WAIT_MS
        )
        title = page.locator(".dh-detail h4")
        expect(title).to_contain_text("Terminated", timeout=WAIT_MS)
        steps.shot("terminated")
        if KEEP_ALWAYS:
            steps.keep("explorer-terminate-passed")
        assert str(hub.instance(waiting)["RuntimeStatus"]) == "Terminated"
    except Exception:
        steps.failed("explorer-" + ids["hello"])
        raise


def test_widgets_extension_is_installed() -> None:
    """ipywidgets' JupyterLab extension comes with the project's own dependencies."""
    listed = subprocess.run(
        [str(JUPYTER), "labextension", "list"], capture_output=True, text=True, timeout=60
    )
    text = re.sub(r"\x1b\[[0-9;]*m", "", listed.stdout + listed.stderr)
    assert re.search(r"@jupyter-widgets/jupyterlab-manager v\S+ enabled", text), text
    pyproject = Path(__file__).parents[2].joinpath("pyproject.toml").read_text()
    assert re.search(r'"jupyterlab_widgets>=', pyproject), "pyproject names jupyterlab_widgets"
