"""Stability theory against closed forms and against the diffrax solvers themselves."""

import functools
import math

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import deepest as dp
from deepest import stability
from deepest.solvers import MULTISTEP, PARTITIONED, butcher_tableau

ONE_STEP = [name for name in dp.SOLVERS if name not in MULTISTEP + PARTITIONED]
EXPLICIT_ONE_STEP = [name for name in ONE_STEP if butcher_tableau(name).explicit]


@pytest.mark.parametrize("name", EXPLICIT_ONE_STEP)
def test_stability_polynomial_matches_exponential_up_to_order(name):
    coefficients = stability.stability_polynomial(name)
    order = dp.solver(name).order(None)
    expected = [1 / math.factorial(k) for k in range(order + 1)]
    # Tableau entries are floats: the order conditions hold to a few ulps.
    np.testing.assert_allclose(coefficients[: order + 1], expected, rtol=0, atol=1e-13)


@pytest.mark.parametrize("name", ONE_STEP)
def test_stability_function_equals_resolvent_formula(name):
    tableau = butcher_tableau(name)
    z = np.random.default_rng(0).normal(size=20) * 2 + 1j * np.random.default_rng(1).normal(size=20) * 2
    identity, ones = np.eye(len(tableau.b)), np.ones(len(tableau.b))
    resolvent = np.array([1 + zi * tableau.b @ np.linalg.solve(identity - zi * tableau.A, ones) for zi in z])
    # P/Q are built from the same tableau; differences are rounding in degree ≤ 13 polynomials.
    np.testing.assert_allclose(stability.stability_function(name)(z), resolvent, rtol=1e-12)


def test_implicit_euler_stability_function_is_closed_form():
    z = np.array([-3.0, 0.5 + 2j, 4j])
    np.testing.assert_allclose(stability.stability_function("implicit_euler")(z), 1 / (1 - z), rtol=1e-15)


@pytest.mark.parametrize("name", ["euler", "midpoint", "heun", "ralston"])
def test_real_axis_limit_of_first_and_second_order_methods_is_minus_two(name):
    # Ralston's tableau holds 2/3 in floating point: its R(z) is exact to ~1e-16.
    assert stability.real_axis_limit(name) == pytest.approx(-2.0, abs=1e-12)


def test_rk4_axis_limits():
    # The real root of 1 + x + x²/2 + x³/6 + x⁴/24 = 1 besides 0, to the 6 digits quoted in
    # Hairer & Wanner (II, IV.2): −2.785294; on the imaginary axis |R(iy)| = 1 at y = 2√2.
    assert stability.real_axis_limit("rk4") == pytest.approx(-2.785294, abs=1e-5)
    assert stability.imaginary_axis_limit("rk4") == pytest.approx(2 * math.sqrt(2), abs=1e-12)
    assert stability.imaginary_axis_limit("rk3") == pytest.approx(math.sqrt(3), abs=1e-12)


@pytest.mark.parametrize("name", ["euler", "heun", "midpoint"])
def test_low_order_explicit_methods_include_no_imaginary_interval(name):
    assert stability.imaginary_axis_limit(name) == 0.0


@pytest.mark.parametrize("name", ["implicit_euler", "kvaerno3", "kvaerno5"])
def test_a_stable_methods_have_infinite_limits(name):
    assert stability.real_axis_limit(name) == -math.inf
    assert stability.imaginary_axis_limit(name) == math.inf
    left_half_plane = -np.geomspace(1e-3, 1e3, 50)[:, None] + 1j * np.linspace(-1e3, 1e3, 41)[None, :]
    assert stability.is_stable(name, left_half_plane).all()


def test_implicit_euler_unstable_exactly_on_open_disk_around_one():
    angles = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    circle = np.exp(1j * angles)
    assert not stability.is_stable("implicit_euler", 1 + 0.999 * circle).any()
    assert not stability.is_stable("implicit_euler", 1 + 0.5 * circle).any()
    assert stability.is_stable("implicit_euler", 1 + 1.001 * circle).all()
    assert stability.is_stable("implicit_euler", 1 + circle).all()  # |R| = 1 on the circle


@pytest.mark.parametrize("name", ["leapfrog_midpoint", "reversible_heun"])
def test_leapfrog_type_methods_stable_only_on_open_segment(name):
    inside = 1j * np.linspace(-0.999, 0.999, 201)
    assert stability.is_stable(name, inside).all()
    # The ends ±i carry a double root μ = ±i: linear growth, so unstable.
    assert not stability.is_stable(name, np.array([1j, -1j, 1.001j, -1.5j])).any()
    off_axis = np.array([1e-3 + 0.5j, -1e-3 + 0.5j, -0.1, 0.1, -1 + 0j])
    assert not stability.is_stable(name, off_axis).any()
    assert stability.imaginary_axis_limit(name) == pytest.approx(1.0, abs=1e-12)
    assert stability.real_axis_limit(name) == 0.0


def test_semi_implicit_euler_bounded_iff_h_omega_below_two():
    # The oscillator q' = ωp, p' = −ωq has λ = ±iω: z = ihω.
    assert stability.is_stable("semi_implicit_euler", 1j * np.linspace(0, 1.999, 100)).all()
    assert not stability.is_stable("semi_implicit_euler", np.array([2j, 2.001j, -0.01, 0.01 + 1j])).any()
    assert stability.imaginary_axis_limit("semi_implicit_euler") == pytest.approx(2.0, abs=1e-12)


def _test_points(name):
    """Points inside, outside and within 1% of the boundary on both axes."""
    points = [-0.3 + 0.2j, -1 + 1j, 0.5j, 0.4 + 0.1j, -4 + 0.5j, -8 + 0j]
    real, imaginary = stability.real_axis_limit(name), stability.imaginary_axis_limit(name)
    if math.isfinite(real) and real < 0:
        points += [0.99 * real, 1.01 * real]
    if math.isfinite(imaginary) and imaginary > 0:
        points += [0.99j * imaginary, 1.01j * imaginary]
    return np.array(points)


def _realified(z):
    """Real 2×2 matrices of multiplication by the complex numbers z, shape z.shape + (2, 2)."""
    z = np.asarray(z)
    return np.stack([np.stack([z.real, -z.imag], -1), np.stack([z.imag, z.real], -1)], -2)


# y' = λy as a real 2-D system, λ passed as `args` so that one compilation serves all points.
LINEAR = diffrax.ODETerm(lambda t, y, matrix: matrix @ y)
H = 0.1


@pytest.mark.parametrize("name", ONE_STEP)
def test_growth_factor_matches_one_diffrax_step(name):
    method = dp.solver(name, root_rtol=1e-13, root_atol=1e-13)
    z = _test_points(name)

    def one_step_norm(matrix):
        solution = diffrax.diffeqsolve(
            LINEAR,
            method,
            t0=0.0,
            t1=H,
            dt0=None,
            y0=jnp.array([1.0, 0.0]),
            args=matrix,
            stepsize_controller=diffrax.StepTo(ts=jnp.array([0.0, H])),
        )
        return jnp.linalg.norm(solution.ys[-1])  # one step multiplies by R(z): |R(z)|

    observed = jax.jit(jax.vmap(one_step_norm))(jnp.asarray(_realified(z / H)))
    # atol: Ralston's R(−1 + i) is exactly 0.
    np.testing.assert_allclose(observed, stability.growth_factor(name, z), rtol=1e-6, atol=1e-12)


def _step(name, matrix, state):
    """One step of the actual diffrax solver on its whole state, for y' = λy (λ as `matrix`)."""
    method = dp.solver(name)
    first, second = state[:2], state[2:]
    if name == "leapfrog_midpoint":  # state (y_{n−1}, y_n)
        new, *_ = method.step(LINEAR, H, 2 * H, second, matrix, (0.0, first), False)
        return jnp.concatenate([second, new])
    if name == "lm_resnet":  # state (y_{n−1}, y_n), at the default k = 0
        new, *_ = method.step(LINEAR, 0.0, H, second, matrix, first, False)
        return jnp.concatenate([second, new])
    if name == "reversible_heun":  # state (y_n, ŷ_n)
        new, _, _, (new_hat, _), _ = method.step(LINEAR, 0.0, H, first, matrix, (second, matrix @ second), False)
        return jnp.concatenate([new, new_hat])
    # semi_implicit_euler on q' = λp, p' = λq: eigenvalues ±λ.
    (q, p), *_ = method.step((LINEAR, LINEAR), 0.0, H, (first, second), matrix, None, False)
    return jnp.concatenate([q, p])


@pytest.mark.parametrize("name", MULTISTEP + PARTITIONED)
def test_growth_factor_matches_spectral_radius_of_diffrax_step_map(name):
    z = _test_points(name)
    step_maps = jax.vmap(lambda matrix: jax.jacfwd(lambda s: _step(name, matrix, s))(jnp.zeros(4)))(jnp.asarray(_realified(z / H)))
    observed = np.abs(np.linalg.eigvals(np.asarray(step_maps))).max(axis=-1)
    # Eigenvalues of a non-normal 4×4 map lose accuracy near a double root; the test points
    # stay 1% away from the boundary, where roots are well separated.
    np.testing.assert_allclose(observed, stability.growth_factor(name, z), rtol=1e-6)


def test_leapfrog_growth_over_many_steps_of_diffeqsolve():
    def norms(z):
        solution = diffrax.diffeqsolve(
            LINEAR,
            dp.solver("leapfrog_midpoint"),
            t0=0.0,
            t1=2000 * H,
            dt0=H,
            y0=jnp.array([1.0, 0.0]),
            args=jnp.asarray(_realified(z / H)),
            saveat=diffrax.SaveAt(ts=jnp.array([1000 * H, 2000 * H])),
            max_steps=2001,
        )
        return np.asarray(jnp.linalg.norm(solution.ys, axis=-1))

    # Inside the segment every root has |μ| = 1: 2,000 steps of the real solver stay bounded.
    assert norms(0.9j).max() < 10.0
    # Just off the axis on the left the parasitic root |μ| > 1 takes over. Once it dominates
    # (by step 1000 it leads by e^11) the growth per step is its modulus; 1e-4 covers the
    # remaining O(e^-11) admixture over 1000 steps.
    z = -0.01 + 0.5j
    early, late = norms(z)
    rate = math.log(late / early) / 1000
    assert rate == pytest.approx(math.log(float(stability.growth_factor("leapfrog_midpoint", z))), abs=1e-4)


@pytest.mark.parametrize("name", ONE_STEP)
def test_boundary_locus_lies_on_unit_growth(name):
    locus = stability.boundary_locus(name, num_points=256)
    # dopri8 also has a locus branch near |z| ≈ 130, where evaluating its degree-13 R cancels
    # ~17 digits; the regions that matter lie within |z| < 20.
    finite = locus[np.isfinite(locus) & (np.abs(locus) < 20)]
    np.testing.assert_allclose(stability.growth_factor(name, finite), 1.0, rtol=1e-8)


def test_leapfrog_boundary_locus_is_the_segment():
    locus = stability.boundary_locus("leapfrog_midpoint", num_points=64)
    theta = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    np.testing.assert_allclose(locus[:, 0], 1j * np.sin(theta), atol=1e-14)


def test_jax_and_numpy_agree_under_jit():
    z = np.array([-1.5 + 0.3j, 0.2j, -2.5 + 0j, 1j])
    for name in ["rk4", "leapfrog_midpoint", "kvaerno5"]:
        growth = jax.jit(functools.partial(stability.growth_factor, name))(jnp.asarray(z))
        np.testing.assert_allclose(growth, stability.growth_factor(name, z), rtol=1e-13)
        assert (np.asarray(jax.jit(functools.partial(stability.is_stable, name))(jnp.asarray(z))) == stability.is_stable(name, z)).all()


def test_clear_errors_for_methods_without_an_r_of_z():
    with pytest.raises(ValueError, match="growth_factor"):
        stability.stability_function("leapfrog_midpoint")
    with pytest.raises(ValueError, match="implicit"):
        stability.stability_polynomial("kvaerno3")
    with pytest.raises(ValueError, match="Valid solvers are"):
        stability.growth_factor("rk45", 0.1)


def test_the_discretisations_instability_is_told_from_the_flows_own_growth():
    growing, unstable, over_damped, both = (
        stability.CLASSES.index(label) for label in ("dynamically growing", "numerically unstable", "over-damped", "both stable")
    )
    # hλ = +0.3: the ODE grows by e^0.3 a step; no solver is to blame, whatever its |R|.
    for name in dp.SOLVERS:
        assert stability.classify(name, np.array([0.3 + 0j]))[0] == growing, name
    # Euler at −2.5: |R| = 1.5 where the flow decays: the discretisation's instability.
    assert stability.classify("euler", np.array([-2.5 + 0j]))[0] == unstable
    # Over-damped where |R| ≤ ½|e^z|: Euler's R(−1) = 0 erases a mode the flow keeps as e^−1;
    # implicit Euler's |R(2i)| = 1/√5 < ½ on an undamped oscillation. RK4 at −0.1 is faithful.
    assert stability.classify("euler", np.array([-1.0 + 0j]))[0] == over_damped
    assert stability.classify("implicit_euler", np.array([2j]))[0] == over_damped
    assert stability.classify("rk4", np.array([-0.1 + 0j]))[0] == both
    assert stability.classify("rk4", np.array([np.nan + 0j]))[0] == -1
    np.testing.assert_array_equal(stability.classify("euler", jnp.asarray([-2.5 + 0j, 0.3, -1.0])), [unstable, growing, over_damped])


def test_the_amplification_ratio_is_the_closed_form_and_the_order_star_where_it_exceeds_one():
    # An even number of grid points: no z on the imaginary axis, where |R| = |e^z| may tie.
    re, im = np.meshgrid(np.linspace(-4, 2, 60), np.linspace(-3, 3, 60))
    z = re + 1j * im
    closed = {
        "euler": np.abs(1 + z),
        "rk4": np.abs(1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24),
        "implicit_euler": 1 / np.abs(1 - z),
    }
    for name, growth in closed.items():
        # exp(ln|R| − Re z) against |R|/e^{Re z}: a few ulps of each (ratios up to ~e^4·|R|).
        np.testing.assert_allclose(stability.amplification_ratio(name, z), growth / np.exp(z.real), rtol=1e-13)
    for name in ("euler", "rk4"):
        np.testing.assert_array_equal(stability.in_order_star(name, z), np.abs(stability.stability_function(name)(z)) > np.abs(np.exp(z)))
    # Euler's order star holds the whole imaginary axis but 0 (|1 + iy| > 1), RK4's none of it near 0.
    assert stability.in_order_star("euler", np.array([0.5j, -0.5j])).all() and not stability.in_order_star("rk4", np.array([0.5j])).any()


def test_a_neutral_mode_within_rounding_of_the_axis_is_the_solvers_to_grow():
    # A skew-symmetric Jacobian's eigenvalues come out with Re z ≈ ±ε‖hJ‖: Euler grows |1 + 0.5i|
    # = 1.118 a step there, its fault whether the rounding fell left or right of the axis.
    unstable = stability.CLASSES.index("numerically unstable")
    for rounding in (-1e-7, 0.0, 1e-7):
        assert stability.classify("euler", np.array([rounding + 0.5j], dtype=np.complex64))[0] == unstable
