"""Compile time of the SolverNet training step that `deepest.train.fit` runs (`make_step`).

compile time = first call − steady-state call, where the first call traces, lowers and compiles
the step (after `deepest.clear_caches()` and `jax.clear_caches()`, so that no earlier setting's
compiled pieces are reused) and the steady state is the median of later calls. The process's one-off start-up (importing,
initialising the XLA backend) is not in it: that is in the quickstart's end-to-end time.

    python -m benchmarks --only compile_time [--repeats 3]
"""

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import deepest as dp
from deepest import _array_leaves, train

from . import training_step
from ._report import Section, milliseconds, significant

# (field, solver, num_steps): short and long fixed steps, the wide field, adaptive.
SETTINGS = (("small", "euler", 10), ("small", "euler", 200), ("wide", "rk4", 20), ("small", "tsit5", None))
QUICK_SETTINGS = (("small", "euler", 2),)
ROUNDS = 3
STEADY_CALLS = 5


def _first_and_steady(field_name: str, solver: str, num_steps: int | None, *, batch: int) -> tuple[float, float]:
    """Seconds of the first call of a fresh step, and the median of the next calls."""
    key_field, key_data = jax.random.split(jax.random.PRNGKey(0))
    field = training_step.make_field(field_name, key=key_field)
    xs = jax.random.normal(key_data, (batch, field.state_dim), dtype=jnp.float32)
    # fit trains with throw=False (failures are data), so the compiled step is that one.
    net = dp.SolverNet(field, solver=solver, num_steps=num_steps, rtol=training_step.RTOL, atol=training_step.ATOL, throw=False)
    optimiser = optax.adam(training_step.LEARNING_RATE)
    layout, leaves = _array_leaves.split((net, train.init_state(optimiser, net)))
    targets, key = jnp.zeros_like(xs), jax.random.PRNGKey(1)
    dp.clear_caches()
    jax.clear_caches()
    # Called as fit calls it: over the array leaves of model and state.
    step = train.make_step(optimiser, "regression").on_leaves(layout)
    times = []
    for step_number in range(1 + STEADY_CALLS):
        start = time.perf_counter()
        leaves, metrics = step(leaves, xs, targets, key, np.int32(step_number))
        jax.block_until_ready((leaves, metrics))
        times.append(time.perf_counter() - start)
    return times[0], statistics.median(times[1:])


def run(*, quick: bool = False, repeats: int | None = None) -> Section:
    """Median first call, steady call and their difference per setting, rounds interleaved."""
    settings = QUICK_SETTINGS if quick else SETTINGS
    batch = training_step.QUICK_BATCH if quick else training_step.BATCH
    rounds = repeats or (1 if quick else ROUNDS)
    samples = {setting: [] for setting in settings}
    for round_index in range(rounds):
        shift = round_index % len(settings)
        for setting in settings[shift:] + settings[:shift]:
            samples[setting].append(_first_and_steady(*setting, batch=batch))
    rows = []
    for (field_name, solver, num_steps), values in samples.items():
        first = statistics.median(value[0] for value in values)
        steady = statistics.median(value[1] for value in values)
        compile_seconds = statistics.median(value[0] - value[1] for value in values)
        rows.append(
            (field_name, training_step.setting_label(solver, num_steps), significant(first), milliseconds(steady), significant(compile_seconds))
        )
    return Section(
        title="Compile time of the training step",
        method=(
            f"`deepest.train.make_step` (Adam, loss mean ‖y(T)‖² against zero targets: the step `fit` trains with, "
            f"diagnostics included, called as `fit` calls it, over the array leaves of model and state) on a batch of {batch}, "
            f"float32, on this process's {jax.local_device_count()} JAX device(s), after `deepest.clear_caches()` and `jax.clear_caches()`. "
            f"Compile = first call − steady call (median of the {STEADY_CALLS} calls after the first); "
            f"medians over {rounds} rounds, the settings interleaved."
        ),
        columns=("field", "discretisation", "first call (s)", "steady call (ms)", "compile (s)"),
        rows=tuple(rows),
    )
