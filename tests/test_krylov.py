"""Matrix-free Krylov spectra against dense linear algebra and closed forms."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import deepest as dp
from deepest.analysis import krylov

DIM = 256
SEEDS = (0, 1, 2)
# Dense rounding of eig/svd on a 256 × 256 matrix of norm ~1 stays below this (relative).
DENSE_ROUNDING = 1e-12


def _mlp(key):
    return dp.fields.MLP(state_dim=DIM, width=DIM, depth=1, activation="tanh", key=key)


def _jacobian_operators(field, y):
    """v ↦ J v and u ↦ Jᵀ u for J = ∂f/∂y at y, without forming J."""
    f = lambda z: field(0.0, z, None)
    return (lambda v: jax.jvp(f, (y,), (v,))[1]), (lambda u: jax.vjp(f, y)[1](u)[0])


@eqx.filter_jit
@eqx.filter_vmap
def _mlp_cases(key):
    """A random MLP field, a random state, its Jacobian densely, and the Krylov estimates from
    the default start vector (as the analyses run them)."""
    field_key, state_key = jax.random.split(key)
    field, y = _mlp(field_key), jax.random.normal(state_key, (DIM,))
    matvec, rmatvec = _jacobian_operators(field, y)
    return dict(
        field=field,
        state=y,
        jacobian=jax.jacfwd(lambda z: field(0.0, z, None))(y),
        radius=krylov.spectral_radius(matvec, DIM),
        abscissa=krylov.spectral_abscissa(matvec, DIM),
        singular=krylov.top_singular_values(matvec, rmatvec, DIM),
    )


@pytest.fixture(scope="module")
def mlp_cases():
    """Three random 256-dimensional MLP Jacobians: batched Krylov estimates and dense spectra."""
    cases = _mlp_cases(jax.random.split(jax.random.key(0), len(SEEDS)))
    jacobians = np.asarray(cases["jacobian"])
    cases["eigenvalues"] = [np.linalg.eigvals(jacobian) for jacobian in jacobians]
    cases["singular_values"] = [np.linalg.svd(jacobian, compute_uv=False) for jacobian in jacobians]
    return cases


def test_mlp_spectral_radius_and_abscissa_match_dense(mlp_cases):
    radius = np.asarray(mlp_cases["radius"])
    abscissa = np.asarray(mlp_cases["abscissa"])
    dense_radius = [np.abs(values).max() for values in mlp_cases["eigenvalues"]]
    dense_abscissa = [values.real.max() for values in mlp_cases["eigenvalues"]]
    # The acceptance bar for matrix-free analysis of these fields (NaN would mean unconverged).
    np.testing.assert_allclose(radius, dense_radius, rtol=1e-4)
    np.testing.assert_allclose(abscissa, dense_abscissa, rtol=1e-4)
    # What float64 honestly gives: a Ritz pair with residual r ≤ tol ‖J‖ (tol = ε^(2/3) =
    # 3.7e-11) lies within κ(λ) r of an eigenvalue λ to first order (Saad 2011, Thm 3.6).
    # Here the extreme eigenvalues have κ ≤ 4.4 (scipy.linalg.eig with left vectors) and
    # ‖J‖ ≤ 2.8 α ≤ 2.8 ρ, so the bound is 4.5e-10 relative; 1e-9 allows for the O(r²)
    # term. (Measured: ≤ 3e-13.)
    np.testing.assert_allclose(radius, dense_radius, rtol=1e-9)
    np.testing.assert_allclose(abscissa, dense_abscissa, rtol=1e-9)


def test_mlp_top_singular_value_matches_dense(mlp_cases):
    result = mlp_cases["singular"]
    assert np.asarray(result.converged).all()
    sigma, residual = np.asarray(result.values[:, 0]), np.asarray(result.residuals[:, 0])
    dense = np.array([values[0] for values in mlp_cases["singular_values"]])
    np.testing.assert_allclose(sigma, dense, rtol=1e-4)
    # (x, u)/√2 is a unit vector with residual r/√2 for the symmetric [[0, J], [Jᵀ, 0]],
    # whose eigenvalues are ±σ_i: some σ_i lies within r of σ, rigorously (Weyl); that it is
    # σ_max is what the comparison checks.
    assert (np.abs(sigma - dense) <= residual + DENSE_ROUNDING * dense).all()


def test_vmap_over_states_matches_a_loop_compiled_once(mlp_cases):
    traces = []

    @eqx.filter_jit
    def radius(field, y):
        traces.append(None)
        return krylov.spectral_radius(_jacobian_operators(field, y)[0], DIM)

    looped = []
    for case in range(len(SEEDS)):
        field, y = jax.tree.map(lambda x, case=case: x[case] if eqx.is_array(x) else x, (mlp_cases["field"], mlp_cases["state"]))
        looped.append(float(radius(field, y)))
    assert len(traces) == 1
    # The same iteration from the same start vectors; batched and single matvecs only
    # round differently, at the level of the dense problem's rounding.
    np.testing.assert_allclose(looped, mlp_cases["radius"], rtol=DENSE_ROUNDING)


# A block upper-triangular 8 × 8 matrix, eigenvalues those of its diagonal blocks: −3 (largest
# modulus), 1 ± 2i (largest real part, |·| = √5), 0.5, −1, 0.2 ± 0.3i, −0.5. The coupling
# above the blocks makes it non-normal; a random orthogonal similarity hides the structure.
SMALL_EIGENVALUES = np.array([-3, 1 + 2j, 1 - 2j, 0.5, -1, 0.2 + 0.3j, 0.2 - 0.3j, -0.5])
SMALL_DIM, SMALL_KRYLOV_DIM = 8, 5  # krylov_dim < dim: the answers need restarts


def _small_matrix(seed):
    rng = np.random.default_rng(seed)
    blocks = np.zeros((SMALL_DIM, SMALL_DIM))
    start = 0
    for value in SMALL_EIGENVALUES[SMALL_EIGENVALUES.imag >= 0]:
        # a ± ib as the real block [[a, −b], [b, a]]; a real eigenvalue as itself.
        block = [[value.real]] if value.imag == 0 else [[value.real, -value.imag], [value.imag, value.real]]
        blocks[start : start + len(block), start : start + len(block)] = block
        start += len(block)
    # Entries two or more above the diagonal: above every block, never inside a 2 × 2 one.
    coupling = np.triu(rng.normal(size=(SMALL_DIM, SMALL_DIM)), 2) * 0.3
    rotation, _ = np.linalg.qr(rng.normal(size=(SMALL_DIM, SMALL_DIM)))
    return rotation @ (blocks + coupling) @ rotation.T


@jax.jit
def _small_eigenvalues(matrix, key):
    """From a random start vector: the iteration converges from any start."""
    matvec = lambda v: matrix @ v
    options = dict(krylov_dim=SMALL_KRYLOV_DIM, tol=1e-12, start=jax.random.normal(key, (SMALL_DIM,)))
    return (
        krylov.arnoldi_eigenvalues(matvec, SMALL_DIM, num_eigenvalues=3, which="magnitude", **options),
        krylov.arnoldi_eigenvalues(matvec, SMALL_DIM, num_eigenvalues=2, which="real", **options),
    )


def _by_imaginary_part(values):
    values = np.asarray(values)
    return values[np.argsort(values.imag)]


@pytest.mark.parametrize("seed", [0, 1])
def test_closed_form_eigenvalues_of_a_non_normal_matrix(seed):
    magnitude, real = _small_eigenvalues(_small_matrix(seed), jax.random.key(seed))
    assert bool(magnitude.converged) and bool(real.converged)
    norm = np.linalg.norm(_small_matrix(seed), 2)  # 3.07 for both seeds
    assert (np.asarray(magnitude.residuals) <= 1e-12 * norm).all()
    # A residual r ≤ 3.1e-12 moves an eigenvalue by at most κ r to first order; the
    # condition numbers here are κ < 2 (scipy.linalg.eig with left vectors, seeds 0 and 1).
    largest_modulus = SMALL_EIGENVALUES[np.argsort(-np.abs(SMALL_EIGENVALUES))[:3]]
    largest_real_part = SMALL_EIGENVALUES[np.argsort(-SMALL_EIGENVALUES.real)[:2]]
    assert complex(magnitude.eigenvalues[0]) == pytest.approx(largest_modulus[0], abs=1e-11)
    np.testing.assert_allclose(_by_imaginary_part(magnitude.eigenvalues[1:]), _by_imaginary_part(largest_modulus[1:]), atol=1e-11)
    np.testing.assert_allclose(_by_imaginary_part(real.eigenvalues), _by_imaginary_part(largest_real_part), atol=1e-11)


def test_repeated_eigenvalue_needs_continuation_after_breakdown():
    # A random start vector spans only a 2-dimensional invariant subspace of diag(2, 2, 2,
    # 1, …): Arnoldi breaks down after two steps and must continue with fresh directions to
    # find all three copies of λ = 2.
    rotation, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(SMALL_DIM, SMALL_DIM)))
    matrix = rotation @ np.diag([2.0, 2, 2, 1, 1, 1, 1, 1]) @ rotation.T
    magnitude, _ = _small_eigenvalues(matrix, jax.random.key(3))
    assert bool(magnitude.converged)
    # Symmetric: each Ritz value lies within its residual (≤ 2e-12) of an eigenvalue.
    np.testing.assert_allclose(np.asarray(magnitude.eigenvalues), [2, 2, 2], atol=1e-11)


def test_unconverged_scalar_is_nan():
    # A two-dimensional Krylov space without restarts cannot resolve the 8 × 8 spectrum; the
    # scalar convenience must not pass the rough estimate off as the spectral radius.
    matrix = jnp.asarray(_small_matrix(0))
    radius = jax.jit(lambda: krylov.spectral_radius(lambda v: matrix @ v, SMALL_DIM, krylov_dim=2, max_restarts=0))()
    assert np.isnan(radius)


@jax.jit
def _small_singular_values(matrix, key):
    return krylov.top_singular_values(
        lambda v: matrix @ v,
        lambda u: matrix.T @ u,
        SMALL_DIM,
        num_values=3,
        krylov_dim=SMALL_KRYLOV_DIM,
        tol=1e-12,
        start=jax.random.normal(key, (SMALL_DIM,)),
    )


@pytest.mark.parametrize(
    "singular_values",
    # Repeated values make the bidiagonalisation break down (the Krylov space of a random
    # start vector holds one direction per distinct value) and continue with fresh ones.
    [[5.0, 4, 3.5, 2, 1, 0.5, 0.1, 0], [5.0, 5, 5, 1, 1, 1, 1, 1]],
    ids=["distinct", "repeated"],
)
def test_closed_form_singular_values(singular_values):
    rng = np.random.default_rng(6)
    left, _ = np.linalg.qr(rng.normal(size=(SMALL_DIM, SMALL_DIM)))
    right, _ = np.linalg.qr(rng.normal(size=(SMALL_DIM, SMALL_DIM)))
    result = _small_singular_values(left @ np.diag(singular_values) @ right.T, jax.random.key(6))
    assert bool(result.converged)
    # Rigorous: each σ lies within its residual (≤ tol σ_max = 5e-12) of a singular value.
    np.testing.assert_allclose(np.asarray(result.values), singular_values[:3], atol=1e-11)


def test_non_finite_operator_stops_after_the_first_cycle():
    # A diverged network's Jacobian: NaN is the answer, without 100 futile restarts.
    matrix, key = np.full((SMALL_DIM, SMALL_DIM), np.nan), jax.random.key(8)
    magnitude, _ = _small_eigenvalues(matrix, key)
    singular = _small_singular_values(matrix, key)
    for result, values in [(magnitude, magnitude.eigenvalues), (singular, singular.values)]:
        assert not bool(result.converged) and np.isnan(np.asarray(values)).all()
        assert int(result.num_matvecs) == SMALL_KRYLOV_DIM + 3  # one cycle, then the residuals


def test_float32_operator_gives_complex64_and_converges():
    matrix = jnp.asarray(_small_matrix(0), jnp.float32)
    matvec = lambda v: matrix @ v
    options = dict(krylov_dim=SMALL_KRYLOV_DIM, dtype=jnp.float32)
    result = jax.jit(lambda: krylov.arnoldi_eigenvalues(matvec, SMALL_DIM, **options))()
    assert result.eigenvalues.dtype == jnp.complex64
    assert bool(result.converged)
    # Default float32 tol ε^(2/3) = 2.4e-5, times ‖A‖ = 3.07, times κ < 2: within 1.5e-4.
    assert complex(result.eigenvalues[0]) == pytest.approx(-3, abs=1.5e-4)
    singular = jax.eval_shape(lambda: krylov.top_singular_values(matvec, matvec, SMALL_DIM, **options))
    assert singular.values.dtype == jnp.float32


def test_bad_arguments_raise_value_errors():
    matvec = lambda v: 2 * v
    with pytest.raises(ValueError, match="which must be one of .*'magnitude', 'real'.*'largest'"):
        krylov.arnoldi_eigenvalues(matvec, 10, which="largest")
    with pytest.raises(ValueError, match="krylov_dim=20 exceeds dim=10"):
        krylov.arnoldi_eigenvalues(matvec, 10, krylov_dim=20)
    with pytest.raises(ValueError, match="num_eigenvalues=5 needs krylov_dim > 5, got krylov_dim=5"):
        krylov.arnoldi_eigenvalues(matvec, 10, num_eigenvalues=5, krylov_dim=5)
    with pytest.raises(ValueError, match="num_values=10 needs krylov_dim > 10"):
        krylov.top_singular_values(matvec, matvec, 10, num_values=10)
    with pytest.raises(ValueError, match=r"matvec must map a vector of shape \(10,\) to shape \(10,\)"):
        krylov.arnoldi_eigenvalues(lambda v: v[:5], 10)
    with pytest.raises(ValueError, match=r"start must be a vector of shape \(10,\), got shape \(9,\)"):
        krylov.arnoldi_eigenvalues(matvec, 10, start=jnp.ones(9))


def test_default_start_is_a_fixed_unit_vector_with_no_pattern():
    start = np.asarray(krylov.start_vector(SMALL_DIM))
    np.testing.assert_array_equal(start, krylov.start_vector(SMALL_DIM))
    assert np.linalg.norm(start) == pytest.approx(1.0, abs=1e-15)
    # Not orthogonal to the patterns that structured operators' invariant subspaces have.
    for pattern in (np.ones(SMALL_DIM), (-1.0) ** np.arange(SMALL_DIM), np.arange(SMALL_DIM) < SMALL_DIM // 2):
        assert abs(start @ pattern) > 1e-3 * np.linalg.norm(pattern)
