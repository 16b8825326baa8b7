"""The classifier convention every attack shares, and the checks on its inputs.

A model is any callable `model(x) -> output` for ONE sample x (a `deepest.SolverNet`, an
`eqx.Module`, a plain function); the attacks batch it with `jax.vmap`. Its output is read as

- logits of shape (num_classes,), num_classes ≥ 2: the prediction is argmax_k f_k(x);
- a score of shape () or (1,): a binary classifier f(x) with decision f(x) > 0 ↦ class 1,
  f(x) ≤ 0 ↦ class 0. It is handled as the two logits (0, f(x)), so its cross-entropy is the
  logistic loss log(1 + exp(−(2y − 1) f(x))) and DeepFool's boundary f_1 − f_0 = 0 is f = 0.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

NORMS = ("linf", "l2")


def logits(model, x):
    """The logits of one sample under the convention above: shape (num_classes,)."""
    output = jnp.asarray(model(x))
    if output.ndim == 0 or output.shape == (1,):
        score = jnp.reshape(output, ())
        return jnp.stack([jnp.zeros_like(score), score])
    if output.ndim == 1 and output.shape[0] >= 2:
        return output
    raise ValueError(
        f"The model returned shape {output.shape} for one sample; a classifier must return logits of "
        f"shape (num_classes,) with num_classes ≥ 2, or a score of shape () or (1,) for a binary "
        f"classifier (class 1 where the score is positive). Attacks act on one sample; batch with jax.vmap."
    )


def loss(model, x, label):
    """Cross-entropy of one sample's logits against its integer label."""
    scores = logits(model, x)
    count = scores.shape[0]
    label = eqx.error_if(
        label,
        (label < 0) | (label >= count),
        f"labels must lie in 0 … {count - 1}: the model has {count} classes (a binary score has two, 0 and 1).",
    )
    return optax.softmax_cross_entropy_with_integer_labels(scores, label)


@eqx.filter_jit
def predict(model, xs):
    """The predicted class of every sample of a batch: argmax of the logits, (batch,).

    A binary score f predicts class 1 exactly where f > 0 (argmax of (0, f) picks 0 on a tie).

    Example:
        >>> deepest.robustness.predict(lambda x: x @ w + b, xs)   # 0/1 by the sign of the score
    """
    return jnp.argmax(jax.vmap(lambda x: logits(model, x))(xs), axis=-1)


def check_norm(norm: str) -> str:
    """`norm` if it is one of `NORMS`; a ValueError otherwise."""
    if norm not in NORMS:
        raise ValueError(f"Unknown norm {norm!r}. Valid norms are: {', '.join(NORMS)}.")
    return norm


def check_inputs(xs, labels, what: str):
    """xs (batch, ...) as a floating array and labels (batch,) as integers; ValueError otherwise."""
    xs = jnp.asarray(xs)
    if xs.ndim < 2:
        raise ValueError(
            f"{what} takes a batch xs with a leading batch axis, e.g. shape (batch, input_dim); got shape "
            f"{xs.shape}. For a single sample x pass x[None]."
        )
    if not jnp.issubdtype(xs.dtype, jnp.floating):
        xs = xs.astype(jnp.result_type(float))
    if labels is None:
        return xs, None
    labels = jnp.asarray(labels)
    if labels.shape != xs.shape[:1]:
        raise ValueError(
            f"{what} needs one integer label per sample: labels of shape {xs.shape[:1]} for xs of shape "
            f"{xs.shape}; got labels of shape {labels.shape}."
        )
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(f"{what} needs integer class labels; got labels of dtype {labels.dtype}.")
    return xs, labels


def check_epsilon(epsilon, xs, what: str = "epsilon", *, positive: bool = False):
    """The budget as one value per sample, shape (batch,), in the dtype of xs.

    `epsilon` is a number or an array of shape (batch,). Negative (or, with `positive`, zero)
    and non-finite budgets raise a ValueError; under a trace, where values are unknown, the
    same check is an `eqx.error_if`.
    """
    batch = xs.shape[0]
    traced = isinstance(epsilon, jax.core.Tracer)
    # Concrete budgets are checked in NumPy: no small XLA program to compile per shape.
    numeric = jnp if traced else np
    epsilon = numeric.asarray(epsilon, dtype=xs.dtype)
    if epsilon.shape not in ((), (batch,)):
        raise ValueError(f"{what} must be a number or one per sample, shape ({batch},); got shape {epsilon.shape}.")
    allowed = "positive and finite" if positive else "non-negative and finite"
    invalid = ~numeric.isfinite(epsilon) | ((epsilon <= 0) if positive else (epsilon < 0))
    if traced:
        epsilon = eqx.error_if(epsilon, jnp.any(invalid), f"{what} must be {allowed}.")
    elif invalid.any():
        raise ValueError(f"{what} must be {allowed}; got {epsilon}.")
    return numeric.broadcast_to(epsilon, (batch,))


def check_positive_integer(value, what: str) -> int:
    """`value` if it is an integer ≥ 1; a ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}.")
    return value
