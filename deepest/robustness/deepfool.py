"""DeepFool: the smallest L2 step to the nearest linearised decision boundary, iterated.

At an iterate x_i the classifier is linearised about the originally predicted class k̂:
f'_k = f_k(x_i) − f_k̂(x_i), w'_k = ∇f_k(x_i) − ∇f_k̂(x_i). The closest linearised boundary is

    l̂ = argmin_{k ≠ k̂} |f'_k| / ‖w'_k‖₂,    r_i = |f'_l̂| / ‖w'_l̂‖₂² · w'_l̂,

the orthogonal projection of x_i onto the hyperplane f'_l̂ = 0, and x_{i+1} = x_i + r_i. The
iteration stops once x + (1 + η) Σ r_i is classified other than k̂, η the overshoot. For an
affine classifier the first step lands exactly on the nearest facet of k̂'s polyhedral
region, so ‖Σ r_i‖ is the exact distance to the decision boundary. In general, where it
flips the label, ‖r‖ is an upper bound on the minimal L2 perturbation (x + r is adversarial),
often a close one; the linearisation can also lead it to a farther part of the boundary.

Reference: Moosavi-Dezfooli, Fawzi & Frossard, "DeepFool: a simple and accurate method to
fool deep neural networks" (2016, arXiv:1511.04599), Algorithm 2.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from ._balls import l2_norm
from ._classifier import check_inputs, check_positive_integer, logits
from .attack_result import AbstractAttackResult


class DeepFoolResult(AbstractAttackResult):
    """What DeepFool found, per sample (`perturbation_norm` is ‖r‖₂).

    Fields:
        perturbation: (batch, ...) r = (1 + overshoot) Σ_i r_i; `perturbation / (1 + overshoot)`
            is the sum of the projection steps.
        adversarial: (batch, ...) x + r.
        iterations: (batch,) linearisation steps taken (1 for an affine classifier).
        flipped: (batch,) whether x + r is classified other than the original prediction;
            False where `max_iterations` ran out first (or where no boundary was reachable:
            every ∇(f_k − f_k̂) zero).
        original_class: (batch,) the prediction k̂ at x.
        adversarial_class: (batch,) the prediction at x + r.
        overshoot: η.
    """

    perturbation: Float[Array, "batch ..."]
    adversarial: Float[Array, "batch ..."]
    iterations: Int[Array, " batch"]
    flipped: Bool[Array, " batch"]
    original_class: Int[Array, " batch"]
    adversarial_class: Int[Array, " batch"]
    overshoot: float = eqx.field(static=True)


def deepfool(model, xs, *, num_classes: int | None = None, max_iterations: int = 50, overshoot: float = 0.02) -> DeepFoolResult:
    """Minimal L2 adversarial perturbations by multiclass DeepFool (see the module docstring).

    Args:
        model: a classifier `model(x) -> logits` for one sample; a score of shape () or (1,)
            is a binary classifier with decision f > 0, for which r_1 = −f(x) w/‖w‖₂² with
            w = ∇f(x) (see `deepest.robustness`).
        xs: inputs, shape (batch, ...). No labels: DeepFool moves each sample off the class
            the model predicts for it.
        num_classes: search only the `num_classes` highest-scoring classes at x (the
            predicted one included), as in the authors' code for many classes; default all.
        max_iterations: linearisation steps at most, per sample.
        overshoot: η ≥ 0. With η = 0 the iterates converge onto the boundary, where the
            prediction is a tie that rounding decides; a small η pushes them across.

    Returns:
        A `DeepFoolResult`. Jitted; each sample stops at its own flip (a batched while loop).

    Example:
        >>> result = deepest.robustness.deepfool(net, xs)
        >>> deepest.robustness.adversarial_ratio(xs, result.perturbation)
    """
    xs, _ = check_inputs(xs, None, "deepfool")
    check_positive_integer(max_iterations, "max_iterations")
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2):
        raise ValueError(f"num_classes must be an integer ≥ 2 or None (all classes), got {num_classes!r}.")
    if not overshoot >= 0:
        raise ValueError(f"overshoot must be non-negative, got {overshoot!r}.")
    return _deepfool(model, xs, num_classes, max_iterations, float(overshoot))


@eqx.filter_jit
def _deepfool(model, xs, num_classes, max_iterations, overshoot):
    def classify(x):
        return logits(model, x)

    total_classes = jax.eval_shape(classify, xs[0]).shape[0]
    if num_classes is not None and num_classes > total_classes:
        raise ValueError(f"num_classes={num_classes} exceeds the model's {total_classes} classes.")
    searched = total_classes if num_classes is None else num_classes

    def one_sample(x):
        clean = classify(x)
        # Candidates fixed by the clean scores, the predicted class first.
        candidates = jnp.argsort(-clean)[:searched]
        original = candidates[0]
        cotangents = jax.nn.one_hot(candidates, total_classes, dtype=clean.dtype)

        def projection_step(total):
            scores, pullback = jax.vjp(classify, x + total)
            (gradients,) = jax.vmap(pullback)(cotangents)
            score_gaps = scores[candidates] - scores[original]
            normals = gradients - gradients[0]
            lengths = jax.vmap(l2_norm)(normals)
            reachable = (jnp.arange(searched) > 0) & (lengths > 0)
            safe_lengths = jnp.where(reachable, lengths, 1)
            distances = jnp.where(reachable, jnp.abs(score_gaps) / safe_lengths, jnp.inf)
            nearest = jnp.argmin(distances)
            scale = jnp.where(reachable[nearest], jnp.abs(score_gaps[nearest]) / safe_lengths[nearest] ** 2, 0)
            # In the dtype of x: float32 inputs to a float64 model stay float32 (a fixed loop carry).
            return (total + scale * normals[nearest]).astype(total.dtype)

        def prediction(total):
            return jnp.argmax(classify(x + (1 + overshoot) * total))

        def not_done(state):
            iteration, _, predicted = state
            return (iteration < max_iterations) & (predicted == original)

        def iterate(state):
            iteration, total, _ = state
            total = projection_step(total)
            return iteration + 1, total, prediction(total)

        start = (jnp.array(0), jnp.zeros_like(x), original)
        iterations, total, predicted = jax.lax.while_loop(not_done, iterate, start)
        perturbation = (1 + overshoot) * total
        return perturbation, iterations, predicted != original, original, predicted

    perturbation, iterations, flipped, original, predicted = jax.vmap(one_sample)(xs)
    return DeepFoolResult(
        perturbation=perturbation,
        adversarial=xs + perturbation,
        iterations=iterations,
        flipped=flipped,
        original_class=original,
        adversarial_class=predicted,
        overshoot=overshoot,
    )
