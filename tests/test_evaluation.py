"""deepest.experiment.evaluation: a trained field integrated again under other discretisations."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp

import deepest as dp
from deepest.experiment import evaluate_discretisations


def test_evaluate_discretisations_integrates_the_trained_field_with_each_solver():
    # f(y) = −y: n steps of h = 1/n multiply the state by (1 − h)^n under Euler and by R(−h)^n
    # under RK4, R(z) = 1 + z + z²/2 + z³/6 + z⁴/24; the readout's logits follow in closed form.
    moons = dp.data.make("moons", num_samples=64, seed=0)
    readout = eqx.nn.Linear(4, 2, key=jax.random.PRNGKey(0))
    net = dp.SolverNet(dp.fields.Linear(-jnp.eye(4)), solver="euler", num_steps=4, encoder=dp.encoders.ZeroAugmentation(2), readout=readout)
    results = evaluate_discretisations(net, moons, solvers=["euler", "rk4", "semi_implicit_euler"], num_steps=[4, 0])
    assert [(result.solver, result.num_steps) for result in results] == [
        (solver, steps) for solver in ("euler", "rk4", "semi_implicit_euler") for steps in (4, 0)
    ]
    inputs = np.pad(np.asarray(moons.x_test, dtype=np.float64), ((0, 0), (0, 2)))
    z = -0.25
    for result, factor in ((results[0], (1 + z) ** 4), (results[2], (1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24) ** 4)):
        logits = factor * inputs @ np.asarray(readout.weight).T + np.asarray(readout.bias)
        loss = np.mean(logsumexp(logits, axis=1) - logits[np.arange(len(logits)), moons.y_test])
        # Loss and accuracy are float32 means over the test split (the data's precision).
        assert result.test_loss == pytest.approx(loss, rel=1e-6)
        assert result.test_accuracy == pytest.approx(np.mean(np.argmax(logits, axis=1) == moons.y_test), rel=1e-6)
    # Adaptive steps need an error estimate (Euler and RK4 have none); a partitioned solver needs
    # a separable field.
    for result in (results[1], results[3], results[4], results[5]):
        assert result.to_dict() == {
            "solver": result.solver,
            "num_steps": result.num_steps,
            "test_loss": None,
            "test_accuracy": None,
            "note": "not applicable to this field/solver",
        }
    assert set(results[0].to_dict()) == {"solver", "num_steps", "test_loss", "test_accuracy"}
    # A solve that fails gives no numbers but says why, in diffrax's words: four adaptive steps
    # cannot meet a tolerance of 1e-10 on this field.
    starved = dataclasses.replace(net, max_steps=4, rtol=1e-10, atol=1e-10)
    (failed,) = evaluate_discretisations(starved, moons, solvers=["tsit5"], num_steps=[0])
    samples = len(moons.x_test)
    assert (failed.test_loss, failed.test_accuracy) == (None, None)
    assert (
        failed.note == f"solver failed on {samples} of {samples} samples: the maximum number of solver steps was reached. Try increasing `max_steps`."
    )
