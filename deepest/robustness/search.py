"""The smallest budget at which an attack succeeds, per sample, by bisection on ε."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from ._balls import l2_norm
from ._classifier import check_inputs, check_positive_integer, predict
from .fgsm import fgsm


class MinimalEpsilon(eqx.Module):
    """Per-sample minimal attack budgets.

    Fields:
        epsilon: (batch,) the smallest budget found at which the attack succeeds (the model
            predicts other than the label): the upper end of the final bisection bracket, so
            at most `tolerance` above a budget at which it failed. `low` where the attack
            already succeeds at `low` (e.g. a misclassified sample and low = 0); inf where it
            fails even at `high`.
        perturbation: (batch, ...) the attack's perturbation x' − x at `epsilon`; NaN where
            none was found.
        found: (batch,) whether the attack succeeded at `high` (or at `low`).
        tolerance: (high − low) / 2^num_bisections, the width of the final bracket.
    """

    epsilon: Float[Array, " batch"]
    perturbation: Float[Array, "batch ..."]
    found: Bool[Array, " batch"]
    tolerance: float = eqx.field(static=True)

    @property
    def perturbation_norm(self) -> Float[Array, " batch"]:
        """‖x' − x‖₂ per sample; inf where nothing was found, like `epsilon`."""
        return jnp.where(self.found, jax.vmap(l2_norm)(self.perturbation), jnp.inf)


def minimal_epsilon(model, xs, labels, *, attack=fgsm, low: float = 0.0, high: float, num_bisections: int = 20) -> MinimalEpsilon:
    """Bisect each sample's budget between `low` and `high` for the attack's success threshold.

    Success at ε means argmax model(attack(model, x, y, ε).adversarial) ≠ y. If the attack fails at a and
    succeeds at b, ε = (a + b)/2 replaces b on success and a on failure; after n bisections the
    bracket is (high − low)/2^n wide. The result is the smallest budget found, exact (to the
    tolerance) when success is monotone in ε, as for FGSM on an affine model; otherwise it is
    a budget at which the attack succeeds with a failure within `tolerance` below it.

    To measure how far the *prediction* flips rather than the label, pass
    `labels=deepest.robustness.predict(model, xs)`.

    Args:
        model: a classifier for one sample (see `deepest.robustness`).
        xs: inputs, shape (batch, ...).
        labels: integer labels, shape (batch,).
        attack: attack(model, xs, labels, epsilon) -> an `AbstractAttackResult`, with epsilon
            one per sample, shape (batch,), and traceable (every attack here is; bind options
            with `functools.partial(pgd, num_steps=20, key=key)`).
        low, high: the bracket, 0 ≤ low < high.
        num_bisections: halvings of the bracket.

    Returns:
        A `MinimalEpsilon`. The whole search is one jitted loop.

    Example:
        >>> found = deepest.robustness.minimal_epsilon(net, xs, labels, attack=deepest.robustness.fgsm, high=2.0)
        >>> deepest.robustness.adversarial_ratio(xs, found.perturbation)
    """
    xs, labels = check_inputs(xs, labels, "minimal_epsilon")
    check_positive_integer(num_bisections, "num_bisections")
    low, high = float(low), float(high)
    if not (0 <= low < high < jnp.inf):
        raise ValueError(f"minimal_epsilon needs finite budgets 0 ≤ low < high; got low={low!r}, high={high!r}.")
    tolerance = (high - low) / 2**num_bisections
    bracket = jnp.asarray(low, xs.dtype), jnp.asarray(high, xs.dtype)
    return _minimal_epsilon(attack, model, xs, labels, *bracket, num_bisections, tolerance)


@eqx.filter_jit
def _minimal_epsilon(attack, model, xs, labels, low, high, num_bisections, tolerance):
    def succeeds(budget):
        adversarial = attack(model, xs, labels, budget).adversarial
        return predict(model, adversarial) != labels, adversarial

    batch = xs.shape[0]
    lower, upper = jnp.full(batch, low), jnp.full(batch, high)
    success_low, adversarial_low = succeeds(lower)
    success_high, adversarial_high = succeeds(upper)

    def bisect(carry, _):
        lower, upper, best = carry
        middle = (lower + upper) / 2
        success, adversarial = succeeds(middle)
        upper = jnp.where(success, middle, upper)
        lower = jnp.where(success, lower, middle)
        best = jnp.where(_per_sample(success, best), adversarial, best)
        return (lower, upper, best), None

    (_, upper, best), _ = jax.lax.scan(bisect, (lower, upper, adversarial_high), length=num_bisections)
    epsilon = jnp.where(success_low, low, jnp.where(success_high, upper, jnp.inf))
    adversarial = jnp.where(_per_sample(success_low, xs), adversarial_low, best)
    found = success_low | success_high
    perturbation = jnp.where(_per_sample(found, xs), adversarial - xs, jnp.nan)
    return MinimalEpsilon(epsilon=epsilon, perturbation=perturbation, found=found, tolerance=tolerance)


def _per_sample(mask, like):
    """A (batch,) mask shaped to broadcast against a (batch, ...) array."""
    return jnp.reshape(mask, mask.shape + (1,) * (like.ndim - 1))
