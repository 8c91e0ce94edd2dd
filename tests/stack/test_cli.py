"""`python -m durable_helpers.local up | status | down` from a subprocess, as a user runs it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import httpx
import pytest

from durable_helpers import TaskHub
from durable_helpers.local.ports import free_ports

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "durable_helpers.local", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=PROJECT_ROOT,
    )


def _pids(data_dir: Path) -> list[int]:
    state = json.loads((data_dir / "stack.json").read_text())
    return [s["pid"] for s in state["services"].values() if s["owned"] and s["pid"]]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def _wait_dead(pids: list[int], timeout: float = 15) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


def _has_local_task_hub() -> bool:
    try:
        from durable_helpers.local.serve import serve  # noqa: F401
        from durable_helpers.local.sidecar import LocalTaskHub  # noqa: F401
    except ImportError:
        return False
    return True


BACKENDS = [
    "memory",
    pytest.param(
        "taskhub",
        marks=pytest.mark.skipif(
            not _has_local_task_hub(), reason="durable_helpers.local.serve is not there yet"
        ),
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_up_status_down(tmp_path, df, backend):
    data_dir = tmp_path / "hub"
    sidecar, startnew, http, *azurite = free_ports(6)
    args = [
        "--data-dir",
        str(data_dir),
        "--backend",
        backend,
        "--sidecar-port",
        str(sidecar),
        "--startnew-port",
        str(startnew),
        "--http-port",
        str(http),
        "--hub",
        "CliHub",
        "--azurite-ports",
        ",".join(map(str, azurite)),
        "--in-memory",
        "--timeout",
        "60",
    ]
    first = _cli("up", *args)
    try:
        assert first.returncode == 0, first.stderr + first.stdout
        out = first.stdout
        assert f"127.0.0.1:{sidecar}" in out and f"127.0.0.1:{startnew}" in out
        assert f"http://127.0.0.1:{http}/runtime/webhooks/durabletask" in out
        assert "'CliHub'" in out and "sidecar.log" in out
        if backend == "taskhub":  # the printed connection string (Azurite's public one) works
            printed = out.split('AzureWebJobsStorage="', 1)[1].split('"', 1)[0]
            assert TaskHub(printed, hub="CliHub").instances().empty
        pids = _pids(data_dir)
        assert len(pids) == (5 if backend == "taskhub" else 4)

        again = _cli("up", *args)
        assert again.returncode == 0, again.stderr
        assert "already running" in again.stdout
        assert _pids(data_dir) == pids

        status = _cli("status", "--data-dir", str(data_dir))
        assert status.returncode == 0
        for name in ("sidecar", "gateway", "worker", "jsworker"):
            assert str(data_dir / "logs" / f"{name}.log") in status.stdout
        assert "running, pid" in status.stdout

        # Crashed workers: status says so, and the next 'up' restarts only those.
        state = json.loads((data_dir / "stack.json").read_text())
        crashed_pids = [state["services"][name]["pid"] for name in ("worker", "jsworker")]
        for pid in crashed_pids:
            os.kill(pid, signal.SIGKILL)
        assert _wait_dead(crashed_pids) == []
        crashed = _cli("status", "--data-dir", str(data_dir))
        assert crashed.returncode == 3 and crashed.stdout.count("STOPPED") == 2
        repaired = _cli("up", *args)
        assert repaired.returncode == 0, repaired.stderr
        new_pids = _pids(data_dir)
        assert not set(crashed_pids) & set(new_pids)
        assert set(pids) - set(crashed_pids) <= set(new_pids)
        assert len(new_pids) == len(pids)
        pids = new_pids

        # The prototype's client against the started stack, then its status URL over HTTP.
        with grpc.insecure_channel(f"localhost:{startnew}") as channel:
            reply = df.DurableTaskServiceStub(channel).StartNew(
                df.NewDurableTaskRequest(functionName="HelloSequence"), timeout=20
            )
        assert "taskHub=CliHub" in reply.StatusQueryGetUri
        deadline = time.monotonic() + 30
        while (response := httpx.get(reply.StatusQueryGetUri, timeout=10)).status_code != 200:
            assert time.monotonic() < deadline, response.text
            time.sleep(0.2)
        assert response.json()["output"] == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
        # The prototype's own orchestrator runs on the JavaScript worker the stack started.
        with grpc.insecure_channel(f"localhost:{startnew}") as channel:
            reply = df.DurableTaskServiceStub(channel).StartNew(
                df.NewDurableTaskRequest(functionName="DurableFunctionsOrchestratorJS"), timeout=20
            )
        deadline = time.monotonic() + 30
        while (response := httpx.get(reply.StatusQueryGetUri, timeout=10)).status_code != 200:
            assert time.monotonic() < deadline, response.text
            time.sleep(0.2)
        assert response.json()["name"] == "DurableFunctionsOrchestratorJS"
        assert response.json()["output"] == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    finally:
        stopped = _cli("down", "--data-dir", str(data_dir))
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped" in stopped.stdout
    assert _wait_dead(pids) == []
    assert not (data_dir / "stack.json").exists()
    after = _cli("status", "--data-dir", str(data_dir))
    assert after.returncode == 3
    assert "not running" in after.stdout
    assert "Nothing to stop" in _cli("down", "--data-dir", str(data_dir)).stdout


@pytest.mark.slow
def test_port_taken_is_a_clear_error_and_leaves_nothing_running(tmp_path):
    data_dir = tmp_path / "hub"
    sidecar, startnew, http = free_ports(3)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", http))
        blocker.listen()
        started = time.monotonic()
        result = _cli(
            "up",
            "--data-dir",
            str(data_dir),
            "--backend",
            "memory",
            "--sidecar-port",
            str(sidecar),
            "--startnew-port",
            str(startnew),
            "--http-port",
            str(http),
            timeout=60,
        )
        elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert f"Port {http}" in result.stderr and "taken" in result.stderr
    assert "--http-port" in result.stderr
    assert elapsed < 30
    assert not (data_dir / "stack.json").exists()
    # The sidecar it had started is gone again.
    with socket.socket() as probe:
        probe.settimeout(1)
        assert probe.connect_ex(("127.0.0.1", sidecar)) != 0


def test_bad_options_are_reported(tmp_path):
    bad_hub = _cli("up", "--data-dir", str(tmp_path), "--hub", "no-dashes")
    assert bad_hub.returncode == 2 and "Invalid task hub name" in bad_hub.stderr
    bad_ports = _cli("up", "--data-dir", str(tmp_path), "--azurite-ports", "1,2")
    assert bad_ports.returncode == 2 and "three ports" in bad_ports.stderr
    for timeout in ("0", "nan", "-5", "inf"):
        bad_timeout = _cli("up", "--data-dir", str(tmp_path), "--timeout", timeout)
        assert bad_timeout.returncode == 2 and "seconds above 0" in bad_timeout.stderr
    shared = _cli("up", "--data-dir", str(tmp_path), "--http-port", "4001")
    assert shared.returncode == 1, shared.stderr
    assert "4001 is given twice" in shared.stderr and "--sidecar-port" in shared.stderr
    assert not (tmp_path / "stack.json").exists()


def test_missing_node_is_a_clear_error(tmp_path):
    """Without Node.js the JavaScript sample worker cannot run: 'up' says what to do."""
    env = {**os.environ, "PATH": str(tmp_path / "empty-bin")}
    sidecar, startnew, http = free_ports(3)
    ports = ["--sidecar-port", str(sidecar), "--startnew-port", str(startnew)]
    ports += ["--http-port", str(http)]
    result = subprocess.run(
        [sys.executable, "-m", "durable_helpers.local", "up", "--data-dir", str(tmp_path),
         "--backend", "memory", *ports],
        capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT, env=env,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Node.js is missing" in result.stderr and "--no-samples" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "stack.json").exists()


def test_damaged_state_file_is_a_clear_error(tmp_path):
    (tmp_path / "stack.json").write_text('{"config": {"hub": "H"}, "services": {"az')
    for command in ("status", "down", "up"):
        result = _cli(command, "--data-dir", str(tmp_path), timeout=60)
        assert result.returncode == 1, (command, result.stdout, result.stderr)
        assert "damaged" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.skipif(not _has_local_task_hub(), reason="durable_helpers.local.serve is not there")
def test_sigterm_while_starting_stops_what_was_started(tmp_path):
    data_dir = tmp_path / "hub"
    blob, queue, table, sidecar, startnew, http = free_ports(6)
    up = subprocess.Popen(
        [sys.executable, "-m", "durable_helpers.local", "up", "--data-dir", str(data_dir),
         "--azurite-ports", f"{blob},{queue},{table}", "--sidecar-port", str(sidecar),
         "--startnew-port", str(startnew), "--http-port", str(http)],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        pids: list[int] = []
        while time.monotonic() < deadline and up.poll() is None:
            try:
                pids = _pids(data_dir)
            except (FileNotFoundError, ValueError):
                pids = []
            if pids:  # Azurite (at least) is running: interrupt the start now
                break
            time.sleep(0.05)
        assert pids, "up never recorded a started service"
        up.send_signal(signal.SIGTERM)
        out, _ = up.communicate(timeout=60)
    finally:
        if up.poll() is None:
            up.kill()
    assert up.returncode != 0, out
    left = _wait_dead(pids)
    for pid in left:  # do not leak them into the rest of the run
        os.kill(pid, signal.SIGKILL)
    assert left == [], "SIGTERM during 'up' left processes running"
    assert not (data_dir / "stack.json").exists()


def test_samples_command_lists_the_table():
    result = _cli("samples")
    assert result.returncode == 0
    assert "HelloSequence" in result.stdout and "ApprovalWorkflow" in result.stdout


def _leave_time_wait_on(port: int) -> None:
    """Serve one connection on ``port`` and close it server side first, as a stopped server does."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            served, _ = listener.accept()
            served.close()
            assert client.recv(1) == b""  # the server's FIN arrived; its side now waits


@pytest.mark.slow
@pytest.mark.skipif(not _has_local_task_hub(), reason="durable_helpers.local.serve is not there")
def test_state_survives_down_and_up_with_azurite_on_disk(tmp_path):
    data_dir = tmp_path / "hub"
    sidecar, startnew, http, *azurite = free_ports(6)
    args = ["--data-dir", str(data_dir), "--sidecar-port", str(sidecar),
            "--startnew-port", str(startnew), "--http-port", str(http),
            "--azurite-ports", ",".join(map(str, azurite))]  # fmt: skip
    base = f"http://127.0.0.1:{http}/runtime/webhooks/durabletask"

    def wait(url: str, predicate, timeout: float = 30) -> httpx.Response:
        deadline = time.monotonic() + timeout
        while not predicate(response := httpx.get(url, timeout=10)):
            assert time.monotonic() < deadline, response.text
            time.sleep(0.2)
        return response

    assert (first := _cli("up", *args)).returncode == 0, first.stderr
    try:
        hello = httpx.post(f"{base}/orchestrators/HelloSequence", timeout=10).json()
        wait(hello["statusQueryGetUri"], lambda r: r.status_code == 200)
        approval = httpx.post(
            f"{base}/orchestrators/ApprovalWorkflow", json={"timeout_seconds": 600}, timeout=10
        ).json()
        wait(
            approval["statusQueryGetUri"],
            lambda r: r.status_code == 202 and r.json()["runtimeStatus"] == "Running",
        )
        pids = _pids(data_dir)
        assert _cli("down", "--data-dir", str(data_dir)).returncode == 0
        assert _wait_dead(pids) == []
        # A server that just stopped leaves its closed connections in TIME_WAIT for a minute;
        # make sure of one on the HTTP port: the port is still free to listen on.
        _leave_time_wait_on(http)

        assert (second := _cli("up", *args)).returncode == 0, second.stderr
        done = httpx.get(hello["statusQueryGetUri"], timeout=10)
        assert done.status_code == 200
        assert done.json()["output"] == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
        running = httpx.get(approval["statusQueryGetUri"], timeout=10)
        assert running.status_code == 202 and running.json()["runtimeStatus"] == "Running"
        event_url = approval["sendEventPostUri"].replace("{eventName}", "Approval")
        assert httpx.post(event_url, json={"approved": True}, timeout=10).status_code == 202
        finished = wait(approval["statusQueryGetUri"], lambda r: r.status_code == 200)
        assert finished.json()["output"]["outcome"] == "Approved"
    finally:
        _cli("down", "--data-dir", str(data_dir))
