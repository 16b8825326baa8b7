"""The loss a SolverNet trains on, its diagnostics, and their compiled evaluation on a split."""

from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import _caches
from ..network import SolverNet
from ..solvers import function_evaluations

# diffrax's result enumeration: the pytree of its items, and the success code.
_RESULT_STRUCTURE = jax.tree.structure(diffrax.RESULTS.successful)
_SUCCESS = jax.tree.leaves(diffrax.RESULTS.successful)[0]


def loss_fn_for(task: str) -> Callable:
    """The per-sample loss of a task: softmax cross-entropy (classification) or squared error."""
    if task == "classification":
        return optax.softmax_cross_entropy_with_integer_labels
    return squared_error


def squared_error(prediction, target):
    """‖prediction − target‖², one sample's regression loss. A module-level function, not a
    fresh lambda per call, so that compiled analyses keyed on the loss (`gradient_norms`)
    are reused from run to run."""
    return jnp.sum((prediction - target) ** 2)


def forward(model: SolverNet, xs, targets, task: str):
    """Mean loss and per-batch diagnostics from one batched solve.

    `solver_steps` is diffrax's count of attempted steps (accepted and rejected), averaged over
    the batch: the layers of a fixed-step net, the cost of an adaptive one;
    `function_evaluations` the evaluations of f they took (`deepest.solvers.function_evaluations`);
    `solver_failures` the samples whose solve failed, `solver_result` the failure most of them
    had (`failure_reason` says it in words).
    """
    solution = model.solve_batch(xs)
    assert solution.ys is not None  # solve_batch saves the final state
    final = solution.ys[:, -1]
    outputs = final if model.readout is None else jax.vmap(model.readout)(final)
    loss = jnp.mean(jax.vmap(loss_fn_for(task))(outputs, targets))
    # argmax of NaN outputs is class 0: a diverged net gets no accuracy, not a lucky one.
    accuracy = jnp.mean(jnp.argmax(outputs, axis=-1) == targets) if task == "classification" else jnp.nan
    accuracy = jnp.where(jnp.all(jnp.isfinite(outputs)), accuracy, jnp.nan)
    diagnostics = {
        "accuracy": accuracy,
        "max_state_norm": jnp.max(jnp.linalg.norm(final, axis=-1)),
        "solver_failures": jnp.sum(solution.result != diffrax.RESULTS.successful),
        "solver_result": _most_frequent_failure(solution.result),
        "solver_steps": jnp.mean(solution.stats["num_steps"]),
        "function_evaluations": jnp.mean(function_evaluations(model.solver, solution.stats["num_steps"])),
    }
    return loss, diagnostics


def failure_reason(failures: float, code: float, samples: int | None = None) -> str:
    """Why solves failed, in words: "solver failed on 3 [of 40] samples: the maximum number of
    solver steps was reached. Try increasing `max_steps`", for `failures` failed solves (of
    `samples`) whose most frequent diffrax result code is `code` (forward's "solver_result").
    The why is diffrax's own message for the code, its first paragraph on one line."""
    # An enumeration item is a pytree whose one leaf is its code: rebuilt from the code,
    # diffrax's RESULTS[item] gives its message, so no table of ours can fall out of step.
    item = jax.tree.unflatten(_RESULT_STRUCTURE, [np.asarray(int(code), dtype=np.int32)])
    # equinox looks an item's message up through the enumeration's metaclass, unseen by mypy.
    message = " ".join(diffrax.RESULTS[item].split("\n\n")[0].split())  # type: ignore[misc]
    counted = f"{int(failures)}" if samples is None else f"{int(failures)} of {samples}"
    return f"solver failed on {counted} samples: {message[:1].lower()}{message[1:]}"


def _most_frequent_failure(results):
    """The diffrax result code (the code of a `diffrax.RESULTS` item) most of a batch's failed
    solves ended with (the lowest of a tie), the success code where none failed."""
    (codes,) = jax.tree.leaves(results)
    counts = jnp.bincount(codes, length=len(diffrax.RESULTS)).at[_SUCCESS].set(0)
    return jnp.where(jnp.any(counts > 0), jnp.argmax(counts), _SUCCESS)


def make_evaluate(task: str, *, replicated: bool = False):
    """Compiled (model, xs, targets) → (loss, diagnostics) on a whole split (per replica if
    `replicated`); one function per (task, replicated), so models of one structure (differing
    in their weights only) share its programs, `fit`'s test-set evaluations included."""
    return _evaluate_function(task, replicated)


@_caches.lru_cache(maxsize=None)
def _evaluate_function(task: str, replicated: bool):
    # Keyed on positional arguments: lru_cache keys `f(task)` and `f(task, replicated=False)`
    # apart, and the experiment runner's evaluations would compile fit's programs again.
    def evaluate(model, xs, targets):
        return forward(model, xs, targets, task)

    return eqx.filter_jit(eqx.filter_vmap(evaluate, in_axes=(eqx.if_array(0), None, None)) if replicated else evaluate)
