"""ε-pseudospectra, departure from normality and transient growth of layer Jacobians.

Eigenvalues tell the asymptotic growth of a linear map, and they mislead when the map is far
from normal: I + hJ may have every eigenvalue inside the unit disk and still amplify some
perturbations a thousandfold over a few layers. The ε-pseudospectrum (2-norm)

    σ_ε(A) = {z ∈ ℂ : σ_min(zI − A) ≤ ε} = {z : ‖(zI − A)⁻¹‖₂ ≥ 1/ε} = ∪_{‖E‖₂ ≤ ε} spec(A + E)

shows where eigenvalues can go under perturbations of size ε. For a normal A,
σ_min(zI − A) = dist(z, spec A) and σ_ε(A) is the union of the ε-disks about the eigenvalues;
for the Jordan block [[λ, 1], [0, λ]] it is the disk about λ of radius √(ε(1 + ε)) ≈ √ε.

- `sigma_min_grid`: σ_min(zI − A) for every z of a grid, from the SVD of zI − A. Not from the
  eigenvalues of (zI − A)ᴴ(zI − A): forming that product squares the condition, so σ_min²
  carries an absolute error ~u‖zI − A‖² (u the unit round-off) and every σ_min below
  ~√u ‖zI − A‖ (1e-8 in float64, 3e-4 in float32) is noise, which is exactly the small-ε
  levels a pseudospectrum plot shows; the SVD is backward stable, error ~u‖zI − A‖. (XLA's
  Hermitian eigensolver was also 2.5× slower than its SVD at d = 32 and 64.)
- `departure_from_normality`: Henrici's dep_F(A) = ‖N‖_F for a Schur form A = Q(D + N)Qᴴ,
  equal to √(‖A‖_F² − Σ|λ_i|²) in exact arithmetic and 0 exactly for normal A.
- `transient_growth`: ‖M^k‖₂ for k = 0 … K, the growth of a perturbation through k repetitions
  of the map M (what the eigenvalues' ρ(M)^k hides).
- `kreiss_constant`: K(M) = sup_{|z|>1} (|z| − 1)‖(zI − M)⁻¹‖₂ = sup_{ε>0} (ρ_ε(M) − 1)/ε
  (ρ_ε the pseudospectral radius), which brackets the transient: the Kreiss matrix theorem
  K(M) ≤ sup_{k≥0} ‖M^k‖₂ ≤ e·n·K(M) for n × n matrices (LeVeque & Trefethen 1984; the factor
  e·n is Spijker's 1991).
- `layer_pseudospectra` and `field_pseudospectra` apply them to a net: the layer maps
  M_k = ∂y_{k+1}/∂y_k, and the field's Jacobians J_k = ∂f/∂y (t_k, y_k) in the hλ plane of
  the solver's stability region (σ_min(zI − hJ_k), see `FieldPseudospectra` for the scaling).

Every matrix is formed and factorised densely, once per grid point: for states above
`PSEUDOSPECTRA_LIMIT` the net-level analyses refuse. Trefethen's faster dense method (one
Schur form, then inverse Lanczos with triangular solves at each z) is not implemented.

References: Trefethen & Embree, "Spectra and pseudospectra" (Princeton, 2005), chapters 2,
16 and 18; Trefethen, "Computation of pseudospectra", Acta Numerica 8 (1999) 247–295;
Henrici, "Bounds for iterates, inverses, spectral variation and fields of values of
non-normal matrices", Numer. Math. 4 (1962) 24–40; Spijker, "On a conjecture by LeVeque
and Trefethen related to the Kreiss matrix theorem", BIT 31 (1991) 551–555.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import schur
from jaxtyping import Array, Bool, Complex, Float, Int

from .._batched_linalg import check_square, one_blas_thread
from ..layers import check_one_step, trajectories
from ..network import SolverNet
from .spectra import _jacobians_and_symmetric_parts, _layer_jacobians

# Above this state dimension the net-level analyses refuse: every grid point, sample and layer
# is one dense SVD of a d × d complex matrix, O(d³). Measured on the 2-core machine (XLA's SVD on
# one OpenBLAS thread, a 100 × 100 grid and 4 matrices; float64 and float32 alike within 20%):
# 5 µs a point at d = 8, 58 µs at d = 32, 230 to 300 µs at d = 64. A 100 × 100 grid then costs
# about 3 s for each sample and layer at d = 64, and would cost 8 times that at d = 128.
PSEUDOSPECTRA_LIMIT = 64
# The radii of the polar grid on which `kreiss_constant` looks for the supremum over |z| > 1:
# from just outside the unit circle, where the sup sits for maps with eigenvalues near it, to
# 10³, where (|z| − 1)/σ_min(zI − M) is within about 10⁻³·(1 + ‖M‖₂) of its limit 1 (σ_min
# lies within ‖M‖₂ of |z|).
KREISS_RADII = tuple(1.0 + np.logspace(-3.0, 3.0, 25))
# Bytes of the zI − A matrices formed at once: grid points are taken in chunks of this size.
_CHUNK_BYTES = 8 * 2**20


def complex_grid(extent, num_points: int = 101) -> Complex[Array, "im re"]:
    """z = x + iy on a num_points × num_points grid over extent = (re_min, re_max, im_min, im_max).

    Row i holds one imaginary part and column j one real part, so `plt.contour(grid.real[0],
    grid.imag[:, 0], values)` draws a (…, num_points, num_points) result in place.
    """
    if len(extent) != 4 or not (extent[0] < extent[1] and extent[2] < extent[3]):
        raise ValueError(f"extent must be (re_min, re_max, im_min, im_max) with min < max, got {extent!r}.")
    if not (isinstance(num_points, int) and num_points >= 2):
        raise ValueError(f"num_points must be an integer ≥ 2, got {num_points!r}.")
    real = jnp.linspace(extent[0], extent[1], num_points)
    imaginary = jnp.linspace(extent[2], extent[3], num_points)
    return real[None, :] + 1j * imaginary[:, None]


def _on_one_blas_thread(function, *arrays):
    """function(*arrays), finished, with OpenBLAS held to one thread (outside jit; traced, as is).

    XLA's CPU SVD and Schur form call the LAPACK of SciPy's OpenBLAS, whose own threads
    inside `?gesdd` made a batch of 64 × 64 complex64 SVDs 5 to 90 times slower (1.2 to 22 ms a
    matrix against 0.25 ms on one thread, measured on the 2-core machine while other jobs
    shared it; complex128 lost up to 1.5×). `deepest._batched_linalg` holds LAPACK to one
    thread for the same reason.
    """
    if any(isinstance(array, jax.core.Tracer) for array in arrays):
        return function(*arrays)
    with one_blas_thread():
        return jax.block_until_ready(function(*arrays))


def _finite_or_zero(matrices):
    """The matrices with non-finite ones replaced by 0 (LAPACK's result on NaN or Inf is
    undefined), and which were finite: their results are NaN, as a diverged net's are."""
    finite = jnp.all(jnp.isfinite(matrices), axis=(-2, -1))
    return jnp.where(finite[..., None, None], matrices, 0), finite


def sigma_min_grid(matrix, grid) -> Float[Array, "..."]:
    """σ_min(zI − A) for every point z of a grid: the ε-pseudospectrum is where it is ≤ ε.

    Args:
        matrix: A, shape (..., n, n), real or complex.
        grid: complex points z, any shape (g...), e.g. from `complex_grid`.

    Returns:
        Shape (..., g...): the smallest singular value of zI − A, from its SVD (backward stable;
        see the module docstring for why not eigvalsh((zI − A)ᴴ(zI − A))), computed in the
        complex type of A and the grid together; NaN for a non-finite A. Works under jit and vmap.

    Example:
        >>> grid = complex_grid((-1.0, 1.0, -1.0, 1.0), 101)
        >>> sigma = sigma_min_grid(jnp.array([[0.0, 1.0], [0.0, 0.0]]), grid)
        >>> plt.contour(grid.real[0], grid.imag[:, 0], jnp.log10(sigma), levels=[-3, -2, -1])
    """
    matrix, grid = check_square(matrix, "sigma_min_grid"), jnp.asarray(grid)
    batch_shape, size = matrix.shape[:-2], matrix.shape[-1]
    dtype = jnp.result_type(matrix.dtype, grid.dtype, jnp.complex64)
    values = _on_one_blas_thread(_sigma_min, matrix.reshape(-1, size, size).astype(dtype), grid.reshape(-1).astype(dtype))
    return values.reshape(*batch_shape, *grid.shape)


@eqx.filter_jit
def _sigma_min(matrices, points):
    """(B, n, n) matrices and (G,) points → (B, G) σ_min(zI − A), chunks of points at a time."""
    matrices, finite = _finite_or_zero(matrices)
    count, size = matrices.shape[0], matrices.shape[-1]
    chunk = max(1, _CHUNK_BYTES // max(1, count * size * size * matrices.dtype.itemsize))
    identity = jnp.eye(size, dtype=matrices.dtype)

    def at(z):
        return jnp.linalg.svd(z * identity - matrices, compute_uv=False)[:, -1]

    values = jax.lax.map(at, points, batch_size=min(chunk, max(1, points.shape[0])))
    return jnp.where(finite[:, None], values.T, jnp.nan)


def departure_from_normality(matrix) -> Float[Array, "..."]:
    """Henrici's departure from normality dep_F(A) = ‖N‖_F = √(‖A‖_F² − Σ|λ_i|²).

    N is the strictly upper triangular part of a complex Schur form A = Q(D + N)Qᴴ (its
    Frobenius norm is the same for every Schur form); dep_F(A) = 0 if and only if A is normal.
    Computed as ‖N‖_F, never as the difference: ‖A‖_F² − Σ|λ_i|² cancels, with a rounding
    error ~n·u·‖A‖_F² under the root, so a normal matrix would read ~√(n u)‖A‖_F (measured on
    a 6 × 6 normal matrix of norm 2: 8e-8 in float64 and 1e-3 in float32, against 7e-16 and
    1e-6 from ‖N‖_F), and the difference could fall below zero. The Schur form is backward
    stable, so ‖N‖_F is accurate to ~u‖A‖_F and never negative.

    Args:
        matrix: A, shape (..., n, n).

    Returns:
        Shape (...); NaN for a non-finite A. The Schur form is LAPACK's `?gees`, which JAX
        runs on the CPU only: arrays outside jit are moved there; under jit on another
        device JAX refuses.
    """
    return _schur_parts(check_square(matrix, "departure_from_normality"))[1]


def _schur_parts(matrices):
    """(eigenvalues (..., n), dep_F (...)) of (..., n, n) matrices from their complex Schur
    form, on the CPU (the only backend with a Schur decomposition)."""
    if not isinstance(matrices, jax.core.Tracer):
        matrices = jax.device_put(matrices, jax.devices("cpu")[0])
    return _on_one_blas_thread(_schur_parts_jit, matrices)


@eqx.filter_jit
def _schur_parts_jit(matrices):
    matrices, finite = _finite_or_zero(matrices.astype(jnp.result_type(matrices.dtype, jnp.complex64)))
    triangular = schur(matrices, output="complex")[0]
    eigenvalues = jnp.diagonal(triangular, axis1=-2, axis2=-1)
    departure = jnp.sqrt(jnp.sum(jnp.abs(jnp.triu(triangular, 1)) ** 2, axis=(-2, -1)))
    return jnp.where(finite[..., None], eigenvalues, jnp.nan), jnp.where(finite, departure, jnp.nan)


class TransientGrowth(eqx.Module):
    """The norms of the powers of a map, ‖M^k‖₂ for k = 0 … K.

    Fields:
        norms: (..., K + 1) ‖M^k‖₂; 1 at k = 0, inf once a power overflows, NaN for a
            non-finite M.
    """

    norms: Float[Array, "... powers"]

    @property
    def peak(self) -> Float[Array, "..."]:
        """max_{k ≤ K} ‖M^k‖₂ ≥ 1: the largest amplification of k repetitions of M. A lower
        bound for sup_k ‖M^k‖₂, which the Kreiss constant brackets (`kreiss_constant`)."""
        return jnp.max(self.norms, axis=-1)

    @property
    def peak_step(self) -> Int[Array, "..."]:
        """The k ≤ K at which ‖M^k‖₂ is largest (the first one on a tie)."""
        return jnp.argmax(self.norms, axis=-1)


def transient_growth(step_matrix, num_steps: int) -> TransientGrowth:
    """‖M^k‖₂ for k = 0 … num_steps: how far k repetitions of M amplify a perturbation.

    For M = [[a, c], [0, a]], M^k = [[a^k, k a^{k−1} c], [0, a^k]]: with |a| < 1 the powers
    decay as ρ(M)^k = |a|^k eventually, but first grow like k|c| |a|^{k−1}, a transient the
    eigenvalues cannot show.

    Args:
        step_matrix: M, shape (..., n, n).
        num_steps: K ≥ 0, the largest power (static: one compiled scan of K products).

    Returns:
        A `TransientGrowth` with norms (..., K + 1), each the largest singular value of M^k.
    """
    matrix = check_square(step_matrix, "transient_growth")
    if not (isinstance(num_steps, int) and num_steps >= 0):
        raise ValueError(f"num_steps must be an integer ≥ 0 (the largest power of the map), got {num_steps!r}.")
    size = matrix.shape[-1]
    norms = _on_one_blas_thread(lambda matrices: _power_norms(matrices, num_steps), matrix.reshape(-1, size, size))
    return TransientGrowth(norms=norms.reshape(*matrix.shape[:-2], num_steps + 1))


@eqx.filter_jit
def _power_norms(matrices, num_steps: int):
    """(B, n, n) → (B, K + 1) ‖M^k‖₂ by K successive products."""
    matrices, finite = _finite_or_zero(matrices)

    def norm(power):
        # An overflowed power is inf (a NaN entry there comes from inf · 0): its norm is inf.
        power, fits = _finite_or_zero(power)
        return jnp.where(fits, jnp.linalg.svd(power, compute_uv=False)[:, 0], jnp.inf)

    def next_power(power, _):
        power = matrices @ power
        return power, norm(power)

    first = jnp.broadcast_to(jnp.eye(matrices.shape[-1], dtype=matrices.dtype), matrices.shape)
    _, norms = jax.lax.scan(next_power, first, length=num_steps)
    norms = jnp.concatenate([jnp.ones((matrices.shape[0], 1), norms.dtype), norms.T], axis=1)
    return jnp.where(finite[:, None], norms, jnp.nan)


def kreiss_constant(step_matrix, *, radii=KREISS_RADII, num_angles: int = 32) -> Float[Array, "..."]:
    """The Kreiss constant K(M) = sup_{|z|>1} (|z| − 1)‖(zI − M)⁻¹‖₂, estimated on a polar grid.

    The Kreiss matrix theorem bounds the powers by it, K(M) ≤ sup_{k≥0} ‖M^k‖₂ ≤ e·n·K(M) for
    n × n matrices: K(M) finite means power-bounded, and a K(M) far above 1 means a transient.
    K(M) = ∞ when ρ(M) > 1 (σ_min(zI − M) = 0 at an eigenvalue outside the unit disk).

    Args:
        step_matrix: M, shape (..., n, n).
        radii: the radii |z| > 1 of the polar grid (default `KREISS_RADII`).
        num_angles: equally spaced arguments θ_j = 2πj/num_angles, θ = 0 included.

    Returns:
        Shape (...): max over the grid of (|z| − 1)/σ_min(zI − M), a lower estimate of the
        supremum (the grid may miss its peak; where ρ(M) > 1 it is large only as far as the
        grid comes near the eigenvalue outside). NaN for a non-finite M. For a normal M with
        ρ(M) ≤ 1, K(M) = 1, approached as |z| → ∞.
    """
    radii = np.asarray(radii, dtype=float)
    if radii.ndim != 1 or radii.size == 0 or not np.all(radii > 1):
        raise ValueError(f"radii must be a non-empty 1-D sequence of radii > 1 (the sup is over |z| > 1), got {radii!r}.")
    if not (isinstance(num_angles, int) and num_angles >= 1):
        raise ValueError(f"num_angles must be a positive integer, got {num_angles!r}.")
    angles = 2 * np.pi * np.arange(num_angles) / num_angles
    points = radii[:, None] * np.exp(1j * angles)[None, :]
    sigma = sigma_min_grid(step_matrix, points)
    return jnp.max((radii[:, None] - 1) / sigma, axis=(-2, -1))


def _check_state_dim(net: SolverNet, what: str) -> None:
    state_dim = net.field.state_dim
    if state_dim > PSEUDOSPECTRA_LIMIT:
        raise ValueError(
            f"{what} factorises a dense {state_dim} × {state_dim} matrix for every grid point, sample and layer, "
            f"but the state dimension {state_dim} is above PSEUDOSPECTRA_LIMIT = {PSEUDOSPECTRA_LIMIT} (the cost grows "
            f"as d³ per point). For the eigenvalues alone use jacobian_spectrum or layer_map_spectrum with "
            f"method='matrix_free'; for pseudospectra, analyse a net with a smaller state."
        )


class LayerPseudospectra(eqx.Module):
    """Pseudospectra, departure from normality and transient growth of the layer maps.

    M_k = ∂y_{k+1}/∂y_k (y_k) is layer k's Jacobian along a sample's trajectory (I + hJ_k for
    Euler). Its eigenvalues inside the unit disk mean decay under repetition; `sigma_min`,
    `departure`, `power_norms` and `kreiss` say whether a perturbation can grow on the way.

    Fields:
        sigma_min: (batch, num_steps, g...) σ_min(zI − M_k) at every grid point z; the
            ε-pseudospectrum of M_k is where it is ≤ ε.
        grid: (g...) the complex points z.
        eigenvalues: (batch, num_steps, d) spec(M_k), unsorted (the diagonal of a Schur form).
        departure: (batch, num_steps) Henrici's dep_F(M_k); h·dep_F(J_k) for Euler.
        power_norms: (batch, num_steps, K + 1) ‖M_k^j‖₂ for j = 0 … K: the layer's map
            repeated, as it would act in a net of K identical layers. For a linear autonomous
            field all layers are equal and M^j is the Jacobian ∂y_j/∂y_0 of the net's first j
            layers; the product of the actual layers is `io_jacobian_singular_values`' subject.
        kreiss: (batch, num_steps) the Kreiss constant of M_k on `kreiss_constant`'s polar grid.
    """

    sigma_min: Float[Array, "batch steps *grid"]
    grid: Complex[Array, "*grid"]
    eigenvalues: Complex[Array, "batch steps d"]
    departure: Float[Array, "batch steps"]
    power_norms: Float[Array, "batch steps powers"]
    kreiss: Float[Array, "batch steps"]

    @property
    def transient_growth(self) -> Float[Array, "batch steps"]:
        """max_{j ≤ K} ‖M_k^j‖₂ per sample and layer."""
        return jnp.max(self.power_norms, axis=-1)

    @property
    def spectral_radius(self) -> Float[Array, "batch steps"]:
        """ρ(M_k): the rate ‖M_k^j‖₂^{1/j} tends to as j → ∞."""
        return jnp.max(jnp.abs(self.eigenvalues), axis=-1)

    def contains(self, epsilon) -> Bool[Array, "batch steps *grid"]:
        """Whether each grid point lies in the ε-pseudospectrum of each M_k."""
        return self.sigma_min <= epsilon


def layer_pseudospectra(
    net: SolverNet, xs, *, grid, num_powers: int | None = None, kreiss_radii=KREISS_RADII, num_angles: int = 32
) -> LayerPseudospectra:
    """ε-pseudospectra, Henrici departure, ‖M_k^j‖₂ and Kreiss constants of the layer maps.

    M_k = ∂y_{k+1}/∂y_k is the Jacobian (`jax.jacfwd`) of one step of the net's own solver
    (`deepest.layers.layer_step`) at the state y_k of each sample, k = 0 … L − 1.

    Args:
        net: a fixed-step SolverNet with a one-step solver and a state of at most
            `PSEUDOSPECTRA_LIMIT` dimensions (a ValueError otherwise).
        xs: inputs, shape (batch, ...) (what `net` takes, with a batch axis).
        grid: complex points z for `sigma_min` (around the unit circle, where the layer
            maps' eigenvalues lie), e.g. `complex_grid((-0.5, 2.0, -1.25, 1.25))`.
        num_powers: K, the largest power j of each M_k (default L = net.num_steps: the
            depth of the net).
        kreiss_radii, num_angles: the polar grid of `kreiss_constant`.

    Returns:
        A `LayerPseudospectra`. Memory: batch × L × (grid points) numbers for `sigma_min`.

    Example:
        >>> grid = complex_grid((0.0, 2.0, -1.0, 1.0), 81)
        >>> result = layer_pseudospectra(net, xs[:4], grid=grid)
        >>> result.transient_growth.max(), result.departure.max()
    """
    check_one_step(net, "layer_pseudospectra")
    _check_state_dim(net, "layer_pseudospectra")
    times, ys = trajectories(net, xs)
    num_powers = len(times) - 1 if num_powers is None else num_powers
    jacobians = _layer_jacobians(net, times[:-1], times[1:], ys[:, :-1])
    eigenvalues, departure = _schur_parts(jacobians)
    return LayerPseudospectra(
        sigma_min=sigma_min_grid(jacobians, grid),
        grid=jnp.asarray(grid),
        eigenvalues=eigenvalues,
        departure=departure,
        power_norms=transient_growth(jacobians, num_powers).norms,
        kreiss=kreiss_constant(jacobians, radii=kreiss_radii, num_angles=num_angles),
    )


class FieldPseudospectra(eqx.Module):
    """Pseudospectra of the field's Jacobians in the hλ plane of the solver's stability region.

    Scaling. The region lives in z = hλ, so the matrix to look at is hJ_k; since
    σ_min(zI − hJ) = h·σ_min((z/h)I − J),

        z ∈ σ_δ(hJ)  ⟺  z/h ∈ σ_{δ/h}(J),   i.e.  h·σ_ε(J) = σ_{hε}(hJ).

    `sigma_min` holds σ_min(zI − hJ_k): its level δ is the δ-pseudospectrum of hJ_k, which is
    J_k's pseudospectrum for perturbations of J_k of size δ/h, drawn in the hλ plane
    (`field_sigma_min` gives σ_min(λI − J_k) at λ = z/h, whose level ε is J_k's
    ε-pseudospectrum). The level δ is the natural one beside the region: for Euler the layer map
    is I + hJ and σ_min(wI − (I + hJ)) = σ_min((w − 1)I − hJ), so the δ-contour is exactly the
    layer map's δ-pseudospectrum shifted by −1, and it leaves the disk |1 + z| ≤ 1 where a
    perturbation of size δ of the layer can push an eigenvalue of the layer outside the unit
    circle. For other solvers the layer map of a linear field is R(hJ) and its pseudospectra
    are not R of those of hJ (pseudospectra have no exact mapping theorem): there the contours
    are a guide, and `layer_pseudospectra` measures the map itself.

    Fields:
        sigma_min: (batch, num_steps, g...) σ_min(zI − hJ_k) at every grid point z.
        grid: (g...) the complex points z = hλ.
        eigenvalues: (batch, num_steps, d) spec(J_k), unsorted.
        departure: (batch, num_steps) Henrici's dep_F(J_k) (dep_F(hJ_k) = h·dep_F(J_k)).
        times: (num_steps,) the layer times t_k.
        step_size: h.
        solver: the net's solver, whose stability region the grid lies on.
        solver_options: the net's solver options, (option, value) pairs.
    """

    sigma_min: Float[Array, "batch steps *grid"]
    grid: Complex[Array, "*grid"]
    eigenvalues: Complex[Array, "batch steps d"]
    departure: Float[Array, "batch steps"]
    times: Float[Array, " steps"]
    step_size: float = eqx.field(static=True)
    solver: str = eqx.field(static=True)
    solver_options: tuple[tuple[str, float], ...] = eqx.field(static=True, default=())

    @property
    def scaled(self) -> Complex[Array, "batch steps d"]:
        """z = h·λ, the eigenvalues of hJ_k: the points the contours surround."""
        return self.step_size * self.eigenvalues

    @property
    def field_sigma_min(self) -> Float[Array, "batch steps *grid"]:
        """σ_min(λI − J_k) at λ = z/h: level ε is J_k's own ε-pseudospectrum, scaled by h."""
        return self.sigma_min / self.step_size


def field_pseudospectra(net: SolverNet, xs, *, grid) -> FieldPseudospectra:
    """σ_min(zI − hJ_k) on a grid of the hλ plane, J_k = ∂f/∂y (t_k, y_k) along each sample.

    The Jacobians are those of `jacobian_spectrum` (states y_0 … y_{L−1}, every solver, the
    two-step ones included); see `FieldPseudospectra` for the scaling and what a contour means
    on the solver's stability region.

    Args:
        net: a fixed-step SolverNet with a state of at most `PSEUDOSPECTRA_LIMIT` dimensions
            (a ValueError otherwise).
        xs: inputs, shape (batch, ...).
        grid: complex points z = hλ, e.g. a `complex_grid` over the region's extent.

    Returns:
        A `FieldPseudospectra`.

    Example:
        >>> grid = complex_grid((-3.0, 1.0, -2.0, 2.0), 101)
        >>> result = field_pseudospectra(net, xs[:4], grid=grid)
        >>> plt.contour(grid.real[0], grid.imag[:, 0], jnp.log10(result.sigma_min[0, 0]), levels=[-3, -2, -1])
    """
    _check_state_dim(net, "field_pseudospectra")
    times, ys = trajectories(net, xs)
    jacobians, _ = _jacobians_and_symmetric_parts(net.field, times[:-1], ys[:, :-1])  # jacobian_spectrum's program
    eigenvalues, departure = _schur_parts(jacobians)
    step_size = net.step_size
    return FieldPseudospectra(
        sigma_min=sigma_min_grid(step_size * jacobians, grid),
        grid=jnp.asarray(grid),
        eigenvalues=eigenvalues,
        departure=departure,
        times=times[:-1],
        step_size=step_size,
        solver=net.solver,
        solver_options=net.solver_options,
    )
