"""Optimisers by name, with learning-rate schedules by name, and their initial states."""

import equinox as eqx
import optax

from .. import _caches

OPTIMISERS = {"adam": optax.adam, "adamw": optax.adamw, "sgd": optax.sgd, "rmsprop": optax.rmsprop}
SCHEDULES = ("constant", "cosine", "warmup_cosine")


@_caches.lru_cache(maxsize=64)
def optimiser(name: str, learning_rate: float, *, schedule: str = "constant", num_steps: int = 1, warmup_steps: int = 0):
    """An optax optimiser by name with a learning-rate schedule by name; the same object for
    the same arguments, so that fits with it share their compiled step (`make_step`).

    Args:
        name: one of `OPTIMISERS` (adam, adamw, sgd, rmsprop).
        learning_rate: the peak learning rate.
        schedule: "constant", "cosine" (decay to 0 over `num_steps`) or "warmup_cosine"
            (linear warm-up over `warmup_steps`, then cosine decay).
        num_steps, warmup_steps: the schedule's length.
    """
    if name not in OPTIMISERS:
        raise ValueError(f"Unknown optimiser {name!r}. Valid optimisers are: {', '.join(OPTIMISERS)}.")
    if schedule == "constant":
        rate = learning_rate
    elif schedule == "cosine":
        rate = optax.cosine_decay_schedule(learning_rate, num_steps)
    elif schedule == "warmup_cosine":
        rate = optax.warmup_cosine_decay_schedule(0.0, learning_rate, warmup_steps, num_steps)
    else:
        raise ValueError(f"Unknown schedule {schedule!r}. Valid schedules are: {', '.join(SCHEDULES)}.")
    return OPTIMISERS[name](rate)


def init_state(optimiser: optax.GradientTransformation, model, *, replicated: bool = False):
    """The optimiser state of a model (of each model of a stack if `replicated`)."""
    init = eqx.filter_vmap(optimiser.init) if replicated else optimiser.init
    return init(eqx.filter(model, eqx.is_inexact_array))
