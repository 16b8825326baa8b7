"""Regularisers of solver-networks, measured on the net's own discretisation.

Each is a pure function `regulariser(net, xs, ...) -> scalar`, the batch mean of a
per-sample value (weight smoothness depends on the weights only), to be added to a loss as
`loss + weight * regulariser(net, xs)` inside `eqx.filter_value_and_grad`. All work under
`jit`, `vmap` and `grad`; the random one takes a keyword-only `key`.

The quadrature is the net's own: a fixed-step net with L layers of step h evaluates the
field at its layer times t_k = t0 + k h and at the states y_k it actually computes
(its layer maps chained, one step of its diffrax solver each: the numbers of
`net.trajectory`), and ∫ g dt becomes the left Riemann sum Σ_{k<L} h g(t_k, y_k). The states
are differentiated through the discrete steps whatever the net's adjoint (the
discretise-then-optimise gradient of the regulariser).

| name               | per-sample value                                 | nets              |
|--------------------|--------------------------------------------------|-------------------|
| kinetic_energy     | Σ_k h ‖f(t_k, y_k)‖²                             | fixed steps       |
| jacobian_frobenius | Σ_k h ‖∂f/∂y(t_k, y_k)‖_F² (Hutchinson or exact) | fixed steps       |
| weight_smoothness  | Σ_k ‖θ_{k+1} − θ_k‖² / h  (no data)              | `PerLayer` fields |
| spectral_penalty   | mean relu(growth(h λ) − 1 + margin)²             | fixed steps       |
| local_error        | Σ_j ‖embedded error estimate of step j‖²         | embedded pairs    |
| lyapunov           | (1/T) ln σ_max(∂y_L/∂y_0)                        | fixed steps       |
| io_condition       | ln(σ_max/σ_min) of ∂y_L/∂y_0                     | fixed steps       |

References: Finlay et al., "How to train your neural ODE: the world of Jacobian and kinetic
regularization" (2020, arXiv:2002.02798); Haber & Ruthotto, "Stable architectures for deep
neural networks" (2017, arXiv:1705.03341); Pal et al., "Opening the blackbox: accelerating
neural differential equations by regularizing internal solver heuristics" (2021,
arXiv:2105.03918); Pennington, Schoenholz & Ganguli, "Resurrecting the sigmoid in deep
learning through dynamical isometry" (2017, arXiv:1711.04735).
"""

import dataclasses
import functools
from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from . import stability
from .fields import PerLayer
from .layers import check_batch, layer_chain, layer_step, layer_times, solver_step_with_error
from .network import SolverNet
from .solvers import MULTISTEP, SOLVERS, supports_adaptive

PROBES = ("rademacher", "gaussian")
# The largest state whose input–output Jacobian `lyapunov` and `io_condition` form: state_dim
# Jacobian–vector products through the whole net and a dense O(d³) SVD per sample and step of
# training, the dense limit of the analyses (`deepest.analysis.spectra.DENSE_LIMIT`).
DENSE_STATE_LIMIT = 256


def _check_fixed_steps(net: SolverNet, name: str) -> None:
    if net.num_steps is None:
        raise ValueError(
            f"{name} is measured on the layers of a fixed-step SolverNet, but this net is adaptive "
            f"(num_steps=None). Regularise a fixed-step version, e.g. "
            f"net.with_solver({net.solver!r}, num_steps=20), or use local_error, which works on adaptive nets."
        )


def _layer_states(net: SolverNet, xs, name: str):
    """The layer times t_0 … t_{L−1}, shape (L,), and the states y_0 … y_{L−1} that the
    layers receive, shape (batch, L, d): the left end of every step."""
    _check_fixed_steps(net, name)
    xs = check_batch(xs, name)
    times = layer_times(net)
    if net.solver in MULTISTEP:
        # A two-step method's layer also reads the previous state: take the net's own solve.
        if net.adjoint == "backsolve":
            # BacksolveAdjoint cannot differentiate the saved intermediate steps; the same
            # discrete solve, differentiated directly, gives the same states.
            net = net.with_solver(net.solver, adjoint="recursive_checkpoint")
        _, trajectory_states = jax.vmap(net.trajectory)(xs)
        return times[:-1], trajectory_states[:, :-1]

    # The layer maps chained: one step of the net's diffrax solver each, the numbers of its
    # solve, but faster to differentiate than diffeqsolve's checkpointed loop (measured,
    # value and gradient of Σ‖y_k‖²: 2.1 against 5.4 ms for Euler, 14 against 44 ms for RK4;
    # MLP field, d = 32, 20 layers, batch 128, float32, 2 shared CPU cores).
    def one_layer(y, interval):
        return layer_step(net, net.field, interval[0], interval[1], y), y

    def layer_inputs(x):
        return jax.lax.scan(one_layer, net.encode(x), (times[:-1], times[1:]))[1]

    return times[:-1], jax.vmap(layer_inputs)(xs)


def _over_layers(function, times, states, *per_state):
    """function(t_k, y_k, *extras) for every sample and layer, shape (batch, L, ...)."""
    in_axes = (None, 0) + (0,) * len(per_state)
    return jax.vmap(jax.vmap(function), in_axes=in_axes)(times, states, *per_state)


def kinetic_energy(net: SolverNet, xs) -> Float[Array, ""]:
    """The kinetic energy of the trajectories: ∫ ‖f(t, y(t))‖² dt ≈ Σ_{k<L} h ‖f(t_k, y_k)‖².

    The left Riemann sum on the net's layer grid. For explicit Euler f(t_k, y_k) =
    (y_{k+1} − y_k)/h, so the sum is Σ_k ‖y_{k+1} − y_k‖²/h, the discrete path energy: it
    favours straight trajectories travelled at constant speed (an optimal-transport path).

    Args:
        net: a fixed-step SolverNet.
        xs: inputs with a leading batch axis.

    Returns:
        The batch mean of the per-sample sum, a scalar.

    Example:
        >>> loss = loss + 0.01 * deepest.regularisers.kinetic_energy(net, xs)

    Reference: Finlay et al., "How to train your neural ODE" (2020, arXiv:2002.02798).
    """
    times, states = _layer_states(net, xs, "kinetic_energy")
    velocities = _over_layers(lambda t, y: net.field(t, y, None), times, states)
    return jnp.mean(net.step_size * jnp.sum(velocities**2, axis=(1, 2)))


def jacobian_frobenius(
    net: SolverNet,
    xs,
    *,
    num_probes: int = 1,
    probe: str = "rademacher",
    exact: bool = False,
    key: PRNGKeyArray | None = None,
) -> Float[Array, ""]:
    """The Jacobian's Frobenius norm along the trajectories: ∫ ‖∂f/∂y(t, y(t))‖_F² dt.

    Discretised as Σ_{k<L} h ‖J_k‖_F², J_k = ∂f/∂y(t_k, y_k), with the Hutchinson estimator
    ‖J‖_F² = E_ε ‖εᵀJ‖² for probes with E[εεᵀ] = I: each probe costs one vector–Jacobian
    product, and the estimate is unbiased for any number of probes. Every sample and layer
    draws its own `num_probes` probes, and the estimate averages them.

    Args:
        net: a fixed-step SolverNet.
        xs: inputs with a leading batch axis.
        num_probes: probes per sample and layer (≥ 1); the variance falls as 1/num_probes.
        probe: "rademacher" (entries ±1, the smaller variance) or "gaussian" (N(0, 1)).
        exact: form each Jacobian (state_dim Jacobian–vector products) and sum its squares
            instead; for small states and for checking the estimate. Ignores `key`.
        key: PRNG key of the probes; required unless `exact`.

    Returns:
        The batch mean of the per-sample sum, a scalar.

    Example:
        >>> key, probe_key = jax.random.split(key)
        >>> loss = loss + 0.01 * deepest.regularisers.jacobian_frobenius(net, xs, key=probe_key)

    References: Finlay et al., "How to train your neural ODE" (2020, arXiv:2002.02798);
    Hutchinson, "A stochastic estimator of the trace of the influence matrix for Laplacian
    smoothing splines" (1989).
    """
    if probe not in PROBES:
        raise ValueError(f"Unknown probe {probe!r}. Valid probes are: {', '.join(PROBES)}.")
    if not (isinstance(num_probes, int) and num_probes >= 1):
        raise ValueError(f"num_probes must be a positive integer, got {num_probes!r}.")
    if key is None and not exact:
        raise ValueError("jacobian_frobenius draws random Hutchinson probes: pass key=jax.random.PRNGKey(...), or exact=True to form the Jacobians.")
    times, states = _layer_states(net, xs, "jacobian_frobenius")

    if exact:

        def squared_norm(t, y):
            return jnp.sum(jax.jacfwd(lambda state: net.field(t, state, None))(y) ** 2)

        squared_norms = _over_layers(squared_norm, times, states)
    else:
        assert key is not None  # refused above, before any work
        shape = (*states.shape[:2], num_probes, states.shape[-1])
        if probe == "rademacher":
            probes = jax.random.rademacher(key, shape, dtype=states.dtype)
        else:
            probes = jax.random.normal(key, shape, dtype=states.dtype)

        def estimate(t, y, epsilons):
            _, pullback = jax.vjp(lambda state: net.field(t, state, None), y)
            rows = jax.vmap(lambda epsilon: pullback(epsilon)[0])(epsilons)
            return jnp.mean(jnp.sum(rows**2, axis=-1))

        squared_norms = _over_layers(estimate, times, states, probes)
    return jnp.mean(net.step_size * jnp.sum(squared_norms, axis=1))


def weight_smoothness(net: SolverNet, xs=None) -> Float[Array, ""]:
    """Smoothness in time of per-layer weights: Σ_{k=0}^{L−2} ‖θ_{k+1} − θ_k‖² / h.

    θ_k are the weights of layer k of a `deepest.fields.PerLayer` field (every inexact array
    of `field.stacked`, each along its leading layer axis) and h = (t1 − t0)/num_layers is
    the spacing of that field's own layer grid. It is h Σ_k ‖(θ_{k+1} − θ_k)/h‖², the
    discrete ∫ ‖θ'(t)‖² dt: it stays bounded as the layers are refined only if θ(t) has a
    square-integrable derivative, so it favours weights that vary smoothly with depth. It
    does not depend on the data or the solver, so it also applies to adaptive nets.

    Args:
        net: a SolverNet whose field is a `deepest.fields.PerLayer`.
        xs: ignored; accepted so that every regulariser is called as regulariser(net, xs).

    Returns:
        A scalar.

    Example:
        >>> field = deepest.fields.PerLayer([deepest.fields.MLP(2, 16, 1, key=k) for k in keys])
        >>> loss = loss + 1e-3 * deepest.regularisers.weight_smoothness(net, xs)

    Reference: Haber & Ruthotto, "Stable architectures for deep neural networks" (2017,
    arXiv:1705.03341), their regulariser of smoothness in time (up to a constant factor,
    which the weight absorbs).
    """
    del xs
    field = net.field
    if not isinstance(field, PerLayer):
        raise ValueError(
            f"weight_smoothness needs per-layer weights, a net whose field is a deepest.fields.PerLayer; "
            f"got a field of type {type(field).__name__}, whose weights do not change with depth."
        )
    spacing = (field.t1 - field.t0) / field.num_layers
    weights = jax.tree.leaves(eqx.filter(field.stacked, eqx.is_inexact_array))
    return jnp.asarray(sum(jnp.sum(jnp.diff(weight, axis=0) ** 2) for weight in weights) / spacing)


def spectral_penalty(net: SolverNet, xs, *, margin: float = 0.0) -> Float[Array, ""]:
    """Pushes every h·λ of the layers' Jacobians into the solver's stability region.

        P = mean over samples, layers k < L and λ ∈ spec(∂f/∂y(t_k, y_k)) of
            relu(G(hλ) − (1 − margin))²,

    G the solver's growth factor (`deepest.stability.growth_factor`: |R(hλ)| for one-step
    methods, |1 + hλ| for Euler). P = 0 exactly when every h·λ lies in the region
    {G ≤ 1 − margin}, and is differentiable wherever the eigenvalues are simple: penalised
    eigenvalues are drawn to the boundary, no further. It reads the linearisation of the field frozen at each
    layer, the stability theory of `deepest.analysis.jacobian_spectrum`, not the
    amplification of the nonlinear layer map.

    Gradients come from the first-order perturbation of simple eigenvalues, dλ_i =
    (V⁻¹ dJ V)_ii with V the eigenvectors, which JAX's `jnp.linalg.eigvals` differentiates
    (JAX 0.10 lowers it on CPU and, through cuSOLVER or MAGMA, on CUDA GPUs; measured on CPU).
    On 2000 random 4×4 matrices the float32 gradient of a penalty of this form agrees with
    the float64 one to 1.2e-5 relative at worst. The derivative is unbounded near a
    collision of two real eigenvalues (where they turn into a complex pair, dλ ∝
    1/√distance) and undefined at a defective matrix, where JAX returns a finite but
    meaningless value (zero at the Jordan block [[0, 1], [0, 0]]); clip gradients if
    training meets one. Costs one dense eigenvalue problem, O(d³), per sample and layer.

    Args:
        net: a fixed-step SolverNet.
        xs: inputs with a leading batch axis.
        margin: the penalty starts at growth 1 − margin (< 1). A positive margin pushes h·λ
            strictly inside the region (and penalises λ = 0, whose growth is exactly 1, by
            margin²); a negative one tolerates growth up to 1 + |margin|.

    Returns:
        A scalar.

    Example:
        >>> loss = loss + 1.0 * deepest.regularisers.spectral_penalty(net, xs, margin=0.05)

    References: Haber & Ruthotto, "Stable architectures for deep neural networks" (2017,
    arXiv:1705.03341) (stability of the forward propagation from the eigenvalues of the
    Jacobian); Hairer & Wanner, Solving ODEs II (1996), IV.2 (stability functions).
    """
    if not margin < 1:
        raise ValueError(f"margin must be below 1 (the penalty starts at growth 1 − margin ≥ 0), got {margin}.")
    times, states = _layer_states(net, xs, "spectral_penalty")
    jacobians = _over_layers(jax.jacfwd(lambda t, y: net.field(t, y, None), argnums=1), times, states)
    growth = stability.growth_factor(net.solver, net.step_size * jnp.linalg.eigvals(jacobians))
    return jnp.mean(jax.nn.relu(growth - (1 - margin)) ** 2)


def _embedded_step(net: SolverNet, t, t_next, y):
    """One step of the net's solver from (t, y) to t_next: the new state and the embedded
    error estimate `y_error`."""
    return solver_step_with_error(net.solver, net.field, t, t_next, y, root_rtol=net.root_rtol, root_atol=net.root_atol)


def local_error(net: SolverNet, xs, *, num_steps: int | None = None) -> Float[Array, ""]:
    """The solver's embedded local error estimates along the trajectory: Σ_j ‖e_j‖².

    e_j = h Σ_i (b_i − b̂_i) k_i is the difference between the two solutions of the
    solver's embedded Runge–Kutta pair over one step of size h from (t_j, y(t_j)): the
    `y_error` that diffrax's `solver.step` returns and an adaptive controller compares with
    its tolerance. For a method whose embedded solution has order p̂ it is O(h^{p̂+1}) times
    the solution's (p̂+1)-th derivative, so a small sum marks dynamics that an adaptive
    solver crosses in few steps.

    - Fixed-step net (`num_steps` None or equal to the net's): the net's own steps, from the
      states y_k it computes, j = k = 0 … L − 1.
    - Adaptive net: the uniform grid t_j = t0 + j h, h = (t1 − t0)/num_steps, with y(t_j) the
      net's own adaptive solution there (diffrax's dense output, differentiated with the
      net's adjoint), and one step of size h from each.

    This is a differentiable proxy for the cost of an adaptive solve, not that cost: the
    number of steps an adaptive solver takes is an integer, without a gradient, and the
    errors of its accepted steps are held near the tolerance by construction. Pal et al. sum the
    estimates of the accepted steps instead; on a fixed grid the sum has a static shape and
    works under jit.

    Args:
        net: a SolverNet whose solver has an embedded error estimate (e.g. bosh3, tsit5,
            dopri5, dopri8, kvaerno3, kvaerno5; `deepest.supports_adaptive`).
        xs: inputs with a leading batch axis.
        num_steps: steps of the grid; required for adaptive nets.

    Returns:
        The batch mean of the per-sample sum, a scalar.

    Example:
        >>> net = deepest.SolverNet(field, solver="tsit5", num_steps=None, rtol=1e-4)
        >>> loss = loss + 10.0 * deepest.regularisers.local_error(net, xs, num_steps=8)

    Reference: Pal et al., "Opening the blackbox: accelerating neural differential equations
    by regularizing internal solver heuristics" (2021, arXiv:2105.03918).
    """
    if not supports_adaptive(net.solver) or net.solver in MULTISTEP:
        pairs = [name for name in SOLVERS if supports_adaptive(name) and name not in MULTISTEP]
        raise ValueError(f"local_error needs a one-step solver with an embedded error estimate, got {net.solver!r}. Use one of: {', '.join(pairs)}.")
    xs = check_batch(xs, "local_error")
    if net.num_steps is not None:
        if num_steps not in (None, net.num_steps):
            raise ValueError(
                f"A fixed-step net's error estimates are those of its own {net.num_steps} steps; got "
                f"num_steps={num_steps}. Leave num_steps out, or change the net: "
                f"net.with_solver({net.solver!r}, num_steps={num_steps})."
            )
        times = layer_times(net)

        def one_step(y, interval):
            return _embedded_step(net, interval[0], interval[1], y)

        def errors_along(x):
            return jax.lax.scan(one_step, net.encode(x), (times[:-1], times[1:]))[1]

        errors = jax.vmap(errors_along)(xs)
    else:
        if not (isinstance(num_steps, int) and num_steps >= 1):
            raise ValueError(
                f"An adaptive net (num_steps=None) has no fixed steps: local_error needs num_steps, a "
                f"positive integer, for the grid it re-steps along the trajectory; got {num_steps!r}."
            )
        step_size = (net.t1 - net.t0) / num_steps
        starts = jnp.linspace(net.t0, net.t1, num_steps + 1)[:-1]
        saveat = diffrax.SaveAt(ts=starts)
        states = jax.vmap(lambda x: net.solve(x, saveat).ys)(xs)
        errors = _over_layers(lambda t, y: _embedded_step(net, t, t + step_size, y)[1], starts, states)
    return jnp.mean(jnp.sum(errors**2, axis=(1, 2)))


def _io_singular_values(net: SolverNet, xs, name: str):
    """σ_1 ≥ … ≥ σ_d of the state-to-state Jacobian ∂y_L/∂y_0 of each sample, (batch, d).

    Forward mode through the net's own steps (d Jacobian–vector products per sample), then
    JAX's SVD, whose derivative dσ_i = u_iᵀ dJ v_i the gradient of a regulariser needs."""
    _check_fixed_steps(net, name)
    xs = check_batch(xs, name)
    if net.field.state_dim > DENSE_STATE_LIMIT:
        raise ValueError(
            f"{name} forms the dense Jacobian ∂y_L/∂y_0 of every sample, for states of at most "
            f"DENSE_STATE_LIMIT = {DENSE_STATE_LIMIT} dimensions; this net's state has {net.field.state_dim}. "
            f"Use a smaller state, or a regulariser of the layers such as jacobian_frobenius or spectral_penalty."
        )
    if net.solver in MULTISTEP:
        # A two-step method has no layer map of y_k alone: differentiate the net's own solve,
        # a scan of its explicit steps under the checkpointed adjoint (forward mode and
        # reverse over it both work there, not through diffrax's adjoints).
        flow = dataclasses.replace(net, encoder=None, adjoint="recursive_checkpoint").final_state
    else:
        flow = functools.partial(layer_chain, net)
    jacobians = jax.vmap(jax.jacfwd(flow))(jax.vmap(net.encode)(xs))
    return jnp.linalg.svd(jacobians, compute_uv=False)


def lyapunov(net: SolverNet, xs) -> Float[Array, ""]:
    """The top finite-time Lyapunov exponent of the net: λ_1 = (1/T) ln σ_max(∂y_L/∂y_0).

    T = t1 − t0 is the depth and σ_max = ‖∂y_L/∂y_0‖₂ the largest stretching of a
    perturbation of the initial state y_0 = encode(x) by the whole discrete net (the first
    of `deepest.analysis.io_jacobian_singular_values(net, xs).lyapunov_exponents`). A
    penalty on it pushes the net towards non-expansive flows, λ_1 ≤ 0, along which no input
    perturbation grows: the stability of the forward propagation that Haber & Ruthotto ask
    of a deep net. Unlike `spectral_penalty` it measures the nonlinear net itself, not the
    linearisation of each layer, and it is not clipped at 0: a weight rewards contraction too.

    The Jacobian is formed by d forward-mode products through the net's steps (its own
    solve for the two-step solvers), so d ≤ `DENSE_STATE_LIMIT`. The gradient is
    dλ_1 = u_1ᵀ dJ v_1 / (T σ_max) with u_1, v_1 the top singular vectors: exact where σ_max
    is simple. Where it is repeated (at J = I, e.g. a field that starts at zero) it is one
    subgradient of the convex σ_max, the one of the vectors LAPACK returns.

    Args:
        net: a fixed-step SolverNet.
        xs: inputs with a leading batch axis.

    Returns:
        The batch mean of λ_1, a scalar (−inf for a sample whose Jacobian is zero).

    Example:
        >>> loss = loss + 0.1 * deepest.regularisers.lyapunov(net, xs)

    References: Haber & Ruthotto, "Stable architectures for deep neural networks" (2017,
    arXiv:1705.03341); Storm et al., "Finite-time Lyapunov exponents of deep neural
    networks" (2024, arXiv:2306.12548).
    """
    values = _io_singular_values(net, xs, "lyapunov")
    return jnp.mean(jnp.log(values[:, 0])) / (net.t1 - net.t0)


def io_condition(net: SolverNet, xs) -> Float[Array, ""]:
    """The log condition number of the input–output Jacobian: ln(σ_max/σ_min) of ∂y_L/∂y_0.

    It is 0 exactly when every singular value of ∂y_L/∂y_0 is the same, the dynamical
    isometry of Pennington et al. (σ_i all 1 up to a scale): a perturbation of the initial
    state, and the gradient carried back to it, is stretched equally in every direction, so
    that neither vanishes or explodes along some directions only. ln σ_max − ln σ_min =
    T (λ_1 − λ_d), the spread of the finite-time Lyapunov exponents.

    The Jacobian is formed as in `lyapunov` (d ≤ `DENSE_STATE_LIMIT`). The gradient is
    u_1ᵀ dJ v_1/σ_max − u_dᵀ dJ v_d/σ_min: exact where σ_max and σ_min are simple (and
    distinct); where either is repeated, the one of the vectors LAPACK returns. A singular
    Jacobian (σ_min = 0, e.g. dead ReLUs across a whole layer) gives +inf and NaN gradients.

    Args:
        net: a fixed-step SolverNet.
        xs: inputs with a leading batch axis.

    Returns:
        The batch mean of ln(σ_max/σ_min), a scalar ≥ 0.

    Example:
        >>> loss = loss + 0.01 * deepest.regularisers.io_condition(net, xs)

    References: Pennington, Schoenholz & Ganguli, "Resurrecting the sigmoid in deep learning
    through dynamical isometry" (2017, arXiv:1711.04735); Haber & Ruthotto (2017,
    arXiv:1705.03341).
    """
    values = _io_singular_values(net, xs, "io_condition")
    return jnp.mean(jnp.log(values[:, 0]) - jnp.log(values[:, -1]))


REGULARISERS: dict[str, Callable] = {
    "kinetic_energy": kinetic_energy,
    "jacobian_frobenius": jacobian_frobenius,
    "weight_smoothness": weight_smoothness,
    "spectral_penalty": spectral_penalty,
    "local_error": local_error,
    "lyapunov": lyapunov,
    "io_condition": io_condition,
}
# The regularisers that draw random numbers and so take a keyword-only `key`.
RANDOM_REGULARISERS = ("jacobian_frobenius",)


def regulariser(name: str) -> Callable:
    """The regulariser called `name`; a ValueError lists the valid names.

    Example:
        >>> penalty = deepest.regularisers.regulariser("kinetic_energy")(net, xs)
    """
    if name not in REGULARISERS:
        raise ValueError(f"Unknown regulariser {name!r}. Valid regularisers are: {', '.join(REGULARISERS)}.")
    return REGULARISERS[name]
