"""The fast gradient sign method: one step of steepest ascent on the loss.

Reference: Goodfellow, Shlens & Szegedy, "Explaining and harnessing adversarial examples"
(2015, arXiv:1412.6572).
"""

import equinox as eqx
import jax

from . import _balls
from ._classifier import check_epsilon, check_inputs, check_norm, loss
from .attack_result import AttackResult


def fgsm(model, xs, labels, epsilon, *, norm: str = "linf") -> AttackResult:
    """Adversarial inputs x + ε sign(∇ₓ L(x, y)) (L∞) or x + ε ∇ₓL/‖∇ₓL‖₂ (L2).

    L is the cross-entropy of the model's logits against the label. Against an affine binary
    classifier f(x) = wᵀx + b the L∞ attack moves f by −ε‖w‖₁ towards the other class, so it
    flips a correct prediction exactly when ε > |f(x)|/‖w‖₁. A zero gradient (a saturated
    softmax in low precision) leaves the sample where it is.

    Args:
        model: a classifier `model(x) -> logits` for one sample (see `deepest.robustness`
            for the binary convention), e.g. a `deepest.SolverNet` with a readout.
        xs: inputs, shape (batch, ...).
        labels: integer labels, shape (batch,): the class whose loss is increased.
        epsilon: the budget, a number or one per sample, shape (batch,); non-negative.
        norm: "linf" or "l2".

    Returns:
        An `AttackResult`: `.adversarial` x + r and `.perturbation` r = ε d, shape of xs.
        Jitted: a new epsilon does not recompile.

    Example:
        >>> attacked = deepest.robustness.fgsm(net, xs, labels, 0.1)
        >>> jnp.mean(deepest.robustness.predict(net, attacked.adversarial) == labels)
    """
    xs, labels = check_inputs(xs, labels, "fgsm")
    norm = check_norm(norm)
    return _fgsm(model, xs, labels, check_epsilon(epsilon, xs), norm)


@eqx.filter_jit
def _fgsm(model, xs, labels, epsilon, norm):
    def one_sample(x, label, budget):
        gradient = jax.grad(lambda point: loss(model, point, label))(x)
        return budget * _balls.steepest_ascent(gradient, norm)

    perturbation = jax.vmap(one_sample)(xs, labels, epsilon)
    return AttackResult(adversarial=xs + perturbation, perturbation=perturbation)
