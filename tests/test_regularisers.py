"""Regularisers against closed forms on linear fields, finite differences and Monte Carlo."""

import equinox as eqx
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import deepest as dp
from deepest import regularisers
from deepest.experiment.config import WEIGHTS, ConfigError, DiscretisationConfig, ExperimentConfig, RegularisationConfig
from deepest.regularisers import (
    DENSE_STATE_LIMIT,
    REGULARISERS,
    io_condition,
    jacobian_frobenius,
    kinetic_energy,
    local_error,
    lyapunov,
    regulariser,
    spectral_penalty,
    weight_smoothness,
)

KEY = jax.random.PRNGKey(0)
XS = jax.random.normal(jax.random.PRNGKey(1), (3, 2))
A = jnp.array([[-1.0, 0.4], [-0.3, -0.2]])

# Bogacki & Shampine (1989), written out from the paper (not read from diffrax): stages
# k_i = f(t + c_i h, y + h Σ_j a_ij k_j), third-order weights b and embedded second-order b̂.
_BS_A = np.array([[0, 0, 0, 0], [1 / 2, 0, 0, 0], [0, 3 / 4, 0, 0], [2 / 9, 1 / 3, 4 / 9, 0]])
_BS_B = np.array([2 / 9, 1 / 3, 4 / 9, 0])
_BS_B_EMBEDDED = np.array([7 / 24, 1 / 4, 1 / 3, 1 / 8])


def _bogacki_shampine_matrices(matrix, h):
    """For y' = M y one step is y ↦ S y and the two solutions differ by E y (by hand)."""
    stages = []
    for row in _BS_A:
        stages.append(matrix @ (np.eye(len(matrix)) + h * sum(a * K for a, K in zip(row, stages))))
    step = np.eye(len(matrix)) + h * sum(b * K for b, K in zip(_BS_B, stages))
    embedded_step = np.eye(len(matrix)) + h * sum(b * K for b, K in zip(_BS_B_EMBEDDED, stages))
    return step, step - embedded_step


# One jitted entry point for the value tests: the regulariser (a function) and its options
# are static, so each combination compiles once; this also checks that each works under jit.
_value = eqx.filter_jit(lambda function, net, xs, **options: function(net, xs, **options))


def _euler_net(field, num_steps=3, **options):
    return dp.SolverNet(field, solver="euler", t1=1.0, num_steps=num_steps, **options)


# Nonlinear, time-dependent fields, built once: the Jacobian and the states vary along the path.
MLP_2 = dp.fields.MLP(state_dim=2, width=3, depth=1, time_input=True, key=KEY)
MLP_3 = dp.fields.MLP(state_dim=3, width=3, depth=1, time_input=True, key=KEY)


def _linear_states(solver, x, h, num_steps):
    """y_0 … y_{L−1} of the net on y' = Ay, by hand."""
    matrix = np.asarray(A)
    if solver == "leapfrog_midpoint":
        # diffrax starts leapfrog with an Euler step, then y_{k+1} = y_{k−1} + 2hA y_k.
        states = [x, x + h * matrix @ x]
        while len(states) < num_steps:
            states.append(states[-2] + 2 * h * matrix @ states[-1])
        return states[:num_steps]
    # One-step methods: y_k = S^k x, S = R(hA) (I + hA for Euler).
    coefficients = dp.stability.stability_polynomial(solver)
    step = sum(c * np.linalg.matrix_power(h * matrix, k) for k, c in enumerate(coefficients))
    return [np.linalg.matrix_power(step, k) @ x for k in range(num_steps)]


# Leapfrog is a two-step method, read from the net's own solve; with the backsolve adjoint,
# which cannot save intermediate steps, so this also checks that the regulariser gets round it.
@pytest.mark.parametrize(
    ("solver", "adjoint"),
    [("euler", "recursive_checkpoint"), ("rk4", "recursive_checkpoint"), ("leapfrog_midpoint", "backsolve")],
)
def test_kinetic_energy_is_the_closed_form(solver, adjoint):
    num_steps, h = 5, 0.2
    net = dp.SolverNet(dp.fields.Linear(A), solver=solver, t1=num_steps * h, num_steps=num_steps, adjoint=adjoint)
    states = [_linear_states(solver, x, h, num_steps) for x in np.asarray(XS)]
    expected = np.mean([sum(h * np.sum((np.asarray(A) @ y) ** 2) for y in sample) for sample in states])
    # The same products in another order: round-off only.
    assert float(_value(kinetic_energy, net, XS)) == pytest.approx(expected, rel=1e-12)


def test_exact_jacobian_frobenius_is_the_closed_form():
    # ∂f/∂y = A at every layer: Σ_k h ‖A‖_F² = T ‖A‖_F².
    net = dp.SolverNet(dp.fields.Linear(A), solver="heun", t1=1.5, num_steps=3)
    value = _value(jacobian_frobenius, net, XS, exact=True)
    assert float(value) == pytest.approx(1.5 * float(jnp.sum(A**2)), rel=1e-12)


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_hutchinson_estimate_is_unbiased(probe):
    net = _euler_net(MLP_3, num_steps=2)
    xs = jax.random.normal(jax.random.PRNGKey(3), (2, 3))
    exact = float(_value(jacobian_frobenius, net, xs, exact=True))
    num_estimates = 4000
    estimates = jax.jit(jax.vmap(lambda key: jacobian_frobenius(net, xs, probe=probe, key=key)))(jax.random.split(KEY, num_estimates))
    standard_error = float(jnp.std(estimates)) / np.sqrt(num_estimates)
    assert standard_error > 1e-3 * exact  # the probes do vary: the test is not vacuous
    # Unbiased: the mean of 4000 independent estimates lies within 3 standard errors of the
    # exact value (a 0.3% chance of failing for a key drawn at random; this one is fixed).
    assert abs(float(jnp.mean(estimates)) - exact) < 3 * standard_error


def test_weight_smoothness_is_the_closed_form():
    matrices = [A, A + jnp.array([[0.5, 0.0], [0.0, 0.0]]), A.T, 2 * A]
    field = dp.fields.PerLayer([dp.fields.Linear(m) for m in matrices], t0=0.0, t1=2.0)
    # Layer spacing h = 2/4 of the field's own grid, whatever the net's steps.
    expected = sum(float(jnp.sum((b - a) ** 2)) for a, b in zip(matrices, matrices[1:])) / 0.5
    for net in [_euler_net(field, num_steps=8), dp.SolverNet(field, solver="tsit5", t1=2.0, num_steps=None)]:
        assert float(_value(weight_smoothness, net, XS)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("solver", "margin"), [("euler", 0.0), ("euler", 0.1), ("rk4", 0.0)])
def test_spectral_penalty_is_the_closed_form(solver, margin):
    # A non-normal matrix with eigenvalues 0.5 ± 2i and −3, and h = 0.25.
    eigenvalues = np.array([0.5 + 2j, 0.5 - 2j, -3.0])
    block = np.array([[0.5, 2.0, 0.0], [-2.0, 0.5, 0.0], [0.0, 0.0, -3.0]])
    basis = np.array([[1.0, 0.3, -0.2], [0.1, 1.0, 0.4], [0.0, -0.5, 1.0]])
    matrix = basis @ block @ np.linalg.inv(basis)
    net = dp.SolverNet(dp.fields.Linear(jnp.asarray(matrix)), solver=solver, t1=1.0, num_steps=4)
    z = 0.25 * eigenvalues
    if solver == "euler":
        growth = np.abs(1 + z)  # 1.231 for the pair, 0.25 for −3
    else:
        growth = np.abs(1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24)
    expected = np.mean(np.maximum(growth - (1 - margin), 0) ** 2)
    assert expected > 0
    xs = jax.random.normal(KEY, (2, 3))
    # LAPACK's eigenvalues err by about ε·κ(basis)·‖A‖ (κ = 1.5 here): round-off only
    # (measured: 2e-16 relative).
    assert float(_value(spectral_penalty, net, xs, margin=margin)) == pytest.approx(expected, rel=1e-12)


def test_local_error_of_a_fixed_step_net_is_the_embedded_pair_by_hand():
    num_steps, h = 4, 0.25
    net = dp.SolverNet(dp.fields.Linear(A), solver="bosh3", t1=1.0, num_steps=num_steps)
    step, error = _bogacki_shampine_matrices(np.asarray(A), h)
    states = [[np.linalg.matrix_power(step, k) @ x for k in range(num_steps)] for x in np.asarray(XS)]
    expected = np.mean([sum(np.sum((error @ y) ** 2) for y in sample) for sample in states])
    # Tableau arithmetic in another order: round-off only.
    assert float(_value(local_error, net, XS)) == pytest.approx(expected, rel=1e-12)


def test_local_error_of_an_adaptive_net_re_steps_its_solution_on_a_grid():
    net = dp.SolverNet(dp.fields.Linear(A), solver="bosh3", t1=1.0, num_steps=None, rtol=1e-10, atol=1e-10)
    num_steps, h = 5, 0.2
    _, error = _bogacki_shampine_matrices(np.asarray(A), h)
    states = [[scipy.linalg.expm(j * h * np.asarray(A)) @ x for j in range(num_steps)] for x in np.asarray(XS)]
    expected = np.mean([sum(np.sum((error @ y) ** 2) for y in sample) for sample in states])
    # The states come from the adaptive solve at tolerance 1e-10, not from exp(tA): its
    # global error enters (measured: 1.2e-10 relative), so 1e-8 leaves a margin of ~100.
    assert float(_value(local_error, net, XS, num_steps=num_steps)) == pytest.approx(expected, rel=1e-8)


def test_lyapunov_and_io_condition_are_the_closed_form():
    # y' = Ay by Euler: ∂y_L/∂y_0 = (I + hA)^L whatever the state, with singular values
    # 0.82 and 0.33 for L = 4, h = 0.25 (T = 1).
    net = _euler_net(dp.fields.Linear(A), num_steps=4)
    singular = np.linalg.svd(np.linalg.matrix_power(np.eye(2) + 0.25 * np.asarray(A), 4), compute_uv=False)
    # The same products in another order, and LAPACK's SVD: round-off only.
    assert float(_value(lyapunov, net, XS)) == pytest.approx(np.log(singular[0]), rel=1e-12)
    assert float(_value(io_condition, net, XS)) == pytest.approx(np.log(singular[0] / singular[1]), rel=1e-12)


# name, net, keyword arguments: nonlinear fields, so that the gradients pass through the
# states and (for the Jacobian regularisers) through second derivatives of the field.
_GRADIENT_CASES = {
    "kinetic_energy": (lambda: _euler_net(MLP_2, adjoint="backsolve"), {}),
    "jacobian_frobenius": (lambda: _euler_net(MLP_2), {"key": jax.random.PRNGKey(5), "num_probes": 2}),
    "jacobian_frobenius_exact": (lambda: _euler_net(MLP_2), {"exact": True}),
    "weight_smoothness": (lambda: _euler_net(dp.fields.PerLayer([dp.fields.Linear(m) for m in (A, A.T, -A)])), {}),
    # margin 0.9: the penalty starts at growth 0.1; every h·λ of this MLP has growth ≥ 0.91
    # (measured), so every eigenvalue is penalised, away from the kink of relu.
    "spectral_penalty": (lambda: _euler_net(MLP_2), {"margin": 0.9}),
    "local_error": (lambda: dp.SolverNet(MLP_2, solver="bosh3", t1=1.0, num_steps=2), {}),
    # The two singular values of ∂y_L/∂y_0 are apart here (measured: 0.90 to 0.92 and 0.72
    # to 0.83 over XS, both nets), where both are differentiable; measured errors ≤ 5e-11 of
    # the scale. io_condition on a two-step method checks its other path, the net's own solve.
    "lyapunov": (lambda: _euler_net(MLP_2), {}),
    "io_condition": (lambda: dp.SolverNet(MLP_2, solver="leapfrog_midpoint", t1=1.0, num_steps=3), {}),
}


@pytest.mark.parametrize("case", list(_GRADIENT_CASES))
def test_gradient_matches_central_differences(case):
    make_net, options = _GRADIENT_CASES[case]
    function = REGULARISERS[case.removesuffix("_exact")]
    net = make_net()

    # As the training code uses it: a jitted value and gradient with respect to the model.
    value_and_grad = eqx.filter_jit(eqx.filter_value_and_grad(lambda model: function(model, XS, **options)))
    value, gradient = value_and_grad(net)
    assert float(value) != 0  # lyapunov is negative for this contracting net
    parameters, unravel = jax.flatten_util.ravel_pytree(eqx.filter(net.field, eqx.is_inexact_array))
    flat_gradient, _ = jax.flatten_util.ravel_pytree(eqx.filter(gradient.field, eqx.is_inexact_array))

    def at(flat):
        field = eqx.combine(unravel(flat), eqx.filter(net.field, eqx.is_inexact_array, inverse=True))
        return float(value_and_grad(eqx.tree_at(lambda model: model.field, net, field))[0])

    step = 1e-6
    for direction in jax.random.normal(jax.random.PRNGKey(7), (3, parameters.size)):
        difference = (at(parameters + step * direction) - at(parameters - step * direction)) / (2 * step)
        # Central differences err by step²·f'''/6 (~1e-12) and by rounding ~ε·|f|/step
        # (≤ 4e-9 absolute for these |f| ≤ 16). Measured: ≤ 3e-10 of the scale ‖∇f‖‖v‖, so
        # 1e-6 of it leaves a wide margin, and a wrong derivative term would exceed it.
        scale = float(jnp.linalg.norm(flat_gradient) * jnp.linalg.norm(direction))
        assert abs(difference - float(flat_gradient @ direction)) < 1e-6 * scale


def test_registry_names_every_regulariser_and_refuses_unknown_names():
    for name, function in REGULARISERS.items():
        assert regulariser(name) is function
    assert set(regularisers.RANDOM_REGULARISERS) <= set(REGULARISERS)
    with pytest.raises(ValueError, match="Unknown regulariser 'kinetic'. Valid regularisers are: kinetic_energy, "):
        regulariser("kinetic")


def test_bad_input_is_refused_with_the_reason():
    adaptive = dp.SolverNet(dp.fields.Linear(A), solver="tsit5", num_steps=None)
    for function in [kinetic_energy, spectral_penalty]:
        with pytest.raises(ValueError, match="is measured on the layers of a fixed-step SolverNet"):
            function(adaptive, XS)
    with pytest.raises(ValueError, match="this net is adaptive"):
        jacobian_frobenius(adaptive, XS, exact=True)
    with pytest.raises(ValueError, match="field is a deepest.fields.PerLayer; got a field of type Linear"):
        weight_smoothness(_euler_net(dp.fields.Linear(A)), XS)
    fixed = _euler_net(dp.fields.Linear(A))
    with pytest.raises(ValueError, match="pass key="):
        jacobian_frobenius(fixed, XS)
    with pytest.raises(ValueError, match="Unknown probe 'normal'"):
        jacobian_frobenius(fixed, XS, probe="normal", key=KEY)
    with pytest.raises(ValueError, match="num_probes must be a positive integer, got 0"):
        jacobian_frobenius(fixed, XS, num_probes=0, key=KEY)
    with pytest.raises(ValueError, match="margin must be below 1"):
        spectral_penalty(fixed, XS, margin=1.0)
    with pytest.raises(ValueError, match="embedded error estimate, got 'euler'"):
        local_error(fixed, XS)
    with pytest.raises(ValueError, match="local_error needs num_steps"):
        local_error(adaptive, XS)
    with pytest.raises(ValueError, match="its own 3 steps; got num_steps=5"):
        local_error(fixed.with_solver("bosh3"), XS, num_steps=5)
    with pytest.raises(ValueError, match="leading batch axis"):
        kinetic_energy(fixed, XS[0])
    for function in [lyapunov, io_condition]:
        with pytest.raises(ValueError, match="is measured on the layers of a fixed-step SolverNet"):
            function(adaptive, XS)
    large = _euler_net(dp.fields.Linear(-jnp.eye(DENSE_STATE_LIMIT + 1)))
    with pytest.raises(ValueError, match=f"at most DENSE_STATE_LIMIT = {DENSE_STATE_LIMIT} dimensions; this net's state has 257"):
        io_condition(large, jnp.ones((1, DENSE_STATE_LIMIT + 1)))


def test_config_weights_are_the_registered_regularisers():
    assert set(WEIGHTS) <= set(REGULARISERS)
    terms = RegularisationConfig(lyapunov=0.5, io_condition=0.1).terms(adaptive=False)
    assert terms == (("lyapunov", 0.5, {}), ("io_condition", 0.1, {}))
    with pytest.raises(ConfigError, match="regularisation.lyapunov = 0.5 is not allowed: 0 for adaptive nets"):
        ExperimentConfig(regularisation=RegularisationConfig(lyapunov=0.5), discretisation=DiscretisationConfig(solver="tsit5", num_steps=0))
