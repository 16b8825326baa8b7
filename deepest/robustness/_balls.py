"""Geometry of the ε-balls {δ : ‖δ‖ ≤ ε} the attacks search: steepest-ascent directions,
projections and uniform samples, for the L∞ and L2 norms. All act on one sample; the norm is
that of the flattened array.
"""

import jax
import jax.numpy as jnp


def l2_norm(value):
    """‖value‖₂ of the flattened array."""
    return jnp.sqrt(jnp.sum(value**2))


def _unit(value):
    """value / ‖value‖₂, and 0 for a zero value (no direction to follow)."""
    norm = l2_norm(value)
    return jnp.where(norm > 0, value / jnp.where(norm > 0, norm, 1), 0)


def steepest_ascent(gradient, norm: str):
    """argmax over ‖d‖ ≤ 1 of ⟨gradient, d⟩: sign(g) for L∞, g/‖g‖₂ for L2."""
    return jnp.sign(gradient) if norm == "linf" else _unit(gradient)


def project(offset, epsilon, norm: str):
    """The point of the ε-ball nearest to `offset` (in the ball's own norm)."""
    if norm == "linf":
        return jnp.clip(offset, -epsilon, epsilon)
    length = l2_norm(offset)
    return offset * jnp.minimum(1, epsilon / jnp.where(length > 0, length, 1))


def uniform_in_ball(key, shape, dtype, epsilon, norm: str):
    """A point drawn uniformly from the ε-ball: uniform per coordinate for L∞; for L2 a
    Gaussian direction with radius ε U^(1/n), n the dimension, so that volume is uniform."""
    if norm == "linf":
        return jax.random.uniform(key, shape, dtype, -1, 1) * epsilon
    direction_key, radius_key = jax.random.split(key)
    direction = _unit(jax.random.normal(direction_key, shape, dtype))
    radius = jax.random.uniform(radius_key, (), dtype) ** (1 / direction.size)
    return epsilon * radius * direction


def uniform_on_sphere(key, shape, dtype, epsilon):
    """A point drawn uniformly from the L2 sphere of radius ε."""
    return epsilon * _unit(jax.random.normal(key, shape, dtype))
