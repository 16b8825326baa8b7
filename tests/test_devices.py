"""Data-parallel training equals one device; a process shows JAX the CPU devices it is given."""

import json
import os
import pickle
import subprocess
import sys

import equinox as eqx
import jax
import numpy as np
import pytest

import deepest as dp
from deepest import _devices

# Trains a net on moons with a random regulariser (its probes are drawn inside the sharded
# step), recording the device count of every minibatch the step saw. The same code runs here on
# this process's one device, and in a subprocess on two, from the same net and data: built here
# and saved, since building them eagerly costs the subprocess more than training (its net is
# only traced, `filter_eval_shape`, and filled with the saved parameters).
TRAINING = """
import equinox as eqx, jax
import deepest as dp
from deepest import train
from deepest import _array_leaves

def make_net():
    key = jax.random.PRNGKey(0)
    return dp.SolverNet(
        dp.fields.MLP(state_dim=4, width=8, depth=1, key=key), num_steps=4,
        encoder=dp.encoders.ZeroAugmentation(2), readout=eqx.nn.Linear(4, 2, key=key),
    )

def train_moons(net, data, seen):
    # Spies on the compiled step `fit` calls (over the leaves of model and state): on how many
    # devices each minibatch lies.
    jit = _array_leaves.TreeLayout.jit

    def spying(self, function):
        step = jit(self, function)

        def spied(leaves, xs, *rest):
            seen.append(len(xs.sharding.device_set))
            return step(leaves, xs, *rest)

        return spied

    _array_leaves.TreeLayout.jit = spying
    dp.clear_caches()  # a step compiled before the spy would go round it
    try:
        return train.fit(
            net, data, train.optimiser("adam", 1e-2), num_steps=6, batch_size=16, key=jax.random.PRNGKey(0),
            log_every=6, regularisation=[("jacobian_frobenius", 0.1, {})],
        )
    finally:
        _array_leaves.TreeLayout.jit = jit
        dp.clear_caches()  # nor may a later fit reuse the spying step
"""

TWO_DEVICES = """
import json, pickle, sys
import jax
jax.config.update("jax_enable_x64", True)
import equinox as eqx, numpy as np
exec(sys.argv[1])
with open(sys.argv[2], "rb") as file:
    leaves, data = pickle.load(file)
shapes, static = eqx.partition(eqx.filter_eval_shape(make_net), lambda leaf: isinstance(leaf, jax.ShapeDtypeStruct))
net = eqx.combine(jax.tree.unflatten(jax.tree.structure(shapes), leaves), static)
seen = []
result = train_moons(net, data, seen)
np.savez(sys.argv[3], *jax.tree.leaves(eqx.filter(result.model, eqx.is_inexact_array)))
homes = {len(leaf.sharding.device_set) for leaf in jax.tree.leaves(eqx.filter(result.model, eqx.is_array))}
print(json.dumps({"devices": jax.local_device_count(), "seen": seen, "homes": sorted(homes), "last": result.history[-1]}))
"""


def test_training_on_two_cpu_devices_equals_one_device(tmp_path):
    namespace, seen = {}, []
    exec(TRAINING, namespace)
    net, data = namespace["make_net"](), dp.data.make("moons", num_samples=128, seed=0)
    inputs, outputs = tmp_path / "inputs.pickle", tmp_path / "two.npz"
    inputs.write_bytes(pickle.dumps(([np.asarray(leaf) for leaf in jax.tree.leaves(eqx.filter(net, eqx.is_array))], data)))
    # This process's JAX has started with one device: the two-device side needs its own.
    finished = subprocess.run(
        [sys.executable, "-c", TWO_DEVICES, TRAINING, str(inputs), str(outputs)],
        env={**os.environ, "JAX_NUM_CPU_DEVICES": "2"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert finished.returncode == 0, finished.stderr
    two = json.loads(finished.stdout.splitlines()[-1])
    # Every step split its minibatch over both devices; the trained model comes back on one.
    assert two["devices"] == 2 and two["seen"] == [2] * 6 and two["homes"] == [1]
    one = namespace["train_moons"](net, data, seen)
    assert jax.local_device_count() == 1 and seen == [1] * 6
    with np.load(outputs) as saved:
        parameters = [saved[f"arr_{index}"] for index in range(len(saved.files))]
    # The same float64 arithmetic; the batch means and gradients are summed per device, then
    # across devices: a few ulps per step, far below 1e-10 after 6 Adam steps (measured 2e-15).
    for a, b in zip(jax.tree.leaves(eqx.filter(one.model, eqx.is_inexact_array)), parameters, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    for name in ("loss", "jacobian_frobenius", "test_loss"):
        np.testing.assert_allclose(one.history[-1][name], two["last"][name], rtol=1e-10)


def test_a_minibatch_is_split_over_the_most_devices_that_divide_it():
    device = jax.local_devices()[0]
    # On one device, that device's own placement (not a one-device mesh, whose programs no
    # evaluation after training would share).
    assert _devices.batch_shardings(7, [device]) == (jax.sharding.SingleDeviceSharding(device),) * 2
    assert [_devices.data_parallel_width(batch, 4) for batch in (256, 6, 9, 7, 2)] == [4, 3, 3, 1, 2]
    with pytest.raises(ValueError, match="`devices` is empty"):
        _devices.batch_shardings(8, [])


def test_cpu_devices_cannot_change_once_jax_has_started(monkeypatch):
    jax.devices()  # make sure the backend is up
    monkeypatch.delenv("JAX_NUM_CPU_DEVICES", raising=False)
    with pytest.raises(RuntimeError, match="JAX's backend has already started"):
        _devices.use_cpu_devices(jax.local_device_count() + 1)
    monkeypatch.setenv("JAX_NUM_CPU_DEVICES", "3")
    _devices.use_cpu_devices(5)  # the user's explicit count wins: nothing to change
