"""Eigenvalues and singular values of a batch of small matrices, on every core.

LAPACK factorises one matrix per thread, and XLA's CPU eigensolver runs a batch on one
thread (or sometimes two). Here the batch leaves JAX through `jax.pure_callback` (so it
works under jit and vmap), is split into one chunk per available core, and each chunk goes
to NumPy's gufunc in its own thread (NumPy releases the GIL inside LAPACK). NumPy's
`eigvals` asks LAPACK for no eigenvectors, so the memory used is proportional to the input.

Non-finite matrices (a diverged network's Jacobian), and the rare finite ones on which LAPACK
does not converge, give NaN rows instead of an error: divergence is data.
"""

import os
from concurrent.futures import ThreadPoolExecutor

import jax
import jax.numpy as jnp
import numpy as np


def _available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _on_every_core(function, matrices: np.ndarray, out_dtype) -> np.ndarray:
    """function(matrices) for a (..., n, n) batch, the flattened batch split across threads."""
    batch_shape = matrices.shape[:-2]
    flat = matrices.reshape(-1, *matrices.shape[-2:])
    finite = np.isfinite(flat).all(axis=(-2, -1))
    chunks = [chunk for chunk in np.array_split(np.where(finite[:, None, None], flat, 0), _available_cores()) if len(chunk)]
    with ThreadPoolExecutor(len(chunks) or 1) as pool:
        results = list(pool.map(lambda chunk: _nan_where_unconverged(function, chunk), chunks))
    values = np.concatenate(results) if results else np.zeros((0, flat.shape[-1]))
    values = np.where(finite[:, None], values, np.nan).astype(out_dtype)
    return values.reshape(*batch_shape, values.shape[-1])


def _nan_where_unconverged(function, chunk: np.ndarray) -> np.ndarray:
    """function(chunk); if LAPACK fails to converge on some matrix, NaN for that one only."""
    try:
        return function(chunk)
    except np.linalg.LinAlgError:
        size = chunk.shape[-1]
        rows = []
        for matrix in chunk:
            try:
                rows.append(function(matrix[None])[0])
            except np.linalg.LinAlgError:
                rows.append(np.full(size, np.nan))
        return np.stack(rows)


def _callback(function, matrices, out_dtype):
    matrices = jnp.asarray(matrices)
    if matrices.ndim < 2 or matrices.shape[-1] != matrices.shape[-2]:
        raise ValueError(f"Expected a batch of square matrices (..., n, n), got shape {matrices.shape}.")
    out_shape = jax.ShapeDtypeStruct(matrices.shape[:-1], out_dtype)
    return jax.pure_callback(
        lambda m: _on_every_core(function, np.asarray(m), out_dtype),
        out_shape,
        matrices,
        vmap_method="broadcast_all",
    )


def _complex_dtype(matrices):
    return jnp.result_type(jnp.asarray(matrices).dtype, jnp.complex64)


def eigenvalues(matrices):
    """All eigenvalues of each matrix of a (..., n, n) batch: complex, shape (..., n), unsorted."""
    return _callback(np.linalg.eigvals, matrices, _complex_dtype(matrices))


def symmetric_eigenvalues(matrices):
    """Eigenvalues of symmetric matrices (..., n, n), real and ascending, shape (..., n)."""
    return _callback(np.linalg.eigvalsh, matrices, jnp.asarray(matrices).dtype)


def _singular_values(chunk):
    return np.linalg.svd(chunk, compute_uv=False)


def singular_values(matrices):
    """Singular values of each square matrix of a (..., n, n) batch, descending, shape (..., n)."""
    return _callback(_singular_values, matrices, jnp.asarray(matrices).dtype)
