"""The seed's real 2019 history (../shared/seed/history-after-execution.md, written by the
Durable Functions host for a JavaScript chain) through Python ports of its Hello chain, in both
SDK styles; reordered ports do not replay it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reader"))

from reader_rows import SEED_INSTANCE, SEED_ORCHESTRATOR, hello_checkpoints

from durable_helpers import frames, replay
from durable_helpers import replay_samples as samples

CHAIN = {"durabletask": samples.hello_chain, "functions": samples.hello_chain_functions}
FAN_OUT = {"durabletask": samples.hello_fan_out, "functions": samples.hello_fan_out_functions}
REVERSED = {"durabletask": samples.hello_reversed, "functions": samples.hello_reversed_functions}
STYLES = sorted(CHAIN)


@pytest.fixture
def seed():
    """The seed's 16 rows, written through schema and read back as the readers do."""
    frame = frames.history_frame(e for batch in hello_checkpoints() for e in batch)
    assert frame.EventId.tolist()[:3] == [-1, -1, 0]  # the host's own 0-based action ids
    return frame


@pytest.fixture
def seed_with_inputs(seed):
    """The same history as a host with storeInputsInOrchestrationHistory would keep it."""
    frame = seed.copy()
    frame.loc[frame.EventType == "TaskScheduled", "InputRaw"] = ['"Tokyo"', '"Seattle"', '"London"']
    return frame


@pytest.mark.parametrize("style", STYLES)
def test_the_hello_chain_port_replays_the_2019_history(seed, style):
    result = replay.check(seed, CHAIN[style])
    assert result.sdk == style
    assert result.verdict == "ok", str(result)
    assert result.divergence is None and result.replays
    assert (result.instance_id, result.name) == (SEED_INSTANCE, SEED_ORCHESTRATOR)
    assert result.next_actions == ()  # it finished, as the history says


@pytest.mark.parametrize("style", STYLES)
def test_a_port_that_starts_the_calls_at_once_does_not(seed, style):
    result = replay.check(seed, FAN_OUT[style])
    assert result.verdict == "diverges"
    d = result.divergence
    assert (d.kind, d.sequence, d.event_type) == ("extra action", 3, "OrchestratorCompleted")
    assert "'Seattle'" in d.code and "'London'" in d.code


@pytest.mark.parametrize("style", STYLES)
def test_reversed_cities_show_where_the_history_stores_inputs(seed, seed_with_inputs, style):
    # The 2019 host did not store activity inputs, and the results come from the history, so
    # calling Hello for London first is invisible there (docs/replay.md, limits) ...
    assert replay.check(seed, REVERSED[style]).verdict == "ok"
    # ... and caught where inputs are stored.
    result = replay.check(seed_with_inputs, REVERSED[style])
    assert result.verdict == "diverges"
    d = result.divergence
    assert (d.kind, d.sequence, d.row_key) == ("different input", 2, "0000000000000002")
    assert "'Tokyo'" in d.history and "'London'" in d.code


@pytest.mark.parametrize("style", STYLES)
def test_a_chain_that_calls_another_activity_breaks(seed, style):
    def durabletask_port(ctx, _):
        yield ctx.call_activity("Hello", input="Tokyo")
        return (yield ctx.call_activity("Goodbye", input="Seattle"))

    def functions_port(context):
        yield context.call_activity("Hello", "Tokyo")
        return (yield context.call_activity("Goodbye", "Seattle"))

    port = durabletask_port if style == "durabletask" else functions_port
    result = replay.check(seed, port)
    assert result.verdict == "breaks"
    d = result.divergence
    assert (d.kind, d.sequence, d.event_type) == ("different name", 6, "TaskScheduled")
    assert "'Hello'" in d.history and "'Goodbye'" in d.code
    assert d.error_type.endswith(
        "NonDeterminismError"
        if style == "durabletask"
        else "NonDeterministicOrchestrationException"
    )


def test_a_changed_result_is_a_divergence(seed):
    def shouting(ctx, _):
        results = []
        for city in samples.SEED_CITIES:
            results.append((yield ctx.call_activity("Hello", input=city)))
        return [r.upper() for r in results]

    result = replay.check(seed, shouting)
    assert result.verdict == "diverges"
    assert result.divergence.kind == "different result"
    assert result.divergence.event_type == "ExecutionCompleted"
    assert "HELLO TOKYO!" in result.divergence.code


def test_a_functions_app_orchestrator_as_the_app_declares_it(seed):
    import azure.durable_functions as df

    app = df.DFApp()

    @app.orchestration_trigger(context_name="context")
    def chain(context):
        return (yield from samples.hello_chain_functions(context))

    assert replay.check(seed, chain).verdict == "ok"  # the decorated function, detected
    handle = df.Orchestrator.create(samples.hello_fan_out_functions)
    assert replay.check(seed, handle).verdict == "diverges"  # the classic main = create(...)
