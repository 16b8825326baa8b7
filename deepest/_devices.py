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
(`python -m benchmarks --only devices`, table in benchmarks/README.md: a training step of
`fit`, Euler, tanh MLP of depth 2 on a 4-dimensional state): on two devices a step takes 6.5
times as long as on one at width 32, batch 128, 4 steps; 3.2 times at width 64, batch 256, 20
steps; 1.12 times at width 128, batch 512, 20 steps. One device is therefore the default.

CPU devices. JAX shows a CPU as one device unless told otherwise before its backend starts
(`jax_num_cpu_devices`, or `JAX_NUM_CPU_DEVICES` in the environment when jax is imported).
The library never changes it; `use_cpu_devices` is called only in processes deepest owns: the
`deepest run` command (`--devices D`, default 1) and the workers of its process pool
(`deepest.experiment.pool`).
"""

import os

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec, Sharding, SingleDeviceSharding


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


def data_parallel_width(batch_size: int, device_count: int) -> int:
    """D, the largest count ≤ `device_count` of devices that divides `batch_size`."""
    return max(count for count in range(1, device_count + 1) if batch_size % count == 0)


def batch_shardings(batch_size: int, devices) -> tuple[Sharding, Sharding]:
    """(minibatch sharding, replicated sharding) on a 1-D "batch" mesh of the first
    `data_parallel_width` of `devices`, or both the first device's where that is one.

    One device gets its own placement, not a one-device mesh: jit compiles a program for each
    placement of its arguments, and no array outside `fit` lies on such a mesh: every
    evaluation after training would compile fit's evaluation program again (in quickstart,
    four more evaluation programs, about 1 s of its 20 s).
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
