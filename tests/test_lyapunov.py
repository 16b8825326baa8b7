"""Lyapunov spectra against closed forms (linear maps, solver stability functions, volume
contraction), literature values (Lorenz-63, Hénon) and an independent reverse-mode Jacobian."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import deepest as dp
from deepest import stability
from deepest.analysis.lyapunov import (
    LyapunovSpectrum,
    flow_lyapunov_spectrum,
    layer_lyapunov_spectrum,
    lyapunov_spectrum,
)
from deepest.layers import solver_step

KEY = jax.random.PRNGKey(0)


def lorenz(t, y, args):
    x, u, z = y
    return jnp.stack([10.0 * (u - x), x * (28.0 - z) - u, x * u - 8 / 3 * z])


def henon(t, y, args):
    return jnp.stack([1 - 1.4 * y[0] ** 2 + y[1], 0.3 * y[0]])


def euler_exponents(eigenvalues, h):
    """(1/h) ln|1 + hλ|: the exponents of the Euler map I + hA of a diagonalisable A."""
    return np.log(np.abs(1 + h * np.asarray(eigenvalues))) / h


class Pendulum(dp.fields.AbstractSeparableField):
    """q' = p, p' = −sin q."""

    state_dim: int = 2

    def position_rate(self, t, p, args=None):
        return p

    def momentum_rate(self, t, q, args=None):
        return -jnp.sin(q)


def test_lorenz_spectrum_matches_literature_and_volume_contraction():
    sigma, beta = 10.0, 8 / 3
    spectrum = flow_lyapunov_spectrum(lorenz, jnp.array([1.0, 1.0, 1.0]), solver="rk4", step_size=0.01, num_steps=100_000, transient_steps=1_000)
    assert isinstance(spectrum, LyapunovSpectrum)
    assert spectrum.time == pytest.approx(1000.0)
    assert spectrum.local_exponents.shape == (100_000, 3)
    first, second, third = np.asarray(spectrum.exponents)
    # Literature (Sprott, "Chaos and Time-Series Analysis", 2003): 0.9056, 0, −14.5723. Over
    # T = 1000 the finite-time λ₁ from four starts spread over 0.8997 … 0.9067 (measured), so
    # the bands are a few of those spreads wide; λ₂ of a flow is 0 up to O(1/T) fluctuations.
    assert 0.88 <= first <= 0.93
    assert abs(second) < 0.02
    assert -14.62 <= third <= -14.53
    # The divergence of the Lorenz field is −(σ + 1 + β) everywhere, so volumes contract at
    # exactly that rate; RK4's Jacobian determinant matches exp(h·div) to O(h⁵) per step
    # (measured deviation 1e-4 at h = 0.01).
    assert spectrum.exponents.sum() == pytest.approx(-(sigma + 1 + beta), abs=1e-3)


def test_henon_spectrum_sum_is_log_b_and_largest_matches_literature():
    num_steps = 1_000_000
    spectrum = lyapunov_spectrum(henon, jnp.zeros(2), num_steps=num_steps, transient_steps=1_000)
    # det J = −b at every point, and |det R_n| = |det J_n| for each QR step, so the sum is
    # ln 0.3 up to rounding of order 1e-16 per step (no statistical error at all).
    assert float(spectrum.exponents.sum()) == pytest.approx(math.log(0.3), abs=1e-10)
    # λ₁ is a time average with statistical error: its standard error, from means over blocks
    # of 1000 steps (much longer than the map's correlation time), is about 3.7e-4 here. The
    # literature value 0.41922 (Sprott 2003) must lie within 4 standard errors.
    blocks = np.asarray(spectrum.local_exponents[:, 0]).reshape(-1, 1_000).mean(axis=1)
    standard_error = blocks.std(ddof=1) / math.sqrt(len(blocks))
    assert standard_error < 5e-4
    assert abs(float(spectrum.exponents[0]) - 0.41922) < 4 * standard_error


def test_diagonal_linear_euler_resnet_exponents_are_exact_from_the_first_layer():
    h = 0.1
    eigenvalues = np.array([-1.0, -2.0, 0.5])
    net = dp.SolverNet(dp.fields.Linear(jnp.diag(eigenvalues)), solver="euler", t1=2.0, num_steps=20)
    assert net.step_size == pytest.approx(h)
    xs = jax.random.normal(KEY, (4, 3))
    spectrum = layer_lyapunov_spectrum(net, xs)
    assert spectrum.exponents.shape == (4, 3)
    assert spectrum.local_exponents.shape == (4, 20, 3)
    assert spectrum.time == pytest.approx(2.0)
    # The basis e_1, e_2, e_3 are eigenvectors of I + hA: every |R_ii| is |1 + hλ_i| exactly,
    # so the only error is rounding (1e-12), at every layer and for every sample.
    expected = euler_exponents(eigenvalues, h)
    np.testing.assert_allclose(expected, [-1.053605, -2.231436, 0.487902], atol=1e-6)
    np.testing.assert_allclose(spectrum.local_exponents, np.broadcast_to(expected, (4, 20, 3)), atol=1e-12)
    np.testing.assert_allclose(spectrum.exponents, np.broadcast_to(expected, (4, 3)), atol=1e-12)


def test_non_normal_linear_euler_map_gives_sorted_exponents_after_a_transient():
    h = 0.1
    eigenvalues = np.array([-1.0, -2.0, 0.5])
    basis = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0], [1.0, 0.3, 1.0]])
    matrix = jnp.asarray(basis @ np.diag(eigenvalues) @ np.linalg.inv(basis))
    spectrum = lyapunov_spectrum(lambda t, y, args: y + h * matrix @ y, jnp.ones(3), step_size=h, num_steps=200, transient_steps=500)
    # The basis aligns with the Oseledets flags at the rates of the growth-factor ratios
    # 0.9/1.05 and 0.8/0.9 per step: after 500 steps the misalignment is below 1e-25, so only
    # rounding remains (1e-10 leaves room for the non-normal basis' conditioning).
    np.testing.assert_allclose(spectrum.exponents, np.sort(euler_exponents(eigenvalues, h))[::-1], atol=1e-10)


def test_complex_pair_exponents_are_euler_growth_and_tend_to_real_parts():
    eigenvalues = np.array([-1 + 2j, -1 - 2j, 0.5])
    # A real normal matrix with these eigenvalues: I + hA is |1 + hλ| times a rotation on the
    # first two coordinates, so both exponents of the pair are exact from the first step.
    matrix = jnp.array([[-1.0, 2.0, 0.0], [-2.0, -1.0, 0.0], [0.0, 0.0, 0.5]])
    x = jnp.array([[0.4, -0.3, 0.2]])
    errors = []
    for num_steps in (10, 100, 1000):
        net = dp.SolverNet(dp.fields.Linear(matrix), solver="euler", t1=1.0, num_steps=num_steps)
        h = net.step_size
        exponents = np.asarray(layer_lyapunov_spectrum(net, x).exponents[0])
        np.testing.assert_allclose(exponents, euler_exponents(eigenvalues, h), atol=1e-12)
        errors.append(np.abs(exponents - eigenvalues.real))
    # (1/h) ln|1 + hλ| = Re λ − (h/2) Re λ² + O(h²): first-order convergence to Re λ, so ten
    # times smaller h gives ten times smaller error (slope 1; O(h) corrections keep it within 0.1).
    slopes = np.log10(errors[0] / errors[2]) / 2
    np.testing.assert_allclose(slopes, 1.0, atol=0.1)
    # At h = 1e-3 the error is (h/2)|Re λ²| = 1.5e-3 for the pair and 1.25e-4 for λ = 0.5.
    np.testing.assert_allclose(errors[2], [1.5e-3, 1.5e-3, 1.25e-4], rtol=1e-2)


@pytest.mark.parametrize("solver", ["euler", "rk4", "tsit5", "implicit_euler"])
def test_linear_field_exponents_are_log_stability_function(solver):
    # On y' = Ay with diagonal A every one-step Runge–Kutta map is diag(R(hλ_i)), so the
    # exponents are (1/h) ln|R(hλ_i)| exactly, with R from the solver's tableau.
    h = 0.2
    eigenvalues = np.array([-3.0, 0.7, -0.4])
    field = dp.fields.Linear(jnp.diag(eigenvalues))
    expected = np.log(np.abs(stability.stability_function(solver)(h * eigenvalues))) / h
    flow = flow_lyapunov_spectrum(field, jnp.ones(3), solver=solver, step_size=h, num_steps=5, root_rtol=1e-12, root_atol=1e-12)
    net = dp.SolverNet(field, solver=solver, t1=1.0, num_steps=5, root_rtol=1e-12, root_atol=1e-12)
    layers = layer_lyapunov_spectrum(net, jnp.ones((1, 3)))
    # The implicit solvers' chord iteration solves a linear system exactly in one iteration and
    # their Jacobian comes from the implicit function theorem: rounding only.
    np.testing.assert_allclose(flow.exponents, expected, atol=1e-10)
    np.testing.assert_allclose(layers.exponents[0], expected, atol=1e-10)


# On a nonlinear non-autonomous field, beyond the linear test above: an FSAL explicit RK, the
# thirteen-stage dopri8, and an implicit RK (stages by a root finder).
@pytest.mark.parametrize("solver", ["bosh3", "dopri8", "kvaerno5"])
def test_one_step_exponent_equals_qr_of_reverse_mode_jacobian(solver):
    # One step of the forward-mode QR method gives log|R_ii|/h of QR(J Q_0) with Q_0 = I; the
    # same J from reverse mode through `solver_step` is an independent check of the tangent
    # propagation through the solver's stages (equal to rounding, 1e-12).
    h = 0.05
    y0 = jnp.array([1.0, 2.0, 20.0])

    def forced(t, y, args):
        return lorenz(t, y, args) * (1 + 0.5 * jnp.sin(3 * t))

    spectrum = flow_lyapunov_spectrum(forced, y0, solver=solver, step_size=h, num_steps=1, t0=0.3, root_rtol=1e-12, root_atol=1e-12)
    jacobian = jax.jit(jax.jacrev(lambda t, y: solver_step(solver, forced, t, t + h, y, root_rtol=1e-12, root_atol=1e-12), argnums=1))(
        jnp.asarray(0.3), y0
    )
    expected = np.log(np.abs(np.diag(np.linalg.qr(np.asarray(jacobian))[1]))) / h
    np.testing.assert_allclose(spectrum.local_exponents[0], expected, atol=1e-12)


def test_nonlinear_net_exponents_equal_qr_of_the_input_output_jacobian():
    # J_{L−1} ⋯ J_0 = Q_L R_{L−1} ⋯ R_0, so the accumulated log|R_ii| are those of the QR of
    # ∂y_L/∂y_0, here from reverse mode through the net's own diffrax solve.
    field = dp.fields.MLP(state_dim=3, width=16, depth=1, time_input=True, key=KEY)
    net = dp.SolverNet(field, solver="rk4", t1=1.0, num_steps=5)
    xs = jax.random.normal(jax.random.PRNGKey(1), (2, 3))
    spectrum = layer_lyapunov_spectrum(net, xs)
    jacobians = jax.jit(jax.vmap(jax.jacrev(net.final_state)))(xs)
    triangles = np.linalg.qr(np.asarray(jacobians))[1]
    expected = np.log(np.abs(np.diagonal(triangles, axis1=1, axis2=2))) / spectrum.time
    # Five 3 × 3 layer Jacobians and QRs of O(1) matrices: rounding, 1e-12.
    np.testing.assert_allclose(spectrum.exponents, expected, atol=1e-12)


def test_symplectic_euler_preserves_phase_space_volume():
    # Symplectic Euler is a symplectic map, det J = 1 at every step, so the two exponents are
    # ±λ: their sum is zero up to rounding (1e-16 per step, averaged).
    spectrum = flow_lyapunov_spectrum(Pendulum(), jnp.array([2.0, 0.5]), solver="semi_implicit_euler", step_size=0.1, num_steps=2_000)
    assert abs(float(spectrum.exponents.sum())) < 1e-12


def test_top_exponent_alone_equals_first_of_full_spectrum():
    # The first QR column only ever sees the first tangent vector, so k = 1 repeats the first
    # column's arithmetic of the full computation: equal to rounding.
    full = lyapunov_spectrum(henon, jnp.zeros(2), num_steps=10_000, transient_steps=100)
    top = lyapunov_spectrum(henon, jnp.zeros(2), num_steps=10_000, transient_steps=100, num_exponents=1)
    assert top.exponents.shape == (1,)
    assert top.local_exponents.shape == (10_000, 1)
    np.testing.assert_allclose(top.local_exponents[:, 0], full.local_exponents[:, 0], atol=1e-12)


def test_jit_matches_eager_and_does_not_retrace():
    traces = 0

    def estimate(y0):
        nonlocal traces
        traces += 1
        return lyapunov_spectrum(henon, y0, num_steps=1_000, transient_steps=100)

    jitted = jax.jit(estimate)
    first = jitted(jnp.zeros(2))
    second = jitted(jnp.array([0.1, -0.1]))
    assert traces == 1
    assert first.time == 1_000.0
    np.testing.assert_allclose(first.exponents, estimate(jnp.zeros(2)).exponents, atol=1e-12)
    np.testing.assert_allclose(second.exponents, estimate(jnp.array([0.1, -0.1])).exponents, atol=1e-12)


def test_vmapped_batch_equals_per_sample_calls():
    def estimate(y0):
        return lyapunov_spectrum(henon, y0, num_steps=2_000, transient_steps=100)

    starts = jnp.array([[0.0, 0.0], [0.1, -0.1], [-0.3, 0.2]])
    batched = jax.vmap(estimate)(starts)
    assert batched.exponents.shape == (3, 2)
    assert batched.local_exponents.shape == (3, 2_000, 2)
    single = jax.jit(estimate)
    for y0, exponents in zip(starts, batched.exponents):
        np.testing.assert_allclose(exponents, single(y0).exponents, atol=1e-12)

    net = dp.SolverNet(dp.fields.MLP(state_dim=2, width=8, depth=1, key=KEY), solver="euler", num_steps=8)
    xs = jax.random.normal(KEY, (3, 2))
    layers = layer_lyapunov_spectrum(net, xs, num_exponents=1)
    assert layers.exponents.shape == (3, 1)
    one_sample = jax.jit(lambda x: layer_lyapunov_spectrum(net, x[None], num_exponents=1).exponents[0])
    for x, exponents in zip(xs, layers.exponents):
        np.testing.assert_allclose(exponents, one_sample(x), atol=1e-12)


def test_bad_arguments_raise_clear_errors():
    y0 = jnp.zeros(2)
    with pytest.raises(ValueError, match="num_exponents must be an integer from 1 to the state dimension 2, got 3"):
        lyapunov_spectrum(henon, y0, num_steps=10, num_exponents=3)
    with pytest.raises(ValueError, match="got 0"):
        lyapunov_spectrum(henon, y0, num_steps=10, num_exponents=0)
    with pytest.raises(ValueError, match="num_steps must be a positive integer, got 0"):
        lyapunov_spectrum(henon, y0, num_steps=0)
    with pytest.raises(ValueError, match="transient_steps must be a non-negative integer, got -1"):
        lyapunov_spectrum(henon, y0, num_steps=10, transient_steps=-1)
    with pytest.raises(ValueError, match=r"must be 1-D, shape \(d,\), got shape \(1, 2\)"):
        lyapunov_spectrum(henon, y0[None], num_steps=10)
    with pytest.raises(ValueError, match="step_size must be positive"):
        lyapunov_spectrum(henon, y0, num_steps=10, step_size=0.0)
    with pytest.raises(ValueError, match=r"returned shape \(3,\)"):
        lyapunov_spectrum(lambda t, y, args: jnp.append(y, 0.0), y0, num_steps=10)
    with pytest.raises(ValueError, match="two-step"):
        flow_lyapunov_spectrum(lorenz, jnp.ones(3), solver="leapfrog_midpoint", step_size=0.01, num_steps=10)
    with pytest.raises(ValueError, match="AbstractSeparableField"):
        flow_lyapunov_spectrum(lorenz, jnp.ones(3), solver="semi_implicit_euler", step_size=0.01, num_steps=10)
    with pytest.raises(ValueError, match="Unknown solver"):
        flow_lyapunov_spectrum(lorenz, jnp.ones(3), solver="rk45", step_size=0.01, num_steps=10)

    field = dp.fields.Linear(jnp.eye(2))
    with pytest.raises(ValueError, match="adaptive"):
        layer_lyapunov_spectrum(dp.SolverNet(field, solver="tsit5", num_steps=None), jnp.ones((1, 2)))
    with pytest.raises(ValueError, match="two-step"):
        layer_lyapunov_spectrum(dp.SolverNet(field, solver="reversible_heun"), jnp.ones((1, 2)))
    with pytest.raises(ValueError, match=r"leading batch axis.*got shape \(2,\)"):
        layer_lyapunov_spectrum(dp.SolverNet(field), jnp.ones(2))
