"""Energy drift and reversibility of solver-nets against closed forms and written-out recurrences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import deepest as dp
from deepest.analysis import energy_drift, reversibility_error
from deepest.fields import Antisymmetric, Hamiltonian

KEY = jax.random.PRNGKey(0)
# σ = identity, b = 0: the linear skew system y' = Ay, A = [[0, K], [−Kᵀ, 0]], which conserves
# ½‖y‖²; its frequencies are the singular values of K.
LINEAR = Hamiltonian(4, activation="identity", key=KEY)
K = np.asarray(LINEAR.weight)
A = np.block([[np.zeros((2, 2)), K], [-K.T, np.zeros((2, 2))]])
LEFT, FREQUENCIES, RIGHT_T = np.linalg.svd(K)
XS = jnp.asarray(np.random.default_rng(0).normal(size=(2, 4)))


def _half_squared_norm(y):
    return 0.5 * jnp.sum(y**2)


def test_energy_drift_under_leapfrog_is_bounded_and_under_euler_grows_by_the_closed_form():
    steps, rho = 10_000, FREQUENCIES[0]
    h = 0.05 / rho  # hρ = 0.05, T = 10⁴ h
    zero = np.zeros(2)
    # The invariant plane of frequency σ_j is span{(u_j, 0), (0, v_j)}: A(u_j, 0) = −σ_j (0, v_j)
    # and A(0, v_j) = σ_j (u_j, 0). Samples: one in each plane, and a generic state.
    xs = jnp.asarray([np.concatenate([LEFT[:, 0], zero]), np.concatenate([zero, RIGHT_T[1]]), np.asarray(XS[0])])
    net = dp.SolverNet(LINEAR, solver="leapfrog_midpoint", t1=steps * h, num_steps=steps)
    leapfrog = energy_drift(net, xs, _half_squared_norm)
    assert leapfrog.energy.shape == (3, steps + 1)
    # Leapfrog on w' = iωw from the Euler start w_1 = (1 + ihω) w_0 is w_n = c₁μ₁ⁿ + c₂μ₂ⁿ with
    # |μ₁| = |μ₂| = 1 (hω < 1), c₁ = (1 + r) w_0, c₂ = −r w_0, r = (1 − s)/(2s), s = √(1 − h²ω²).
    # So |w_0| ≤ |w_n| ≤ (1 + 2r)|w_0| = |w_0|/s for every n: the energy ratio stays in
    # [1, 1/(1 − h²ω²)], for all time, and the orthogonal planes add. The bound is ~2.5e-3;
    # 1e-10 covers the rounding of 10⁴ steps (~10⁴·ε).
    bound = (h * rho) ** 2 / (1 - (h * rho) ** 2)
    assert float(leapfrog.max_relative_drift.max()) <= bound + 1e-10
    assert float((leapfrog.energy / leapfrog.energy[:, :1]).min()) >= 1 - 1e-10
    # The phase of (μ₂/μ₁)ⁿ advances by π + O(hω) a step and sweeps the circle many times in
    # 10⁴ steps: the top plane's sample comes within a relative ~1e-3 of the bound.
    assert float(leapfrog.max_relative_drift[0]) >= 0.99 * bound
    euler = energy_drift(net.with_solver("euler"), xs, _half_squared_norm)
    layers = np.arange(steps + 1)
    # On an eigen-plane I + hA is |1 + ihσ_j| times a rotation: E_k = |1 + ihσ_j|^{2k} E_0 exactly.
    for sample, frequency in [(0, FREQUENCIES[0]), (1, FREQUENCIES[1])]:
        growth = float(dp.stability.growth_factor("euler", 1j * h * frequency))
        # 10⁴ rounded steps: relative error ≲ 10⁴·4ε ≈ 1e-11.
        expected = growth ** (2 * layers) * float(euler.energy[sample, 0])
        np.testing.assert_allclose(euler.energy[sample], expected, rtol=1e-9)
    assert float(euler.relative_drift[0, -1]) > 1e10  # (1 + 0.05²)^10⁴ ≈ 7e10: a secular drift
    # The generic sample grows between the two planes' rates.
    ratio = np.asarray(euler.energy[2] / euler.energy[2, 0])
    assert np.all(ratio <= (1 + (h * FREQUENCIES[0]) ** 2) ** layers * (1 + 1e-9))
    assert np.all(ratio >= (1 + (h * FREQUENCIES[1]) ** 2) ** layers * (1 - 1e-9))


def _step_matrices(solver, h):
    """The forward layer map of y' = Ay, and that of the fresh backward solve (field −A)."""
    identity = np.eye(2)
    if solver == "euler":
        return np.eye(4) + h * A, np.eye(4) - h * A
    # Symplectic Euler: q ← q + hKp, then p ← p − hKᵀq with the new q; backwards K → −K.
    return tuple(np.block([[identity, sign * h * K], [-sign * h * K.T, identity - h * h * K.T @ K]]) for sign in (1.0, -1.0))


def _written_out_round_trip(solver, y0, h, steps):
    """y0 → forward → fresh backward, on y' = Ay, in NumPy."""
    if solver in ("euler", "semi_implicit_euler"):
        forward, backward = _step_matrices(solver, h)
        return np.linalg.matrix_power(backward, steps) @ np.linalg.matrix_power(forward, steps) @ y0
    # Leapfrog: an Euler start, then y_{n+1} = y_{n−1} + 2hAy_n; backwards with −A.
    y = y0
    for matrix in (A, -A):
        previous, y = y, y + h * matrix @ y
        for _ in range(steps - 1):
            previous, y = y, previous + 2 * h * matrix @ y
    return y


@pytest.mark.parametrize("solver, order", [("euler", 1), ("semi_implicit_euler", 1), ("leapfrog_midpoint", 2)])
def test_fresh_backward_solve_misses_the_start_at_the_predicted_order(solver, order):
    # Each step count compiles anew (~1 s): Euler's order is measured through the library at
    # both h; for the other two the library is checked against the written-out round trip at
    # h = 1/40 and the order read off the written-out round trip, which it equals.
    library_steps = (40, 80) if solver == "euler" else (40,)
    errors = {}
    for steps in (40, 80):
        expected = np.stack([_written_out_round_trip(solver, np.asarray(x), 1.0 / steps, steps) for x in XS])
        errors[steps] = np.linalg.norm(expected - np.asarray(XS), axis=1)
        if steps in library_steps:
            result = reversibility_error(dp.SolverNet(LINEAR, solver=solver, t1=1.0, num_steps=steps), XS)
            # The same products as diffrax takes, up to reassociation: round-off against O(h^p) ≥ 1e-4.
            np.testing.assert_allclose(result.returned_state, expected, rtol=1e-11, atol=1e-13)
            np.testing.assert_allclose(result.initial_state, XS)
            np.testing.assert_allclose(result.error, errors[steps], rtol=1e-8)
    # Neither method is symmetric (Φ_{−h} ≠ Φ_h⁻¹): Euler's round trip is (I − h²A²)^L, which
    # misses y0 by ≈ Th‖A²y0‖ = O(h); symplectic Euler's likewise. Leapfrog inverts exactly,
    # except that the fresh backward solve restarts with an Euler step instead of the forward
    # solve's y_{L−1}: an O(h²) defect, carried along by the neutrally stable recurrence. Slopes
    # are measured between h = 1/40 and 1/80; the next terms shift them by O(Thρ²) ≈ 0.04
    # (measured: 1.01, 0.99–1.00 and 2.00).
    slopes = np.log2(errors[40] / errors[80])
    np.testing.assert_allclose(slopes, order, atol=0.2)


@pytest.mark.parametrize(
    "solver, field",
    [("leapfrog_midpoint", LINEAR), ("reversible_heun", Antisymmetric(4, key=KEY))],
    ids=["leapfrog-linear-hamiltonian", "reversible_heun-tanh-antisymmetric"],
)
def test_algebraic_backward_solve_returns_to_the_start_to_round_off(solver, field):
    net = dp.SolverNet(field, solver=solver, t1=1.0, num_steps=40)
    exact = reversibility_error(net, XS, algebraic=True)
    assert exact.algebraic and exact.solver == solver
    # Every backward step undoes one forward step up to a few ulps; on these conservative
    # fields the recurrences neither grow nor shrink, so 40 steps leave ≲ 40·4ε ≈ 4e-14.
    assert float(exact.relative_error.max()) < 1e-12
    if solver == "leapfrog_midpoint":
        # The fresh backward solve of the same net (compiled in the test above): an O(h²) miss, ~1e-3.
        assert float(reversibility_error(net, XS).relative_error.min()) > 1e-6


def test_structure_diagnostics_reject_bad_input():
    net = dp.SolverNet(LINEAR, solver="euler", num_steps=4)
    with pytest.raises(ValueError, match="algebraic=True.*leapfrog_midpoint, reversible_heun; got 'euler'"):
        reversibility_error(net, XS, algebraic=True)
    adaptive = dp.SolverNet(LINEAR, solver="tsit5", num_steps=None)
    with pytest.raises(ValueError, match="fixed-step SolverNet"):
        reversibility_error(adaptive, XS)
    with pytest.raises(ValueError, match="fixed-step SolverNet"):
        energy_drift(adaptive, XS, _half_squared_norm)
    with pytest.raises(ValueError, match="leading batch axis"):
        energy_drift(net, XS[0], _half_squared_norm)
    with pytest.raises(ValueError, match=r"energy must map one state of shape \(4,\) to a scalar; it returned \(4,\)"):
        energy_drift(net, XS, lambda y: y**2)
