"""Matrix-free extremal eigenvalues and singular values of an operator given as a function.

The operator is usually the Jacobian of a vector field at a state, applied without forming it:
J v = jax.jvp(lambda y: f(t, y, args), (y,), (v,))[1] and Jᵀu from jax.vjp. Both solvers build an
orthonormal Krylov basis with full (twice-classical Gram–Schmidt) reorthogonalisation and
restart it thickly, keeping the best Ritz vectors, so that a Krylov space of fixed dimension m
converges even when the wanted values are barely separated from the rest of the spectrum, as
at the edge of the disc that the eigenvalues of a random wide MLP's Jacobian fill.

- Eigenvalues: the Krylov–Schur method. An Arnoldi-type decomposition J V = V H + f e_mᵀ
  (V: m orthonormal columns) has Ritz pairs H y = θ y; with Q an orthonormal basis of the
  span of the k best Ritz vectors of H (a partial Schur basis: H Q = Q S), the k + 1 vectors
  (V Q, f/‖f‖) satisfy J (V Q) = (V Q) S + f (e_mᵀ Q), again a Krylov decomposition, so the
  restart needs no matvec. Arithmetic is complex, since Ritz values of a real operator come
  in conjugate pairs and a restart may keep one of a pair.
- Singular values: Golub–Kahan–Lanczos bidiagonalisation A V = U B, Aᵀ U = V Bᵀ + r e_mᵀ,
  thick-restarted with the k largest singular triplets of B (B = P Σ Qᵀ): A (V Q_k) =
  (U P_k) Σ_k and Aᵀ (U P_k) = (V Q_k) Σ_k + r (e_mᵀ P_k), exactly.

The residual estimates that drive the restarts are ‖f‖ |e_mᵀ y| (resp. ‖r‖ |e_mᵀ p|); the
residuals reported are recomputed with the operator, so they do not trust the recurrence.

References: G. W. Stewart, "A Krylov–Schur algorithm for large eigenproblems", SIAM J.
Matrix Anal. Appl. 23 (2001) 601–614; J. Baglama & L. Reichel, "Augmented implicitly restarted
Lanczos bidiagonalization methods", SIAM J. Sci. Comput. 27 (2005) 19–42; Y. Saad, Numerical
Methods for Large Eigenvalue Problems (2nd ed., SIAM 2011), ch. 6–7.
"""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Complex, Float, Int

WHICH = ("magnitude", "real")

# Krylov dimension when none is given. On the 256-dimensional MLP Jacobians the matvec count
# hardly depends on it between 30 and 80 (about 100 to converge); 40 keeps the basis
# ((m + 1) × dim complex numbers) and the O(m² dim) Gram–Schmidt work per cycle small.
_DEFAULT_KRYLOV_DIM = 40

# A Gram–Schmidt remainder this much smaller than the vector it came from means the vector
# lay in the span already (an invariant subspace: "breakdown"); the basis then continues with
# a fresh direction (see `_next_vector`), and the coupling entry is set to zero exactly.
_BREAKDOWN = 100


def _default_tol(dtype) -> float:
    # ε^(2/3) (3.7e-11 in float64, 2.4e-5 in float32) lies ε^(−1/3) ≥ 200 times above the
    # ~ε‖J‖ residuals that rounding leaves, so both precisions reach it. √ε would save one
    # restart in float64, but in float32 (3.5e-4) it left errors up to 6e-5 in the MLP
    # Jacobians' spectral abscissa, against 7e-6 with ε^(2/3).
    return float(np.finfo(dtype).eps ** (2 / 3))


def _check_dimensions(dim: int, krylov_dim: int | None, count: int, what: str) -> int:
    if count < 1:
        raise ValueError(f"{what} must be at least 1, got {what}={count}.")
    if krylov_dim is None:
        krylov_dim = min(dim, max(_DEFAULT_KRYLOV_DIM, 2 * count + 2))
    if krylov_dim > dim:
        raise ValueError(f"krylov_dim={krylov_dim} exceeds dim={dim}: a Krylov basis has at most dim vectors. Use krylov_dim ≤ {dim}.")
    if count >= krylov_dim:
        raise ValueError(f"{what}={count} needs krylov_dim > {count}, got krylov_dim={krylov_dim}. Use {what} < krylov_dim ≤ dim={dim}.")
    return krylov_dim


def _kept(count: int, krylov_dim: int) -> int:
    # Keep the wanted vectors plus half of the rest (Stewart 2001, §4): enough of the
    # neighbouring Ritz vectors to keep convergence going, room for m − k new ones.
    return count + (krylov_dim - count) // 2


def _orthogonalise(basis, vector):
    """Remove from `vector` its components along the rows of `basis` (orthonormal or zero).

    Classical Gram–Schmidt twice ("twice is enough", Giraud et al., Numer. Math. 101 (2005)):
    one pass leaves errors ~ε κ; the second brings orthogonality to working precision.
    Returns the remainder and the coefficients basisᴴ vector.
    """
    first = jnp.conj(basis) @ vector
    vector = vector - first @ basis
    second = jnp.conj(basis) @ vector
    return vector - second @ basis, first + second


def _next_vector(basis, remainder, reference_norm):
    """The next basis vector from a Gram–Schmidt remainder, and its coupling ‖remainder‖.

    On breakdown (remainder ~ rounding of `reference_norm`) the span is invariant: coupling
    zero, and the coordinate vector e_i the basis represents least, orthogonalised against it,
    continues it. With P the projection onto the span of r basis vectors, Σ_i ‖P e_i‖² = r, so
    that e_i keeps ‖(I − P) e_i‖² ≥ 1 − r/dim of its length: a deterministic direction, well
    outside the span whenever there is room.
    """
    norm = jnp.linalg.norm(remainder)
    eps = jnp.finfo(remainder.dtype).eps
    broke_down = norm <= _BREAKDOWN * eps * reference_norm
    least_represented = jnp.argmin(jnp.sum(jnp.abs(basis) ** 2, axis=0))
    fresh, _ = _orthogonalise(basis, jnp.zeros_like(remainder).at[least_represented].set(1))
    vector = jnp.where(broke_down, fresh, remainder)
    vector_norm = jnp.linalg.norm(vector)
    # Once the basis spans the whole space (m = dim) `fresh` is rounding noise, harmless
    # behind its zero coupling; only an exactly zero vector must not be divided by.
    vector = vector / jnp.where(vector_norm > 0, vector_norm, 1)
    return vector, jnp.where(broke_down, 0, norm).astype(remainder.dtype)


def start_vector(dim: int, dtype=None) -> Float[Array, " dim"]:
    """The default start of the Krylov iterations: v_i = frac(i φ) − ½, i = 1 … dim, with
    φ = (√5 − 1)/2 (a Weyl sequence), normalised.

    A fixed vector, not a random one, so that an estimate is a function of the operator alone
    (as a dense eigen-decomposition is) and the analyses built on these solvers need no key.
    Its entries are equidistributed in (−½, ½) without the patterns (constant, alternating,
    blockwise) that span the invariant subspaces of structured operators; a converged estimate
    does not depend on the start, which `start=` replaces (e.g. by a random vector).
    """
    golden = (np.sqrt(5.0) - 1) / 2
    entries = np.mod(np.arange(1, dim + 1) * golden, 1.0) - 0.5
    real_dtype = jnp.result_type(float) if dtype is None else dtype
    return jnp.asarray(entries / np.linalg.norm(entries), real_dtype)


def _start(start, dim: int, dtype):
    """The given start vector (checked, normalised) or `start_vector`."""
    if start is None:
        return start_vector(dim, dtype)
    start = jnp.asarray(start, dtype)
    if start.shape != (dim,):
        raise ValueError(f"start must be a vector of shape ({dim},), got shape {start.shape}.")
    return start / jnp.linalg.norm(start)


def _probe(matvec, dim: int, dtype, name: str) -> None:
    out = jax.eval_shape(matvec, jax.ShapeDtypeStruct((dim,), dtype))
    if out.shape != (dim,):
        raise ValueError(f"{name} must map a vector of shape ({dim},) to shape ({dim},), got shape {out.shape}.")


class KrylovEigenvalues(eqx.Module):
    """Ritz values of a restarted Arnoldi (Krylov–Schur) iteration, best first.

    Fields:
        eigenvalues: (num_eigenvalues,) complex Ritz values θ, ordered by the `which`
            criterion (largest |θ| or largest Re θ first). Conjugate pairs of a real
            operator come in either order.
        residuals: (num_eigenvalues,) ‖J x − θ x‖ for the unit Ritz vectors x, recomputed
            with the operator.
        converged: bool scalar, every residual ≤ tol · ‖H‖₂, where H = V_{m+1}ᴴ J V_m is J
            on the Krylov basis (‖H‖₂ ≤ ‖J‖): each Ritz pair is then an exact eigenpair of
            J − r xᴴ, a relative backward error ≤ tol. Eigenvalues move by ≤ κ(λ) ‖r‖ to
            first order (κ the eigenvalue condition number).
        num_matvecs: int scalar, applications of J to complex vectors (each is two real
            matvecs, one call vmapped over real and imaginary part), the final residual
            check included.
    """

    eigenvalues: Complex[Array, " num_eigenvalues"]
    residuals: Float[Array, " num_eigenvalues"]
    converged: Bool[Array, ""]
    num_matvecs: Int[Array, ""]

    @property
    def eigenvalues_or_nan(self) -> Complex[Array, " num_eigenvalues"]:
        """`eigenvalues`, or NaN if the iteration stopped before converging."""
        return jnp.where(self.converged, self.eigenvalues, jnp.nan)


class KrylovSingularValues(eqx.Module):
    """Largest singular values from restarted Golub–Kahan–Lanczos bidiagonalisation.

    Fields:
        values: (num_values,) singular values σ, descending.
        residuals: (num_values,) (‖A x − σ u‖² + ‖Aᵀ u − σ x‖²)^½ for the unit right and left
            singular vectors x, u, recomputed with the operator.
        converged: bool scalar, every residual ≤ tol · σ_max.
        num_matvecs: int scalar, applications of A (the same number of Aᵀ), the final
            residual check included.
    """

    values: Float[Array, " num_values"]
    residuals: Float[Array, " num_values"]
    converged: Bool[Array, ""]
    num_matvecs: Int[Array, ""]

    @property
    def values_or_nan(self) -> Float[Array, " num_values"]:
        """`values`, or NaN if the iteration stopped before converging."""
        return jnp.where(self.converged, self.values, jnp.nan)


def _ritz(H, which: str):
    """Ritz values of the square part of H (m+1 × m), best first, with vectors and estimates.

    The estimate for H y = θ y is ‖(J V − V H) y‖ = |H[m] · y|: the last row of H holds the
    coupling to the residual direction V[m].
    """
    m = H.shape[1]
    values, vectors = jnp.linalg.eig(H[:m])
    # Unit y makes the estimate a residual of a unit Ritz vector V y, whatever eig's scaling.
    vectors = vectors / jnp.linalg.norm(vectors, axis=0)
    criterion = jnp.abs(values) if which == "magnitude" else values.real
    order = jnp.argsort(-criterion)
    values, vectors = values[order], vectors[:, order]
    return values, vectors, jnp.abs(H[m] @ vectors)


def arnoldi_eigenvalues(
    matvec: Callable[[Float[Array, " dim"]], Float[Array, " dim"]],
    dim: int,
    *,
    num_eigenvalues: int = 1,
    which: str = "magnitude",
    krylov_dim: int | None = None,
    max_restarts: int = 100,
    tol: float | None = None,
    dtype=None,
    start: Float[Array, " dim"] | None = None,
) -> KrylovEigenvalues:
    """Extremal eigenvalues λ of J, J v = matvec(v), by restarted Arnoldi (Krylov–Schur).

    Builds J V_m = V_m H_m + f e_mᵀ from a start vector, takes the eigenvalues of H_m
    (Ritz values) as approximations, and restarts by keeping the span of the best
    k = n + ⌊(m − n)/2⌋ Ritz vectors (n = num_eigenvalues) together with f: J restricted to
    it is known without new matvecs (see the module docstring). Stops once the n best Ritz
    pairs have estimated residuals ≤ tol · ‖H_m‖₂, or after `max_restarts` restarts; each
    restart costs m − k matvecs, the first cycle m. Works under `jax.jit` and `jax.vmap`
    (a batch iterates until its slowest member has converged).

    Args:
        matvec: v ↦ J v for real v of shape (dim,) and dtype `dtype`; must be vmappable
            (complex vectors are applied as the real and imaginary part in one vmapped call).
        dim: the dimension of the space J acts on.
        num_eigenvalues: how many eigenvalues to return.
        which: "magnitude" (largest |λ|: the spectral radius first) or "real" (largest
            Re λ: the spectral abscissa first).
        krylov_dim: m, the basis size; default min(dim, max(40, 2n + 2)). Needs n < m ≤ dim.
        max_restarts: the most restarts, a cap against operators that do not converge. The
            random 256-dimensional MLP Jacobians needed at most 7 with the defaults (8
            seeds, both `which`), 256 × 256 Gaussian matrices (eigenvalues uniform in a
            disc) 12 (5 seeds).
        tol: relative residual (backward error) tolerance; default ε^(2/3) of `dtype`
            (3.7e-11 in float64, 2.4e-5 in float32).
        dtype: real dtype of the vectors fed to `matvec`; default the default float dtype
            (float64 with jax_enable_x64). Ritz values are of the matching complex dtype.
        start: the start vector v_0, shape (dim,), normalised here; default `start_vector`,
            a fixed one: the iteration draws no random numbers.

    Returns:
        A `KrylovEigenvalues`.

    Example:
        >>> jvp = lambda v: jax.jvp(lambda y: field(0.0, y, None), (y,), (v,))[1]
        >>> result = arnoldi_eigenvalues(jvp, y.size, num_eigenvalues=2)
        >>> radius = jnp.abs(result.eigenvalues[0])

    References: Stewart (2001), SIAM J. Matrix Anal. Appl. 23, 601–614; Saad (2011), §7.
    """
    if which not in WHICH:
        raise ValueError(f"which must be one of {WHICH}, got which={which!r}.")
    m = _check_dimensions(dim, krylov_dim, num_eigenvalues, "num_eigenvalues")
    if max_restarts < 0:
        raise ValueError(f"max_restarts must be ≥ 0, got max_restarts={max_restarts}.")
    real_dtype = jnp.dtype(jnp.result_type(float) if dtype is None else dtype)
    _probe(matvec, dim, real_dtype, "matvec")
    complex_dtype = jnp.result_type(real_dtype, jnp.complex64)
    tol = _default_tol(real_dtype) if tol is None else tol
    k = _kept(num_eigenvalues, m)
    start = _start(start, dim, real_dtype)

    def apply(vectors):
        """J on a batch of complex vectors: the real and imaginary parts in one vmapped call."""
        parts = jnp.concatenate([vectors.real, vectors.imag]).astype(real_dtype)
        images = jax.vmap(matvec)(parts).astype(real_dtype)
        return (images[: len(vectors)] + 1j * images[len(vectors) :]).astype(complex_dtype)

    def expand(size, V, H):
        """Arnoldi steps j = size … m − 1 onto a Krylov decomposition of that size."""

        def step(j, carry):
            V, H = carry
            image = apply(V[j][None])[0]
            remainder, coefficients = _orthogonalise(V, image)
            vector, coupling = _next_vector(V, remainder, jnp.linalg.norm(image))
            return V.at[j + 1].set(vector), H.at[:, j].set(coefficients.at[j + 1].set(coupling))

        return jax.lax.fori_loop(size, m, step, (V, H))

    def restart(V, H, vectors):
        """Krylov–Schur truncation to the best k Ritz vectors plus the residual direction."""
        # JAX has no reordered Schur form; an orthonormal basis of the k Ritz vectors spans
        # the same invariant subspace (H Q − Q S measured ~1e-15 ‖H‖ on the MLP Jacobians).
        Q, _ = jnp.linalg.qr(vectors[:, :k])
        S = jnp.conj(Q.T) @ H[:m] @ Q
        V_new = jnp.zeros_like(V).at[:k].set(Q.T @ V[:m]).at[k].set(V[m])
        H_new = jnp.zeros_like(H).at[:k, :k].set(S).at[k, :k].set(H[m] @ Q)
        return V_new, H_new

    def scale(H):
        # ‖H‖₂ = ‖V_{m+1}ᴴ J V_m‖₂ ≤ ‖J‖: J's norm as seen from the Krylov space.
        return jnp.linalg.norm(H, 2)

    def cycle(carry):
        """Expand to m vectors, take the Ritz pairs, and restart unless done."""
        V, H, size, restarts, *_ = carry
        V, H = expand(size, V, H)
        values, vectors, estimates = _ritz(H, which)
        converged = jnp.all(estimates[:num_eigenvalues] <= tol * scale(H))
        # A non-finite operator (a diverged network's Jacobian) cannot recover: stop at once.
        done = converged | (restarts >= max_restarts) | ~jnp.all(jnp.isfinite(H))
        V, H = jax.tree.map(lambda old, new: jnp.where(done, old, new), (V, H), restart(V, H, vectors))
        return V, H, jnp.array(k), restarts + jnp.where(done, 0, 1), done, values, vectors

    V = jnp.zeros((m + 1, dim), complex_dtype).at[0].set(start)
    H = jnp.zeros((m + 1, m), complex_dtype)
    # The first cycle starts from the bare start vector, every later one from k kept vectors.
    initial = (V, H, jnp.array(0), jnp.array(0), jnp.array(False), H[0], H[:m])
    V, H, _, restarts, _, values, vectors = jax.lax.while_loop(lambda carry: ~carry[4], cycle, initial)
    ritz_vectors = vectors[:, :num_eigenvalues].T @ V[:m]
    wanted = values[:num_eigenvalues]
    residuals = jnp.linalg.norm(apply(ritz_vectors) - wanted[:, None] * ritz_vectors, axis=1)
    return KrylovEigenvalues(
        eigenvalues=wanted,
        residuals=residuals,
        converged=jnp.all(residuals <= tol * scale(H)),
        num_matvecs=(m + restarts * (m - k) + num_eigenvalues).astype(jnp.int32),
    )


def top_singular_values(
    matvec: Callable[[Float[Array, " dim"]], Float[Array, " dim"]],
    rmatvec: Callable[[Float[Array, " dim"]], Float[Array, " dim"]],
    dim: int,
    *,
    num_values: int = 1,
    krylov_dim: int | None = None,
    max_restarts: int = 100,
    tol: float | None = None,
    dtype=None,
    start: Float[Array, " dim"] | None = None,
) -> KrylovSingularValues:
    """Largest singular values σ of A (A v = matvec(v), Aᵀu = rmatvec(u)), by restarted GKL.

    Golub–Kahan–Lanczos bidiagonalisation from a unit v_0, with full
    reorthogonalisation of both bases: α_j u_j = A v_j − Σ_{i<j} B_ij u_i and
    β_j v_{j+1} = Aᵀ u_j − α_j v_j, so that A V_m = U_m B_m and Aᵀ U_m = V_m B_mᵀ + β_m v_m e_mᵀ
    with B_m upper triangular (bidiagonal until the first restart). The singular values of
    B_m approximate those of A from below, the largest first; the triplet (σ, V_m q, U_m p)
    has residual β_m |e_mᵀ p|. The restart keeps the k = n + ⌊(m − n)/2⌋ largest triplets
    (n = num_values) and v_m, exactly and without matvecs (Baglama & Reichel 2005, §2): B
    becomes diag(σ_1 … σ_k) bordered by the column β_m P_k[m − 1]. Works under `jax.jit`
    and `jax.vmap`.

    Args:
        matvec: v ↦ A v for v of shape (dim,) and dtype `dtype`; must be vmappable (the
            final residuals apply it to the num_values vectors at once).
        rmatvec: u ↦ Aᵀ u (e.g. from jax.vjp), likewise.
        dim: the dimension of the (square) operator.
        num_values: how many singular values to return.
        krylov_dim: m, the basis size; default min(dim, max(40, 2n + 2)). Needs n < m ≤ dim.
        max_restarts: the most restarts, a cap; the 256-dimensional MLP Jacobians need
            none with the defaults.
        tol: relative residual tolerance (against σ_max = ‖A‖, so a backward error); default
            ε^(2/3) of `dtype`.
        dtype: real dtype of the vectors; default the default float dtype.
        start: v_0, shape (dim,), normalised here; default `start_vector` (no random numbers).

    Returns:
        A `KrylovSingularValues`.

    Example:
        >>> f = lambda z: field(0.0, z, None)
        >>> jvp = lambda v: jax.jvp(f, (y,), (v,))[1]
        >>> vjp = lambda u: jax.vjp(f, y)[1](u)[0]
        >>> sigma_max = top_singular_values(jvp, vjp, y.size).values[0]

    References: Golub & Kahan, SIAM J. Numer. Anal. 2 (1965) 205–224; Baglama & Reichel,
    SIAM J. Sci. Comput. 27 (2005) 19–42.
    """
    m = _check_dimensions(dim, krylov_dim, num_values, "num_values")
    if max_restarts < 0:
        raise ValueError(f"max_restarts must be ≥ 0, got max_restarts={max_restarts}.")
    real_dtype = jnp.dtype(jnp.result_type(float) if dtype is None else dtype)
    _probe(matvec, dim, real_dtype, "matvec")
    _probe(rmatvec, dim, real_dtype, "rmatvec")
    tol = _default_tol(real_dtype) if tol is None else tol
    k = _kept(num_values, m)
    start = _start(start, dim, real_dtype)

    def expand(size, V, U, B):
        """Bidiagonalisation steps j = size … m − 1 onto a decomposition of that size."""

        def step(j, carry):
            V, U, B = carry
            image = matvec(V[j]).astype(real_dtype)
            # The components along u_i, i < j, are B_ij, known from the Aᵀ steps; the
            # reorthogonalisation only removes rounding.
            remainder, _ = _orthogonalise(U, image - B[:, j] @ U)
            u, alpha = _next_vector(U, remainder, jnp.linalg.norm(image))
            U, B = U.at[j].set(u), B.at[j, j].set(alpha)
            image = rmatvec(u).astype(real_dtype)
            remainder, _ = _orthogonalise(V, image - alpha * V[j])
            v, beta = _next_vector(V, remainder, jnp.linalg.norm(image))
            return V.at[j + 1].set(v), U, B.at[j, j + 1].set(beta)

        return jax.lax.fori_loop(size, m, step, (V, U, B))

    def restart(V, U, B, left, values, right):
        """Keep the k largest triplets of B and the residual direction v_m."""
        V_new = jnp.zeros_like(V).at[:k].set(right[:, :k].T @ V[:m]).at[k].set(V[m])
        U_new = jnp.zeros_like(U).at[:k].set(left[:, :k].T @ U)
        # Aᵀ (U p_i) = σ_i (V q_i) + β_m p_i[m − 1] v_m: the border column of the new B.
        border = B[m - 1, m] * left[m - 1, :k]
        B_new = jnp.zeros_like(B).at[jnp.arange(k), jnp.arange(k)].set(values[:k]).at[:k, k].set(border)
        return V_new, U_new, B_new

    def cycle(carry):
        V, U, B, size, restarts, *_ = carry
        V, U, B = expand(size, V, U, B)
        left, values, right_t = jnp.linalg.svd(B[:, :m])
        right = right_t.T
        estimates = jnp.abs(B[m - 1, m] * left[m - 1])
        converged = jnp.all(estimates[:num_values] <= tol * values[0])
        done = converged | (restarts >= max_restarts) | ~jnp.all(jnp.isfinite(B))
        V, U, B = jax.tree.map(lambda old, new: jnp.where(done, old, new), (V, U, B), restart(V, U, B, left, values, right))
        return V, U, B, jnp.array(k), restarts + jnp.where(done, 0, 1), done, left, values, right

    V = jnp.zeros((m + 1, dim), real_dtype).at[0].set(start)
    U = jnp.zeros((m, dim), real_dtype)
    B = jnp.zeros((m, m + 1), real_dtype)
    square = jnp.zeros((m, m), real_dtype)
    # The first cycle starts from the bare start vector, every later one from k kept triplets.
    initial = (V, U, B, jnp.array(0), jnp.array(0), jnp.array(False), square, square[0], square)
    V, U, _, _, restarts, _, left, values, right = jax.lax.while_loop(lambda carry: ~carry[5], cycle, initial)
    right_vectors = right[:, :num_values].T @ V[:m]
    left_vectors = left[:, :num_values].T @ U
    wanted = values[:num_values, None]
    residuals = jnp.sqrt(
        jnp.sum((jax.vmap(matvec)(right_vectors) - wanted * left_vectors) ** 2, axis=1)
        + jnp.sum((jax.vmap(rmatvec)(left_vectors) - wanted * right_vectors) ** 2, axis=1)
    )
    return KrylovSingularValues(
        values=values[:num_values],
        residuals=residuals,
        converged=jnp.all(residuals <= tol * values[0]),
        num_matvecs=(m + restarts * (m - k) + num_values).astype(jnp.int32),
    )


def spectral_radius(matvec, dim: int, **kwargs) -> Float[Array, ""]:
    """ρ(J) = max |λ|, by `arnoldi_eigenvalues(matvec, dim, which="magnitude", **kwargs)`.

    NaN where the iteration did not converge, so that a failure cannot pass for a number;
    `arnoldi_eigenvalues` returns the estimate, its residual and the flag instead.
    """
    return jnp.abs(arnoldi_eigenvalues(matvec, dim, which="magnitude", **kwargs).eigenvalues_or_nan[0])


def spectral_abscissa(matvec, dim: int, **kwargs) -> Float[Array, ""]:
    """α(J) = max Re λ, by `arnoldi_eigenvalues(matvec, dim, which="real", **kwargs)`.

    The growth rate of y' = J y: ‖e^{tJ}‖ grows like e^{α t} for large t. NaN where the
    iteration did not converge (see `spectral_radius`).
    """
    return jnp.real(arnoldi_eigenvalues(matvec, dim, which="real", **kwargs).eigenvalues_or_nan[0])


def jacobian_products(function: Callable, point) -> tuple[Callable, Callable]:
    """(matvec, rmatvec): v ↦ J v and u ↦ Jᵀ u for J = ∂function/∂y at `point`.

    The forward pass is linearised once (`jax.linearize`, `jax.vjp`), not redone inside every
    product of a Krylov iteration.
    """
    _, matvec = jax.linearize(function, point)
    _, pullback = jax.vjp(function, point)
    return matvec, lambda u: pullback(u)[0]
