"""The soak's short version: 150 orders, the worker killed every 8 s, the sidecar killed once."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from soak import soak


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_short_soak_ends_every_order_where_the_workload_says(tmp_path):
    outcome = soak(tmp_path, 150, rate=10, kill_worker_every=8, timeout=150, stuck=3)
    assert outcome.worker_kills >= 2 and outcome.sidecar_kills == 1, outcome.summary()
    assert not outcome.wrong and not outcome.torn, outcome.summary()
