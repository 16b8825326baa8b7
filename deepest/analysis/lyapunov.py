"""Lyapunov spectra of maps, flows and network layers by the QR (Benettin) method.

A discrete dynamical system y_{n+1} = Φ_n(y_n) moves an infinitesimal perturbation by the
Jacobian J_n = ∂Φ_n/∂y (y_n). Starting from Q_0, the first k columns of the identity, every
step factorises the pushed-forward basis

    J_n Q_n = Q_{n+1} R_n     (Q_{n+1}: d × k with orthonormal columns, R_n: k × k upper triangular),

so that J_{N−1} ⋯ J_0 Q_0 = Q_N R_{N−1} ⋯ R_0 and ∏_n |(R_n)_ii| is the growth of the
i-dimensional volume spanned by the first i columns, divided by that of the first i − 1. With
h the time one step stands for (h = 1 for a plain map) the finite-time exponents are

    λ_i = 1/(N h) Σ_{n<N} log|(R_n)_ii|,    i = 1 … k.

Re-orthonormalising every step keeps the columns from all collapsing onto the most unstable
direction. After a transient that aligns Q with the Oseledets subspaces, λ_1 ≥ λ_2 ≥ … ≥ λ_k
converge as N → ∞ to the k largest Lyapunov exponents (Oseledets' multiplicative ergodic
theorem); for finite N they are finite-time exponents, in QR order. With k = d their sum is
exactly the mean of log|det J_n| / h: the rate of phase-space volume contraction. A step that
collapses a direction (a singular J_n, e.g. a layer of dead ReLUs) gives log 0 = −∞ there,
which is the exact exponent of such a map.

J_n Q_n is computed as k Jacobian-vector products (`jax.jvp`, vmapped over the columns of Q_n),
so J_n is never formed and any differentiable step (a map, a solver step, a network layer) works.
The exponents can themselves be differentiated (in the step's parameters, say): JAX's QR has a
derivative wherever the pushed basis has full rank.

References: Benettin, Galgani, Giorgilli & Strelcyn, "Lyapunov characteristic exponents for
smooth dynamical systems and for Hamiltonian systems; a method for computing all of them",
Meccanica 15 (1980) 9–30; Eckmann & Ruelle, "Ergodic theory of chaos and strange attractors",
Rev. Mod. Phys. 57 (1985) 617; for networks, Storm, Linander, Bec, Gustavsson & Mehlig,
"Finite-time Lyapunov exponents of deep neural networks" (2024, arXiv:2306.12548).
"""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ..fields import AbstractSeparableField
from ..layers import check_batch, check_one_step, layer_step, layer_times, solver_step
from ..network import SolverNet
from ..solvers import MULTISTEP, PARTITIONED, check_solver_name


class LyapunovSpectrum(eqx.Module):
    """Finite-time Lyapunov exponents from the QR method (see the module docstring).

    Attributes:
        exponents: (..., k) finite-time exponents λ_1 … λ_k per unit time, in QR order
            (descending once the averaging time is long enough for them to converge).
        local_exponents: (..., num_steps, k) log|(R_n)_ii| / h of every averaged step n;
            their mean over steps is `exponents`. Their spread shows how far a finite-time
            estimate is from converged.
        time: the averaging time num_steps · h (the transient excluded); a static float,
            one value for a whole batch.
    """

    exponents: Float[Array, "... k"]
    local_exponents: Float[Array, "... num_steps k"]
    time: float = eqx.field(static=True)


def lyapunov_spectrum(
    step: Callable,
    y0,
    *,
    num_steps: int,
    step_size: float = 1.0,
    t0: float = 0.0,
    num_exponents: int | None = None,
    transient_steps: int = 0,
) -> LyapunovSpectrum:
    """Lyapunov spectrum of the discrete system y_{n+1} = step(t_n, y_n, None), t_n = t0 + n h.

    λ_i = 1/(N h) Σ_n log|(R_n)_ii| with J_n Q_n = Q_{n+1} R_n, J_n = ∂step(t_n, ·, None)/∂y (y_n),
    and Q_0 the first k columns of the identity (a deterministic start; the transient rotates
    it towards the Oseledets directions).

    Args:
        step: a differentiable function (t, y, args) ↦ y_next on 1-D states, called with
            args = None (the signature of a field, so that one function serves both).
        y0: the initial state, shape (d,).
        num_steps: N ≥ 1, the steps averaged (after the transient).
        step_size: h > 0, the time one step stands for; exponents are per unit time
            (1 for a plain map, whose exponents are then per iteration). A Python number.
        t0: time of the first step.
        num_exponents: k ∈ 1 … d, the number of leading exponents (k tangent vectors, cost
            k Jacobian-vector products per step); default d, the full spectrum.
        transient_steps: steps run first and not averaged; both the state and the tangent
            basis evolve through them.

    Returns:
        A `LyapunovSpectrum` with `exponents` (k,), `local_exponents` (N, k), `time` N h.

    `num_steps`, `step_size`, `num_exponents` and `transient_steps` are static: one compiled
    `lax.scan` runs all steps, under `jax.jit` and `jax.vmap` (e.g. over initial states).

    Example:
        >>> def henon(t, y, args):
        ...     return jnp.stack([1 - 1.4 * y[0] ** 2 + y[1], 0.3 * y[0]])
        >>> spectrum = lyapunov_spectrum(henon, jnp.zeros(2), num_steps=100_000, transient_steps=1000)
        >>> spectrum.exponents   # ≈ (0.419, −1.623); their sum is ln 0.3
    """
    step_size, times = _uniform_times(t0, step_size, num_steps, transient_steps)
    return _qr_spectrum(lambda t, t_next, y: step(t, y, None), y0, times, step_size, num_steps, num_exponents, transient_steps)


def flow_lyapunov_spectrum(
    field: Callable,
    y0,
    *,
    solver: str = "rk4",
    step_size: float,
    num_steps: int,
    t0: float = 0.0,
    num_exponents: int | None = None,
    transient_steps: int = 0,
    root_rtol: float = 1e-6,
    root_atol: float = 1e-6,
) -> LyapunovSpectrum:
    """Lyapunov spectrum of the flow y' = field(t, y, None), discretised by a named deepest solver.

    The step map is one step of `solver` with step h, y_{n+1} = Φ_h(t_n, y_n), and J_n is its
    exact Jacobian (forward-mode through the solver's stages). The result is the spectrum of
    the discrete map: it differs from that of the flow by the solver's error (O(h^p) per unit
    time for a method of order p), and its sum is the mean of log|det ∂Φ_h/∂y| / h, which tends
    to the mean divergence of the field as h → 0.

    Args:
        field: any callable field(t, y, args) on 1-D states, called with args = None (a
            `deepest.fields` field, or a plain function with diffrax's signature of a vector
            field); `semi_implicit_euler` needs an `AbstractSeparableField`.
        y0: the initial state, shape (d,).
        solver: a one-step solver from `deepest.SOLVERS` (not the two-step
            `leapfrog_midpoint`, `reversible_heun`).
        step_size: h > 0; exponents are per unit time.
        num_steps, t0, num_exponents, transient_steps: as in `lyapunov_spectrum`; the
            averaging time is num_steps · h.
        root_rtol, root_atol: root-finder tolerances of the implicit solvers.

    Example:
        >>> def lorenz(t, y, args):
        ...     x, u, z = y
        ...     return jnp.stack([10 * (u - x), x * (28 - z) - u, x * u - 8 / 3 * z])
        >>> spectrum = flow_lyapunov_spectrum(
        ...     lorenz, jnp.ones(3), step_size=0.01, num_steps=100_000, transient_steps=1000)
        >>> spectrum.exponents   # ≈ (0.90, 0.00, −14.57)

    Reference: Benettin et al., Meccanica 15 (1980) 9–30 (Part 2: flows).
    """
    check_solver_name(solver)
    if solver in MULTISTEP:
        raise ValueError(
            f"flow_lyapunov_spectrum needs a one-step map y_n ↦ y_(n+1), but {solver!r} is a two-step "
            f"method whose step also depends on the previous state. Use a one-step solver, e.g. 'rk4'."
        )
    if solver in PARTITIONED and not isinstance(field, AbstractSeparableField):
        raise ValueError(
            f"{solver!r} integrates partitioned systems q' = f(p), p' = g(q); it needs a "
            f"deepest.fields.AbstractSeparableField, got {type(field).__name__}."
        )
    step_size, times = _uniform_times(t0, step_size, num_steps, transient_steps)

    def step(t, t_next, y):
        return solver_step(solver, field, t, t_next, y, root_rtol=root_rtol, root_atol=root_atol)

    return _qr_spectrum(step, y0, times, step_size, num_steps, num_exponents, transient_steps)


def layer_lyapunov_spectrum(net: SolverNet, xs, *, num_exponents: int | None = None) -> LyapunovSpectrum:
    """Finite-time Lyapunov exponents of a fixed-step net's layer maps, per sample, per unit depth.

    Along the trajectory y_0 = encode(x), y_{k+1} = Φ_h(t_k, y_k) of each sample, the exponents
    of the L layer Jacobians J_k = ∂y_{k+1}/∂y_k (the net's own solver step; for Euler
    I + h ∂f/∂y) are λ_i = 1/(L h) Σ_k log|(R_k)_ii|, with Q_0 the first columns of the
    identity. There is no transient: the net's depth is all there is, so these are finite-time
    exponents in QR order, not necessarily descending, and over few layers they depend on the
    coordinate basis (they tend to the Lyapunov exponents only as the depth grows). The
    basis-independent finite-time exponents of the whole net, (1/T) ln σ_i(∂y_L/∂y_0), are
    `io_jacobian_singular_values(net, xs).lyapunov_exponents`.

    Args:
        net: a fixed-step `SolverNet` with a one-step solver.
        xs: a batch of inputs with a leading batch axis, e.g. (batch, input_dim).
        num_exponents: k ∈ 1 … state_dim; default the full spectrum.

    Returns:
        A `LyapunovSpectrum` with `exponents` (batch, k), `local_exponents` (batch, L, k) and
        `time` t1 − t0 = L h.

    Example:
        >>> net = deepest.SolverNet(deepest.fields.MLP(2, 16, 1, key=key), solver="euler", num_steps=10)
        >>> layer_lyapunov_spectrum(net, xs).exponents[:, 0]   # the largest, per sample

    Reference: Storm et al., "Finite-time Lyapunov exponents of deep neural networks"
    (2024, arXiv:2306.12548).
    """
    times = layer_times(net)
    check_one_step(net, "layer_lyapunov_spectrum")
    xs = check_batch(xs, "layer_lyapunov_spectrum")

    def step(t, t_next, y):
        return layer_step(net, net.field, t, t_next, y)

    def one_sample(x):
        return _qr_spectrum(step, net.encode(x), times, net.step_size, net.num_steps, num_exponents, 0)

    return jax.vmap(one_sample)(xs)


def _uniform_times(t0, step_size, num_steps, transient_steps):
    """h as a float and the grid t_n = t0 + n h, n = 0 … transient_steps + num_steps."""
    if not (isinstance(num_steps, int) and num_steps >= 1):
        raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}.")
    if not (isinstance(transient_steps, int) and transient_steps >= 0):
        raise ValueError(f"transient_steps must be a non-negative integer, got {transient_steps!r}.")
    # The averaging time is a static field, so h must be a concrete number, not a tracer.
    step_size = float(step_size)
    if not step_size > 0:
        raise ValueError(f"step_size must be positive (the time one step stands for), got {step_size}.")
    # Computed from n rather than accumulated, so late times carry no summed rounding.
    return step_size, t0 + step_size * jnp.arange(transient_steps + num_steps + 1)


def _qr_spectrum(step, y0, times, step_size, num_steps, num_exponents, transient_steps) -> LyapunovSpectrum:
    """The QR iteration over the step intervals [times[n], times[n+1]]; the first
    `transient_steps` are run and discarded, the remaining `num_steps` (the rest of `times`)
    averaged."""
    y0 = jnp.asarray(y0)
    if y0.ndim != 1:
        raise ValueError(f"The state must be 1-D, shape (d,), got shape {y0.shape}. Flatten it, or vmap over a batch.")
    if not jnp.issubdtype(y0.dtype, jnp.floating):
        # An integer start (e.g. jnp.zeros(2, int)) would fix the scan carry to integers.
        y0 = y0.astype(float)
    dimension = y0.shape[0]
    if num_exponents is None:
        num_exponents = dimension
    if not (isinstance(num_exponents, int) and 1 <= num_exponents <= dimension):
        raise ValueError(f"num_exponents must be an integer from 1 to the state dimension {dimension}, got {num_exponents!r}.")

    def qr_step(carry, interval):
        state, basis = carry
        t, t_next = interval

        def push(tangent):
            return jax.jvp(lambda y: step(t, t_next, y), (state,), (tangent,))

        # The next state does not depend on the tangent, so it is computed once (out_axes None).
        next_state, pushed = jax.vmap(push, in_axes=1, out_axes=(None, 1))(basis)
        if next_state.shape != state.shape or next_state.dtype != state.dtype:
            raise ValueError(
                f"The step must map a state of shape {state.shape} and dtype {state.dtype} to one of "
                f"the same shape and dtype; it returned shape {next_state.shape}, dtype {next_state.dtype}."
            )
        next_basis, triangle = jnp.linalg.qr(pushed)
        return (next_state, next_basis), jnp.log(jnp.abs(jnp.diagonal(triangle)))

    carry = (y0, jnp.eye(dimension, num_exponents, dtype=y0.dtype))
    starts, ends = times[:-1], times[1:]
    if transient_steps > 0:
        # The transient keeps only the carry: its log-stretches are never stored.
        carry, _ = jax.lax.scan(
            lambda carry, interval: (qr_step(carry, interval)[0], None),
            carry,
            (starts[:transient_steps], ends[:transient_steps]),
        )
    _, log_stretches = jax.lax.scan(qr_step, carry, (starts[transient_steps:], ends[transient_steps:]))
    local_exponents = log_stretches / step_size
    return LyapunovSpectrum(
        exponents=jnp.mean(local_exponents, axis=0),
        local_exponents=local_exponents,
        time=num_steps * step_size,
    )
