"""The sidecar as a child process, for the tests that kill it with ``kill -9``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parents[2]


def start_sidecar(hub: str, port: int, connection: str, log: Path, *extra: str) -> subprocess.Popen:
    """``python -m durable_helpers.local.serve`` on ``port`` (``extra``: more of its options),
    its output appended to ``log``; returns once it answers (at most 30 s)."""
    env = {**os.environ, "AzureWebJobsStorage": connection}
    command = [sys.executable, "-m", "durable_helpers.local.serve", "--hub", hub]
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [*command, "--port", str(port), *extra],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        grpc.channel_ready_future(channel).result(timeout=30)
    finally:
        channel.close()
    return proc
