"""Where training runs: a minibatch split over the local devices, and CPU devices per process.

Data parallelism. `deepest.train.fit` lays each minibatch of B samples over a 1-D mesh of D
local devices along the batch axis (B/D samples each) and keeps the model and optimiser state
replicated, so its one compiled step runs on every device at once; XLA all-reduces the loss
and the gradients, ∇L = (1/B) Σ_d Σ_{i ∈ shard d} ∇ℓ_i, the single-device gradient summed in
another order (equal up to float round-off). D is the largest count of the available devices
that divides B, so every shard holds the same number of real samples: padding instead would
need a mask in the loss and in every batch diagnostic (largest state norm, solver failures).
On a CPU it does not pay for the nets this project trains: XLA's partitioner all-reduces the
weight gradients inside the backward solve, at every solver step, and each device's share of a
small batch costs nearly as much as the whole batch. Measured on the 2-core machine
(2026-12-04, `python -m benchmarks --only devices`, table in benchmarks/README.md: a training
step of `fit`, Euler, tanh MLP of depth 2 on a 4-dimensional state), over three runs: on two
devices a step took 2.0–9.3 times as long as on one at width 32, batch 128, 4 steps; 1.7–1.9
times at width 64, batch 256, 20 steps; 0.98–1.2 times at width 128, batch 512, 20 steps. Once
`fit` stopped paying ~0.3 ms a step to split and rebuild its trees, and ~0.5 ms to redraw the
epoch's permutation (2026-12-05), one device's step got cheaper and the ratios 3.8, 2.1 and
0.95; once it kept one step ahead (its width-32 step on one device 0.50 → 0.41 ms), 4.9, 2.3
and 1.01. One device is therefore the default.

CPU devices. JAX shows a CPU as one device unless told otherwise before its backend starts
(`jax_num_cpu_devices`, or `JAX_NUM_CPU_DEVICES` in the environment when jax is imported).
The library never changes it; `use_cpu_devices` is called only in processes deepest owns: the
`deepest run` command (`--devices D`, default 1) and the workers of its process pool. Those
each get their own share of the cores (`sweep_layout`), pinned by CPU affinity, and D
devices: XLA sizes its intra-op thread pool by the affinity mask, so W workers together keep
one busy thread per core, where unpinned each would run its large operations on every core.
(`--xla_cpu_multi_thread_eigen=false` in XLA_FLAGS does not stop that: measured, a
single-device step on batch 2048 still keeps two threads busy on two cores.)
"""

import os

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec, Sharding, SingleDeviceSharding

from ._compilation_cache import use_compilation_cache


def available_cores() -> list[int]:
    """The cores this process may run on: its affinity mask (which a container, `taskset` or
    a sweep may have narrowed), not the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def sweep_layout(jobs: int, runs: int, cores: list[int]) -> list[list[int]]:
    """The cores of each of the W = min(jobs, runs) worker processes of a sweep.

    W ≤ len(cores): the cores dealt into W disjoint contiguous shares (sizes differing by at
    most one); more workers than cores: one core each, round robin. A single share means: run
    in this process, on all its cores, no pool.
    """
    for name, value in (("jobs", jobs), ("runs", runs), ("cores", len(cores))):
        if value < 1:
            raise ValueError(f"`{name}` must be a positive integer, got {value}.")
    workers = min(jobs, runs)
    if workers > len(cores):
        return [[cores[index % len(cores)]] for index in range(workers)]
    return [[int(core) for core in share] for share in np.array_split(np.asarray(cores), workers)]


def use_cpu_devices(count: int) -> None:
    """Show this process's CPU as `count` JAX devices; call before JAX's backend starts.

    An explicit `JAX_NUM_CPU_DEVICES` in the environment wins (the user's choice).
    """
    if "JAX_NUM_CPU_DEVICES" in os.environ:
        return
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError as error:
        raise RuntimeError(
            f"Cannot give this process {count} CPU devices: JAX's backend has already started "
            f"(with {jax.local_device_count()} devices). Call this before any JAX computation, "
            "or set JAX_NUM_CPU_DEVICES before Python starts."
        ) from error


def start_worker(shares, devices: int, compilation_cache: str | None) -> None:
    """A sweep worker's initializer: take one share of the cores from `shares` (a
    multiprocessing queue holding one per worker, `sweep_layout`), run on it alone, show JAX
    `devices` CPU devices and, given a directory, share the sweep's compilation cache
    (`deepest._compilation_cache`)."""
    cores = shares.get()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cores)
    use_cpu_devices(devices)
    if compilation_cache is not None:
        use_compilation_cache(compilation_cache)


def data_parallel_width(batch_size: int, device_count: int) -> int:
    """D, the largest count ≤ `device_count` of devices that divides `batch_size`."""
    return max(count for count in range(1, device_count + 1) if batch_size % count == 0)


def batch_shardings(batch_size: int, devices) -> tuple[Sharding, Sharding]:
    """(minibatch sharding, replicated sharding) on a 1-D "batch" mesh of the first
    `data_parallel_width` of `devices`, or both the first device's where that is one.

    One device gets its own placement, not a one-device mesh: jit compiles a program for each
    placement of its arguments, and no array outside `fit` lies on such a mesh, so every
    evaluation after training compiled fit's evaluation program again (quickstart: four of
    its eight evaluation programs, about 1 s of its 20 s; measured 2026-12-05).
    """
    devices = list(devices)
    if not devices:
        raise ValueError("`devices` is empty: pass at least one device, e.g. jax.local_devices().")
    width = data_parallel_width(batch_size, len(devices))
    if width == 1:
        return SingleDeviceSharding(devices[0]), SingleDeviceSharding(devices[0])
    mesh = Mesh(np.array(devices[:width]), ("batch",))
    return NamedSharding(mesh, PartitionSpec("batch")), NamedSharding(mesh, PartitionSpec())


def split_if_divisible(array, batch_sharding: Sharding, replicated: Sharding):
    """`array` laid along its first axis over the devices if its length divides evenly, else
    a copy on each (both compute the same numbers); on one device, left uncommitted, as a
    plain array of the user's is (`batch_shardings`)."""
    devices = len(batch_sharding.device_set)
    if devices == 1:
        return jnp.asarray(array)
    return jax.device_put(array, batch_sharding if len(array) % devices == 0 else replicated)


def place(tree, sharding):
    """Every array leaf of a PyTree (a model, an optimiser state) put on `sharding` (or a device)."""
    return jax.tree.map(lambda leaf: jax.device_put(leaf, sharding) if eqx.is_array(leaf) else leaf, tree)
