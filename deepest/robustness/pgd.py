"""Projected gradient descent on the negative loss: the iterated attack inside an ε-ball.

Reference: Madry, Makelov, Schmidt, Tsipras & Vladu, "Towards deep learning models resistant
to adversarial attacks" (2018, arXiv:1706.06083).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import PRNGKeyArray

from . import _balls
from ._classifier import check_epsilon, check_inputs, check_norm, check_positive_integer, loss
from .attack_result import AttackResult


def pgd(
    model,
    xs,
    labels,
    epsilon,
    *,
    norm: str = "linf",
    num_steps: int = 40,
    step_size=None,
    random_start: bool = True,
    key: PRNGKeyArray,
) -> AttackResult:
    """Adversarial inputs by projected gradient ascent on the loss within ‖x' − x‖ ≤ ε.

    x^{n+1} = x + Π_ε(x^n + α d(∇ₓL(x^n, y)) − x), with d the steepest-ascent direction of the
    norm (sign(g) for L∞, g/‖g‖₂ for L2) and Π_ε the projection onto the ε-ball. The start
    x^0 is x, or a uniform draw from the ball (`random_start`). Of the iterates x^0 … x^N the
    one with the largest loss is returned (a stray last step cannot undo an earlier success).

    Against an affine binary classifier the loss increases along −sign(f(x)) w, so the L∞
    iterates reach the corner x − ε sign(f(x)) sign(w) and stay there.

    Args:
        model: a classifier `model(x) -> logits` for one sample (see `deepest.robustness`).
        xs: inputs, shape (batch, ...).
        labels: integer labels, shape (batch,).
        epsilon: the budget, a number or one per sample, shape (batch,); non-negative.
        norm: "linf" or "l2".
        num_steps: gradient steps N.
        step_size: α, a number or one per sample; default 2.5 ε / N (Madry et al.): the N
            steps together travel 2.5 ε, more than the ball's diameter.
        random_start: start from a uniform point of the ball (needs `key`).
        key: PRNG key of the random starts (one per sample is split from it); unused with
            random_start=False.

    Returns:
        An `AttackResult`: `.adversarial` the chosen iterate x', `.perturbation` x' − x.
        Jitted: new budgets and keys do not recompile.

    Example:
        >>> attacked = deepest.robustness.pgd(net, xs, labels, 0.1, num_steps=20, key=key)
        >>> attacked.adversarial
    """
    xs, labels = check_inputs(xs, labels, "pgd")
    norm = check_norm(norm)
    check_positive_integer(num_steps, "num_steps")
    epsilon = check_epsilon(epsilon, xs)
    if step_size is None:
        step_size = 2.5 * epsilon / num_steps
    else:
        step_size = check_epsilon(step_size, xs, "step_size", positive=True)
    if random_start and key is None:
        raise ValueError("pgd with random_start=True needs a PRNG key: pass key=jax.random.PRNGKey(...), or random_start=False.")
    return _pgd(model, xs, labels, epsilon, step_size, key if random_start else None, norm, num_steps)


@eqx.filter_jit
def _pgd(model, xs, labels, epsilon, step_size, key, norm, num_steps):
    def random_start(x, budget, sample_key):
        return x + _balls.uniform_in_ball(sample_key, x.shape, x.dtype, budget, norm)

    starts = xs if key is None else jax.vmap(random_start)(xs, epsilon, jax.random.split(key, xs.shape[0]))

    def one_sample(x, start, label, budget, step):
        value_and_gradient = jax.value_and_grad(lambda point: loss(model, point, label))

        def ascend(carry, _):
            point, best, best_loss = carry
            current_loss, gradient = value_and_gradient(point)
            better = current_loss > best_loss
            best = jnp.where(better, point, best)
            best_loss = jnp.where(better, current_loss, best_loss)
            ascent = point + step * _balls.steepest_ascent(gradient, norm)
            return (x + _balls.project(ascent - x, budget, norm), best, best_loss), None

        loss_type = jax.eval_shape(lambda: loss(model, x, label)).dtype
        initial = (start, start, jnp.array(-jnp.inf, loss_type))
        (last, best, best_loss), _ = jax.lax.scan(ascend, initial, length=num_steps)
        return jnp.where(loss(model, last, label) > best_loss, last, best)

    adversarial = jax.vmap(one_sample)(xs, starts, labels, epsilon, step_size)
    return AttackResult(adversarial=adversarial, perturbation=adversarial - xs)
