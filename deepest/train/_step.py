"""The training step: loss and regularisers, their gradient through the solve, one update."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from .. import _array_leaves, _caches, regularisers
from ._objective import forward


@dataclasses.dataclass(frozen=True)
class TrainingStep:
    """One optimiser step on a minibatch: θ ← θ + u, where (u, state) = optimiser.update(
    ∇_θ [L(θ) + Σ_i w_i R_i(θ)], state), compiled; built by `make_step`.

    Called as step(model, state, xs, targets, key, step_number) → (model, state, metrics), the
    random regularisers' probes drawn from fold_in(key, step_number) inside the compiled step
    (an int32 `step_number`: no key arithmetic on the host per step). `fit` calls
    `step.on_leaves(layout)`, the same compiled program, with the array leaves of (model,
    state) alone. NaN/Inf is left in the metrics for the caller to act on: "loss" (the task
    loss L alone), "gradient_norm", "finite_update", the diagnostics of the forward pass, each
    regulariser's unweighted value R_i under its name and Σ_i w_i R_i as "regularisation".

    Fields:
        optimiser: the optax transformation.
        task: the dataset's task, which picks the loss (`loss_fn_for`).
        replicated: map the step over a stack of models and optimiser states (leading
            axis) sharing one minibatch (`fit_replicas`).
        regularisation: (name, weight, ((option, value), …)) terms, options sorted.
    """

    optimiser: optax.GradientTransformation
    task: str
    replicated: bool
    regularisation: tuple

    def __call__(self, model, state, xs, targets, key, step_number):
        layout, leaves = _array_leaves.split((model, state))
        leaves, metrics = self.on_leaves(layout)(leaves, xs, targets, key, step_number)
        model, state = layout.rebuild(leaves)
        return model, state, metrics

    def on_leaves(self, layout: _array_leaves.TreeLayout):
        """The step compiled as (leaves, xs, targets, key, step_number) → (leaves, metrics) over
        the array leaves of (model, state) of `layout` (`deepest._array_leaves`).

        Kept per process under (step, layout): nets that differ only in their seeds, each run of
        a sweep's setting or a notebook's repeated fits trace and compile it once (the same
        optimiser object is the same optimiser: `optimiser` returns one per set of arguments).
        `deepest.clear_caches()` drops it."""
        return _compiled(self, layout)


def make_step(optimiser: optax.GradientTransformation, task: str, *, replicated: bool = False, regularisation=()) -> TrainingStep:
    """The compiled training step that `fit` runs (`TrainingStep`).

    Compiles once per model structure, batch shape and sharding. With `xs` and `targets` split
    along the batch over devices and the model replicated, the step runs data-parallel
    (`deepest._devices`).

    Args:
        optimiser: an optax transformation (`optimiser(...)` builds one by name).
        task: "classification" (softmax cross-entropy) or "regression" (squared error).
        replicated: step a stack of models (`stack_models`) and their stacked states.
        regularisation: (name, weight, options) terms: the step minimises
            loss + Σ weight · regulariser(model, xs, **options) (`deepest.regularisers`).
    """
    for name, _, _ in regularisation:
        regularisers.regulariser(name)  # an unknown name fails here, not at the first call
    terms = tuple((name, weight, tuple(sorted(dict(options).items()))) for name, weight, options in regularisation)
    return TrainingStep(optimiser, task, replicated, terms)


@_caches.lru_cache(maxsize=16)
def _compiled(step: TrainingStep, layout: _array_leaves.TreeLayout):
    function = _step_function(step)
    return layout.jit(lambda trees, *arguments: _trees_first(function(*trees, *arguments)))


def _step_function(settings: TrainingStep):
    """The step of `settings` before compiling, on trees."""
    terms = tuple((name, weight, dict(options), regularisers.regulariser(name)) for name, weight, options in settings.regularisation)

    def objective(model, xs, targets, key):
        loss, diagnostics = forward(model, xs, targets, settings.task)
        values = {}
        for index, (name, _, options, function) in enumerate(terms):
            random = {"key": jax.random.fold_in(key, index)} if name in regularisers.RANDOM_REGULARISERS else {}
            values[name] = function(model, xs, **options, **random)
        penalty = sum((weight * values[name] for name, weight, _, _ in terms), jnp.zeros(()))
        return loss + penalty, (loss, {**diagnostics, **values, "regularisation": penalty})

    def step(model, state, xs, targets, key, step_number):
        key = jax.random.fold_in(key, step_number)
        (_, (loss, diagnostics)), grads = eqx.filter_value_and_grad(objective, has_aux=True)(model, xs, targets, key)
        updates, new_state = settings.optimiser.update(grads, state, eqx.filter(model, eqx.is_inexact_array))
        new_model = eqx.apply_updates(model, updates)
        finite = jnp.all(jnp.array([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(eqx.filter(new_model, eqx.is_inexact_array))]))
        metrics = {"loss": loss, "gradient_norm": optax.tree.norm(grads), "finite_update": finite, **diagnostics}
        return new_model, new_state, metrics

    in_axes = (eqx.if_array(0), eqx.if_array(0), None, None, None, None)
    return eqx.filter_vmap(step, in_axes=in_axes) if settings.replicated else step


def _trees_first(outputs):
    """The step's (model, state, metrics) as ((model, state), metrics)."""
    model, state, metrics = outputs
    return (model, state), metrics
