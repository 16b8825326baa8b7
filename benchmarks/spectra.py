"""Throughput of `deepest.analysis.jacobian_spectrum`, dense and matrix-free.

    python -m benchmarks.spectra [--batch 256] [--layers 50] [--state-dim 64] [--repeats 5]
                                 [--matrix-free-batch 8]

Targets: issue 3, a batch of 256 samples × 50 layers × 64-dim state in under 4 s on the 2-core
machine, float32; issue 7, the eigenvalues of those 12,800 Jacobians in ≤ 2.8 s (≥ 4,500/s)
with extra memory ≤ 2× the input. Reports the median wall time of the whole call
(trajectories, Jacobians, eigenvalues, log-norms) after one compiling call; then each step
alone on the same Jacobians, jitted as in the call, with our CPU time, the cores other
processes kept busy meanwhile (/proc/stat, Linux), and the peak memory the first run of the
eigenvalue step adds (VmHWM reset through /proc/self/clear_refs, Linux).

Measured 2026-11-23 on the 2-core machine (AMD EPYC VM, jax 0.10.2, NumPy 2.4.6's OpenBLAS
0.3.31), SHARED with other jobs: in some runs they kept one of the two cores busy (load
average up to 7), and in runs where the VM saw no other process the same code still ran at
two speeds an hour apart (CPU seconds per run up to 40% higher: contention on the host the VM
cannot see). Ranges below go from the quiet to the slow state; "old" is the code before
issue 7 (NumPy's float64 `eigvals` in two threads), timed interleaved with the current code:
    whole call                    3.8 to 4.5 s quiet, 5.6 to 5.75 s slow (target < 4 s met in
                                  the quietest runs only); old: 6.5 s in its own header,
                                  8.5 s slow against 5.65 s interleaved
    trajectories and Jacobians    0.3 to 0.4 s
    eigenvalues alone             2.6 to 2.75 s in the quietest runs (4,650 to 4,900/s,
                                  target met), 3.1 to 4.0 s otherwise (not met)
                                  (old, interleaved: 4.45 s quiet, 6.0 s slow)
    per CPU-second                2,500 quiet, 1,700 slow
    peak extra memory             80 to 90 MiB for 200 MiB of Jacobians (old 1,013 MiB;
                                  jnp.linalg.eigvals 1,013 MiB; a single callback 408 MiB,
                                  JAX's two copies of its operand); whole call 470 MiB
                                  extra (old 1,418 MiB)
    log-norms alone               0.8 to 1.1 s (old 2.0 to 3.0 s)
    matrix-free, 8 × 50           3.9 to 5.0 s
With no other process, NumPy's gufunc on the same 12,800 matrices takes 2.5 s in our two
threads against 4.8 s in one: the two cores scale fully, and the rest of the 2.6 to 2.7 s is
JAX's callback and its copies.

Alternatives on 2,000 of the same float32 Jacobians, one thread, interleaved (decompositions
per CPU-second, quiet / slow state). ?geev without vectors at n = 64 spends 2% balancing,
10% reducing to Hessenberg form and the rest in the QR iteration (LAPACK's ?lahqr below
n = 75), so neither skipping the balancing nor calling ?gehrd + ?hseqr directly can gain
much, and padding to n = 75 (multishift QR with early deflation) is slower:
    NumPy gufunc in float32 ('f->F', used here)        2,750 / 2,210
    np.linalg.eigvals (casts to float64)               1,740 / 1,380
    SciPy sgeev, optimal or minimal workspace          2,550 / 2,140  holds the GIL: two
                                                                      threads take as long
                                                                      as one (12,800: 5.7 s)
    SciPy dgeev                                        1,490 / 1,350
    jax.lax.linalg.eig, vectors off, jitted     2,080 to 2,240 / 1,900  spreads a batch over two
                                                                      threads in some runs
                                                                      only (12,800: 2.7 or
                                                                      5.7 s), allocates both
                                                                      eigenvector buffers;
                                                                      two Python threads
                                                                      calling it deadlocked
                                                                      on its first compile
Symmetric eigenvalues (log-norms) per CPU-second: NumPy gufunc in float64 6,300 to 6,550,
in float32 8,700 (used here); SciPy ssyevr for the largest only 11,600 to 13,300, but it
holds the GIL. OpenBLAS's own threads (2 by default) inside LAPACK, CPU ms per matrix with
them / held to one: n = 64 0.43 / 0.43 (it does not thread); with one caller and no other
process n = 96 3.6 / 2.1, 128 7.5 / 4.1, 256 33 / 22; with one caller and other jobs on the
cores 96 13.4 / 1.6, 128 59 / 3.2, 256 30 / 16.5; with our two threads and no other process,
wall ms per matrix, 128 7.1 / 2.4 and 256 24.6 / 10.6.
"""

import argparse
import os
import statistics
import time

import equinox as eqx
import jax
import jax.numpy as jnp

import deepest as dp
from deepest._batched_linalg import eigenvalues, symmetric_eigenvalues
from deepest.layers import trajectories


def _busy_seconds():
    """CPU seconds all processes have spent busy since boot (Linux; None elsewhere)."""
    if not os.path.exists("/proc/stat"):
        return None
    with open("/proc/stat") as stat:
        ticks = [int(field) for field in stat.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # less idle and iowait


def _timed(function, repeats):
    """Median wall seconds of `function()` after one compiling call, our CPU seconds per call,
    and the cores other processes kept busy meanwhile (NaN where /proc/stat is missing)."""
    jax.block_until_ready(function())  # compile
    times = []
    start_cpu, start_busy = time.process_time(), _busy_seconds()
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(function())
        times.append(time.perf_counter() - start)
    cpu = (time.process_time() - start_cpu) / repeats
    others = float("nan") if start_busy is None else max(0.0, (_busy_seconds() - start_busy) / repeats - cpu) / statistics.mean(times)
    return statistics.median(times), cpu, others


def _memory_kib(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field))


def _peak_extra_mib(function):
    """Peak resident memory that `function()` adds over what is resident before it, MiB
    (Linux: VmHWM after resetting it through /proc/self/clear_refs; NaN elsewhere)."""
    if not os.path.exists("/proc/self/clear_refs"):
        return float("nan")
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    before = _memory_kib("VmRSS:")
    jax.block_until_ready(function())
    return (_memory_kib("VmHWM:") - before) / 1024


def main(batch=256, layers=50, state_dim=64, repeats=5, matrix_free_batch=8):
    key = jax.random.PRNGKey(0)
    field = dp.fields.MLP(state_dim=state_dim, width=state_dim, depth=1, activation="tanh", key=key)
    net = dp.SolverNet(field, solver="euler", num_steps=layers)
    xs = jax.random.normal(key, (batch, state_dim))
    count = batch * layers
    print(f"jacobian_spectrum dense, {batch} samples × {layers} layers × {state_dim}-dim (float32):")
    dense = eqx.filter_jit(lambda net, xs: dp.analysis.jacobian_spectrum(net, xs, method="dense"))
    seconds, _, others = _timed(lambda: dense(net, xs).eigenvalues, repeats)
    print(
        f"  whole call {seconds:.2f} s median of {repeats}, {count / seconds:,.0f} spectra/s (target < 4 s); "
        f"other processes kept {others:.1f} of {os.cpu_count()} cores busy"
    )

    @eqx.filter_jit
    def jacobians(net, xs):
        grid, ys = trajectories(net, xs)
        jacobian = jax.jacfwd(lambda t, y: net.field(t, y), argnums=1)
        return jax.vmap(jax.vmap(jacobian), in_axes=(None, 0))(grid[:-1], ys[:, :-1])

    seconds, _, _ = _timed(lambda: jacobians(net, xs), repeats)
    print(f"  trajectories and Jacobians alone: {seconds:.2f} s")
    matrices = jacobians(net, xs)
    symmetric = jax.block_until_ready((matrices + jnp.swapaxes(matrices, -1, -2)) / 2)
    spectra = jax.jit(eigenvalues).lower(matrices).compile()
    # The first run of a fresh executable: later ones reuse pages the allocator kept.
    extra = _peak_extra_mib(lambda: spectra(matrices))
    seconds, cpu, others = _timed(lambda: spectra(matrices), repeats)
    print(
        f"  eigenvalues alone: {seconds:.2f} s, {count / seconds:,.0f}/s (target ≥ 4,500/s), "
        f"{count / cpu:,.0f} per CPU-second; other processes kept {others:.1f} cores busy; "
        f"peak extra memory {extra:.0f} MiB for {matrices.nbytes / 2**20:.0f} MiB of input"
    )
    log_norms = jax.jit(lambda symmetric: symmetric_eigenvalues(symmetric)[..., -1])
    seconds, _, _ = _timed(lambda: log_norms(symmetric), repeats)
    print(f"  log-norms (symmetric eigenvalues) alone: {seconds:.2f} s")
    if not matrix_free_batch:
        return
    free = eqx.filter_jit(lambda net, xs: dp.analysis.jacobian_spectrum(net, xs, method="matrix_free"))
    small = xs[:matrix_free_batch]
    seconds, _, _ = _timed(lambda: free(net, small).eigenvalues, repeats)
    print(f"jacobian_spectrum matrix-free, {matrix_free_batch} samples × {layers} layers:")
    print(f"  {seconds:.2f} s median, {matrix_free_batch * layers / seconds:,.0f} spectra/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--layers", type=int, default=50)
    parser.add_argument("--state-dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--matrix-free-batch", type=int, default=8, help="samples for the matrix-free run; 0 skips it")
    arguments = parser.parse_args()
    main(
        batch=arguments.batch,
        layers=arguments.layers,
        state_dim=arguments.state_dim,
        repeats=arguments.repeats,
        matrix_free_batch=arguments.matrix_free_batch,
    )
