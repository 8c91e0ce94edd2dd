"""Timers: messages that become visible later (durable timers, scheduled starts).

Owns the heap of messages whose ``visible_at`` is in the future and the thread that hands each
to the inbox when its time comes. Terminating an instance whose start is scheduled later
releases that start at once (``release_delayed_start``), so the termination has something to end.

May call: the inbox (``deliver``). Every method expects the engine's lock held; the thread
takes it itself and waits on a condition of its own on that lock (woken when a timer is added
or the engine stops).
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from durable_helpers.local.sidecar.state import OMsg

if TYPE_CHECKING:
    from durable_helpers.local.sidecar.engine import Engine


class Timers:
    """Messages waiting for their visibility time (lock held)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.heap: list[tuple[float, int, OMsg]] = []
        # Its own condition on the engine's lock: the timer thread wakes for a new timer or the
        # engine stopping, not for every change the streams and waiters are told of.
        self.cv = threading.Condition(engine.lock)
        self._thread = threading.Thread(target=self._loop, name="timers", daemon=True)

    def start(self) -> None:
        """Start the thread that fires timers (once, after recovery)."""
        self._thread.start()

    def add(self, msg: OMsg) -> None:
        """Hold ``msg`` until its ``visible_at`` (lock held)."""
        heapq.heappush(self.heap, (msg.visible_at, msg.seq, msg))
        self.cv.notify()

    def messages(self) -> Iterator[OMsg]:
        """The waiting messages, in no particular order (lock held)."""
        return (m for _, _, m in self.heap)

    def release_delayed_start(self, instance_id: str) -> None:
        """Terminating an instance whose start is scheduled later: start it now (lock held)."""
        found = [
            t
            for t in self.heap
            if t[2].instance_id == instance_id and t[2].kind == "executionStarted"
        ]
        if not found:
            return
        self.heap = [t for t in self.heap if t not in found]
        heapq.heapify(self.heap)
        for _, _, m in found:
            m.visible_at = 0.0
            self.engine.inbox.deliver(m)

    def _loop(self) -> None:
        engine = self.engine
        with engine.lock:
            while not engine.stopping:
                now = time.time()
                while self.heap and self.heap[0][0] <= now:
                    _, _, msg = heapq.heappop(self.heap)
                    msg.visible_at = 0.0
                    engine.inbox.deliver(msg)
                timeout = min(self.heap[0][0] - now, 1.0) if self.heap else 1.0
                self.cv.wait(max(timeout, 0.001))
