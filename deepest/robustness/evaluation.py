"""Robustness summaries: accuracy under attack across budgets, and the adversarial ratio."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from ._balls import l2_norm
from ._classifier import check_inputs, predict
from .fgsm import fgsm


class RobustAccuracy(eqx.Module):
    """Accuracy of a model under an attack at several budgets.

    Fields:
        epsilons: (num_budgets,) the budgets, in the order given.
        correct: (num_budgets, batch) whether the attacked sample is still classified correctly.
        clean: (batch,) whether the unattacked sample is classified correctly.
    """

    epsilons: Float[Array, " num_budgets"]
    correct: Bool[Array, "num_budgets batch"]
    clean: Bool[Array, " batch"]

    @property
    def accuracy(self) -> Float[Array, " num_budgets"]:
        """The share of samples classified correctly after the attack, at each budget."""
        return jnp.mean(self.correct, axis=-1, dtype=self.epsilons.dtype)

    @property
    def clean_accuracy(self) -> Float[Array, ""]:
        """The share of samples classified correctly without attack."""
        return jnp.mean(self.clean, dtype=self.epsilons.dtype)


def robust_accuracy(model, xs, labels, epsilons, *, attack=fgsm) -> RobustAccuracy:
    """Accuracy under `attack` at each budget in `epsilons`, as measured.

    The worst case over a ball can only get worse as the ball grows, but an attack is a
    search that may find less in a larger ball (FGSM's single step can overshoot back across
    a curved boundary; PGD is a local search): the numbers are what the attack achieved, not
    made monotone.

    Args:
        model: a classifier for one sample (see `deepest.robustness`).
        xs: inputs, shape (batch, ...).
        labels: integer labels, shape (batch,).
        epsilons: the budgets, a 1-D sequence of non-negative numbers.
        attack: attack(model, xs, labels, epsilon) -> an `AbstractAttackResult`, whose
            `.adversarial` inputs are classified; traceable (e.g. `fgsm`, or
            `functools.partial(pgd, num_steps=20, key=key)`).

    Returns:
        A `RobustAccuracy`. One jitted loop over the budgets.

    Example:
        >>> result = deepest.robustness.robust_accuracy(net, xs, labels, [0.0, 0.1, 0.2])
        >>> result.accuracy
    """
    xs, labels = check_inputs(xs, labels, "robust_accuracy")
    traced = isinstance(epsilons, jax.core.Tracer)
    epsilons = (jnp if traced else np).asarray(epsilons, dtype=xs.dtype)
    if epsilons.ndim != 1 or epsilons.shape[0] == 0:
        raise ValueError(f"epsilons must be a non-empty 1-D sequence of budgets; got shape {epsilons.shape}.")
    if not traced and not np.all(np.isfinite(epsilons) & (epsilons >= 0)):
        raise ValueError(f"epsilons must be non-negative and finite; got {epsilons}.")
    return _robust_accuracy(attack, model, xs, labels, epsilons)


@eqx.filter_jit
def _robust_accuracy(attack, model, xs, labels, epsilons):
    def correct_at(epsilon):
        budget = jnp.full(xs.shape[0], epsilon)
        return predict(model, attack(model, xs, labels, budget).adversarial) == labels

    correct = jax.lax.map(correct_at, epsilons)
    return RobustAccuracy(epsilons=epsilons, correct=correct, clean=predict(model, xs) == labels)


def adversarial_ratio(xs, perturbations) -> Float[Array, ""]:
    """ρ_adv = mean over samples of ‖r(x)‖₂ / ‖x‖₂: the robustness measure of DeepFool.

    Samples whose perturbation is not finite (none found: `MinimalEpsilon` gives NaN) are
    left out; NaN if none is finite.

    Args:
        xs: inputs, shape (batch, ...).
        perturbations: r, the same shape (e.g. `deepfool(...).perturbation`, or
            `minimal_epsilon(net, xs, labels, attack=fgsm, high=1.0).perturbation`).

    Example:
        >>> deepest.robustness.adversarial_ratio(xs, deepest.robustness.deepfool(net, xs).perturbation)

    Reference: Moosavi-Dezfooli, Fawzi & Frossard (2016, arXiv:1511.04599).
    """
    xs, _ = check_inputs(xs, None, "adversarial_ratio")
    perturbations = jnp.asarray(perturbations)
    if perturbations.shape != xs.shape:
        raise ValueError(f"perturbations must have the shape of xs, {xs.shape}; got {perturbations.shape}.")
    ratios = jax.vmap(l2_norm)(perturbations) / jax.vmap(l2_norm)(xs)
    finite = jnp.isfinite(ratios)
    return jnp.sum(jnp.where(finite, ratios, 0)) / jnp.sum(finite)
