"""Eigenvalues and singular values of a batch of small matrices, at LAPACK speed on every core.

A batch of Jacobians (256 samples × 50 layers of 64×64) is 12,800 independent LAPACK calls:
`?geev` for the eigenvalues (balancing, Hessenberg reduction, then Francis double-shift QR,
which takes ~90% of the time at n = 64), `?syevd` for symmetric matrices, `?gesdd` for
singular values, none of them asked for vectors. XLA's CPU eigensolver runs a batch on one
thread or two (unpredictably), 15 to 20% slower per matrix, and allocates the two eigenvector
buffers it then drops (1 GB for 200 MB of matrices); SciPy's LAPACK wrappers hold the GIL, so
threads cannot share their work. NumPy's LAPACK gufuncs loop over a batch in C without the
GIL, one vector-free call per matrix.

So the batch leaves JAX: called outside jit, directly; under jit and vmap, through
`jax.pure_callback` in pieces of about `_PIECE_BYTES`, because JAX hands a callback two copies
of its operand (and on a CPU such a callback can deadlock with computations dispatched after
it, jax-ml/jax#25861: the library's own analyses call these outside jit). Each piece is cut
into blocks that one thread per core takes in turn (a core that another process keeps busy
simply takes fewer), and each block goes straight to the gufunc of `numpy.linalg._umath_linalg`
in its own precision. `np.linalg.eigvals` itself would cast float32 to float64 (1.6× slower
at n = 64, twice the memory) and raise at the first matrix LAPACK fails on. OpenBLAS is held to
one thread meanwhile: its own threads inside LAPACK, on matrices of 96 to 256 rows, made
ours 2.3 to 3 times slower on the 2-core machine, and one caller up to 18 times slower when
other jobs shared the cores (header of benchmarks/spectra.py).

Non-finite matrices (a diverged network's Jacobian), and the rare finite ones on which LAPACK
does not converge, give NaN rows instead of an error: divergence is data.

A callback has no derivative, so each function is a `jax.custom_jvp` whose rule is JAX's own:
under `jax.jvp`, `jax.grad` and the like (a Lyapunov exponent or σ_max(∂y_L/∂y_0) as a loss),
the values and their derivatives come from `jnp.linalg` (on a CPU the same LAPACK routines,
asked for vectors), equal to the callback's values up to round-off. The
first-order perturbation of a simple value is

    dσ_i = u_iᵀ dA v_i,    dλ_i = v_iᵀ dA v_i (symmetric),    dλ_i = (V⁻¹ dA V)_ii (general),

with u_i, v_i its singular or eigen vectors. Without differentiation the callback runs, and
no vectors are computed.

Repeated values have no derivative: a double singular value (or symmetric eigenvalue) is a
kink of the sorted values, and JAX's rule returns u_iᵀ dA v_i for whichever orthonormal pair
of the repeated subspace LAPACK happened to return: finite, but arbitrary. For the largest
one, a convex function of A, it is one of its subgradients (what a subgradient method steps
along); for the others it is no derivative at all. The derivative of a general matrix's eigenvalue grows
without bound as two of them meet (∝ 1/√distance where two real ones become a complex pair),
and at a defective matrix, where V is singular, JAX returns meaningless numbers (5e291 for
an entry at the Jordan block [[0, 1], [0, 0]]). Non-finite matrices give NaN values and zero
derivatives.
"""

import functools
import threading
from concurrent.futures import ThreadPoolExecutor

import jax
import jax.numpy as jnp
import numpy as np

# NumPy's LAPACK gufuncs behind `np.linalg`: private, but present with these names and loops
# ('f->F', 'd->D', ...) since NumPy 1.8, and the only GIL-free vector-free batched LAPACK
# among our dependencies.
from numpy.linalg import _umath_linalg
from threadpoolctl import threadpool_limits

from ._cores import available_cores

# Matrices per task: about 6 ms of LAPACK (16 at n = 64, fewer as the work grows as n³), so
# per-block costs (a finiteness check, a thread hand-off, the gufunc's workspace query) stay
# < 2% while the threads of a piece end within one block of each other; but never fewer
# than 500/n, since NumPy releases the GIL around a gufunc only from 500 output numbers on.
_BLOCK_AT_64 = 16
# Matrices per callback: 8 MiB of them, for the two copies JAX makes of a callback's operand
# (the first run of 12,800 64×64 float32 Jacobians then peaks at ~80 MiB extra; pieces of
# 8 to 1024 MiB take the same time), but at least 64, so that large matrices still give
# every core several blocks.
_PIECE_BYTES = 8 * 2**20
_PIECE_MATRICES = 64
# The OpenBLAS thread limit is process-wide: two batches limiting and restoring it at once
# (XLA may run two callbacks concurrently) could restore the wrong value. One batch at a
# time loses nothing, since each already uses every core.
_ONE_BATCH_AT_A_TIME = threading.Lock()


def _loop(gufunc, dtype) -> str:
    """The gufunc's first loop (e.g. 'f->F') whose input type holds `dtype` exactly: float32
    is factorised in float32, float64 in float64."""
    return next(types for types in gufunc.types if np.can_cast(dtype, types[0]))


def _block_length(size: int) -> int:
    size = max(size, 1)
    return max(-(-501 // size), round(_BLOCK_AT_64 * (64 / size) ** 3))


def one_blas_thread():
    return threadpool_limits(limits=1, user_api="blas")


def _on_every_core(gufunc, matrices: np.ndarray, out_dtype) -> np.ndarray:
    """gufunc(matrices) for a (count, n, n) batch: blocks across threads, NaN rows for
    non-finite matrices and for those LAPACK fails on."""
    size, block_length = matrices.shape[-1], _block_length(matrices.shape[-1])
    loop = _loop(gufunc, matrices.dtype)
    values = np.empty((len(matrices), size), loop[-1])

    def solve(start):
        block, out = matrices[start : start + block_length], values[start : start + block_length]
        finite = np.isfinite(block).all(axis=(-2, -1))
        if not finite.all():
            # LAPACK's result on NaN or Inf is undefined (it may iterate to its limit): give it
            # zeros and overwrite those rows below.
            block = np.where(finite[:, None, None], block, 0)
        # On a LAPACK failure the gufunc writes NaN for that matrix only and raises the
        # floating-point 'invalid' flag, which np.linalg turns into LinAlgError; here the NaN
        # row is the answer.
        with np.errstate(invalid="ignore"):
            gufunc(block, out=out, signature=loop)
        out[~finite] = np.nan

    with _ONE_BATCH_AT_A_TIME, one_blas_thread(), ThreadPoolExecutor(len(available_cores())) as pool:
        list(pool.map(solve, range(0, len(matrices), block_length)))
    return values.astype(out_dtype, copy=False)


def _callback(gufunc, matrices, out_dtype):
    """gufunc over a (..., n, n) batch from inside JAX: the flattened batch in pieces, each
    through `jax.pure_callback` to `_on_every_core`."""
    batch_shape, size = matrices.shape[:-2], matrices.shape[-1]
    if not isinstance(matrices, jax.core.Tracer):
        # Called outside jit: straight to LAPACK from this thread. Through a callback, the batch
        # would become a computation that JAX dispatches asynchronously, and on a CPU such a
        # callback, waiting for its operand, can deadlock with the computations dispatched after
        # it (jax-ml/jax#25861; seen here in a sweep worker on one core).
        values = _on_every_core(gufunc, np.asarray(matrices).reshape(-1, size, size), out_dtype)
        return jnp.asarray(values.reshape(*batch_shape, size))
    flat = matrices.reshape(-1, size, size)
    count = flat.shape[0]
    per_piece = max(_PIECE_MATRICES, _PIECE_BYTES // max(1, size * size * flat.dtype.itemsize))
    pieces = max(1, -(-count // per_piece))
    length = -(-count // pieces)

    def solve(piece):
        return jax.pure_callback(
            lambda m: _on_every_core(gufunc, np.asarray(m).reshape(-1, size, size), out_dtype).reshape(m.shape[:-1]),
            jax.ShapeDtypeStruct(piece.shape[:-1], out_dtype),
            piece,
            vmap_method="broadcast_all",
        )

    def step(index, values):
        # The last piece ends at the end of the batch, overlapping the one before it by
        # fewer than `pieces` matrices: one static length, without padding the batch (a copy).
        start = jnp.minimum(index * length, count - length)
        piece = jax.lax.dynamic_slice_in_dim(flat, start, length)
        return jax.lax.dynamic_update_slice_in_dim(values, solve(piece), start, axis=0)

    values = jax.lax.fori_loop(0, pieces, step, jnp.zeros((count, size), out_dtype))
    return values.reshape(*batch_shape, size)


def _complex_dtype(matrices):
    return jnp.result_type(jnp.asarray(matrices).dtype, jnp.complex64)


def _real_dtype(matrices):
    """The dtype of singular values and of Hermitian eigenvalues: real, in the input's precision."""
    dtype = jnp.asarray(matrices).dtype
    return jnp.finfo(dtype).dtype if jnp.issubdtype(dtype, jnp.inexact) else dtype


def check_square(matrices, what: str | None = None):
    """`matrices` as a (..., n, n) array; a ValueError (naming `what`, the caller, if given) otherwise."""
    matrices = jnp.asarray(matrices)
    if matrices.ndim < 2 or matrices.shape[-1] != matrices.shape[-2]:
        if what is not None:
            raise ValueError(f"{what} takes a square matrix or a batch of them, shape (..., n, n); got shape {matrices.shape}.")
        raise ValueError(f"Expected a batch of square matrices (..., n, n), got shape {matrices.shape}.")
    return matrices


def _jax_rule(function, reference):
    """`function` (a batch through the callback) as a `jax.custom_jvp` whose rule is
    `reference`'s own (a `jnp.linalg` function) on the finite matrices: NaN values and zero
    derivatives where a matrix is not finite, as the callback gives NaN rows there."""
    differentiable = jax.custom_jvp(function)

    @differentiable.defjvp
    def rule(primals, tangents):
        (matrices,), (tangent,) = primals, tangents
        finite = jnp.all(jnp.isfinite(matrices), axis=(-2, -1))[..., None]
        # LAPACK's result on NaN or Inf is undefined (it may iterate to its limit): give it zeros.
        values, derivatives = jax.jvp(reference, (jnp.where(finite[..., None], matrices, 0),), (tangent,))
        return jnp.where(finite, values, jnp.nan), jnp.where(finite, derivatives, 0)

    def values(matrices):
        # Concrete matrices are not being differentiated: straight to `function`, without
        # custom_jvp's dispatch (0.3 ms a call).
        return differentiable(matrices) if isinstance(matrices, jax.core.Tracer) else function(matrices)

    return values


def _hermitian_from_lower(matrices):
    """The Hermitian matrix that LAPACK's lower-triangle routines see, so that the derivative
    is that of the values computed (for a symmetric matrix, the matrix itself)."""
    return jnp.tril(matrices) + jnp.conj(jnp.swapaxes(jnp.tril(matrices, -1), -1, -2))


@functools.partial(_jax_rule, reference=jnp.linalg.eigvals)
def _eigenvalues(matrices):
    return _callback(_umath_linalg.eigvals, matrices, _complex_dtype(matrices))


@functools.partial(_jax_rule, reference=lambda matrices: jnp.linalg.eigvalsh(_hermitian_from_lower(matrices), symmetrize_input=False))
def _symmetric_eigenvalues(matrices):
    return _callback(_umath_linalg.eigvalsh_lo, matrices, _real_dtype(matrices))


@functools.partial(_jax_rule, reference=lambda matrices: jnp.linalg.svd(matrices, compute_uv=False))
def _singular_values(matrices):
    return _callback(_umath_linalg.svd, matrices, _real_dtype(matrices))


def eigenvalues(matrices):
    """All eigenvalues of each matrix of a (..., n, n) batch: complex, shape (..., n), unsorted.

    The roots of det(A − λI) = 0 by LAPACK's `?geev` without eigenvectors, in the input's
    precision; NaN rows for non-finite matrices and where LAPACK does not converge. Under
    differentiation, `jnp.linalg.eigvals` and its derivative dλ_i = (V⁻¹ dA V)_ii (see the
    module docstring for repeated and defective eigenvalues)."""
    return _eigenvalues(check_square(matrices))


def symmetric_eigenvalues(matrices):
    """Eigenvalues of symmetric matrices (..., n, n), real and ascending, shape (..., n).

    By `?syevd` without eigenvectors, reading the lower triangle only. Under
    differentiation, `jnp.linalg.eigvalsh` of the matrix the lower triangle defines, and
    dλ_i = v_iᵀ dA v_i."""
    return _symmetric_eigenvalues(check_square(matrices))


def singular_values(matrices):
    """Singular values of each square matrix of a (..., n, n) batch, descending, shape (..., n).

    By `?gesdd` without singular vectors. Under differentiation, `jnp.linalg.svd` and
    dσ_i = u_iᵀ dA v_i."""
    return _singular_values(check_square(matrices))
