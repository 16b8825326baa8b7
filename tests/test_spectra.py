"""Jacobian and layer-map spectra against closed forms: eig(A), I + hA, R(hλ), −γ."""

import warnings
from types import SimpleNamespace

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import deepest as dp
from deepest import _batched_linalg
from deepest._batched_linalg import eigenvalues, singular_values, symmetric_eigenvalues
from deepest.analysis import jacobian_spectrum, layer_map_spectrum

KEY = jax.random.PRNGKey(0)
XS = jax.random.normal(jax.random.PRNGKey(1), (3, 4))
# A non-normal matrix with a complex pair and a real eigenvalue of each sign.
A = jnp.array([[-1.0, 2.0, 0.3, 0.0], [-2.0, -1.0, 0.0, 0.1], [0.0, 0.4, 0.5, 0.2], [0.1, 0.0, 0.0, -3.0]])
H = 0.1


def _linear_net(matrix=A, solver="euler", num_steps=5):
    return dp.SolverNet(dp.fields.Linear(matrix), solver=solver, t1=num_steps * H, num_steps=num_steps)


def _sorted(values):
    return np.sort_complex(np.round(np.asarray(values), 12))


def test_linear_field_spectrum_is_eig_of_a_at_every_layer():
    spec = jacobian_spectrum(_linear_net(), XS)
    assert spec.eigenvalues.shape == (3, 5, 4)
    expected = _sorted(np.linalg.eigvals(A))
    for values in np.asarray(spec.eigenvalues).reshape(-1, 4):
        # Both sides are LAPACK eigenvalues of the same matrix: agreement to round-off.
        np.testing.assert_allclose(_sorted(values), expected, atol=1e-10)
    np.testing.assert_allclose(spec.scaled, H * spec.eigenvalues)
    np.testing.assert_allclose(spec.spectral_abscissa, np.max(np.linalg.eigvals(A).real), atol=1e-10)
    np.testing.assert_allclose(spec.spectral_radius, np.max(np.abs(np.linalg.eigvals(A))), atol=1e-10)
    np.testing.assert_allclose(spec.log_norm, np.linalg.eigvalsh((A + A.T) / 2)[-1], atol=1e-10)


def test_nets_differing_in_weights_and_step_size_share_one_compiled_jacobian_program(traced):
    # The layer times enter the compiled program as data, not as the net's static t0 and t1:
    # a sweep's seeds and step sizes trace it once (7 layers: a shape no other test uses),
    # and each net still gets its own spectrum.
    for matrix, h in ((A, H), (2 * A, H / 2)):
        net = dp.SolverNet(dp.fields.Linear(matrix), solver="euler", t1=7 * h, num_steps=7)
        spec = jacobian_spectrum(net, XS)
        # LAPACK on the same matrix both sides: round-off only.
        np.testing.assert_allclose(_sorted(spec.eigenvalues[1, 3]), _sorted(np.linalg.eigvals(matrix)), atol=1e-10)
        np.testing.assert_allclose(spec.log_norm, np.linalg.eigvalsh((matrix + matrix.T) / 2)[-1], atol=1e-10)
        assert spec.step_size == pytest.approx(h)
    assert [name for name in traced if "_jacobians_and_symmetric_parts" in name] == ["_jacobians_and_symmetric_parts"], traced


def test_growth_and_fraction_outside_for_euler_are_the_closed_form():
    spec = jacobian_spectrum(_linear_net(), XS)
    np.testing.assert_allclose(spec.growth, np.abs(1 + spec.scaled), atol=1e-12)
    # Only the eigenvalue near 0.5 has |1 + hλ| > 1: one in four, at every layer.
    outside = np.abs(1 + H * np.linalg.eigvals(A)) > 1
    assert outside.sum() == 1
    assert float(spec.fraction_outside) == pytest.approx(0.25, abs=1e-15)
    np.testing.assert_allclose(spec.fraction_outside_per_layer, 0.25, atol=1e-15)


def test_antisymmetric_spectra_are_imaginary_and_shift_by_gamma():
    weights = jax.random.normal(KEY, (6, 6))
    antisymmetric = weights - weights.T
    xs = jax.random.normal(KEY, (2, 6))
    spec = jacobian_spectrum(_linear_net(antisymmetric), xs)
    # Exact in exact arithmetic; LAPACK's backward error is ~ε‖S‖ ≈ 1e-15.
    assert float(jnp.max(jnp.abs(spec.eigenvalues.real))) < 1e-12
    gamma = 0.7
    shifted = jacobian_spectrum(_linear_net(antisymmetric - gamma * jnp.eye(6)), xs)
    np.testing.assert_allclose(shifted.eigenvalues.real, -gamma, atol=1e-12)


def test_euler_layer_map_is_identity_plus_h_a():
    layers = layer_map_spectrum(_linear_net(), XS)
    step = np.eye(4) + H * np.asarray(A)
    for values in np.asarray(layers.eigenvalues).reshape(-1, 4):
        np.testing.assert_allclose(_sorted(values), _sorted(np.linalg.eigvals(step)), atol=1e-12)
    np.testing.assert_allclose(layers.singular_values, np.broadcast_to(np.linalg.svd(step, compute_uv=False), (3, 5, 4)), atol=1e-12)
    np.testing.assert_allclose(layers.spectral_norm, np.linalg.norm(step, 2), atol=1e-12)


@pytest.mark.parametrize("solver", ["midpoint", "rk4", "tsit5", "implicit_euler"])
def test_layer_map_eigenvalues_are_the_stability_function_of_h_lambda(solver):
    # A one-step method applied to y' = Ay multiplies y by R(hA), whose eigenvalues are R(hλ).
    net = _linear_net(solver=solver, num_steps=2).with_solver(solver, root_rtol=1e-13, root_atol=1e-13)
    layers = layer_map_spectrum(net, XS[:1])
    expected = dp.stability.stability_function(solver)(H * np.linalg.eigvals(A))
    # The implicit solve stops at the chord tolerance 1e-13; explicit ones are exact to round-off.
    np.testing.assert_allclose(_sorted(layers.eigenvalues[0, 0]), _sorted(expected), atol=1e-11)


def test_fraction_outside_predicts_unbounded_forward_growth():
    # Euler on a normal field with eigenvalues s·(−10, −1 ± 3i): h·λ crosses the boundary
    # of {|1 + z| ≤ 1} as the scale s grows. Forward states then grow without bound.
    base = np.diag([-10.0, 0.0, 0.0]) + np.array([[0, 0, 0], [0, -1, 3], [0, -3, -1]])
    for scale in [0.2, 0.5, 1.0, 1.5, 1.8, 2.2, 3.0, 5.0]:
        net = _linear_net(jnp.asarray(scale * base), num_steps=400)
        spec = jacobian_spectrum(net, XS[:1, :3])
        _, states = net.trajectory(jnp.ones(3))
        growth = float(jnp.linalg.norm(states[-1]) / jnp.linalg.norm(states[0]))
        # Every growth factor is ≥ 1.02 or ≤ 0.98 at these scales, so 400 layers separate
        # the two cases by a factor of at least 1.02^400 ≈ 2750.
        assert (float(spec.fraction_outside) > 0) == (growth > 1e3), scale
        assert (float(spec.fraction_outside) > 0) == (not growth < 1), scale


def test_spectrum_works_under_jit_and_matches_eager():
    field = dp.fields.MLP(state_dim=4, width=8, depth=1, activation="tanh", key=KEY)
    net = dp.SolverNet(field, solver="rk4", num_steps=3)
    eager = jacobian_spectrum(net, XS)
    jitted = eqx.filter_jit(jacobian_spectrum)(net, XS)
    np.testing.assert_allclose(_sorted(eager.eigenvalues), _sorted(jitted.eigenvalues), atol=1e-12)
    assert jitted.solver == "rk4" and jitted.step_size == pytest.approx(1 / 3)


def test_mlp_spectrum_matches_a_finite_difference_jacobian():
    field = dp.fields.MLP(state_dim=4, width=8, depth=2, activation="tanh", time_input=True, key=KEY)
    net = dp.SolverNet(field, solver="euler", num_steps=3)
    spec = jacobian_spectrum(net, XS[:1])
    _, states = net.trajectory(XS[0])
    t, y = 1 / 3, np.asarray(states[1])
    step = 1e-6
    columns = [(np.asarray(field(t, y + step * e)) - np.asarray(field(t, y - step * e))) / (2 * step) for e in np.eye(4)]
    # Central differences: O(step²) truncation and ε/step ≈ 1e-10 rounding.
    np.testing.assert_allclose(_sorted(spec.eigenvalues[0, 1]), _sorted(np.linalg.eigvals(np.stack(columns, axis=1))), atol=1e-8)


def _normal_matrices(count, *, key):
    """Q B Qᵀ with Q orthogonal and B = diag([[a₁, b₁], [−b₁, a₁]], [[a₂, b₂], [−b₂, a₂]], c₁, c₂),
    and their eigenvalues a ± ib, c: normal matrices, whose eigenvalues move by no more than
    the (backward) error of the matrix (Bauer–Fike with κ = 1)."""
    rng = np.random.default_rng(key)
    a, b, c = rng.uniform(-2, 2, (3, count, 2))
    blocks = np.zeros((count, 6, 6))
    for k in range(2):
        blocks[:, 2 * k, 2 * k] = blocks[:, 2 * k + 1, 2 * k + 1] = a[:, k]
        blocks[:, 2 * k, 2 * k + 1], blocks[:, 2 * k + 1, 2 * k] = b[:, k], -b[:, k]
        blocks[:, 4 + k, 4 + k] = c[:, k]
    q, _ = np.linalg.qr(rng.standard_normal((count, 6, 6)))
    return q @ blocks @ np.swapaxes(q, -1, -2), np.concatenate([a + 1j * b, a - 1j * b, c + 0j], axis=1)


def _set_distance(values, expected):
    """Largest distance from a value to the nearest expected one and back (row by row)."""
    distance = np.abs(values[..., :, None] - expected[..., None, :])
    return max(distance.min(axis=-1).max(), distance.min(axis=-2).max())


@pytest.fixture
def small_pieces(monkeypatch):
    # Pieces of 23 matrices to the host (the last one overlapping the one before it; under
    # jit), blocks of 5 to the threads: the paths a batch of large Jacobians takes, at test size.
    monkeypatch.setattr(_batched_linalg, "_PIECE_BYTES", 0)
    monkeypatch.setattr(_batched_linalg, "_PIECE_MATRICES", 23)
    monkeypatch.setattr(_batched_linalg, "_block_length", lambda size: 5)


def test_batched_eigenvalues_are_the_closed_form_in_each_precision(small_pieces):
    matrices, expected = _normal_matrices(300, key=0)
    values = np.asarray(eigenvalues(matrices.reshape(3, 100, 6, 6))).reshape(300, 6)
    # Backward stable: n·ε·‖A‖₂ = 6 · 2.2e-16 · 2√2 ≈ 4e-15 in float64, as measured.
    assert values.dtype == np.complex128 and _set_distance(values, expected) < 1e-13
    # float32 is factorised in float32 (not cast to float64): the same bound with
    # ε = 1.2e-7 is 2e-6, as measured; 1e-5 leaves a factor 5.
    single = np.asarray(eigenvalues(matrices.astype(np.float32)))
    assert single.dtype == np.complex64 and _set_distance(single, expected) < 1e-5
    # The same LAPACK routine on the same float64 numbers as NumPy: the same bits.
    gaussian = np.random.default_rng(1).standard_normal((5, 40, 5, 5))
    np.testing.assert_array_equal(eigenvalues(gaussian), np.linalg.eigvals(gaussian))
    np.testing.assert_array_equal(jax.jit(jax.vmap(eigenvalues))(gaussian), np.linalg.eigvals(gaussian))


def test_batched_symmetric_and_singular_values_are_the_closed_form(small_pieces):
    rng = np.random.default_rng(2)
    q, _ = np.linalg.qr(rng.standard_normal((2, 150, 6, 6)))
    spectrum = rng.uniform(-3, 3, (150, 6))
    symmetric = q[0] * spectrum[:, None, :] @ np.swapaxes(q[0], -1, -2)
    np.testing.assert_allclose(symmetric_eigenvalues(symmetric), np.sort(spectrum), atol=1e-13)
    np.testing.assert_allclose(jax.jit(symmetric_eigenvalues)(symmetric), np.sort(spectrum), atol=1e-13)
    single = symmetric_eigenvalues(symmetric.astype(np.float32))
    # n·ε·‖A‖₂ = 6 · 1.2e-7 · 3 ≈ 2e-6, as for the eigenvalues above.
    assert single.dtype == np.float32
    np.testing.assert_allclose(single, np.sort(spectrum), atol=1e-5)
    scales = np.abs(spectrum)
    general = q[0] * scales[:, None, :] @ np.swapaxes(q[1], -1, -2)
    np.testing.assert_allclose(singular_values(general), -np.sort(-scales), atol=1e-13)


def test_non_finite_jacobians_give_nan_eigenvalues_not_an_error(small_pieces):
    matrices = np.random.default_rng(3).standard_normal((200, 4, 4))
    # First and last; the last of a piece and the first of the next; in the overlap of the
    # last two pieces (9 pieces of 23, the last from 177 on).
    broken = [0, 22, 23, 180, 199]
    matrices[broken[:3], 1, 2] = np.nan
    matrices[broken[3:], 0, 0] = np.inf
    kept = np.setdiff1d(np.arange(200), broken)
    for solve in (eigenvalues, jax.jit(eigenvalues)):  # directly, and in pieces by callback
        values = np.asarray(solve(matrices))
        assert np.isnan(values[broken]).all()
        np.testing.assert_array_equal(values[kept], np.linalg.eigvals(matrices[kept]))
    np.testing.assert_allclose(eigenvalues(np.stack([np.eye(2), np.full((2, 2), np.inf)]))[0], [1, 1])


class _FailsWhereTopLeftIsSeven:
    """NumPy's eigvals gufunc as it behaves on a matrix LAPACK does not converge on (there
    is no known small one): a NaN row, and the floating-point 'invalid' flag raised."""

    lapack = _batched_linalg._umath_linalg.eigvals
    types = lapack.types

    def __call__(self, block, *, out, signature):
        self.lapack(block, out=out, signature=signature)
        failed = block[:, 0, 0] == 7
        out[failed] = np.nan
        np.sqrt(-failed.astype(float))  # 'invalid' exactly where a matrix failed


def test_a_lapack_failure_gives_a_nan_row_and_no_warning(monkeypatch):
    matrices = np.random.default_rng(4).standard_normal((40, 3, 3))
    matrices[[5, 33], 0, 0] = 7.0
    monkeypatch.setattr(_batched_linalg, "_umath_linalg", SimpleNamespace(eigvals=_FailsWhereTopLeftIsSeven()))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        values = np.asarray(eigenvalues(matrices))
    assert np.isnan(values[[5, 33]]).all()
    assert np.isfinite(np.delete(values, [5, 33], axis=0)).all()


def test_bad_requests_name_what_is_allowed():
    with pytest.raises(ValueError, match="fixed-step"):
        jacobian_spectrum(_linear_net().with_solver("tsit5", num_steps=None), XS)
    with pytest.raises(ValueError, match="Valid methods are: auto, dense, matrix_free"):
        jacobian_spectrum(_linear_net(), XS, method="lanczos")
    with pytest.raises(ValueError, match="two-step method"):
        layer_map_spectrum(_linear_net(solver="leapfrog_midpoint"), XS)
    with pytest.raises(ValueError, match="square matrices"):
        eigenvalues(np.ones((2, 3)))


def test_matrix_free_extremes_match_the_dense_spectrum():
    # 48 dimensions with the default Krylov dimension 40 < 48: restarts are exercised.
    field = dp.fields.MLP(state_dim=48, width=48, depth=1, activation="tanh", key=KEY)
    net = dp.SolverNet(field, solver="euler", num_steps=2)
    xs = jax.random.normal(KEY, (2, 48))
    dense = jacobian_spectrum(net, xs, method="dense")
    free = jacobian_spectrum(net, xs, method="matrix_free", num_eigenvalues=2)
    assert free.method == "matrix_free" and free.eigenvalues.shape == (2, 2, 4)
    # An eigenvalue found by both searches (largest modulus, rightmost) is kept once.
    for values in np.asarray(free.eigenvalues).reshape(-1, 4):
        finite = values[np.isfinite(values)]
        assert len(np.unique(np.round(finite, 8))) == len(finite)
    # Krylov-Schur stops at a backward error of ε^(2/3) ≈ 4e-11 relative to ‖J‖; with the
    # eigenvalue condition numbers of these Jacobians (< 10) 1e-8 is a safe bound.
    np.testing.assert_allclose(free.spectral_radius, dense.spectral_radius, rtol=1e-8)
    np.testing.assert_allclose(free.spectral_abscissa, dense.spectral_abscissa, rtol=1e-8)
    np.testing.assert_allclose(free.log_norm, dense.log_norm, rtol=1e-8)
    layers_dense = layer_map_spectrum(net, xs, method="dense")
    layers_free = layer_map_spectrum(net, xs, method="matrix_free", num_eigenvalues=2)
    np.testing.assert_allclose(layers_free.spectral_norm, layers_dense.spectral_norm, rtol=1e-8)
    np.testing.assert_allclose(layers_free.spectral_radius, layers_dense.spectral_radius, rtol=1e-8)
    io_dense = dp.analysis.io_jacobian_singular_values(net, xs, method="dense")
    io_free = dp.analysis.io_jacobian_singular_values(net, xs, method="matrix_free", num_values=2)
    np.testing.assert_allclose(io_free.singular_values, io_dense.singular_values[:, :2], rtol=1e-8)


class _LinearSeparable(dp.fields.AbstractSeparableField):
    """q' = a p, p' = b q: a linear oscillator of frequency ω = √(−ab) when ab < 0."""

    a: float
    b: float
    state_dim: int = 2

    def position_rate(self, t, p, args=None):
        return self.a * p

    def momentum_rate(self, t, q, args=None):
        return self.b * q


@pytest.mark.parametrize("omega", [1.5, 2.5])
def test_semi_implicit_euler_is_judged_at_h_omega(omega):
    # With h = 1 the Jacobian's eigenvalues ±iω give z = ±iω: symplectic Euler is bounded
    # iff hω < 2, and the layer map's spectral radius is the growth factor there.
    net = dp.SolverNet(_LinearSeparable(a=1.0, b=-(omega**2)), solver="semi_implicit_euler", t1=3.0, num_steps=3)
    spec = jacobian_spectrum(net, XS[:2, :2])
    np.testing.assert_allclose(np.sort(spec.eigenvalues.imag[0, 0]), [-omega, omega], atol=1e-12)
    assert (float(spec.fraction_outside) > 0) == (omega > 2)
    layers = layer_map_spectrum(net, XS[:2, :2])
    np.testing.assert_allclose(layers.spectral_radius, np.max(spec.growth, axis=-1), rtol=1e-12)


def test_extra_step_budget_does_not_pad_the_layers():
    # diffrax pads saved steps to max_steps; the analysis must see num_steps layers only.
    net = dp.SolverNet(dp.fields.Linear(A), solver="euler", t1=0.5, num_steps=5, max_steps=9)
    spec = jacobian_spectrum(net, XS)
    assert spec.eigenvalues.shape == (3, 5, 4) and bool(jnp.all(jnp.isfinite(spec.eigenvalues)))


def test_single_samples_are_refused_with_how_to_batch():
    with pytest.raises(ValueError, match=r"x\[None\]"):
        jacobian_spectrum(_linear_net(), XS[0])
