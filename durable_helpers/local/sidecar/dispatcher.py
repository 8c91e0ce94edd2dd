"""Work-item streams: hand each work item to exactly one connected worker, with health pings.

``stream_work_items`` is the body of the ``GetWorkItems`` server-streaming RPC: it registers
the worker, waits on the engine's condition variable (no polling) for work that matches the
worker's filters and concurrency limits, and sends a ``healthPing`` when it has been quiet for
:data:`HEALTH_PING_SECONDS`. When the stream ends (the worker stopped, crashed, or the
connection broke) the worker's unfinished items are handed to the other workers; their tokens
stay valid, so a late completion from the old worker is still accepted once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import durabletask.internal.orchestrator_service_pb2 as pb
import grpc

from durable_helpers.local.sidecar.engine import Engine

#: Seconds of silence after which a stream gets a healthPing (the SDK gives up after 120 s).
HEALTH_PING_SECONDS = 20.0


def stream_work_items(
    engine: Engine, request: pb.GetWorkItemsRequest, context: grpc.ServicerContext
) -> Iterator[pb.WorkItem]:
    """Yield work items for one worker until it disconnects or the server stops.

    Example:
        >>> # inside a servicer: return stream_work_items(engine, request, context)
    """
    stream = engine.open_stream(request)
    context.add_callback(lambda: engine.close_stream(stream))
    last_sent = time.monotonic()
    try:
        while True:
            with engine.cv:
                while True:
                    if stream.closed or engine.stopping or not context.is_active():
                        return
                    item = engine.next_work(stream)
                    if item is not None:
                        break
                    quiet = time.monotonic() - last_sent
                    if quiet >= HEALTH_PING_SECONDS:
                        item = pb.WorkItem(healthPing=pb.HealthPing())
                        break
                    engine.cv.wait(min(HEALTH_PING_SECONDS - quiet, 1.0))
            last_sent = time.monotonic()
            yield item
    finally:
        engine.close_stream(stream)
