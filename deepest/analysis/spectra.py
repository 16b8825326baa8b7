"""Jacobian spectra along trajectories, laid against the solver's stability region.

Linearising y' = f(t, y) about the state y_k that layer k receives gives the local test
problem δ' = J_k δ with J_k = ∂f/∂y(t_k, y_k). With step h the solver amplifies the
eigen-direction of λ ∈ spec(J_k) by its growth factor at z = hλ (|1 + hλ| for Euler), so h·λ
outside the stability region marks a layer that amplifies perturbations even where the
exact flow would damp them. The log-norm μ₂(J) = λ_max((J + Jᵀ)/2) bounds the flow's
growth, ‖δ(t)‖ ≤ exp(∫ μ₂ dt) ‖δ(0)‖ (Söderlind 2006).

`layer_map_spectrum` looks at the discrete layer itself: the eigenvalues and singular values
of ∂y_{k+1}/∂y_k (I + hJ_k for Euler).

References: Haber & Ruthotto, "Stable architectures for deep neural networks" (2017,
arXiv:1705.03341); Söderlind, "The logarithmic norm. History and modern theory" (BIT 2006).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Complex, Float, Int

from .. import stability
from .._batched_linalg import eigenvalues, singular_values, symmetric_eigenvalues
from ..layers import check_one_step, layer_step, trajectories
from ..network import SolverNet
from . import krylov

# Above this state dimension the spectra are estimated matrix-free (Krylov iterations on
# jvp/vjp) instead of forming and factorising each Jacobian: a dense eigen-decomposition
# costs O(d³) per matrix, a Krylov estimate O(d·m²) plus a few hundred Jacobian-vector
# products. Measured on the 2-core machine (float32, MLP fields, 4 samples × 10
# layers, `python -m benchmarks.spectra --batch 4 --layers 10 --matrix-free-batch 4
# --state-dim d`): dense is 4 to 8× faster at d = 128 and 256 (256: 104 against 26
# spectra/s), 4.4× at 384 and 2.5× at 512 (20 against 8), and returns every eigenvalue,
# not only the extremes. The limit stays at 256 for memory, not speed: dense holds
# batch × layers × d² numbers twice (the Jacobians and their symmetric parts), 6.7 GB for
# 256 samples × 50 layers at d = 256 and 27 GB at 512.
DENSE_LIMIT = 256
METHODS = ("auto", "dense", "matrix_free")

# Two Ritz values closer than this (relative to their modulus, absolute below modulus 1) are
# one eigenvalue found by both matrix-free searches (largest |λ| and largest Re λ). Measured on
# 300-dimensional Gaussian matrices in float64: the same eigenvalue from the two searches agrees
# to 7e-12 or better, distinct ones lie 2e-2 or more apart, so any value between separates them.
# In float32 the same eigenvalue agrees only to 2e-7 … 2e-6, straddling this value: there a
# rightmost eigenvalue may be counted a second time.
DUPLICATE_TOLERANCE = 1e-6


def choose_method(method: str, state_dim: int) -> str:
    """ "dense" or "matrix_free" for a requested method ("auto" decides by `DENSE_LIMIT`)."""
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}. Valid methods are: {', '.join(METHODS)}.")
    if method == "auto":
        return "dense" if state_dim <= DENSE_LIMIT else "matrix_free"
    return method


class JacobianSpectrum(eqx.Module):
    """Eigenvalues of ∂f/∂y at every layer of every sample, against the solver's region.

    Fields:
        eigenvalues: complex (batch, num_steps, k): spec(∂f/∂y(t_k, y_k)); k = state_dim
            (method "dense"), or the `num_eigenvalues` largest in modulus followed by the
            `num_eigenvalues` rightmost ("matrix_free"), with NaN in place of a rightmost one
            already among the largest and of any Ritz value that did not converge. NaN
            entries (also those of a diverged state) are left out of every share below.
        log_norm: (batch, num_steps) μ₂ = λ_max of the symmetric part of ∂f/∂y.
        times: (num_steps,) the layer times t_k.
        step_size: h.
        solver: the net's solver, whose region `growth` and `outside` refer to.
        method: "dense" or "matrix_free".
        solver_options: the net's solver options, (option, value) pairs: the region is that
            of these parameters (for "lm_resnet", of the net's k).
    """

    eigenvalues: Complex[Array, "batch steps k"]
    log_norm: Float[Array, "batch steps"]
    times: Float[Array, " steps"]
    step_size: float = eqx.field(static=True)
    solver: str = eqx.field(static=True)
    method: str = eqx.field(static=True)
    solver_options: tuple[tuple[str, float], ...] = eqx.field(static=True, default=())

    @property
    def scaled(self) -> Complex[Array, "batch steps k"]:
        """z = h·λ, the points to lay on the stability region."""
        return self.step_size * self.eigenvalues

    @property
    def growth(self) -> Float[Array, "batch steps k"]:
        """The solver's per-step growth factor at h·λ: |R(hλ)| for one-step methods, the
        largest root of the characteristic polynomial for the others (`deepest.stability`)."""
        return stability.growth_factor(self.solver, self.scaled, **dict(self.solver_options))

    @property
    def outside(self) -> Bool[Array, "batch steps k"]:
        """Whether h·λ lies outside the solver's stability region (False for NaN entries)."""
        return ~stability.is_stable(self.solver, self.scaled, **dict(self.solver_options)) & self.finite

    @property
    def amplification_ratio(self) -> Float[Array, "batch steps k"]:
        """growth(hλ)/|e^{hλ}|: the solver's per-step amplification of each mode over the exact
        flow's (`deepest.stability.amplification_ratio`); 1 where it integrates it faithfully."""
        return stability.amplification_ratio(self.solver, self.scaled, **dict(self.solver_options))

    @property
    def classes(self) -> Int[Array, "batch steps k"]:
        """Each h·λ's class, a code into `deepest.stability.CLASSES` (−1 for NaN entries):
        both stable, dynamically growing (Re λ > 0), numerically unstable (Re λ ≤ 0 outside
        the region: the discretisation's fault) or over-damped (`deepest.stability.classify`)."""
        return stability.classify(self.solver, self.scaled, **dict(self.solver_options))

    def fraction_in(self, label: str) -> Float[Array, ""]:
        """Share of all finite h·λ in the class `label` (one of `deepest.stability.CLASSES`)."""
        if label not in stability.CLASSES:
            raise ValueError(f"Unknown class {label!r}: one of {', '.join(stability.CLASSES)}.")
        return jnp.sum(self.classes == stability.CLASSES.index(label), dtype=self.real_dtype) / jnp.sum(self.finite, dtype=self.real_dtype)

    @property
    def fraction_numerically_unstable(self) -> Float[Array, ""]:
        """Share of all finite h·λ where the flow does not grow but the solver does: the
        discretisation's instability, unlike `fraction_outside`, which also counts modes the
        ODE itself grows (Re λ > 0, outside every region that lies in the left half-plane)."""
        return self.fraction_in("numerically unstable")

    @property
    def finite(self) -> Bool[Array, "batch steps k"]:
        """Whether an entry of `eigenvalues` holds a number (not NaN)."""
        return jnp.isfinite(self.eigenvalues)

    @property
    def fraction_outside(self) -> Float[Array, ""]:
        """Share of all h·λ (every sample, layer and eigenvalue) outside the region; NaN if
        there is no finite eigenvalue (a diverged net)."""
        return jnp.sum(self.outside, dtype=self.real_dtype) / jnp.sum(self.finite, dtype=self.real_dtype)

    @property
    def fraction_outside_per_layer(self) -> Float[Array, " steps"]:
        """Share of h·λ outside the region at each layer, over samples and eigenvalues."""
        return jnp.sum(self.outside, axis=(0, 2), dtype=self.real_dtype) / jnp.sum(self.finite, axis=(0, 2), dtype=self.real_dtype)

    @property
    def real_dtype(self):
        """The real dtype of the spectrum (float32 or float64)."""
        return self.eigenvalues.real.dtype

    @property
    def spectral_abscissa(self) -> Float[Array, "batch steps"]:
        """α(J) = max Re λ per sample and layer: the flow's asymptotic growth rate."""
        return jnp.nanmax(self.eigenvalues.real, axis=-1)

    @property
    def spectral_radius(self) -> Float[Array, "batch steps"]:
        """ρ(J) = max |λ| per sample and layer."""
        return jnp.nanmax(jnp.abs(self.eigenvalues), axis=-1)


def _not_among(values, others):
    """`values` with NaN where one equals (to `DUPLICATE_TOLERANCE`, relative above modulus 1,
    absolute below) an entry of `others`: the same eigenvalue found by both Krylov searches
    counts once."""
    distance = jnp.min(jnp.abs(values[:, None] - others[None, :]), axis=1)
    duplicate = distance <= DUPLICATE_TOLERANCE * jnp.maximum(jnp.abs(values), 1.0)
    return jnp.where(duplicate, jnp.nan, values)


@eqx.filter_jit
def _jacobians_and_symmetric_parts(field, times, states):
    """J = ∂f/∂y(t_k, y_k) for times (L,) and states (batch, L, d), and (J + Jᵀ)/2, as one
    program: the times come in as data, so nets differing in step size or seed alone share it."""
    jacobian = jax.jacfwd(lambda t, y: field(t, y, None), argnums=1)
    jacobians = jax.vmap(jax.vmap(jacobian), in_axes=(None, 0))(times, states)
    return jacobians, (jacobians + jnp.swapaxes(jacobians, -1, -2)) / 2


@eqx.filter_jit
def _layer_jacobians(net: SolverNet, starts, ends, states):
    """∂y_{k+1}/∂y_k of one step of the net's own solver, for step times (L,) and states
    (batch, L, d): (batch, L, d, d)."""

    def jacobian(t, t_next, y):
        return jax.jacfwd(lambda state: layer_step(net, net.field, t, t_next, state))(y)

    return jax.vmap(jax.vmap(jacobian), in_axes=(None, None, 0))(starts, ends, states)


def jacobian_spectrum(net: SolverNet, xs, *, method: str = "auto", num_eigenvalues: int = 6) -> JacobianSpectrum:
    """Eigenvalues of ∂f/∂y along the layer states of a batch of inputs.

    Args:
        net: a fixed-step SolverNet.
        xs: inputs, shape (batch, ...) (what `net` takes, with a batch axis).
        method: "dense" (every eigenvalue; `jax.jacfwd` then LAPACK on every core),
            "matrix_free" (extremal eigenvalues by restarted Arnoldi on jvps, from the fixed
            `krylov.start_vector`: no random numbers) or "auto": dense up to `DENSE_LIMIT`
            state dimensions.
        num_eigenvalues: how many extremal eigenvalues of each kind the matrix-free method
            returns.

    Returns:
        A `JacobianSpectrum`. Works under `eqx.filter_jit`.

    Example:
        >>> spec = deepest.analysis.jacobian_spectrum(net, xs[:64])
        >>> float(spec.fraction_outside), spec.spectral_abscissa.max()
    """
    method = choose_method(method, net.field.state_dim)
    grid, ys = trajectories(net, xs)
    times, states = grid[:-1], ys[:, :-1]
    field = net.field
    if method == "dense":
        jacobians, symmetric_parts = _jacobians_and_symmetric_parts(field, times, states)
        values = eigenvalues(jacobians)
        log_norm = symmetric_eigenvalues(symmetric_parts)[..., -1]
    else:

        def extremal(t, y):
            matvec, rmatvec = krylov.jacobian_products(lambda state: field(t, state, None), y)

            def symmetric_matvec(v):
                return (matvec(v) + rmatvec(v)) / 2

            def search(operator, count, which):
                return krylov.arnoldi_eigenvalues(operator, y.shape[-1], num_eigenvalues=count, which=which, dtype=y.dtype).eigenvalues_or_nan

            largest = search(matvec, num_eigenvalues, "magnitude")
            rightmost = search(matvec, num_eigenvalues, "real")
            top = search(symmetric_matvec, 1, "real")
            return jnp.concatenate([largest, _not_among(rightmost, largest)]), top[0].real

        values, log_norm = jax.vmap(jax.vmap(extremal), in_axes=(None, 0))(times, states)
    return JacobianSpectrum(
        eigenvalues=values,
        log_norm=log_norm,
        times=times,
        step_size=net.step_size,
        solver=net.solver,
        method=method,
        solver_options=net.solver_options,
    )


class LayerMapSpectrum(eqx.Module):
    """Eigenvalues and singular values of the layer maps ∂y_{k+1}/∂y_k.

    Fields:
        eigenvalues: complex (batch, num_steps, k); all of them ("dense") or the
            `num_eigenvalues` largest in modulus ("matrix_free"; NaN if not converged).
        singular_values: (batch, num_steps, k), descending; all, or the largest few.
        method: "dense" or "matrix_free".
    """

    eigenvalues: Complex[Array, "batch steps k"]
    singular_values: Float[Array, "batch steps k"]
    method: str = eqx.field(static=True)

    @property
    def spectral_radius(self) -> Float[Array, "batch steps"]:
        """ρ(∂y_{k+1}/∂y_k): the asymptotic per-layer amplification."""
        return jnp.nanmax(jnp.abs(self.eigenvalues), axis=-1)

    @property
    def spectral_norm(self) -> Float[Array, "batch steps"]:
        """‖∂y_{k+1}/∂y_k‖₂, the worst one-layer amplification of a perturbation."""
        return self.singular_values[..., 0]


def layer_map_spectrum(net: SolverNet, xs, *, method: str = "auto", num_eigenvalues: int = 6) -> LayerMapSpectrum:
    """Spectra of the discrete layer maps y_k ↦ y_{k+1} along each sample's trajectory.

    For explicit Euler the layer map's Jacobian is I + h ∂f/∂y; for other solvers it is
    the derivative of one solver step (stability function applied to the Jacobian, for
    linear fields). One-step solvers only: a two-step method's layer depends on y_{k−1} too.

    Args and method selection as for `jacobian_spectrum`.
    """
    check_one_step(net, "layer_map_spectrum")
    method = choose_method(method, net.field.state_dim)
    grid, ys = trajectories(net, xs)
    starts, ends, states = grid[:-1], grid[1:], ys[:, :-1]
    field = net.field

    def step_map(t, t_next):
        return lambda y: layer_step(net, field, t, t_next, y)

    if method == "dense":
        jacobians = _layer_jacobians(net, starts, ends, states)
        return LayerMapSpectrum(eigenvalues=eigenvalues(jacobians), singular_values=singular_values(jacobians), method=method)

    def extremal(t, t_next, y):
        matvec, rmatvec = krylov.jacobian_products(step_map(t, t_next), y)
        dim = y.shape[-1]
        largest = krylov.arnoldi_eigenvalues(matvec, dim, num_eigenvalues=num_eigenvalues, which="magnitude", dtype=y.dtype)
        top = krylov.top_singular_values(matvec, rmatvec, dim, num_values=num_eigenvalues, dtype=y.dtype)
        return largest.eigenvalues_or_nan, top.values_or_nan

    values, singular = jax.vmap(jax.vmap(extremal), in_axes=(None, None, 0))(starts, ends, states)
    return LayerMapSpectrum(eigenvalues=values, singular_values=singular, method=method)
