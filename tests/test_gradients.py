"""Per-layer gradient norms and input–output singular values against closed forms and autodiff."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import deepest as dp
from deepest.analysis import gradient_norms, io_jacobian_singular_values

KEY = jax.random.PRNGKey(0)
XS = jax.random.normal(jax.random.PRNGKey(1), (3, 3))
TARGETS = jax.random.normal(jax.random.PRNGKey(2), (3, 3))
A = jnp.array([[-1.0, 0.3, 0.0], [0.0, -2.0, 0.1], [0.2, 0.0, 0.5]])


def _inner_product_loss(output, target):
    """L = ⟨y_L, c⟩, so ∂L/∂y_L = c exactly."""
    return jnp.dot(output, target)


def _relative(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b)) / np.abs(np.asarray(b))))


def test_linear_euler_profile_is_the_closed_form():
    num_steps, h = 12, 0.1
    net = dp.SolverNet(dp.fields.Linear(A), solver="euler", t1=num_steps * h, num_steps=num_steps)
    grads = gradient_norms(net, XS, TARGETS, _inner_product_loss)
    transposed_step = (np.eye(3) + h * np.asarray(A)).T
    for sample in range(3):
        c = np.asarray(TARGETS[sample])
        expected = [np.linalg.norm(np.linalg.matrix_power(transposed_step, num_steps - k) @ c) for k in range(num_steps + 1)]
        # Matrix products of the same numbers in another order: round-off only.
        assert _relative(grads.state[sample], expected) < 1e-12
    np.testing.assert_allclose(grads.loss, jnp.sum(jax.vmap(net)(XS) * TARGETS, axis=1), rtol=1e-12)


def test_nets_differing_in_weights_and_step_size_share_one_compiled_backward_pass():
    # The layer times enter the compiled program as data, not as the net's static t0 and t1:
    # a sweep's seeds and step sizes trace it once, and each net still gets its own numbers.
    traces = 0

    def counted_loss(output, target):
        nonlocal traces
        traces += 1
        return _inner_product_loss(output, target)

    num_steps = 12
    for matrix, h in ((A, 0.1), (0.5 * A, 0.2)):
        net = dp.SolverNet(dp.fields.Linear(matrix), solver="euler", t1=num_steps * h, num_steps=num_steps)
        grads = gradient_norms(net, XS, TARGETS, counted_loss)
        transposed_step = (np.eye(3) + h * np.asarray(matrix)).T
        expected = np.linalg.norm(np.linalg.matrix_power(transposed_step, num_steps) @ np.asarray(TARGETS[0]))
        # The closed form of the input-layer adjoint, as above: round-off only.
        assert _relative(grads.state[0, 0], expected) < 1e-12
    assert traces == 1


def test_adjoint_at_the_input_equals_autodiff_through_the_solve():
    field = dp.fields.MLP(state_dim=3, width=8, depth=1, activation="tanh", time_input=True, key=KEY)
    net = dp.SolverNet(field, solver="rk4", num_steps=4, readout=eqx.nn.Linear(3, 2, key=KEY))

    def loss_fn(output, target):
        return jnp.sum((output - target[:2]) ** 2)

    grads = gradient_norms(net, XS, TARGETS, loss_fn)
    expected = jax.vmap(jax.grad(lambda x, target: loss_fn(net(x), target)))(XS, TARGETS)
    # Same derivative by two routes (layer vjps vs diffrax's checkpointed adjoint).
    assert _relative(grads.state[:, 0], jnp.linalg.norm(expected, axis=1)) < 1e-12


def test_per_layer_parameter_norms_are_the_per_layer_weight_gradients():
    layers = [dp.fields.MLP(state_dim=3, width=5, depth=1, key=k) for k in jax.random.split(KEY, 4)]
    net = dp.SolverNet(dp.fields.PerLayer(layers), solver="euler", num_steps=4)
    grads = gradient_norms(net, XS[:1], TARGETS[:1], _inner_product_loss)

    def loss_of_field(field):
        return _inner_product_loss(eqx.tree_at(lambda n: n.field, net, field)(XS[0]), TARGETS[0])

    gradient = eqx.filter_grad(loss_of_field)(net.field)
    leaves = jax.tree.leaves(eqx.filter(gradient, eqx.is_inexact_array))
    expected = [np.sqrt(sum(float(jnp.sum(leaf[k] ** 2)) for leaf in leaves)) for k in range(4)]
    assert _relative(grads.parameters[0], expected) < 1e-12


@pytest.mark.parametrize(
    ("matrix", "regime"), [(-3.0 * np.eye(2), "vanishing"), (3.0 * np.eye(2), "exploding"), ([[0.0, 1.0], [-1.0, 0.0]], "stable")]
)
def test_regime_follows_the_layer_map(matrix, regime):
    # Euler layers (1 ∓ 0.3)·I shrink or grow the adjoint by 0.7 or 1.3 per layer: over 10
    # layers far beyond the factor 10; the rotation changes it by (1 + h²)^5 ≈ 1.05.
    net = dp.SolverNet(dp.fields.Linear(jnp.asarray(matrix)), solver="euler", t1=1.0, num_steps=10)
    grads = gradient_norms(net, XS[:, :2], TARGETS[:, :2], _inner_product_loss)
    assert grads.regime() == regime
    if regime != "stable":
        assert float(grads.slope) == pytest.approx(-np.log(1 + 0.1 * matrix[0][0]), rel=1e-12)


def test_io_singular_values_are_those_of_the_step_matrix_power(traced):
    # Nets differing in their weights only (a sweep's seeds) share one compiled Jacobian
    # program (a batch of 5: a shape no other test uses).
    num_steps, h = 6, 0.1
    xs = jax.random.normal(KEY, (5, 3))
    for matrix in (A, 0.5 * A):
        net = dp.SolverNet(dp.fields.Linear(matrix), solver="rk4", t1=num_steps * h, num_steps=num_steps)
        io = io_jacobian_singular_values(net, xs)
        stepper = dp.stability.stability_polynomial("rk4")
        step = sum(c * np.linalg.matrix_power(h * np.asarray(matrix), k) for k, c in enumerate(stepper))
        expected = np.linalg.svd(np.linalg.matrix_power(step, num_steps), compute_uv=False)
        np.testing.assert_allclose(io.singular_values, np.broadcast_to(expected, (5, 3)), rtol=1e-12)
        np.testing.assert_allclose(io.largest, expected[0], rtol=1e-12)
        np.testing.assert_allclose(io.log_spread, np.log(expected[0] / expected[-1]), rtol=1e-12)
    assert [name for name in traced if "_state_jacobians" in name] == ["_state_jacobians"], traced


def test_two_step_solvers_are_refused_with_the_reason():
    net = dp.SolverNet(dp.fields.Linear(A), solver="reversible_heun", num_steps=4)
    with pytest.raises(ValueError, match="two-step method"):
        gradient_norms(net, XS, TARGETS, _inner_product_loss)


def test_gradient_norms_and_io_work_under_jit():
    net = dp.SolverNet(dp.fields.Linear(A), solver="heun", t1=0.5, num_steps=5)
    eager = gradient_norms(net, XS, TARGETS, _inner_product_loss)
    jitted = eqx.filter_jit(gradient_norms)(net, XS, TARGETS, _inner_product_loss)
    np.testing.assert_allclose(jitted.state, eager.state, rtol=1e-12)
    np.testing.assert_allclose(jitted.parameters, eager.parameters, rtol=1e-12)
    io = eqx.filter_jit(io_jacobian_singular_values)(net, XS)
    np.testing.assert_allclose(io.singular_values, io_jacobian_singular_values(net, XS).singular_values, rtol=1e-12)


def test_regime_names_divergence_and_a_zero_gradient_vanishing():
    zero_at_input = dp.analysis.GradientNorms(state=jnp.array([[0.0, 1.0, 1.0, 1.0]]), parameters=jnp.ones((1, 3)), loss=jnp.ones(1))
    assert zero_at_input.regime() == "vanishing"
    diverged = dp.analysis.GradientNorms(state=jnp.array([[jnp.nan, 1.0, 1.0, 1.0]]), parameters=jnp.ones((1, 3)), loss=jnp.ones(1))
    assert diverged.regime() == "diverged"


def test_io_singular_values_are_the_discrete_derivative_under_any_adjoint():
    net = dp.SolverNet(dp.fields.Linear(A), solver="euler", t1=1.0, num_steps=5, adjoint="backsolve")
    expected = np.linalg.svd(np.linalg.matrix_power(np.eye(3) + 0.2 * np.asarray(A), 5), compute_uv=False)
    # Backsolve would give the continuous adjoint's approximation; the analysis wants the
    # exact derivative of the discrete net.
    np.testing.assert_allclose(io_jacobian_singular_values(net, XS).singular_values[0], expected, rtol=1e-12)
