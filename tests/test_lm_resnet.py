"""LM-ResNet: the solver against its recursion, its stability theory against closed forms."""

import diffrax
import jax.numpy as jnp
import numpy as np
import pytest

import deepest as dp
from deepest import stability
from deepest.analysis import jacobian_spectrum, layer_map_spectrum, stability_report

# y' = λy with λ = −1 + 2i, as a real 2-D system: (Re u, Im u) times the matrix of λ.
LAMBDA = -1.0 + 2.0j
MATRIX = jnp.array([[LAMBDA.real, -LAMBDA.imag], [LAMBDA.imag, LAMBDA.real]])
X = jnp.array([0.3, -0.7])
H = 0.1
NUM_STEPS = 8


def _net(matrix, k, num_steps=NUM_STEPS):
    return dp.SolverNet(dp.fields.Linear(matrix), solver="lm_resnet", solver_options={"k": k}, t1=num_steps * H, num_steps=num_steps)


def _recursion(k, z, u0, num_steps):
    """u_1 = u_0 + z u_0, u_{n+1} = (1 − k) u_n + k u_{n−1} + z u_n, written out (z = hλ)."""
    u = [u0, u0 + z * u0]
    for _ in range(num_steps - 1):
        u.append((1 - k) * u[-1] + k * u[-2] + z * u[-1])
    return np.array(u)


@pytest.mark.parametrize("k", [-0.5, 0.5, 1.3])
def test_net_reproduces_the_lm_resnet_recursion(k):
    _, ys = _net(MATRIX, k).trajectory(X)
    expected = _recursion(k, H * LAMBDA, complex(X[0], X[1]), NUM_STEPS)
    # Same arithmetic up to the order of additions and a real matrix in place of the complex
    # product: a few ulps per step over 8 steps.
    np.testing.assert_allclose(ys[:, 0] + 1j * ys[:, 1], expected, rtol=0, atol=1e-12 * np.abs(expected).max())


# (k, z): inside and outside the region, a dominant parasitic root (k = 0.5, z = −1.8: π has
# roots 0.31 and −1.61, where Euler's |1 + z| = 0.8), and k outside (−1, 1].
GROWTH_CASES = [(0.5, -0.3 + 0.2j), (0.5, -1.8), (-0.5, -3.5), (-0.5, 0.4j), (1.0, 2.5j), (1.5, -0.1), (-0.9, -0.2 + 1j)]


@pytest.mark.parametrize(("k", "z"), GROWTH_CASES)
def test_growth_factor_is_the_rate_of_the_iteration(k, z):
    roots = np.roots([1.0, -(1 - k + z), -k])
    dominant, other = sorted(roots, key=abs, reverse=True)
    gap = abs(other / dominant)
    assert gap <= 0.9  # the cases are chosen so that one root dominates
    # u_n = A μ₁ⁿ + B μ₂ⁿ with A, B from u_0 = 1, u_1 = 1 + z; then
    # u_{n+1}/u_n = μ₁ (1 + (B/A) rⁿ⁺¹)/(1 + (B/A) rⁿ), r = μ₂/μ₁, off by ≤ 2|B/A||r|ⁿ/(1 − |B/A||r|ⁿ).
    start = 1 + z
    ratio_b_a = abs((dominant - start) / (start - other))
    num_steps = 400
    transient = ratio_b_a * gap**num_steps
    assert transient < 1e-14
    # Iterate with the pair rescaled each step (|μ|⁴⁰⁰ over- or underflows otherwise).
    previous, current = 1.0 + 0j, start
    for _ in range(num_steps):
        previous, current = current, (1 - k + z) * current + k * previous
        scale = abs(current)
        previous, current = previous / scale, current / scale
    rate = abs(current) / abs(previous)
    # Rounding: each rescaled step commits a few ε, which the contraction by r damps; 1e-13
    # covers it with room (the measured errors are below 1e-15).
    assert rate == pytest.approx(float(stability.growth_factor("lm_resnet", z, k=k)), rel=2 * transient / (1 - transient) + 1e-13)


def _iterate_y_prime_zero(k, start_previous, start, num_steps):
    """The diffrax solver's own steps on y' = 0 from a chosen (u_{−1}, u_0): SolverNet always
    starts with u_1 = u_0 (an Euler step), so unequal starting values need the solver state."""
    method = dp.solver("lm_resnet", k=k)
    term = diffrax.ODETerm(lambda t, y, args: jnp.zeros_like(y))
    previous, current = jnp.array([start_previous]), jnp.array([start])
    values = [float(current[0])]
    for n in range(num_steps):
        current, _, _, previous, _ = method.step(term, n * H, (n + 1) * H, current, None, previous, False)
        values.append(float(current[0]))
    return np.array(values)


def test_zero_stability_boundary_is_minus_one_open_one_closed():
    for k in (-1 + 1e-6, 1 - 1e-6, 1.0, 0.0):
        assert stability.is_zero_stable("lm_resnet", k=k), k
    for k in (-1 - 1e-6, 1 + 1e-6, -1.0):
        assert not stability.is_zero_stable("lm_resnet", k=k), k
    # k = −1: π(μ; 0) = (μ − 1)², a double root and a Jordan block. On y' = 0 the step is
    # u_{n+1} = 2u_n − u_{n−1}, so from u_{−1} = 0, u_0 = 1 it is u_n = 1 + n: linear growth
    # (exactly, in floating point: the values are small integers).
    np.testing.assert_array_equal(_iterate_y_prime_zero(-1.0, 0.0, 1.0, 50), 1.0 + np.arange(51))
    # k = 1: simple roots ±1, u_{n+1} = u_{n−1}: from (0, 1) the period-2 sequence 1, 0, 1, ...
    np.testing.assert_array_equal(_iterate_y_prime_zero(1.0, 0.0, 1.0, 50), (1.0 + (-1.0) ** np.arange(51)) / 2)


def test_k_zero_is_explicit_euler():
    rng = np.random.default_rng(0)
    z = rng.normal(size=50) * 1.5 + 1j * rng.normal(size=50) * 1.5
    # π = μ(μ − 1 − z): the roots 0 and 1 + z, |1 + z| up to the rounding of the complex
    # square root of (1 + z)² (measured ≤ 2ε over 10⁵ random z).
    np.testing.assert_allclose(stability.growth_factor("lm_resnet", z, k=0.0), np.abs(1 + z), rtol=1e-15)
    np.testing.assert_array_equal(stability.is_stable("lm_resnet", z, k=0.0), stability.is_stable("euler", z))
    # (1 − 0)u_n + 0·u_{n−1} + h f is u_n + h f bit for bit: the same numbers as diffrax's Euler.
    lm_resnet = _net(MATRIX, 0.0)
    _, ys = lm_resnet.trajectory(X)
    _, euler = lm_resnet.with_solver("euler").trajectory(X)
    np.testing.assert_array_equal(ys, euler)


@pytest.mark.parametrize("k", [-0.9, -0.5, 0.0, 0.5, 0.9])
def test_real_axis_limit_and_boundary_locus_are_the_closed_forms(k):
    # π(μ; z) = 0 at μ = e^{iθ} gives z(θ) = e^{iθ} − (1 − k) − k e^{−iθ}, one branch.
    theta = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    locus = stability.boundary_locus("lm_resnet", num_points=64, k=k)
    assert locus.shape == (64, 1)
    np.testing.assert_allclose(locus[:, 0], np.exp(1j * theta) - (1 - k) - k * np.exp(-1j * theta), atol=1e-14)
    # θ = π: π(−1; z) = 2 − 2k + z, so the locus crosses the real axis at z = −2(1 − k); for
    # real z between it and 0 the roots are real in (−1, 1] or a pair of modulus √(−k) < 1.
    assert locus[32, 0] == pytest.approx(-2 * (1 - k), abs=1e-14)
    # The scan bisects to 1e-16, but |μ| ≤ 1 + 100ε is accepted: z moves by 100ε |dz/dμ| =
    # 100ε (1 + k) at μ = −1, below 5e-14.
    assert stability.real_axis_limit("lm_resnet", k=k) == pytest.approx(-2 * (1 - k), abs=1e-13)
    # On the imaginary axis |μ|² = 1 + y²(1 − k)/(1 + k)³ + O(y³) > 1: no interval.
    assert stability.imaginary_axis_limit("lm_resnet", k=k) == 0.0


def test_k_one_is_leapfrog_at_half_the_step():
    # π = μ² − zμ − 1 is leapfrog's μ² − 2wμ − 1 at w = z/2: stable on (−2i, 2i) only.
    z = np.array([-0.3 + 0.1j, 0.7j, 1.9j, -2.1j, 0.4])
    np.testing.assert_allclose(stability.growth_factor("lm_resnet", z, k=1.0), stability.growth_factor("leapfrog_midpoint", z / 2), rtol=1e-15)
    assert stability.imaginary_axis_limit("lm_resnet", k=1.0) == pytest.approx(2.0, abs=1e-12)
    assert stability.real_axis_limit("lm_resnet", k=1.0) == 0.0


def test_options_are_validated_and_follow_the_solver():
    with pytest.raises(ValueError, match=r"Unknown option 'kappa' for solver 'lm_resnet'\. Its options are: k\."):
        dp.solver("lm_resnet", kappa=0.5)
    with pytest.raises(ValueError, match=r"Solver 'euler' takes no options, got 'k'"):
        dp.solver("euler", k=0.5)
    with pytest.raises(ValueError, match=r"k='half' of solver 'lm_resnet' must be a finite real number"):
        _net(MATRIX, "half")
    with pytest.raises(ValueError, match="Its options are: k"):
        stability.growth_factor("lm_resnet", 0.1, kappa=1.0)
    with pytest.raises(ValueError, match="takes no options"):
        stability.real_axis_limit("rk4", k=0.5)
    net = _net(MATRIX, 0.5)
    assert net.solver_options == (("k", 0.5),) and hash(net.solver_options)
    assert dp.SolverNet(dp.fields.Linear(MATRIX), solver="lm_resnet").solver_options == (("k", 0.0),)
    # Same solver: k carries over. Another solver: its own defaults, unless given.
    assert net.with_solver("lm_resnet", num_steps=4).solver_options == (("k", 0.5),)
    assert net.with_solver("rk4").solver_options == ()
    with pytest.raises(ValueError, match="'rk4' takes no options"):
        net.with_solver("rk4", solver_options={"k": 0.5})


def test_spectrum_and_report_use_the_nets_k():
    # Eigenvalues −15 and −5 with h = 0.1: z = −1.5 and −0.5. The real stable interval is
    # [−2(1 − k), 0]: both inside for k = 0, only z = −0.5 for k = 0.5.
    matrix = jnp.diag(jnp.array([-15.0, -5.0]))
    xs = jnp.array([[1.0, 0.5], [-0.3, 2.0]])
    assert float(jacobian_spectrum(_net(matrix, 0.0, num_steps=4), xs).fraction_outside) == 0.0
    net = _net(matrix, 0.5, num_steps=4)
    spectrum = jacobian_spectrum(net, xs)
    assert spectrum.solver_options == (("k", 0.5),)
    assert float(spectrum.fraction_outside) == 0.5
    # At z = −1.5, k = 0.5: π = μ² + μ − 0.5, roots (−1 ± √3)/2; Euler's |1 + z| would be 0.5.
    assert float(jnp.max(spectrum.growth)) == pytest.approx((1 + np.sqrt(3)) / 2, rel=1e-14)
    with pytest.raises(ValueError, match="'lm_resnet' is a two-step method"):
        layer_map_spectrum(net, xs)
    report = stability_report(net, xs, xs, lambda output, target: jnp.dot(output, target))
    assert report.gradients is None and report.fraction_outside == 0.5
    assert report.to_dict()["solver_options"] == {"k": 0.5}
    assert "lm_resnet (k=0.5)" in report.summary()
    # ∂y_L/∂y_0 is diagonal, entry i the recursion's u_4 from u_0 = 1 at z_i.
    expected = sorted((abs(_recursion(0.5, z, 1.0, 4)[-1]) for z in (-1.5, -0.5)), reverse=True)
    np.testing.assert_allclose(report.io.singular_values, np.broadcast_to(expected, (2, 2)), rtol=1e-12)
