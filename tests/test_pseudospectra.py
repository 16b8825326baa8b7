"""Pseudospectra, departure from normality and transient growth against closed forms: the Jordan
block's √(ε(1 + ε)) disk, normal matrices' ε-disks, the powers of [[a, c], [0, a]], I + hA."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import deepest as dp
from deepest.analysis import (
    PSEUDOSPECTRA_LIMIT,
    complex_grid,
    departure_from_normality,
    field_pseudospectra,
    kreiss_constant,
    layer_pseudospectra,
    sigma_min_grid,
    transient_growth,
)

LAMBDA = -0.3
JORDAN = jnp.array([[LAMBDA, 1.0], [0.0, LAMBDA]])
# Eight arguments about the eigenvalue: the level sets of the Jordan block are circles.
ANGLES = 2 * np.pi * np.arange(8) / 8
EPSILONS = np.array([1e-6, 1e-4, 1e-2, 0.3])
# A non-normal matrix with a complex pair and a real eigenvalue.
A = jnp.array([[-1.0, 2.0, 0.3], [-2.0, -1.0, 0.4], [0.0, 0.5, 0.5]])
H = 0.1


def _two_by_two_sigma(rho, c):
    """The singular values of [[w, c], [0, w]] with |w| = ρ, c ≥ 0: their product is ρ², the sum
    of their squares 2ρ² + c², so σ_max − σ_min = c. σ_min² = 2ρ⁴/((2ρ² + c²) + c√(4ρ² + c²)), the
    product of the roots over the larger one (the difference of the two roots cancels at small ρ)."""
    trace = 2 * rho**2 + c**2
    smallest = np.sqrt(2 * rho**4 / (trace + c * np.sqrt(4 * rho**2 + c**2)))
    return smallest, smallest + c


def test_jordan_block_pseudospectrum_is_the_disk_of_radius_sqrt_eps_one_plus_eps():
    # σ_min(zI − J) depends on |z − λ| = r alone and, from `_two_by_two_sigma` with c = 1,
    # σ_min = ε ⟺ r⁴ + ε⁴ = ε²(2r² + 1) ⟺ (r² − ε²)² = ε² ⟺ r² = ε(1 + ε): the ε-pseudospectrum is
    # the disk of radius √(ε(1 + ε)) ≈ √ε, against ε for a normal matrix with the same spectrum.
    radii = np.logspace(-6, 1, 15)
    points = LAMBDA + radii[:, None] * np.exp(1j * ANGLES)[None, :]
    sigma = np.asarray(sigma_min_grid(JORDAN, points))
    # The SVD's error is ~1e-16‖zI − J‖ ≲ 1e-14, relative to σ_min ≥ 5e-13 at r = 1e-6.
    np.testing.assert_allclose(sigma, np.broadcast_to(_two_by_two_sigma(radii, 1.0)[0][:, None], sigma.shape), rtol=1e-9, atol=1e-15)
    # The radius of the level set ε, found from the computed σ_min alone: bisection along each
    # ray (σ_min increases with r) over 60 halvings of [0, 2], to ~1e-18.
    low, high = np.zeros((len(EPSILONS), len(ANGLES))), np.full((len(EPSILONS), len(ANGLES)), 2.0)
    for _ in range(60):
        middle = (low + high) / 2
        inside = np.asarray(sigma_min_grid(JORDAN, LAMBDA + middle * np.exp(1j * ANGLES)[None, :])) <= EPSILONS[:, None]
        low, high = np.where(inside, middle, low), np.where(inside, high, middle)
    # dσ_min/dr ≈ 2r near r(ε), so the SVD's ~1e-16 gives r to ~1e-16/r ≤ 1e-13 relative.
    expected = np.sqrt(EPSILONS * (1 + EPSILONS))
    np.testing.assert_allclose(low, np.broadcast_to(expected[:, None], low.shape), rtol=1e-10)
    # Asymptotically √ε: r(ε)/√ε = √(1 + ε) → 1.
    np.testing.assert_allclose(low[:2] / np.sqrt(EPSILONS[:2, None]), 1.0, rtol=2 * EPSILONS[1])
    # ‖J‖_F² = 2λ² + 1, Σ|λ_i|² = 2λ²: the departure is the off-diagonal 1, to round-off.
    assert float(departure_from_normality(JORDAN)) == pytest.approx(1.0, abs=1e-15)


def test_normal_matrices_have_no_departure_and_disks_for_pseudospectra():
    # Q diag-blocks Qᵀ with Q orthogonal: normal, with eigenvalues −1 ± 2i, 0.5 and −0.2.
    blocks = np.zeros((4, 4))
    blocks[:2, :2] = [[-1.0, 2.0], [-2.0, -1.0]]
    blocks[2, 2], blocks[3, 3] = 0.5, -0.2
    orthogonal = np.linalg.qr(np.random.default_rng(0).normal(size=(4, 4)))[0]
    normal = orthogonal @ blocks @ orthogonal.T
    spectrum = np.array([-1 + 2j, -1 - 2j, 0.5, -0.2])
    # ‖N‖_F of a backward-stable Schur form: ~1e-16‖A‖_F ≈ 5e-16; the Henrici difference
    # √(‖A‖_F² − Σ|λ|²) would read ~1e-8 here.
    assert float(departure_from_normality(normal)) < 1e-14
    grid = np.asarray(complex_grid((-2.0, 1.0, -2.5, 2.5), 9))
    distance = np.min(np.abs(grid[..., None] - spectrum), axis=-1)
    # σ_min(zI − A) = dist(z, spec A): an ε-pseudospectrum is the union of the ε-disks.
    np.testing.assert_allclose(sigma_min_grid(normal, grid), distance, rtol=1e-12, atol=1e-14)
    # A batch: the normal matrix and the Jordan block padded to 4 × 4 (departure 1).
    padded = np.zeros((4, 4))
    padded[:2, :2] = np.asarray(JORDAN)
    np.testing.assert_allclose(departure_from_normality(np.stack([normal, padded])), [0.0, 1.0], atol=1e-14)
    # Against Henrici's difference formula on a non-normal matrix, whose cancellation leaves it
    # ~1e-8 accurate.
    henrici = np.sqrt(np.sum(np.asarray(A) ** 2) - np.sum(np.abs(np.linalg.eigvals(A)) ** 2))
    assert float(departure_from_normality(A)) == pytest.approx(henrici, rel=1e-7)


def test_transient_growth_and_kreiss_constant_of_a_two_by_two_match_their_closed_forms():
    a, c, steps = 0.9, 1.0, 40
    matrix = jnp.array([[a, c], [0.0, a]])
    growth = transient_growth(matrix, steps)
    # M^k = [[a^k, k a^{k−1} c], [0, a^k]] = [[p, q], [0, p]]: σ_max = (q + √(q² + 4p²))/2.
    k = np.arange(steps + 1)
    p, q = a**k, k * a ** np.maximum(k - 1, 0) * c
    expected = (q + np.sqrt(q**2 + 4 * p**2)) / 2
    # 40 rounded products and an SVD: ~40·1e-16 relative.
    np.testing.assert_allclose(growth.norms, expected, rtol=1e-12)
    # The transient k a^{k−1} peaks near k = −1/ln a ≈ 9.5: ‖M^9‖ ≈ 3.9, 2.6 times ‖M‖ ≈ 1.53.
    assert int(growth.peak_step) == int(np.argmax(expected)) == 9
    assert float(growth.peak) == pytest.approx(expected.max(), rel=1e-12)
    # For each |z| = R the nearest point to a is z = R (θ = 0 is on the grid), so the grid's
    # maximum of (|z| − 1)/σ_min(zI − M) is max_R (R − 1)/σ_min at |z − a| = R − a.
    radii = 1 + np.logspace(-3, 1, 41)
    kreiss = float(kreiss_constant(matrix, radii=radii, num_angles=16))
    assert kreiss == pytest.approx(np.max((radii - 1) / _two_by_two_sigma(radii - a, c)[0]), rel=1e-10)
    # The Kreiss matrix theorem: K ≤ sup_k ‖M^k‖ ≤ e·n·K (the peak is reached within 40 powers).
    assert kreiss <= float(growth.peak) <= np.e * 2 * kreiss
    # A normal contraction: K = 1, approached as |z| → ∞ (to 1e-3 at the default radii ≤ 1001).
    assert float(kreiss_constant(jnp.diag(jnp.array([0.5, -0.9])))) == pytest.approx(1.0, abs=1e-3)


def test_non_finite_matrices_give_nan_and_bad_arguments_are_refused():
    matrices = jnp.stack([JORDAN, jnp.full((2, 2), jnp.nan)])
    assert np.isnan(np.asarray(sigma_min_grid(matrices, jnp.array([0.0j, 1.0])))[1]).all()
    assert np.isnan(np.asarray(departure_from_normality(matrices))[1])
    norms = np.asarray(transient_growth(matrices, 3).norms)
    assert np.isfinite(norms[0]).all() and np.isnan(norms[1]).all()
    with pytest.raises(ValueError, match="square matrix"):
        sigma_min_grid(jnp.ones((2, 3)), jnp.zeros(1))
    with pytest.raises(ValueError, match="radii > 1"):
        kreiss_constant(JORDAN, radii=[0.5, 2.0])


def _linear_net(matrix, solver="euler", num_steps=3):
    return dp.SolverNet(dp.fields.Linear(matrix), solver=solver, t1=num_steps * H, num_steps=num_steps)


def test_euler_layer_pseudospectra_of_a_linear_field_are_those_of_i_plus_h_a():
    # Euler on y' = Ay: every layer's Jacobian is I + hA exactly, for every sample.
    net, xs = _linear_net(A), jax.random.normal(jax.random.PRNGKey(0), (2, 3))
    layer_map = np.eye(3) + H * np.asarray(A)
    # The references are computed on the same (sample, layer) batch: one compiled program each.
    every_layer = np.broadcast_to(layer_map, (2, 3, 3, 3))
    grid = complex_grid((0.5, 1.5, -0.5, 0.5), 6)
    layers = layer_pseudospectra(net, xs, grid=grid, num_powers=5)
    assert layers.sigma_min.shape == (2, 3, 6, 6) and layers.power_norms.shape == (2, 3, 6)
    np.testing.assert_allclose(layers.sigma_min, sigma_min_grid(every_layer, grid), rtol=1e-12, atol=1e-15)
    powers = [np.linalg.norm(np.linalg.matrix_power(layer_map, j), 2) for j in range(6)]
    np.testing.assert_allclose(layers.power_norms, np.broadcast_to(powers, (2, 3, 6)), rtol=1e-12)
    np.testing.assert_allclose(layers.transient_growth, max(powers), rtol=1e-12)
    # The Schur form of I + hA is I + hT: the departure scales by h, eigenvalues map to 1 + hλ.
    departure = float(departure_from_normality(A))
    np.testing.assert_allclose(layers.departure, H * departure, rtol=1e-12)
    np.testing.assert_allclose(np.sort_complex(np.asarray(layers.eigenvalues[1, 2])), np.sort_complex(1 + H * np.linalg.eigvals(A)), atol=1e-12)
    np.testing.assert_allclose(layers.kreiss, kreiss_constant(every_layer), rtol=1e-12)
    # The field in the hλ plane: σ_min(zI − hA) = σ_min((1 + z)I − (I + hA)), the layer's
    # pseudospectra shifted by −1 (round-off in forming I + hA: ~1e-16).
    field = field_pseudospectra(net, xs, grid=grid - 1)
    np.testing.assert_allclose(field.sigma_min, layers.sigma_min, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(field.field_sigma_min, sigma_min_grid(np.broadcast_to(A, (2, 3, 3, 3)), (grid - 1) / H), rtol=1e-12)
    np.testing.assert_allclose(field.departure, departure, rtol=1e-12)
    np.testing.assert_allclose(np.sort_complex(np.asarray(field.scaled[0, 0])), np.sort_complex(H * np.linalg.eigvals(A)), atol=1e-12)
    assert field.step_size == pytest.approx(H) and field.solver == "euler"


def test_net_analyses_refuse_large_states_and_two_step_layer_maps():
    big = _linear_net(jnp.eye(PSEUDOSPECTRA_LIMIT + 1))
    xs = jnp.zeros((1, PSEUDOSPECTRA_LIMIT + 1))
    for analysis in (layer_pseudospectra, field_pseudospectra):
        with pytest.raises(ValueError, match=f"{PSEUDOSPECTRA_LIMIT + 1} is above PSEUDOSPECTRA_LIMIT = {PSEUDOSPECTRA_LIMIT}"):
            analysis(big, xs, grid=jnp.zeros(1, complex))
    with pytest.raises(ValueError, match="two-step"):
        layer_pseudospectra(_linear_net(A, solver="leapfrog_midpoint"), jnp.zeros((1, 3)), grid=jnp.zeros(1, complex))
