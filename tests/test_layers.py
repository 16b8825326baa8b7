"""deepest.layers: the layer map is one step of the net's own solver."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import deepest as dp
from deepest import layers

# A linear field's layers have closed forms, so every comparison below is against exact
# arithmetic; 1e-12 leaves room for float64 round-off over a few matrix products.
TOLERANCE = 1e-12
MATRIX = jnp.array([[-1.0, 2.0], [-0.5, -0.3]])
Y0 = jnp.array([0.7, -1.2])


def _net(solver: str, num_steps: int = 4, field=None):
    return dp.SolverNet(field or dp.fields.Linear(MATRIX), solver=solver, t1=1.0, num_steps=num_steps)


def test_layer_times_are_the_uniform_grid():
    np.testing.assert_allclose(layers.layer_times(_net("euler", 4)), [0.0, 0.25, 0.5, 0.75, 1.0], atol=TOLERANCE)


def test_euler_layer_is_the_residual_block():
    """Φ_h(t, y) = y + h A y for explicit Euler on f(t, y) = A y."""
    net = _net("euler", 4)
    step = layers.layer_step(net, net.field, 0.0, 0.25, Y0)
    np.testing.assert_allclose(step, Y0 + 0.25 * MATRIX @ Y0, atol=TOLERANCE)


def test_rk4_layer_is_its_stability_polynomial():
    """One RK4 step on y' = A y is R(hA) y with R(z) = 1 + z + z²/2 + z³/6 + z⁴/24."""
    h = 0.25
    Z = h * MATRIX
    R = jnp.eye(2) + Z + Z @ Z / 2 + Z @ Z @ Z / 6 + Z @ Z @ Z @ Z / 24
    net = _net("rk4", 4)
    np.testing.assert_allclose(layers.layer_step(net, net.field, 0.0, h, Y0), R @ Y0, atol=TOLERANCE)


@pytest.mark.parametrize("solver", ["euler", "heun", "rk4", "implicit_euler"])
def test_layer_chain_is_the_nets_solve(solver):
    net = _net(solver, 5)
    np.testing.assert_allclose(layers.layer_chain(net, Y0), net.final_state(Y0), atol=1e-10)


def test_trajectories_hold_every_layer_state():
    net = _net("midpoint", 3)
    times, states = layers.trajectories(net, Y0[None])
    assert times.shape == (4,) and states.shape == (1, 4, 2)
    for k in range(3):
        np.testing.assert_allclose(states[0, k + 1], layers.layer_step(net, net.field, times[k], times[k + 1], states[0, k]), atol=TOLERANCE)


def test_partitioned_state_is_split_and_joined_once():
    """Symplectic Euler on the separable Hamiltonian field: the layer map takes and returns
    the joined state [q, p], and chains to the net's own solve."""
    field = dp.fields.Hamiltonian(4, key=jax.random.PRNGKey(0))
    net = _net("semi_implicit_euler", 6, field)
    y0 = jnp.array([0.3, -0.2, 0.5, 0.1])
    halves = dp.solvers.split_state("semi_implicit_euler", y0)
    assert len(halves) == 2 and all(half.shape == (2,) for half in halves)
    np.testing.assert_array_equal(dp.solvers.join_state("semi_implicit_euler", halves), y0)
    assert layers.layer_step(net, field, 0.0, 1 / 6, y0).shape == (4,)
    np.testing.assert_allclose(layers.layer_chain(net, y0), net.final_state(y0), atol=TOLERANCE)


def test_embedded_error_is_the_difference_of_the_pair():
    """Heun's embedded estimate is the Heun step minus the Euler step: (h²/2) A² y on a linear field."""
    h = 0.25
    _, error = layers.solver_step_with_error("heun", dp.fields.Linear(MATRIX), 0.0, h, Y0)
    np.testing.assert_allclose(jnp.abs(error), jnp.abs(h**2 / 2 * MATRIX @ MATRIX @ Y0), atol=TOLERANCE)


def test_solver_step_calls_plain_functions_with_args():
    step = layers.solver_step("euler", lambda t, y, args: -y, 0.0, 0.5, Y0)
    np.testing.assert_allclose(step, 0.5 * Y0, atol=TOLERANCE)


def test_two_step_solvers_and_adaptive_nets_are_refused_by_name():
    with pytest.raises(ValueError, match="leapfrog_midpoint.*two-step"):
        layers.layer_chain(_net("leapfrog_midpoint"), Y0)
    with pytest.raises(ValueError, match="fixed-step"):
        layers.layer_times(dp.SolverNet(dp.fields.Linear(MATRIX), solver="tsit5", num_steps=None))
    with pytest.raises(ValueError, match="leading batch axis"):
        layers.trajectories(_net("euler"), Y0)
