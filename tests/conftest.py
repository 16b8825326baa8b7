"""Numerics run in float64 (set here, never in the library) and plots off-screen."""

import jax
import matplotlib
import pytest

jax.config.update("jax_enable_x64", True)
matplotlib.use("Agg")


@pytest.fixture
def traced():
    """The names of the functions JAX traces to compile during the test, in order."""
    names = []

    def listener(event, duration, **fields):
        if event == "/jax/core/compile/jaxpr_trace_duration":
            names.append(fields.get("fun_name", ""))

    jax.monitoring.register_event_duration_secs_listener(listener)
    yield names
    jax.monitoring.unregister_event_duration_listener(listener)
