"""The scan over a solver's steps against diffrax.diffeqsolve: same states, same gradients."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import optax
import pytest

import deepest as dp
from deepest._scan_solve import scan_solve

KEY = jax.random.PRNGKey(0)
X = jnp.array([0.3, -0.7])
NUM_STEPS = 3
IMPLICIT = ("implicit_euler", "kvaerno3", "kvaerno5")


def _net(name):
    # A time-dependent field, so that every stage time c_i h enters the comparison.
    if name == "semi_implicit_euler":
        field = dp.fields.Hamiltonian(2, key=KEY)
    else:
        field = dp.fields.MLP(state_dim=2, width=8, depth=1, time_input=True, key=KEY)
    options = {"k": 0.5} if name == "lm_resnet" else None
    return dp.SolverNet(field, solver=name, solver_options=options, num_steps=NUM_STEPS)


@eqx.filter_jit
def _both_ways(net, x):
    """(y(t1), parameter gradient of Σ sin y(t1), states at every step) by the scan and by
    diffeqsolve, whose every-step save gives all three from one solve."""

    def with_gradient(states):
        def loss(model):
            every = states(model)
            return jnp.sum(jnp.sin(every[-1])), every

        (_, every), grads = eqx.filter_value_and_grad(loss, has_aux=True)(net)
        return every[-1], jnp.concatenate([leaf.ravel() for leaf in jax.tree.leaves(grads)]), every

    final, gradient, _ = with_gradient(lambda model: model.solve(x).ys)
    scan = (final, gradient, net.trajectory(x)[1])
    saveat = diffrax.SaveAt(t0=True, steps=True)
    return scan, with_gradient(lambda model: model._diffeqsolve(x, saveat).ys[: NUM_STEPS + 1])


# Implicit solvers stay on diffeqsolve, which reports a failed root find and stops there.
@pytest.mark.parametrize("name", [name for name in dp.SOLVERS if name not in IMPLICIT])
def test_scan_gives_diffrax_states_and_gradients(name):
    net = _net(name)
    assert net._scans  # otherwise both sides below would be diffeqsolve
    scan, diffrax_ = _both_ways(net, X)
    # The same steps of the same solver in the same order: equal up to XLA's choice of fusion,
    # and the backward passes accumulate the same products in the same order.
    for ours, theirs in zip(jax.tree.leaves(scan), jax.tree.leaves(diffrax_), strict=True):
        assert ours.shape == theirs.shape
        assert jnp.max(jnp.abs(ours - theirs)) <= 1e-12 * (1 + jnp.max(jnp.abs(theirs)))


def test_other_nets_keep_diffeqsolve():
    field = dp.fields.MLP(state_dim=2, width=8, depth=1, key=KEY)
    assert dp.SolverNet(field, solver="rk4", num_steps=4)._scans
    assert not dp.SolverNet(field, solver="kvaerno3", num_steps=4)._scans
    assert not dp.SolverNet(field, solver="rk4", num_steps=4, adjoint="direct")._scans
    assert not dp.SolverNet(field, solver="tsit5", num_steps=None)._scans
    with pytest.raises(ValueError, match="implicit"):
        scan_solve(dp.solver("implicit_euler"), diffrax.ODETerm(field), jnp.linspace(0.0, 1.0, 3), X)


def test_batched_solution_reads_like_diffrax():
    # What training reads from jax.vmap(net.solve): ys, result and stats["num_steps"].
    net = _net("tsit5")
    xs = jnp.stack([X, -X, 2 * X])
    ours, theirs = jax.vmap(net.solve)(xs), jax.vmap(lambda x: net._diffeqsolve(x, None))(xs)
    assert ours.ys.shape == theirs.ys.shape == (3, 1, 2)
    assert jnp.all(ours.result == diffrax.RESULTS.successful)
    assert jnp.all(ours.ts == theirs.ts)
    for key in ("num_steps", "num_accepted_steps", "num_rejected_steps"):
        assert jnp.all(ours.stats[key] == theirs.stats[key]), key


def test_divergence_shows_in_the_state():
    # Euler on y' = diag(1e4, −1) y with h = 0.1 grows by 1001 per step: past float64's 1.8e308
    # within 103 steps. As from diffeqsolve (throw=False reports only failed root finds and
    # step budgets), the result stays successful and the state holds the overflow.
    net = dp.SolverNet(dp.fields.Linear(jnp.diag(jnp.array([1e4, -1.0]))), num_steps=120, t1=12.0, throw=False)
    ours, theirs = net.solve(X), net._diffeqsolve(X, None)
    assert not jnp.all(jnp.isfinite(ours.ys))
    assert jnp.array_equal(ours.ys, theirs.ys, equal_nan=True)
    assert ours.result == theirs.result == diffrax.RESULTS.successful


def test_forward_and_reverse_mode_agree():
    # The scan differentiates in forward mode too (diffrax's checkpointed loop does not).
    net = _net("rk4")
    forward, reverse = jax.jacfwd(net)(X), jax.jacrev(net)(X)
    assert jnp.max(jnp.abs(forward - reverse)) <= 1e-14


def test_training_step_compiles_once():
    net = _net("euler")
    optimiser = optax.adam(1e-2)
    xs = jax.random.normal(KEY, (8, 2))
    traces = []

    @eqx.filter_jit
    def step(model, state):
        def loss(model):
            traces.append(1)
            return jnp.mean(jnp.sum(jax.vmap(model)(xs) ** 2, axis=-1))

        value, grads = eqx.filter_value_and_grad(loss)(model)
        updates, state = optimiser.update(grads, state, eqx.filter(model, eqx.is_inexact_array))
        return eqx.apply_updates(model, updates), state, value

    state = optimiser.init(eqx.filter(net, eqx.is_inexact_array))
    values = []
    for _ in range(3):
        net, state, value = step(net, state)
        values.append(float(value))
    assert len(traces) == 1
    assert values[-1] < values[0]  # the updates reach the model that the next step sees
