"""Grönwall-type bounds on how much a solver-network amplifies a perturbation of its state.

A perturbation δy_0 of the initial state y_0 (the encoded input) reaches the final state, to
first order, as δy_L = J_{L−1} ⋯ J_0 δy_0 with J_k = ∂y_{k+1}/∂y_k the Jacobian of layer k at
the state y_k it receives. Two bounds on the growth ‖δy_L‖/‖δy_0‖ follow:

- discrete: ‖J_{L−1} ⋯ J_0‖₂ ≤ Π_k ‖J_k‖₂, by submultiplicativity. This is a rigorous bound on
  the net's input–output Jacobian ∂y_L/∂y_0, i.e. on the first-order growth of every
  perturbation of the discrete network, whatever its solver and step;
- continuous: the exact flow's linearisation δ' = ∂f/∂y(t, y(t)) δ obeys
  ‖δ(T)‖ ≤ exp(∫ μ₂(∂f/∂y(t, y(t))) dt) ‖δ(0)‖, μ₂(J) = λ_max((J + Jᵀ)/2) the logarithmic
  norm (Dahlquist 1958; Söderlind 2006). Here the integral is the left-rectangle sum
  h Σ_k μ₂(∂f/∂y(t_k, y_k)) over the net's own states y_k. That makes it an approximation of
  the flow's bound, exact when μ₂ is constant along the trajectory (a linear field y' = Ay:
  exp(T μ₂(A)) ≥ ‖exp(TA)‖₂). It is not a bound for the discrete net: an Euler layer has
  ‖I + hJ‖₂ ≥ 1 + h μ₂(J), which may exceed exp(h μ₂(J)) by far (J = −3I, h = 1: 2 > e^{−3}).

Both ignore the encoder and readout: they bound the state-to-state map y_0 ↦ y_L.

References: Söderlind, "The logarithmic norm. History and modern theory" (BIT 2006); Haber &
Ruthotto, "Stable architectures for deep neural networks" (2017, arXiv:1705.03341).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._batched_linalg import singular_values, symmetric_eigenvalues
from ..layers import check_batch, check_one_step, layer_step, layer_times
from ..network import SolverNet


def _cumulative(factors):
    """(batch, L) per-layer factors → (batch, L + 1) running products, starting from 1."""
    return jnp.concatenate([jnp.ones_like(factors[:, :1]), jnp.cumprod(factors, axis=-1)], axis=-1)


class GronwallBound(eqx.Module):
    """Per-layer ingredients and the two growth bounds (see the module docstring).

    Fields:
        log_norm: (batch, num_steps) μ₂(∂f/∂y(t_k, y_k)) at each layer's input state (the
            `log_norm` of `deepest.analysis.jacobian_spectrum`, dense).
        step_norms: (batch, num_steps) ‖∂y_{k+1}/∂y_k‖₂, the layer maps' spectral norms (the
            `spectral_norm` of `deepest.analysis.layer_map_spectrum`, dense).
        times: (num_steps,) the layer times t_k.
        step_size: h.
    """

    log_norm: Float[Array, "batch steps"]
    step_norms: Float[Array, "batch steps"]
    times: Float[Array, " steps"]
    step_size: float = eqx.field(static=True)

    @property
    def discrete(self) -> Float[Array, " batch"]:
        """Π_k ‖∂y_{k+1}/∂y_k‖₂ ≥ ‖∂y_L/∂y_0‖₂: a rigorous first-order growth bound of the net."""
        return jnp.prod(self.step_norms, axis=-1)

    @property
    def discrete_per_layer(self) -> Float[Array, "batch steps_plus_one"]:
        """Π_{j<k} ‖∂y_{j+1}/∂y_j‖₂ ≥ ‖∂y_k/∂y_0‖₂ for k = 0 … L."""
        return _cumulative(self.step_norms)

    @property
    def continuous(self) -> Float[Array, " batch"]:
        """exp(h Σ_k μ₂(J_k)): the quadrature of the flow's Grönwall bound exp(∫ μ₂ dt)."""
        return jnp.exp(self.step_size * jnp.sum(self.log_norm, axis=-1))

    @property
    def continuous_per_layer(self) -> Float[Array, "batch steps_plus_one"]:
        """exp(h Σ_{j<k} μ₂(J_j)) for k = 0 … L."""
        return _cumulative(jnp.exp(self.step_size * self.log_norm))


def gronwall_bound(net: SolverNet, xs) -> GronwallBound:
    """The discrete and continuous Grönwall bounds along the trajectories of a batch.

    One pass through the net's layer maps (the same numbers as its solve) gives each state
    y_k, the field's Jacobian there and the layer map's Jacobian, both by forward mode. The
    norms are exact (dense LAPACK): a Krylov estimate of ‖J_k‖₂ approaches from below and
    would void the bound. The cost is O(d³) per layer and sample for state dimension d.

    Args:
        net: a fixed-step SolverNet with a one-step solver.
        xs: inputs, shape (batch, ...).

    Returns:
        A `GronwallBound`; `.discrete` and `.continuous` are the bounds per sample.

    Example:
        >>> bound = deepest.robustness.gronwall_bound(net, xs)
        >>> bound.discrete, bound.continuous
    """
    check_one_step(net, "gronwall_bound")
    field_jacobians, step_jacobians = _layer_jacobians(net, check_batch(xs, "gronwall_bound"))
    # The batched LAPACK calls run outside jit (see deepest._batched_linalg).
    symmetric_parts = (field_jacobians + jnp.swapaxes(field_jacobians, -1, -2)) / 2
    return GronwallBound(
        log_norm=symmetric_eigenvalues(symmetric_parts)[..., -1],
        step_norms=singular_values(step_jacobians)[..., 0],
        times=layer_times(net)[:-1],
        step_size=net.step_size,
    )


@eqx.filter_jit
def _layer_jacobians(net, xs):
    """∂f/∂y and ∂y_{k+1}/∂y_k at every layer state of every sample: (batch, layers, d, d) each."""
    times = layer_times(net)

    def one_sample(x):
        def one_layer(state, interval):
            t, t_next = interval

            def step(y):
                next_state = layer_step(net, net.field, t, t_next, y)
                return next_state, next_state

            step_jacobian, next_state = jax.jacfwd(step, has_aux=True)(state)
            field_jacobian = jax.jacfwd(lambda y: net.field(t, y, None))(state)
            return next_state, (field_jacobian, step_jacobian)

        _, jacobians = jax.lax.scan(one_layer, net.encode(x), (times[:-1], times[1:]))
        return jacobians

    return jax.vmap(one_sample)(xs)
