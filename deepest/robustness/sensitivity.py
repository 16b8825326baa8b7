"""Measured perturbation growth through a solver-network: linearised per layer, and the
worst finite perturbation of the initial state found by projected gradient ascent.

Both act on the state-to-state map y_0 ↦ y_L (encoder and readout excluded), computed by
the net's own layer maps y_{k+1} = Φ_h(t_k, y_k), the same numbers as its solve. They are
what `gronwall_bound` bounds.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ..layers import check_batch, check_one_step, layer_chain, layer_step, layer_times
from ..network import SolverNet
from . import _balls
from ._classifier import check_epsilon, check_positive_integer


class PerturbationGrowth(eqx.Module):
    """‖δy_k‖/‖δy_0‖ of linearised perturbations through depth.

    Fields:
        growth: (batch, num_steps + 1) for k = 0 … L (1 at k = 0); NaN for a zero direction.
        times: (num_steps + 1,) the layer times t_k.
    """

    growth: Float[Array, "batch steps_plus_one"]
    times: Float[Array, " steps_plus_one"]

    @property
    def final(self) -> Float[Array, " batch"]:
        """‖δy_L‖/‖δy_0‖."""
        return self.growth[:, -1]


def perturbation_growth(net: SolverNet, xs, directions) -> PerturbationGrowth:
    """Growth ‖δy_k‖/‖δy_0‖ of the first-order perturbation δy_{k+1} = (∂y_{k+1}/∂y_k) δy_k.

    Each layer's Jacobian-vector product comes from `jax.jvp` through one solver step, so
    the growth is exact for the linearised discrete net (no finite differences).

    Args:
        net: a fixed-step SolverNet with a one-step solver.
        xs: inputs, shape (batch, ...).
        directions: δy_0, shape (batch, state_dim): perturbations of the initial states.

    Returns:
        A `PerturbationGrowth`.

    Example:
        >>> directions = jax.random.normal(key, (len(xs), net.field.state_dim))
        >>> deepest.robustness.perturbation_growth(net, xs, directions).final
    """
    check_one_step(net, "perturbation_growth")
    xs = check_batch(xs, "perturbation_growth")
    directions = jnp.asarray(directions)
    expected = (xs.shape[0], net.field.state_dim)
    if directions.shape != expected:
        raise ValueError(f"directions must be one perturbation of the initial state per sample, shape {expected}; got shape {directions.shape}.")
    return _perturbation_growth(net, xs, directions)


@eqx.filter_jit
def _perturbation_growth(net, xs, directions):
    times = layer_times(net)

    def one_sample(x, direction):
        def one_layer(carry, interval):
            state, tangent = carry

            def step(y):
                return layer_step(net, net.field, interval[0], interval[1], y)

            state, tangent = jax.jvp(step, (state,), (tangent,))
            return (state, tangent), _balls.l2_norm(tangent)

        _, norms = jax.lax.scan(one_layer, (net.encode(x), direction.astype(x.dtype)), (times[:-1], times[1:]))
        initial = _balls.l2_norm(direction)
        return jnp.concatenate([initial[None], norms]) / initial

    return PerturbationGrowth(growth=jax.vmap(one_sample)(xs, directions), times=times)


class EmpiricalSensitivity(eqx.Module):
    """The largest growth of a finite perturbation of the initial state that the search found.

    Fields:
        growth: (batch,) ‖y_L(y_0 + δ) − y_L(y_0)‖ / ‖δ‖ at the best δ: a lower bound on the
            worst growth in the ball, which tends to ‖∂y_L/∂y_0‖₂ as epsilon → 0.
        perturbation: (batch, state_dim) that δ.
        epsilon: (batch,) the radius of each sample's searched ball.
    """

    growth: Float[Array, " batch"]
    perturbation: Float[Array, "batch state_dim"]
    epsilon: Float[Array, " batch"]


def empirical_sensitivity(net: SolverNet, xs, *, epsilon, num_steps: int = 50, step_size=None, key) -> EmpiricalSensitivity:
    """The worst perturbation growth of y_0 ↦ y_L in a small L2 ball, by projected gradient ascent.

    Maximises ½‖y_L(y_0 + δ) − y_L(y_0)‖² over ‖δ‖₂ ≤ ε from a random δ on the sphere:
    δ ← Π_ε(δ + α ∇/‖∇‖). For small ε the gradient is JᵀJδ (J = ∂y_L/∂y_0), and with α = ε
    the normalised step and projection are a shifted power iteration on JᵀJ, converging to
    the top singular direction at rate (σ₁² + σ₂²)/(2σ₁²) per step. The best growth over all
    iterates is kept.

    Args:
        net: a fixed-step SolverNet with a one-step solver.
        xs: inputs, shape (batch, ...).
        epsilon: the ball's radius, positive, a number or one per sample (small: the result
            then measures the linearised net; larger: its nonlinear response).
        num_steps: ascent steps.
        step_size: α, a number or one per sample; default ε.
        key: PRNG key of the random starting directions.

    Returns:
        An `EmpiricalSensitivity`.

    Example:
        >>> deepest.robustness.empirical_sensitivity(net, xs, epsilon=1e-3, key=key).growth
    """
    check_one_step(net, "empirical_sensitivity")
    xs = check_batch(xs, "empirical_sensitivity")
    check_positive_integer(num_steps, "num_steps")
    radius = check_epsilon(epsilon, xs, "epsilon", positive=True)
    step = radius if step_size is None else check_epsilon(step_size, xs, "step_size", positive=True)
    growth, perturbation = _empirical_sensitivity(net, xs, radius, step, key, num_steps)
    return EmpiricalSensitivity(growth=growth, perturbation=perturbation, epsilon=jnp.asarray(radius))


@eqx.filter_jit
def _empirical_sensitivity(net, xs, radius, step, key, num_steps):
    def one_sample(x, budget, step_length, key):
        y0 = net.encode(x)
        reference = layer_chain(net, y0)

        def half_squared_change(offset):
            return jnp.sum((layer_chain(net, y0 + offset) - reference) ** 2) / 2

        value_and_gradient = jax.value_and_grad(half_squared_change)

        def growth_of(value, offset):
            return jnp.sqrt(2 * value) / _balls.l2_norm(offset)

        def ascend(carry, _):
            offset, best, best_growth = carry
            value, gradient = value_and_gradient(offset)
            growth = growth_of(value, offset)
            better = growth > best_growth
            best = jnp.where(better, offset, best)
            best_growth = jnp.where(better, growth, best_growth)
            moved = _balls.project(offset + step_length * _balls.steepest_ascent(gradient, "l2"), budget, "l2")
            return (moved, best, best_growth), None

        start = _balls.uniform_on_sphere(key, y0.shape, y0.dtype, budget)
        initial = (start, start, jnp.array(-jnp.inf, y0.dtype))
        (last, best, best_growth), _ = jax.lax.scan(ascend, initial, length=num_steps)
        last_growth = growth_of(half_squared_change(last), last)
        better = last_growth > best_growth
        return jnp.where(better, last_growth, best_growth), jnp.where(better, last, best)

    return jax.vmap(one_sample)(xs, radius, step, jax.random.split(key, xs.shape[0]))
