"""Peak memory of the gradient: backpropagation (recursive checkpointing) against backsolve.

XLA's buffers live outside Python's allocator (tracemalloc does not see them), so each row is
measured in a fresh subprocess, twice over:

- XLA temp: `temp_size_in_bytes` of the compiled gradient's `memory_analysis()`, the scratch
  arena XLA's buffer assignment sizes for the whole computation (arguments and outputs apart);
- peak RSS: the rise of the process's resident-set high-water mark (VmHWM, reset through
  /proc/self/clear_refs) over its resident set during one call, after a first call compiled
  and warmed everything; "n/a" where the kernel does not allow the reset.

    python -m benchmarks --only memory
    python -m benchmarks.memory --probe backsolve 200 256 wide     # one row, as JSON
"""

import argparse
import concurrent.futures
import json

import equinox as eqx
import jax
import jax.numpy as jnp

import deepest as dp
from deepest._cores import available_cores

from . import training_step
from ._process import run_python
from ._report import Section, significant

# The hand-written lax.scan + jax.checkpoint Euler loop of the training-step benchmark.
SCAN = "scan + checkpoint"
# (adjoint, Euler steps) per row.
CASES = tuple((adjoint, num_steps) for num_steps in (50, 200) for adjoint in ("recursive_checkpoint", "backsolve", "direct", SCAN))
FIELD, BATCH = "wide", 256
# --quick: one probe process, enough to exercise the measurement.
QUICK_CASES, QUICK_FIELD, QUICK_BATCH = (("backsolve", 2),), "small", 8


def _kilobytes(field: str) -> int:
    with open("/proc/self/status") as file:
        for line in file:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def probe(adjoint: str, num_steps: int, batch: int, field_name: str) -> dict:
    """Memory of one gradient of the mean squared final state (Euler), in this process.

    `adjoint` is a SolverNet adjoint or `SCAN`. Returns {"temp_bytes", "peak_rss_bytes"}, the
    latter None where /proc/self/clear_refs cannot reset the high-water mark.
    """
    key_field, key_data = jax.random.split(jax.random.PRNGKey(0))
    field = training_step.make_field(field_name, key=key_field)
    xs = jax.random.normal(key_data, (batch, field.state_dim), dtype=jnp.float32)
    if adjoint == SCAN:
        model = field
        final_states = lambda model, xs: training_step.scan_final_states(model, xs, "euler", num_steps)
    else:
        model = dp.SolverNet(field, solver="euler", num_steps=num_steps, adjoint=adjoint)
        final_states = lambda model, xs: jax.vmap(model)(xs)
    parameters, static = eqx.partition(model, eqx.is_inexact_array)

    def loss(parameters, xs):
        return training_step.mean_squared_final_state(final_states(eqx.combine(parameters, static), xs))

    compiled = jax.jit(jax.grad(loss)).lower(parameters, xs).compile()
    temp_bytes = compiled.memory_analysis().temp_size_in_bytes
    jax.block_until_ready(compiled(parameters, xs))
    try:
        with open("/proc/self/clear_refs", "w") as file:
            file.write("5")  # resets VmHWM to the current resident set
    except OSError:
        return {"temp_bytes": temp_bytes, "peak_rss_bytes": None}
    before = _kilobytes("VmRSS")
    jax.block_until_ready(compiled(parameters, xs))
    return {"temp_bytes": temp_bytes, "peak_rss_bytes": 1024 * (_kilobytes("VmHWM") - before)}


def _probe_in_subprocess(adjoint: str, num_steps: int, batch: int, field_name: str) -> dict:
    printed = run_python("-m", "benchmarks.memory", "--probe", adjoint, str(num_steps), str(batch), field_name)
    return json.loads(printed.strip().splitlines()[-1])


def run(*, quick: bool = False, repeats: int | None = None) -> Section:
    """One fresh process per (adjoint, step count); memory does not depend on the machine's
    load, so they run side by side, one per core. `repeats` does not apply: the numbers do not
    vary between runs."""
    cases = QUICK_CASES if quick else CASES
    field_name, batch = (QUICK_FIELD, QUICK_BATCH) if quick else (FIELD, BATCH)
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(available_cores())) as pool:
        results = list(pool.map(lambda case: _probe_in_subprocess(*case, batch, field_name), cases))
    state_dim = training_step.FIELDS[field_name]["state_dim"]
    rows = []
    for (adjoint, num_steps), result in zip(cases, results):
        states = (num_steps + 1) * batch * state_dim * 4
        peak = result["peak_rss_bytes"]
        rows.append(
            (
                adjoint,
                str(num_steps),
                significant(states / 1e6),
                significant(result["temp_bytes"] / 1e6),
                significant(peak / 1e6) if peak is not None else "n/a",
            )
        )
    return Section(
        title="Peak memory of the gradient",
        method=(
            f"Gradient of mean ‖y(T)‖² with respect to the field's parameters, {field_name} field, Euler, batch {batch}, "
            "float32; SolverNet under each adjoint, and the hand-written scan + checkpoint loop. Each row in a fresh process: "
            "XLA temp is the compiled gradient's `memory_analysis().temp_size_in_bytes`; peak RSS is the rise of "
            "VmHWM (reset through /proc/self/clear_refs) during one warm call. 'All states' is the size of "
            "y_0 … y_L for the batch, for scale. SolverNet vmaps a solve per sample, so backsolve's adjoint "
            "state carries a parameter cotangent per sample."
        ),
        columns=("adjoint", "steps", "all states (MB)", "XLA temp (MB)", "peak RSS rise (MB)"),
        rows=tuple(rows),
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probe", nargs=4, metavar=("ADJOINT", "NUM_STEPS", "BATCH", "FIELD"), required=True)
    adjoint, num_steps, batch, field_name = parser.parse_args().probe
    print(json.dumps(probe(adjoint, int(num_steps), int(batch), field_name)))
