"""SolverNet against a hand-written ResNet, finite differences and its error contracts."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import deepest as dp

KEY = jax.random.PRNGKey(0)
X = jnp.array([0.3, -0.7])


def _mlp(key=KEY):
    return dp.fields.MLP(state_dim=2, width=8, depth=1, activation="tanh", time_input=True, key=key)


def _resnet(field, x, num_steps, t1=1.0):
    """y_{k+1} = y_k + h f(t_k, y_k), written out."""
    h = t1 / num_steps
    y = x
    for k in range(num_steps):
        y = y + h * field(k * h, y)
    return y


def _relative(a, b):
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


@pytest.mark.parametrize("per_layer", [False, True])
def test_euler_net_is_a_resnet_forward_and_backward(per_layer):
    field = dp.fields.PerLayer([_mlp(k) for k in jax.random.split(KEY, 6)]) if per_layer else _mlp()
    net = dp.SolverNet(field, solver="euler", t1=1.0, num_steps=6)
    # Same floating-point operations up to reassociation: 1e-12 relative.
    assert _relative(net(X), _resnet(field, X, 6)) <= 1e-12

    def loss_net(f):
        return jnp.sum(dp.SolverNet(f, solver="euler", t1=1.0, num_steps=6)(X) ** 2)

    grads_net = eqx.filter_grad(loss_net)(field)
    grads_resnet = eqx.filter_grad(lambda f: jnp.sum(_resnet(f, X, 6) ** 2))(field)
    flat_net = jnp.concatenate([g.ravel() for g in jax.tree.leaves(grads_net)])
    flat_resnet = jnp.concatenate([g.ravel() for g in jax.tree.leaves(grads_resnet)])
    assert _relative(flat_net, flat_resnet) <= 1e-12


def test_per_layer_field_uses_layer_k_on_its_interval():
    fields = [dp.fields.Linear(jnp.eye(2) * (k + 1)) for k in range(4)]
    field = dp.fields.PerLayer(fields, t0=0.0, t1=1.0)
    y = jnp.ones(2)
    # Grid points from linspace (as the solver produces them) map to their own layer.
    for k, t in enumerate(np.linspace(0.0, 1.0, 5)[:-1]):
        assert float(field(t, y)[0]) == k + 1
        assert float(field(t + 0.125, y)[0]) == k + 1  # a midpoint stage stays in layer k
    assert float(field(1.0, y)[0]) == 4  # t1 belongs to the last layer
    large = dp.fields.PerLayer([dp.fields.Linear(jnp.eye(1) * k) for k in range(1000)])
    indices = jax.vmap(large.layer_index)(jnp.linspace(0.0, 1.0, 1001)[:-1])
    assert (np.asarray(indices) == np.arange(1000)).all()


def test_per_layer_rejects_mixed_architectures():
    with pytest.raises(ValueError, match="one architecture"):
        dp.fields.PerLayer([_mlp(), dp.fields.MLP(2, 4, 1, key=KEY)])


def test_trajectory_holds_every_layer_and_no_padding():
    net = dp.SolverNet(_mlp(), solver="rk4", t1=2.0, num_steps=7)
    ts, ys = net.trajectory(X)
    assert ts.shape == (8,) and ys.shape == (8, 2)
    np.testing.assert_allclose(ts, np.linspace(0, 2, 8), rtol=1e-15)
    np.testing.assert_allclose(ys[0], X)
    np.testing.assert_allclose(ys[-1], net(X), rtol=1e-14)
    jitted_ts, jitted_ys = eqx.filter_jit(net.trajectory)(X)
    np.testing.assert_allclose(jitted_ys, ys, rtol=1e-14)


def test_adaptive_trajectory_is_cut_to_accepted_steps():
    net = dp.SolverNet(_mlp(), solver="tsit5", num_steps=None, rtol=1e-8, atol=1e-8)
    ts, ys = net.trajectory(X)
    assert np.isfinite(np.asarray(ys)).all() and ts[-1] == 1.0 and len(ts) > 2
    np.testing.assert_allclose(ys[-1], net(X), rtol=1e-14)
    with pytest.raises(ValueError, match="cannot run under jit"):
        eqx.filter_jit(net.trajectory)(X)


def test_with_solver_keeps_the_field_and_converges_to_the_flow():
    net = dp.SolverNet(_mlp(), solver="euler", num_steps=10)
    reference = net.with_solver("dopri8", num_steps=None, rtol=1e-12, atol=1e-12)(X)
    errors = [_relative(net.with_solver("rk4", num_steps=n)(X), reference) for n in (4, 8)]
    assert net.with_solver("rk4").field is net.field
    # RK4 halving h divides the error by 2⁴ = 16; allow 12–20 for the pre-asymptotic regime.
    assert 12 < errors[0] / errors[1] < 20


def test_every_solver_runs_in_a_net():
    field = dp.fields.Linear(jnp.array([[-0.5, 1.0], [-1.0, -0.5]]))
    exact = jax.scipy.linalg.expm(field.matrix) @ X
    for name in dp.SOLVERS:
        if name == "semi_implicit_euler":
            continue  # needs a separable field: test_semi_implicit_euler_net
        net = dp.SolverNet(field, solver=name, num_steps=50, root_rtol=1e-10, root_atol=1e-10)
        # h = 0.02: even first-order methods are within 2% of exp(A) x.
        assert _relative(net(X), exact) < 2e-2, name


class _Oscillator(dp.fields.AbstractSeparableField):
    """q' = ω p, p' = −ω q."""

    frequency: float

    @property
    def state_dim(self):
        return 2

    def position_rate(self, t, p, args=None):
        return self.frequency * p

    def momentum_rate(self, t, q, args=None):
        return -self.frequency * q


def test_semi_implicit_euler_net_is_symplectic_euler():
    field = _Oscillator(2.0)
    net = dp.SolverNet(field, solver="semi_implicit_euler", t1=1.0, num_steps=5)
    q, p, h = X[0], X[1], 0.2
    for _ in range(5):
        q = q + h * 2.0 * p
        p = p - h * 2.0 * q
    np.testing.assert_allclose(net(X), jnp.array([q, p]), rtol=1e-13)
    with pytest.raises(ValueError, match="AbstractSeparableField"):
        dp.SolverNet(_mlp(), solver="semi_implicit_euler")


def _directional_derivative_check(net_of_field, field):
    """d/dε L(θ + εv) at 0 by autodiff vs central differences, for a random direction v."""
    parameters, structure = eqx.partition(field, eqx.is_array)
    leaves, treedef = jax.tree.flatten(parameters)
    keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
    direction = jax.tree.unflatten(treedef, [jax.random.normal(k, leaf.shape) for k, leaf in zip(keys, leaves)])

    def loss(epsilon):
        moved = jax.tree.map(lambda a, d: a + epsilon * d, parameters, direction)
        return jnp.sum(net_of_field(eqx.combine(moved, structure))(X) ** 2)

    autodiff = float(jax.grad(loss)(0.0))
    step = 1e-5
    central = float((loss(step) - loss(-step)) / (2 * step))
    return autodiff, central


@pytest.mark.parametrize("adjoint", ["recursive_checkpoint", "direct", "backsolve"])
def test_gradients_match_central_differences(adjoint):
    # dopri8 with 20 steps: the discrete and continuous gradients differ by O(h⁸) ≈ 1e-11,
    # so backsolve (optimise-then-discretise) is compared on the same footing.
    autodiff, central = _directional_derivative_check(lambda f: dp.SolverNet(f, solver="dopri8", num_steps=20, adjoint=adjoint), _mlp())
    # Central differences with step 1e-5: truncation ~1e-10·|L'''|, roundoff ~1e-16/1e-5.
    assert autodiff == pytest.approx(central, rel=1e-7)


def test_failures_are_values_when_not_throwing():
    field = dp.fields.Linear(jnp.array([[50.0, 0.0], [0.0, -1.0]]))
    net = dp.SolverNet(field, solver="tsit5", num_steps=None, rtol=1e-10, atol=1e-10, max_steps=4, throw=False)
    solution = net.solve(X)
    assert solution.result == diffrax.RESULTS.max_steps_reached
    assert int(solution.stats["num_steps"]) == 4
    with pytest.raises(Exception, match="maximum number of solver steps"):
        dp.SolverNet(field, solver="tsit5", num_steps=None, rtol=1e-10, atol=1e-10, max_steps=4)(X)


# A damped rotation: y(1) = expm(A) y0 in closed form.
_ROTATION = jnp.array([[-0.5, 1.0], [-1.0, -0.5]])


def test_shared_batch_steps_solve_the_batch_as_one_system():
    xs = jax.random.normal(KEY, (5, 2))
    tight = dict(solver="tsit5", num_steps=None, rtol=1e-8, atol=1e-10)
    shared = dp.SolverNet(dp.fields.Linear(_ROTATION), batch_stepping="shared", **tight)
    solution = shared.solve_batch(xs)
    assert solution.ys.shape == (5, 1, 2) and solution.stats["num_steps"].shape == (5,)
    # One step size for the batch: every sample took the same steps.
    assert len(set(np.asarray(solution.stats["num_steps"]).tolist())) == 1
    # rtol 1e-8 on states of size ~1: the global error stays within ~100 × rtol.
    exact = xs @ jax.scipy.linalg.expm(_ROTATION).T
    np.testing.assert_allclose(solution.ys[:, -1], exact, atol=1e-6)
    # A batch of one is the per-sample solve: the same RMS error norm, so the same steps.
    np.testing.assert_allclose(shared.solve_batch(xs[:1]).ys[0], shared.solve(xs[0]).ys, rtol=1e-12)
    per_sample = jax.vmap(dp.SolverNet(dp.fields.Linear(_ROTATION), **tight).solve)(xs)
    assert not np.array_equal(per_sample.stats["num_steps"], solution.stats["num_steps"])


def test_shared_batch_steps_gradient_matches_the_per_sample_one():
    xs = jax.random.normal(KEY, (3, 2))
    tight = dict(solver="tsit5", num_steps=None, rtol=1e-10, atol=1e-12)

    def gradient(batch_stepping):
        net = dp.SolverNet(dp.fields.Linear(_ROTATION), batch_stepping=batch_stepping, **tight)
        loss = lambda net: jnp.sum(net.solve_batch(xs).ys ** 2)
        return eqx.filter_grad(loss)(net).field.matrix

    # Both discretise the same exact gradient to within ~100 × rtol.
    np.testing.assert_allclose(gradient("shared"), gradient("per_sample"), atol=1e-7)


def test_fixed_steps_take_the_same_steps_shared_or_not():
    xs = jax.random.normal(KEY, (3, 2))
    net = dp.SolverNet(_mlp(), solver="rk4", num_steps=4, batch_stepping="shared")
    np.testing.assert_array_equal(net.solve_batch(xs).ys, jax.vmap(net.solve)(xs).ys)


def test_encoder_and_readout():
    readout = eqx.nn.Linear(4, 3, key=KEY)
    net = dp.SolverNet(dp.fields.MLP(4, 8, 1, key=KEY), encoder=dp.encoders.ZeroAugmentation(2), readout=readout, num_steps=3)
    assert net(X).shape == (3,)
    assert jax.vmap(net)(jnp.stack([X, X, X])).shape == (3, 3)
    ts, ys = net.trajectory(X)
    np.testing.assert_allclose(ys[0], jnp.array([0.3, -0.7, 0.0, 0.0]))


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(solver="rk45"), "Valid solvers are"),
        (dict(adjoint="adjoint"), "Valid adjoints are"),
        (dict(num_steps=0), "positive integer"),
        (dict(num_steps=None, solver="rk4"), "no error estimate.*tsit5"),
        (dict(t0=1.0, t1=1.0), "t1 > t0"),
        (dict(batch_stepping="batch"), "Valid values are: per_sample, shared"),
    ],
)
def test_bad_configuration_is_named(arguments, message):
    with pytest.raises(ValueError, match=message):
        dp.SolverNet(_mlp(), **arguments)


def test_shape_mismatch_is_named():
    with pytest.raises(ValueError, match=r"shape \(3,\).*\(2,\)"):
        dp.SolverNet(_mlp())(jnp.ones(3))


def test_fields_reject_bad_input():
    with pytest.raises(ValueError, match="square"):
        dp.fields.Linear(jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="Valid activations are.*tanh"):
        dp.fields.MLP(2, 4, 1, activation="tahn", key=KEY)
