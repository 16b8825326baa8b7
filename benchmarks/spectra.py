"""Throughput of `deepest.analysis.jacobian_spectrum`, dense and matrix-free.

    python -m benchmarks.spectra [--batch 256] [--layers 50] [--state-dim 64] [--repeats 3]
                                 [--matrix-free-batch 8]

Target (issue 3): a batch of 256 samples × 50 layers × 64-dim state in under 4 s on the 2-core
machine, float32. Reports the median wall time of the whole call (trajectories, Jacobians,
eigenvalues, log-norms) after one compiling call, and the eigenvalue step alone.

Measured 2026-11-23 on the 2-core machine (jax 0.10.2, NumPy's OpenBLAS): 6.5 s for the whole
call, target not met. Timed one by one in another run (this machine varies by ±20% between
runs): Jacobians 0.3 s, eigenvalues 5.5 s (2,330/s on two threads; one thread does 1,400/s
through NumPy, 2,000/s through SciPy's direct LAPACK call, which holds the GIL), log-norms
(symmetric eigenvalues) 1.7 s. Random Gaussian matrices go faster (2,400–3,000/s).
Matrix-free, 8 samples × 50 layers: 3.7 s (it pays off only for much larger states).
"""

import argparse
import statistics
import time

import equinox as eqx
import jax
import numpy as np

import deepest as dp
from deepest.analysis._batched_linalg import eigenvalues


def _median_seconds(function, repeats):
    jax.block_until_ready(function())  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(function())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(batch=256, layers=50, state_dim=64, repeats=3, matrix_free_batch=8):
    key = jax.random.PRNGKey(0)
    field = dp.fields.MLP(state_dim=state_dim, width=state_dim, depth=1, activation="tanh", key=key)
    net = dp.SolverNet(field, solver="euler", num_steps=layers)
    xs = jax.random.normal(key, (batch, state_dim))
    dense = eqx.filter_jit(lambda net, xs: dp.analysis.jacobian_spectrum(net, xs, method="dense"))
    seconds = _median_seconds(lambda: dense(net, xs).eigenvalues, repeats)
    count = batch * layers
    print(f"jacobian_spectrum dense, {batch} samples × {layers} layers × {state_dim}-dim (float32):")
    print(f"  {seconds:.2f} s median of {repeats}, {count / seconds:,.0f} spectra/s (target < 4 s)")
    matrices = np.asarray(jax.random.normal(key, (count, state_dim, state_dim)))
    seconds = _median_seconds(lambda: eigenvalues(matrices), repeats)
    print(f"  eigenvalues alone: {seconds:.2f} s, {count / seconds:,.0f} matrices/s")
    if not matrix_free_batch:
        return
    free = eqx.filter_jit(lambda net, xs: dp.analysis.jacobian_spectrum(net, xs, method="matrix_free"))
    small = xs[:matrix_free_batch]
    seconds = _median_seconds(lambda: free(net, small).eigenvalues, repeats)
    print(f"jacobian_spectrum matrix-free, {matrix_free_batch} samples × {layers} layers:")
    print(f"  {seconds:.2f} s median, {matrix_free_batch * layers / seconds:,.0f} spectra/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--layers", type=int, default=50)
    parser.add_argument("--state-dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--matrix-free-batch", type=int, default=8, help="samples for the matrix-free run; 0 skips it")
    arguments = parser.parse_args()
    main(
        batch=arguments.batch,
        layers=arguments.layers,
        state_dim=arguments.state_dim,
        repeats=arguments.repeats,
        matrix_free_batch=arguments.matrix_free_batch,
    )
