"""The Grönwall bounds against measured perturbation growth, the analysis' log-norms and the
exact flow exp(tA) of linear fields."""

import jax
import numpy as np
import pytest
import scipy.linalg
from _robustness_models import LINEAR, XS, linear_net, random_field_net, trained_digits_net

import deepest as dp
from deepest.robustness import empirical_sensitivity, gronwall_bound, perturbation_growth


@pytest.mark.parametrize("solver", ["euler", "rk4"])
def test_discrete_bound_is_above_measured_growth_on_random_fields(solver):
    net = random_field_net(solver)
    bound = gronwall_bound(net, XS)
    # Every basis direction and four random ones, linearised through the layers.
    directions = np.concatenate([np.eye(4), np.random.default_rng(5).standard_normal((4, 4))])
    growth = perturbation_growth(net, XS, directions)
    # Submultiplicativity is exact; the two sides differ by round-off only.
    assert np.all(growth.growth <= bound.discrete_per_layer * (1 + 1e-12))
    assert np.max(growth.final) > 1.0  # not a trivially contracting net


def test_log_norms_of_a_time_dependent_field_are_those_of_the_analysis():
    # The same μ₂(∂f/∂y(t_k, y_k)) as deepest.analysis computes in its own pass over the
    # net's solve; the field takes t as an input, so a wrong layer time would show. (The
    # step norms are checked against closed forms on linear fields below.)
    net = random_field_net("euler")
    expected = dp.analysis.jacobian_spectrum(net, XS, method="dense").log_norm
    np.testing.assert_allclose(gronwall_bound(net, XS).log_norm, expected, rtol=1e-12)


def test_discrete_bound_is_above_measured_growth_on_the_trained_net():
    net, _, xs, _ = trained_digits_net()
    bound = gronwall_bound(net, xs)
    worst = empirical_sensitivity(net, xs, epsilon=1e-6, key=jax.random.PRNGKey(6))
    # A finite δ adds O(ε ‖∂²y_L‖/‖∂y_L‖) ≈ 1e-6 relative to the linear growth; cancellation
    # in y_L(y_0 + δ) − y_L(y_0) adds 1e-16/ε = 1e-10. Measured: the bound is at least 1.2%
    # above the worst growth found, which is within 7e-4 below and 4e-9 above ‖∂y_L/∂y_0‖₂.
    assert np.all(worst.growth <= bound.discrete * (1 + 1e-4))


def test_discrete_bound_of_a_linear_field_is_the_power_of_the_step_norm():
    bound = gronwall_bound(linear_net(0.2 * LINEAR), XS[:3, :3])
    np.testing.assert_allclose(bound.discrete, np.linalg.norm(np.eye(3) + 0.2 * LINEAR, 2) ** 5, rtol=1e-12)


def test_continuous_bound_holds_for_the_exact_flow_of_a_linear_field():
    bound = gronwall_bound(linear_net(0.2 * LINEAR), XS[:3, :3])
    log_norm = np.linalg.eigvalsh((LINEAR + LINEAR.T) / 2)[-1]
    # μ₂ is constant along any trajectory, so the quadrature is exact: exp(T μ₂(0.2 A)) with
    # T = 5, i.e. exp(μ₂(A)).
    np.testing.assert_allclose(bound.continuous, np.exp(log_norm), rtol=1e-12)
    flow = np.linalg.norm(scipy.linalg.expm(LINEAR), 2)
    assert flow <= float(bound.continuous.min())
    assert flow > 1.0  # the flow does grow (1.28): the bound is not vacuous


def test_continuous_bound_does_not_bound_the_discrete_euler_net():
    # y' = −3y with h = 1: each Euler layer multiplies by 1 − 3 = −2 while the flow decays
    # by e^{−3}. The discrete bound (2 per layer) is the exact growth; the continuous is not.
    net = linear_net(-3.0 * np.eye(3))
    bound = gronwall_bound(net, XS[:3, :3])
    growth = perturbation_growth(net, XS[:3, :3], np.ones((3, 3))).final
    np.testing.assert_allclose(growth, 2.0**5, rtol=1e-14)
    np.testing.assert_allclose(bound.discrete, 2.0**5, rtol=1e-14)
    np.testing.assert_allclose(bound.continuous, np.exp(-15.0), rtol=1e-14)


def test_bad_bound_input_raises_a_value_error_naming_the_problem():
    net = dp.SolverNet(dp.fields.Linear(LINEAR), solver="euler", num_steps=2)
    with pytest.raises(ValueError, match="leading batch axis"):
        gronwall_bound(net, XS[0, :3])
    with pytest.raises(ValueError, match="two-step method"):
        gronwall_bound(net.with_solver("leapfrog_midpoint"), XS[:2, :3])
