"""Eigenvalues and singular values under differentiation: JAX's derivative rules against
central finite differences, and LAPACK's numbers through the callback otherwise."""

import equinox as eqx
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

import deepest as dp
from deepest import _batched_linalg
from deepest._batched_linalg import eigenvalues, singular_values, symmetric_eigenvalues
from deepest.analysis import io_jacobian_singular_values

MATRICES = jax.random.normal(jax.random.PRNGKey(0), (4, 3, 3))
SYMMETRIC = MATRICES + jnp.swapaxes(MATRICES, -1, -2)
XS = jax.random.normal(jax.random.PRNGKey(1), (2, 3))
# State dimension 3, three Euler steps, a time-dependent nonlinear field: the Jacobian
# ∂y_L/∂y_0 varies with the sample and its singular values are distinct (measured: 1.31,
# 0.93, 0.75 and 1.38, 0.91, 0.77), so σ_max is differentiable.
NET = dp.SolverNet(
    dp.fields.MLP(state_dim=3, width=3, depth=1, time_input=True, key=jax.random.PRNGKey(0)),
    solver="euler",
    t1=1.0,
    num_steps=3,
)


def _counting_callbacks(monkeypatch):
    """A list that grows by one at each batch that goes to LAPACK through the callback."""
    calls = []
    solve = _batched_linalg._on_every_core

    def counted(gufunc, matrices, out_dtype):
        calls.append(len(matrices))
        return solve(gufunc, matrices, out_dtype)

    monkeypatch.setattr(_batched_linalg, "_on_every_core", counted)
    return calls


def test_values_come_from_lapack_through_the_callback_unless_differentiated(monkeypatch):
    calls = _counting_callbacks(monkeypatch)
    cases = [
        (eigenvalues, MATRICES, np.linalg.eigvals),
        (symmetric_eigenvalues, SYMMETRIC, np.linalg.eigvalsh),
        (singular_values, MATRICES, lambda matrices: np.linalg.svd(matrices, compute_uv=False)),
    ]
    for function, matrices, reference in cases:
        # NumPy calls the same LAPACK gufunc on the same matrix: the same bits, eagerly
        # and under jit (through jax.pure_callback).
        expected = reference(np.asarray(matrices))
        np.testing.assert_array_equal(function(matrices), expected)
        np.testing.assert_array_equal(jax.jit(function)(matrices), expected)
    assert len(calls) == 6
    io = io_jacobian_singular_values(NET, XS)
    assert calls[-1] == len(XS)  # the analysis' forward path is the callback's
    # Under differentiation no batch reaches the callback: JAX's own SVD computes the values.
    largest, gradient = eqx.filter_value_and_grad(lambda net: jnp.mean(io_jacobian_singular_values(net, XS).largest))(NET)
    assert len(calls) == 7
    # JAX's SVD (with vectors) and LAPACK's gesdd (without) agree to round-off.
    assert float(largest) == pytest.approx(float(jnp.mean(io.largest)), rel=1e-14)


def _central_difference(function, point, direction, step):
    return (function(point + step * direction) - function(point - step * direction)) / (2 * step)


@pytest.mark.parametrize(
    ("function", "matrices"),
    [(eigenvalues, MATRICES), (symmetric_eigenvalues, SYMMETRIC), (singular_values, MATRICES)],
    ids=["eigenvalues", "symmetric_eigenvalues", "singular_values"],
)
def test_jvp_of_every_value_matches_central_differences(function, matrices):
    # Random 3×3 matrices have simple eigenvalues and singular values (almost surely; these
    # are ≥ 0.29 apart), where each value is a smooth function of the matrix.
    direction = jax.random.normal(jax.random.PRNGKey(2), matrices.shape)
    if function is symmetric_eigenvalues:
        direction = direction + jnp.swapaxes(direction, -1, -2)
    values, derivatives = jax.jvp(function, (matrices,), (direction,))
    np.testing.assert_allclose(values, function(matrices), rtol=1e-13)
    # The values' order is LAPACK's: unsorted for general eigenvalues, but the same on
    # matrices this close, so the differences pair each value with itself. Step 1e-5
    # balances truncation, step²·f'''/6, against rounding, ε·|λ|/step ≈ 1.4e-10 (|λ| ≤ 6.3):
    # measured ≤ 7e-10 against derivatives of up to 4.1, so 1e-8 leaves a margin of 14, and
    # a wrong derivative would miss by order 1.
    differences = _central_difference(lambda m: np.asarray(function(m)), np.asarray(matrices), np.asarray(direction), 1e-5)
    np.testing.assert_allclose(derivatives, differences, rtol=0, atol=1e-8)


# The two quantities of the acceptance: the top finite-time Lyapunov exponent
# (1/T) ln σ_max(∂y_L/∂y_0) and σ_max itself, batch means.
_QUANTITIES = {
    "top_lyapunov_exponent": lambda io: io.lyapunov_exponents[:, 0],
    "largest_singular_value": lambda io: io.largest,
}


@pytest.mark.parametrize("quantity", list(_QUANTITIES))
def test_gradient_of_io_spectrum_matches_central_differences(quantity):
    def value(net):
        return jnp.mean(_QUANTITIES[quantity](io_jacobian_singular_values(net, XS)))

    gradient = eqx.filter_grad(value)(NET)
    parameters, unravel = jax.flatten_util.ravel_pytree(eqx.filter(NET.field, eqx.is_inexact_array))
    flat_gradient, _ = jax.flatten_util.ravel_pytree(eqx.filter(gradient.field, eqx.is_inexact_array))
    static = eqx.filter(NET.field, eqx.is_inexact_array, inverse=True)

    def at(flat):
        return float(value(eqx.tree_at(lambda net: net.field, NET, eqx.combine(unravel(flat), static))))

    for direction in jax.random.normal(jax.random.PRNGKey(7), (3, parameters.size)):
        difference = _central_difference(at, parameters, direction, 1e-6)
        # Central differences err by step²·f'''/6 and by rounding ~ε·|f|/step, both ≤ 1e-10
        # here; measured ≤ 3e-11 of the scale ‖∇f‖‖v‖ (3e-8 at step 1e-4, falling as step²:
        # the derivative is right, not just close). A wrong term would be of order 1.
        scale = float(jnp.linalg.norm(flat_gradient) * jnp.linalg.norm(direction))
        assert abs(difference - float(flat_gradient @ direction)) < 1e-8 * scale
