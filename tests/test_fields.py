"""The stable-architecture fields against their spectral structure and closed-form solutions."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import deepest as dp
from deepest.fields import ACTIVATIONS, ANTIDERIVATIVES, Antisymmetric, Hamiltonian, Parabolic, SecondOrder

KEY = jax.random.PRNGKey(0)
EPS = float(jnp.finfo(jnp.float64).eps)


def _random(seed, shape, scale=1.0):
    # NumPy draws: jax.random compiles anew for every shape, which would dominate these tests.
    return jnp.asarray(scale * np.random.default_rng(seed).normal(size=shape))


# Compiled once per field class: eager JAX would compile every primitive separately.
@eqx.filter_jit
def _jacobians(field, ys):
    """∂f/∂y at each state of ys (count, state_dim)."""
    return jax.vmap(jax.jacfwd(lambda state: field(0.0, state)))(ys)


@eqx.filter_jit
def _energy_gradients_and_rates(field, ys):
    """∇E(y) and f(y) at each state of ys."""
    return jax.vmap(jax.grad(field.energy))(ys), jax.vmap(lambda y: field(0.0, y))(ys)


def _states(count, dim, scale=0.5):
    return _random(7, (count, dim), scale)


def _eigenvalues_and_error_bound(matrix):
    """LAPACK's eigenvalues and a bound on their error: by Bauer–Fike, κ(V) times the backward
    error, which for LAPACK is a modest multiple of nε‖J‖ (100 nε‖J‖ taken here)."""
    values, vectors = np.linalg.eig(matrix)
    return values, np.linalg.cond(vectors) * 100 * len(matrix) * EPS * np.linalg.norm(matrix, 2)


# --- Antisymmetric -------------------------------------------------------------------------


@pytest.mark.parametrize("gamma", [0.0, 0.3])
def test_antisymmetric_linear_part_has_real_part_minus_gamma(gamma):
    field = Antisymmetric(6, gamma=gamma, key=KEY)
    linear = np.asarray(field.linear_part())
    np.testing.assert_array_equal(linear + linear.T, -2 * gamma * np.eye(6))  # skew − γI exactly
    # A normal matrix: LAPACK's eigenvalues are within ~nε‖A‖ ≈ 1e-14 of the exact ones.
    np.testing.assert_allclose(np.linalg.eigvals(linear).real, -gamma, rtol=0, atol=1e-12)


@pytest.mark.parametrize("gamma", [0.0, 0.3])
def test_antisymmetric_jacobian_is_d_times_skew_minus_gamma(gamma):
    field = Antisymmetric(6, gamma=gamma, key=KEY)
    field = eqx.tree_at(lambda f: f.bias, field, _random(1, (6,), 0.3))
    states = _states(4, 6)
    for y, jacobian in zip(states, np.asarray(_jacobians(field, states))):
        derivative = 1 - np.tanh(np.asarray(field.linear_part() @ y + field.bias)) ** 2  # d = σ'(·)
        np.testing.assert_allclose(jacobian, derivative[:, None] * np.asarray(field.linear_part()), rtol=1e-14, atol=1e-15)
        # J = D(S − γI) is similar, by D^{1/2}, to D^{1/2}SD^{1/2} − γD: skew (normal, unitary
        # eigenvectors, for γ = 0) minus a real diagonal. Its eigenvector matrix is well
        # conditioned, and the computed bound on LAPACK's error stays far below the 1e-10 used.
        values, error = _eigenvalues_and_error_bound(jacobian)
        tolerance = 1e-10
        assert error < 0.01 * tolerance
        # Re λ = −γ x*Dx for a unit eigenvector x of the similar matrix: in [−γ max d, −γ min d].
        assert values.real.min() >= -gamma * derivative.max() - tolerance
        assert values.real.max() <= -gamma * derivative.min() + tolerance
        if gamma == 0:
            assert np.abs(values.real).max() <= tolerance


def test_euler_on_antisymmetric_linear_part_is_stable_iff_h_below_two_gamma_over_gamma2_plus_rho2():
    gamma = 0.5
    linear = np.asarray(Antisymmetric(6, gamma=gamma, key=KEY).linear_part())
    eigenvalues, vectors = np.linalg.eig(linear)
    rho = np.abs(eigenvalues.imag).max()  # ρ(S) for S = linear + γI
    # |1 + h(−γ + iω)|² = 1 − 2hγ + h²(γ² + ω²) ≤ 1 iff h ≤ 2γ/(γ² + ω²), tightest at ω = ρ.
    boundary = 2 * gamma / (gamma**2 + rho**2)
    # The dominant eigen-plane: M = I + h(S − γI) is normal, so on span(Re v, Im v) it is the
    # growth factor g times a rotation, and ‖Mⁿ z‖ = gⁿ‖z‖ exactly there.
    start = vectors[:, np.argmax(np.abs(eigenvalues.imag))].real
    generic = np.asarray(_random(3, (6,)))
    for factor, stable in [(1 - 1e-6, True), (1 + 1e-6, False)]:
        h = boundary * factor
        growth = float(np.max(dp.stability.growth_factor("euler", h * eigenvalues)))
        np.testing.assert_allclose(growth, abs(1 + h * (-gamma + 1j * rho)), rtol=1e-14)
        # |g − 1| ≈ γh·1e-6 ≈ 2e-8 here, eight orders above the rounding of g (~1e-16).
        assert (growth <= 1) if stable else (growth > 1)
        step = np.eye(6) + h * linear
        z, w = start.copy(), generic.copy()
        for _ in range(500):
            z, w = step @ z, step @ w
        ratio = np.linalg.norm(z) / np.linalg.norm(start)
        # 500 products round to ~500ε ≈ 1e-13 relative; gⁿ − 1 is ~1e-5, far from it.
        np.testing.assert_allclose(ratio, growth**500, rtol=1e-11)
        assert (ratio < 1) if stable else (ratio > 1)
        if stable:
            # ‖Mⁿ‖₂ = gⁿ ≤ 1 for a normal M: no state grows (up to rounding).
            assert np.linalg.norm(w) <= np.linalg.norm(generic) * (1 + 1e-12)
    # γ = 0: |1 + ihω| = √(1 + h²ω²) > 1 at every h > 0.
    skew = np.asarray(Antisymmetric(6, key=KEY).linear_part())
    eigenvalues, vectors = np.linalg.eig(skew)
    start = vectors[:, np.argmax(np.abs(eigenvalues.imag))].real
    for h in [1e-3, 1e-2, 1e-1, 1.0]:
        growth = float(np.max(dp.stability.growth_factor("euler", h * eigenvalues)))
        np.testing.assert_allclose(growth, math.sqrt(1 + (h * rho) ** 2), rtol=1e-14)
        assert growth > 1
        z = start.copy()
        for _ in range(300):
            z = z + h * (skew @ z)
        # At h = 1e-3 the growth over 300 steps is ~6e-4, far above rounding (~1e-13).
        np.testing.assert_allclose(np.linalg.norm(z) / np.linalg.norm(start), growth**300, rtol=1e-11)


# --- Hamiltonian ---------------------------------------------------------------------------


def _oscillator(frequency):
    """Hamiltonian with σ = identity, b = 0 on (Y, Z) ∈ ℝ²: Y' = ωZ, Z' = −ωY."""
    field = Hamiltonian(2, activation="identity", key=KEY)
    return eqx.tree_at(lambda f: f.weight, field, jnp.array([[frequency]]))


def _with_biases(field, key=1):
    half = field.state_dim // 2
    return eqx.tree_at(lambda f: (f.position_bias, f.momentum_bias), field, (_random(key, (half,), 0.3), _random(key + 1, (half,), 0.3)))


def test_hamiltonian_jacobian_eigenvalues_are_imaginary():
    field = _with_biases(Hamiltonian(6, key=KEY))
    states = _states(4, 6)
    for y, jacobian in zip(states, np.asarray(_jacobians(field, states))):
        position, momentum = np.split(np.asarray(y), 2)
        weight = np.asarray(field.weight)
        arguments = [weight @ momentum + field.position_bias, weight.T @ position + field.momentum_bias]
        d = 1 - np.tanh(np.concatenate(arguments)) ** 2
        skew = np.block([[np.zeros((3, 3)), weight], [-weight.T, np.zeros((3, 3))]])
        np.testing.assert_allclose(jacobian, d[:, None] * skew, rtol=1e-14, atol=1e-15)
        # J = D [[0, K], [−Kᵀ, 0]], a positive diagonal times a skew matrix, as for
        # Antisymmetric at γ = 0: imaginary eigenvalues, up to LAPACK's error (bounded below).
        values, error = _eigenvalues_and_error_bound(jacobian)
        assert error < 0.01 * 1e-10 * np.abs(values).max()
        assert np.abs(values.real).max() < 1e-10 * np.abs(values).max()


def test_hamiltonian_spectrum_through_a_net_is_imaginary():
    field = _with_biases(Hamiltonian(4, key=KEY))
    net = dp.SolverNet(field, solver="semi_implicit_euler", t1=1.0, num_steps=4)
    spectrum = dp.analysis.jacobian_spectrum(net, _states(3, 4))
    values = np.asarray(spectrum.eigenvalues)
    assert values.shape == (3, 4, 4)
    # As in the test above: |Re λ| is LAPACK's error, ~1e-15·|λ|.
    assert np.abs(values.real).max() < 1e-10 * np.abs(values).max()


@pytest.mark.parametrize("activation", list(ANTIDERIVATIVES))
def test_hamiltonian_energy_is_conserved_by_the_flow(activation):
    points = jnp.linspace(-3.0, 3.0, 13)
    antiderivative = ANTIDERIVATIVES[activation]
    # S' = σ (autodiff of the closed form against the activation) and S(0) = 0, to round-off.
    derivative = jax.jit(jax.vmap(jax.grad(antiderivative)))(points)
    np.testing.assert_allclose(derivative, ACTIVATIONS[activation](points), rtol=1e-14, atol=1e-15)
    assert float(antiderivative(0.0)) == 0.0
    field = _with_biases(Hamiltonian(6, activation=activation, key=KEY))
    states = _states(4, 6, scale=1.0)
    gradients, rates = map(np.asarray, _energy_gradients_and_rates(field, states))
    # dE/dt = ∇E · f: zero in exact arithmetic; in floating point a cancelling sum of 6
    # products, off by a few ε·‖∇E‖‖f‖.
    scale = np.maximum(np.linalg.norm(gradients, axis=1) * np.linalg.norm(rates, axis=1), 1.0)
    np.testing.assert_array_less(np.abs(np.sum(gradients * rates, axis=1)), 1e-14 * scale)


def test_hamiltonian_energy_needs_an_antiderivative():
    with pytest.raises(ValueError, match="'softplus' lacks.*tanh"):
        Hamiltonian(4, activation="softplus", key=KEY).energy(jnp.ones(4))


def test_semi_implicit_euler_oscillator_is_bounded_iff_h_omega_below_two():
    # One compiled net (h = 1, 2000 steps, so hω = ω): each frequency is swapped in as the weight.
    net = dp.SolverNet(_oscillator(1.0), solver="semi_implicit_euler", t1=2000.0, num_steps=2000)
    trajectory = eqx.filter_jit(lambda net, y: net.trajectory(y)[1])
    start = jnp.array([0.3, -0.7])
    for a in [1.99, 1.999]:
        ys = np.asarray(trajectory(eqx.tree_at(lambda n: n.field.weight, net, jnp.array([[a]])), start))
        # Symplectic Euler, q ← q + a p, p ← p − a q, conserves Q = q² + a q p + p² exactly
        # (MᵀQM = Q for its step matrix M), and 1 − a/2 ≤ Q/‖y‖² ≤ 1 + a/2, so
        # ‖y_n‖ ≤ √((2 + a)/(2 − a)) ‖y_0‖: bounded for all n, though the bound blows up at a = 2.
        invariant = ys[:, 0] ** 2 + a * ys[:, 0] * ys[:, 1] + ys[:, 1] ** 2
        # 2000 steps round to ~2000·ε·(1 + a/2)/(1 − a/2) relative at worst: ≈ 2e-9 at a = 1.999.
        np.testing.assert_allclose(invariant, invariant[0], rtol=1e-8)
        bound = math.sqrt((2 + a) / (2 - a)) * float(jnp.linalg.norm(start))
        assert np.linalg.norm(ys, axis=1).max() <= bound * (1 + 1e-8)
    for a in [2.001, 2.003]:
        ys = np.asarray(trajectory(eqx.tree_at(lambda n: n.field.weight, net, jnp.array([[a]])), start))
        growth = float(dp.stability.growth_factor("semi_implicit_euler", 1j * a))
        assert growth > 1
        norms = np.linalg.norm(ys, axis=1)
        # |μ|^2000 ≤ 1e96 here: the norm stays finite. After 1900 steps the second root
        # (modulus 1/growth) has fallen behind by (1/growth)^3800 ≤ 1e-100: the norm grows by
        # exactly the growth factor per step, up to rounding (~1e-13).
        np.testing.assert_allclose((norms[-1] / norms[-101]) ** (1 / 100), growth, rtol=1e-10)
        assert norms[-1] > 1e50


def _leapfrog(field, y, h, steps):
    """y_1 = y_0 + h f(y_0), y_{n+1} = y_{n−1} + 2h f(y_n), written out."""
    previous, current = y, y + h * field(0.0, y)
    for _ in range(steps - 1):
        previous, current = current, previous + 2 * h * field(0.0, current)
    return current


def _symplectic_euler(field, y, h, steps):
    """q ← q + h σ(K p + b₁), then p ← p − h σ(Kᵀ q + b₂) with the new q, written out."""
    q, p = jnp.split(y, 2)
    for _ in range(steps):
        q = q + h * jnp.tanh(field.weight @ p + field.position_bias)
        p = p - h * jnp.tanh(field.weight.T @ q + field.momentum_bias)
    return jnp.concatenate([q, p])


def _euler(field, y, h, steps):
    for _ in range(steps):
        y = y + h * field(0.0, y)
    return y


# Euler: test_fields_run_batched_in_euler_nets.
@pytest.mark.parametrize("solver, written_out", [("semi_implicit_euler", _symplectic_euler), ("leapfrog_midpoint", _leapfrog)])
def test_solver_nets_integrate_the_hamiltonian_field(solver, written_out):
    field = _with_biases(Hamiltonian(4, key=KEY))
    xs = _states(3, 4, scale=1.0)
    outputs = jax.vmap(dp.SolverNet(field, solver=solver, t1=1.0, num_steps=5))(xs)
    expected = jax.vmap(lambda x: written_out(field, x, 0.2, 5))(xs)
    # The same operations up to reassociation inside diffrax: agreement to round-off.
    np.testing.assert_allclose(outputs, expected, rtol=1e-13, atol=1e-15)


# --- Parabolic -----------------------------------------------------------------------------


@pytest.mark.parametrize("width", [3, 8])
def test_parabolic_jacobian_is_symmetric_negative_semidefinite(width):
    field = eqx.tree_at(lambda f: f.bias, Parabolic(5, width, key=KEY), _random(2, (width,), 0.5))
    weight = np.asarray(field.weight)
    for jacobian in np.asarray(_jacobians(field, _states(4, 5, scale=1.0))):
        scale = np.linalg.norm(weight, 2) ** 2  # ≥ ‖KᵀDK‖ since 0 < d ≤ 1
        # Entries (i, j) and (j, i) are the same `width` products summed in another order:
        # they differ by at most ~width·ε·‖K‖².
        np.testing.assert_allclose(jacobian, jacobian.T, rtol=0, atol=4 * width * EPS * scale)
        # −KᵀDK ⪯ 0; eigvalsh has backward error ~nε‖J‖ (Weyl), so ≤ 0 up to that. With
        # width < state_dim, rank(K) < state_dim: some eigenvalues are zero in exact arithmetic.
        assert np.linalg.eigvalsh(jacobian).max() <= 10 * 5 * EPS * scale


# --- SecondOrder ---------------------------------------------------------------------------


def _damped_oscillator(x0, v0, t, stiffness, damping):
    """x'' = −k x − c x' (underdamped: c² < 4k): x(t), v(t) in closed form."""
    decay, frequency = damping / 2, math.sqrt(stiffness - damping**2 / 4)
    envelope, cos, sin = math.exp(-decay * t), math.cos(frequency * t), math.sin(frequency * t)
    x = envelope * (x0 * cos + (v0 + decay * x0) / frequency * sin)
    v = envelope * (v0 * cos - (decay * v0 + stiffness * x0) / frequency * sin)
    return np.concatenate([x, v])


def _without_forcing(field):
    return eqx.tree_at(lambda f: (f.position_weight, f.velocity_weight), field, (jnp.zeros((2, 2)), jnp.zeros((2, 2))))


def test_second_order_without_forcing_has_the_oscillator_spectrum():
    field = _without_forcing(SecondOrder(4, stiffness=4.0, damping=0.4, key=KEY))
    # The Jacobian is [[0, I], [−kI, −cI]]: eigenvalues −c/2 ± i√(k − c²/4), each twice.
    expected = np.array([-0.2 + 1j * math.sqrt(3.96)] * 2 + [-0.2 - 1j * math.sqrt(3.96)] * 2)
    for jacobian in np.asarray(_jacobians(field, _states(2, 4))):
        # J is [[0, 1], [−k, −c]] ⊗ I: double but semisimple eigenvalues, 4 apart, with well
        # conditioned eigenvectors, so LAPACK is accurate to ~ε‖J‖ ≈ 1e-15.
        np.testing.assert_allclose(np.sort_complex(np.linalg.eigvals(jacobian)), np.sort_complex(expected), atol=1e-12)


def test_second_order_without_forcing_is_the_damped_oscillator():
    stiffness, damping, t1 = 4.0, 0.4, 2.0
    field = SecondOrder(4, stiffness=stiffness, damping=damping, key=KEY)
    y = jnp.array([0.3, -0.7, 0.5, 0.1])
    np.testing.assert_array_equal(field(0.0, y)[:2], y[2:])  # x' = v, exactly
    zero = _without_forcing(field)
    np.testing.assert_allclose(zero(0.0, y)[2:], -stiffness * y[:2] - damping * y[2:], rtol=1e-15)
    exact = _damped_oscillator(np.asarray(y[:2]), np.asarray(y[2:]), t1, stiffness, damping)
    steps = 50
    error = float(np.linalg.norm(dp.SolverNet(zero, solver="rk4", t1=t1, num_steps=steps)(y) - exact))
    # On y' = Ay, RK4 multiplies each eigen-component by R(z) = e^z − z⁵/120 + O(z⁶), z = hλ
    # with |λ| = √k = 2: over T/h steps the error is ≈ T|λ|⁵h⁴/120·‖y0‖ = 1.2e-6 at h = 0.04.
    # Twice that allows for the eigenvector conditioning and the O(z⁶) terms (measured 9.3e-7,
    # and 5.7e-8 at h = 0.02: the O(h⁴) ratio 16); the closed form itself is exact to ~1e-16.
    bound = 2 * t1 * stiffness**2.5 * (t1 / steps) ** 4 / 120 * float(jnp.linalg.norm(y))
    assert error < bound


# --- All four: batched nets ---------------------------------------------------------------


def test_stable_fields_need_only_a_state_dimension_and_a_key():
    # One convention across the zoo: every other constructor argument has a default.
    for field_class in (Antisymmetric, Hamiltonian, Parabolic, SecondOrder):
        assert field_class(4, key=KEY).state_dim == 4
    # Parabolic's width defaults to the state dimension: a square K.
    assert Parabolic(4, key=KEY).weight.shape == (4, 4)


FIELDS = {
    "antisymmetric": lambda: Antisymmetric(4, gamma=0.3, key=KEY),
    "hamiltonian": lambda: Hamiltonian(4, key=KEY),
    "parabolic": lambda: Parabolic(4, 6, key=KEY),
    "second_order": lambda: SecondOrder(4, stiffness=4.0, damping=0.4, key=KEY),
}


@pytest.mark.parametrize("name", list(FIELDS))
def test_fields_run_batched_in_euler_nets(name):
    field = FIELDS[name]()
    xs = _states(3, 4, scale=1.0)
    outputs = jax.vmap(dp.SolverNet(field, solver="euler", t1=1.0, num_steps=2))(xs)
    expected = jax.vmap(lambda x: _euler(field, x, 0.5, 2))(xs)
    # The same operations up to reassociation inside diffrax: agreement to round-off.
    np.testing.assert_allclose(outputs, expected, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: Hamiltonian(3, key=KEY), r"Hamiltonian needs state_dim to be a positive even integer.*got 3"),
        (lambda: SecondOrder(5, key=KEY), r"SecondOrder needs state_dim to be a positive even integer.*got 5"),
        (lambda: Antisymmetric(4, gamma=-0.1, key=KEY), r"Antisymmetric needs gamma to be a finite number ≥ 0; got -0.1"),
        (lambda: Antisymmetric(4, gamma=float("nan"), key=KEY), r"gamma to be a finite number ≥ 0; got nan"),
        (lambda: SecondOrder(4, damping=-1.0, key=KEY), r"damping to be a finite number ≥ 0; got -1.0"),
        (lambda: SecondOrder(4, stiffness=-2.0, key=KEY), r"stiffness to be a finite number ≥ 0; got -2.0"),
        (lambda: Parabolic(4, 0, key=KEY), r"Parabolic needs width to be a positive integer; got 0"),
        (lambda: Antisymmetric(0, key=KEY), r"state_dim to be a positive integer; got 0"),
        (lambda: Antisymmetric(4, activation="tahn", key=KEY), r"Valid activations are"),
    ],
)
def test_bad_arguments_are_named(build, message):
    with pytest.raises(ValueError, match=message):
        build()
