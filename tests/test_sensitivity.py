"""Measured perturbation growth through depth (linearised, and the worst finite perturbation
found) against the matrix powers of linear Euler nets."""

import numpy as np
import pytest
from _robustness_models import KEY, LINEAR, XS, linear_net

import deepest as dp
from deepest.robustness import empirical_sensitivity, perturbation_growth


def test_linear_field_growth_and_worst_growth_are_the_matrix_power():
    net = linear_net(0.2 * LINEAR)
    step = np.eye(3) + 0.2 * LINEAR
    directions = np.random.default_rng(3).standard_normal((3, 3))
    powers = [np.linalg.matrix_power(step, k) for k in range(6)]
    expected = np.stack([np.linalg.norm(directions @ power.T, axis=1) for power in powers], axis=1)
    expected /= np.linalg.norm(directions, axis=1, keepdims=True)
    np.testing.assert_allclose(perturbation_growth(net, XS[:3, :3], directions).growth, expected, rtol=1e-12)
    # A linear map: the ascent is a shifted power iteration on (I + hA)^5ᵀ(I + hA)^5 with rate
    # (σ₁² + σ₂²)/2σ₁² ≈ 0.51 here, so 50 steps reach round-off.
    worst = empirical_sensitivity(net, XS[:3, :3], epsilon=1e-3, key=KEY)
    np.testing.assert_allclose(worst.growth, np.linalg.norm(powers[-1], 2), rtol=1e-10)


def test_bad_sensitivity_input_raises_a_value_error_naming_the_problem():
    net = dp.SolverNet(dp.fields.Linear(LINEAR), solver="euler", num_steps=2)
    with pytest.raises(ValueError, match=r"directions must be .* shape \(2, 3\); got shape \(2, 4\)"):
        perturbation_growth(net, XS[:2, :3], XS[:2])
    with pytest.raises(ValueError, match="epsilon must be positive"):
        empirical_sensitivity(net, XS[:2, :3], epsilon=0.0, key=KEY)
    with pytest.raises(ValueError, match="fixed-step"):
        perturbation_growth(net.with_solver("tsit5", num_steps=None), XS[:2, :3], XS[:2, :3])
