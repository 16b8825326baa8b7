"""Numerics run in float64 (set here, never in the library) and plots off-screen."""

import jax
import matplotlib
import pytest

jax.config.update("jax_enable_x64", True)
matplotlib.use("Agg")


def _recorder(event_name: str, field: str | None):
    """A fixture body: a list of each `event_name` JAX reports during the test (its `field`)."""
    events = []

    def listener(event, duration, **fields):
        if event == event_name:
            events.append(fields.get(field, "") if field else duration)

    jax.monitoring.register_event_duration_secs_listener(listener)
    yield events
    jax.monitoring.unregister_event_duration_listener(listener)


@pytest.fixture
def traced():
    """The names of the functions JAX traces to compile during the test, in order."""
    yield from _recorder("/jax/core/compile/jaxpr_trace_duration", "fun_name")


@pytest.fixture
def compiled():
    """The durations of the programs XLA compiles during the test, one entry each."""
    yield from _recorder("/jax/core/compile/backend_compile_duration", None)
