"""Checkpoints are verified before use: every kind of damage is named, set aside and recovered from."""

import jax.numpy as jnp
import numpy as np
import pytest

from deepest.experiment import rundir
from deepest.experiment.checkpoint import load_checkpoint, save_checkpoint

# A model and optimiser state stand-in: the loader needs only their tree structure.
TEMPLATE = ({"weight": jnp.zeros((3, 2)), "bias": jnp.zeros(2)}, (jnp.zeros(()),))


def _state(value: float):
    return {"weight": jnp.full((3, 2), value), "bias": jnp.full(2, value)}, (jnp.asarray(value),)


def _run(tmp_path, name="0123456789ab"):
    """A run directory with checkpoints at steps 3 (previous) and 6 (latest)."""
    directory = tmp_path / name
    for step in (3, 6):
        save_checkpoint(directory, step, *_state(float(step)), runtime_seconds=2.0 * step, training_seconds=float(step))
    return directory


def _truncate(path):
    path.write_bytes(path.read_bytes()[:-7])


def _empty(path):
    path.write_bytes(b"")


def _random_bytes(path):
    path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))


def _flip_bytes(path):
    data = bytearray(path.read_bytes())
    data[-16:] = bytes(byte ^ 0xFF for byte in data[-16:])  # inside the last weight array
    path.write_bytes(bytes(data))


def _other_run(path):
    other = _run(path.parent.parent.parent, "ba9876543210")
    path.write_bytes((other / "ckpt" / "latest.eqx").read_bytes())


def _other_structure(path):
    # A sound checkpoint of this run, but of another model: a deepest version that changed it.
    elsewhere = path.parent.parent.parent / "elsewhere" / path.parent.parent.name
    save_checkpoint(elsewhere, 6, {"weight": jnp.zeros(4)}, (), runtime_seconds=0.0, training_seconds=0.0)
    path.write_bytes((elsewhere / "ckpt" / "latest.eqx").read_bytes())


DAMAGE = [_truncate, _empty, _random_bytes, _flip_bytes, _other_run, _other_structure]


def test_a_checkpoint_comes_back_with_its_step_and_the_time_spent(tmp_path):
    directory = _run(tmp_path)
    checkpoint = load_checkpoint(directory, *TEMPLATE)
    assert (checkpoint.step, checkpoint.runtime_seconds, checkpoint.training_seconds) == (6, 12.0, 6.0)
    np.testing.assert_array_equal(checkpoint.model["weight"], np.full((3, 2), 6.0))
    assert load_checkpoint(tmp_path / "none", *TEMPLATE) is None


@pytest.mark.parametrize("damage", DAMAGE, ids=lambda damage: damage.__name__.strip("_"))
def test_a_damaged_latest_checkpoint_is_set_aside_and_the_previous_one_used(damage, tmp_path):
    directory = _run(tmp_path)
    latest = directory / "ckpt" / "latest.eqx"
    damage(latest)
    with pytest.warns(rundir.DamagedFileWarning, match=f"{latest} is damaged: .*; resuming from ckpt/previous.eqx"):
        checkpoint = load_checkpoint(directory, *TEMPLATE)
    assert checkpoint.step == 3 and float(checkpoint.optimiser_state[0]) == 3.0
    assert (directory / "ckpt" / "latest.eqx.damaged").exists() and not latest.exists()


def test_with_both_checkpoints_damaged_the_run_starts_afresh_and_the_reasons_are_named(tmp_path):
    directory = _run(tmp_path)
    _flip_bytes(directory / "ckpt" / "latest.eqx")
    _other_run(directory / "ckpt" / "previous.eqx")
    with pytest.warns(rundir.DamagedFileWarning) as warned:
        assert load_checkpoint(directory, *TEMPLATE) is None
    messages = [str(warning.message) for warning in warned]
    assert "SHA-256 mismatch" in messages[0] and "resuming from ckpt/previous.eqx" in messages[0]
    assert "a checkpoint of run ba9876543210, not of 0123456789ab" in messages[1] and "restarting the run from step 0" in messages[1]
    # A kill between the rotation and the write leaves only previous.eqx: used without a warning.
    directory = _run(tmp_path, "fedcba987654")
    (directory / "ckpt" / "latest.eqx").unlink()
    assert load_checkpoint(directory, *TEMPLATE).step == 3
