"""`fit` and `fit_replicas`: minibatch training of one model, or of R models side by side."""

import dataclasses
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import optax

from .. import _array_leaves, _devices, _stacking
from ..data import Dataset
from ..network import SolverNet
from ._divergence import Replicas
from ._loop import Dispatch, Progress, run
from ._minibatches import Minibatches
from ._objective import make_evaluate
from ._optimisers import init_state
from ._records import Records
from ._step import make_step


@dataclasses.dataclass(frozen=True)
class TrainingResult:
    """What `fit` did.

    Fields:
        model: the trained model (the last one before divergence, if it diverged).
        optimiser_state: the optimiser's state matching `model`.
        steps: training steps completed (counting from 0, including a resumed prefix).
        status: "completed" or "diverged".
        diverged_at: the step whose update was refused, or None.
        reason: why it diverged ("loss is nan", "state norm 3.2e+07 > 1e+06", "solver failed
            on 3 samples: the maximum number of solver steps was reached. Try increasing
            `max_steps`.", "non-finite gradient or parameter update").
        history: the metric records (dicts) written every `log_every` steps and at the end.
    """

    model: SolverNet
    optimiser_state: optax.OptState
    steps: int
    status: str
    diverged_at: int | None
    reason: str | None
    history: list


def fit(
    model: SolverNet,
    dataset: Dataset,
    optimiser: optax.GradientTransformation,
    *,
    num_steps: int,
    batch_size: int,
    key: jax.Array,
    log_every: int = 50,
    max_state_norm: float = 1e6,
    start_step: int = 0,
    optimiser_state: optax.OptState | None = None,
    on_record: Callable[[dict], None] | None = None,
    checkpoint_every: int | None = None,
    on_checkpoint: Callable[[int, SolverNet, optax.OptState], None] | None = None,
    progress: bool | None = None,
    regularisation: Sequence[tuple[str, float, dict]] = (),
    devices: Sequence[jax.Device] | None = None,
) -> TrainingResult:
    """Train `model` on `dataset.x_train` for steps start_step … num_steps − 1.

    Each step is `make_step`'s on the minibatch `Minibatches` draws from `key`.

    Args:
        model: the SolverNet (trained with throw=False: failures become data).
        dataset: from `deepest.data.make`; its task picks the loss.
        optimiser: an optax transformation (`optimiser(...)` builds one by name). Fits with
            the same optimiser object, task and regularisation, of models differing only
            in their weights, share one compiled step in a process.
        num_steps: total steps, including any done before `start_step`.
        batch_size: samples per step (capped at the training-set size).
        key: PRNG key of the minibatch order and of the regularisers' probes.
        log_every: steps between metric records (train batch metrics, plus test loss and
            accuracy on the whole test split); one is also written at `num_steps`. Default 50.
        max_state_norm: a final state larger than this counts as divergence. Default 1e6.
        start_step: steps already done, to resume from a checkpoint taken after them. Default 0.
        optimiser_state: the state to resume with; default `init_state(optimiser, model)`.
        on_record: called with each metric record (e.g. to append to metrics.jsonl). Default none.
        checkpoint_every: steps between calls of `on_checkpoint`. Default None: no checkpoints.
        on_checkpoint: called as on_checkpoint(step, model, state) after every
            `checkpoint_every` steps. Default none.
        progress: show a tqdm bar; default None: only on a terminal.
        regularisation: (name, weight, options) triples added to the loss (`make_step`);
            their probes are drawn from `key` and the step number, so resumed runs match.
            Default none.
        devices: the devices each minibatch is split over, default `jax.local_devices()`:
            the largest number of them that divides `batch_size`. The test split is split
            over them too when its size divides evenly. The returned model and optimiser
            state live on the first of them.

    Returns:
        A `TrainingResult`.
    """
    (result,) = _fit(
        model,
        dataset,
        optimiser,
        replicas=None,
        stopped=None,
        num_steps=num_steps,
        batch_size=batch_size,
        key=key,
        log_every=log_every,
        max_state_norm=max_state_norm,
        start_step=start_step,
        optimiser_state=optimiser_state,
        on_record=on_record,
        checkpoint_every=checkpoint_every,
        on_checkpoint=on_checkpoint,
        progress=progress,
        regularisation=regularisation,
        devices=devices,
    )
    return result


def fit_replicas(
    models: SolverNet,
    dataset: Dataset,
    optimiser: optax.GradientTransformation,
    *,
    replicas: int,
    stopped: dict[int, tuple[int, str]] | None = None,
    num_steps: int,
    batch_size: int,
    key: jax.Array,
    log_every: int = 50,
    max_state_norm: float = 1e6,
    start_step: int = 0,
    optimiser_state: optax.OptState | None = None,
    on_record: Callable[[dict], None] | None = None,
    checkpoint_every: int | None = None,
    on_checkpoint: Callable[[int, SolverNet, optax.OptState], None] | None = None,
    progress: bool | None = None,
    regularisation: Sequence[tuple[str, float, dict]] = (),
    devices: Sequence[jax.Device] | None = None,
) -> list[TrainingResult]:
    """Train R independently initialised models together: one vmapped step, shared minibatches.

    A replica that diverges is frozen (its update refused) while the others train on.

    Args:
        models: a stack of R SolverNets (`stack_models([net_0, …, net_{R−1}])`).
        replicas: R.
        stopped: the replicas that had already diverged before `start_step`, as
            {replica: (step, reason)}, for resuming; default None: none.
        optimiser_state: the stacked states to resume with; default
            `init_state(optimiser, models, replicated=True)`.
        on_checkpoint: called as on_checkpoint(step, models, states) with the stacks.
        on_record: called with each metric record, which carries its "replica" index.
        dataset, optimiser, num_steps, batch_size, key, log_every, max_state_norm, start_step,
            checkpoint_every, progress, regularisation, devices: as in `fit`, with the same
            defaults.

    Returns:
        One `TrainingResult` per replica, with its own (unstacked) model.
    """
    return _fit(
        models,
        dataset,
        optimiser,
        replicas=replicas,
        stopped=stopped,
        num_steps=num_steps,
        batch_size=batch_size,
        key=key,
        log_every=log_every,
        max_state_norm=max_state_norm,
        start_step=start_step,
        optimiser_state=optimiser_state,
        on_record=on_record,
        checkpoint_every=checkpoint_every,
        on_checkpoint=on_checkpoint,
        progress=progress,
        regularisation=regularisation,
        devices=devices,
    )


def stack_models(models: Sequence[SolverNet]) -> SolverNet:
    """R SolverNets of one architecture (e.g. R seeds) as one with a leading replica axis."""
    return _stacking.stack(models, "models")


def _fit(
    model,
    dataset: Dataset,
    optimiser,
    *,
    replicas,
    stopped,
    num_steps,
    batch_size,
    key,
    log_every,
    max_state_norm,
    start_step,
    optimiser_state,
    on_record,
    checkpoint_every,
    on_checkpoint,
    progress,
    regularisation,
    devices,
):
    """`fit` (replicas=None) and `fit_replicas` (replicas=R): its parts put together."""
    replicated, count = replicas is not None, replicas or 1
    devices = jax.local_devices() if devices is None else list(devices)
    batch_size = min(batch_size, len(dataset.x_train))
    split, replicate = _devices.batch_shardings(batch_size, devices)
    trained = dataclasses.replace(model, throw=False)
    state = optimiser_state if optimiser_state is not None else init_state(optimiser, trained, replicated=replicated)
    # The loop carries the array leaves of (model, state) and rebuilds the trees only to log,
    # checkpoint, refuse a diverged replica's update or return.
    layout, leaves = _array_leaves.split((_devices.place(trained, replicate), _devices.place(state, replicate)))
    step = make_step(optimiser, dataset.task, replicated=replicated, regularisation=regularisation)
    dispatch = _dispatch(step.on_leaves(layout), dataset, key, batch_size, split, replicate)
    test_split = tuple(_devices.split_if_divisible(jnp.asarray(array), split, replicate) for array in (dataset.x_test, dataset.y_test))
    status = Replicas(count, max_state_norm, stopped)
    records = Records(
        make_evaluate(dataset.task, replicated=replicated),
        test_split,
        layout,
        count=count,
        replicated=replicated,
        log_every=log_every,
        num_steps=num_steps,
        checkpoint_every=checkpoint_every,
        on_record=on_record,
        on_checkpoint=on_checkpoint,
    )
    bar = Progress(num_steps, start_step, progress)
    try:
        steps, leaves = run(dispatch, status, records, bar, leaves=leaves, start_step=start_step, num_steps=num_steps)
    finally:
        bar.close()
    # Off the mesh: what the caller does next (evaluate, analyse) is not data-parallel.
    final_model, final_state = layout.rebuild(leaves)
    final_model = _devices.place(dataclasses.replace(final_model, throw=model.throw), devices[0])
    return _results(final_model, _devices.place(final_state, devices[0]), steps, status, records.histories, replicated)


def _dispatch(step_on_leaves, dataset: Dataset, key, batch_size: int, split, replicate) -> Dispatch:
    """The step dispatched on minibatches of the training set, laid out for the devices."""
    # A copy of the training set per device, so each draws its share of a minibatch locally.
    x_train, y_train = _devices.place((jnp.asarray(dataset.x_train), jnp.asarray(dataset.y_train)), replicate)
    minibatches = Minibatches(jax.device_put(key, replicate), len(x_train), batch_size, sharding=split)
    # Independent of the minibatch order, which folds the epoch into `key` itself.
    probe_key = jax.device_put(jax.random.split(key)[1], replicate)
    return Dispatch(step_on_leaves, minibatches, x_train, y_train, probe_key)


def _results(model, state, steps: int, replicas: Replicas, histories: list, replicated: bool) -> list[TrainingResult]:
    """One `TrainingResult` per replica, from the (stacked, if `replicated`) model and state."""
    return [
        TrainingResult(
            model=_stacking.index(model, replica) if replicated else model,
            optimiser_state=_stacking.index(state, replica) if replicated else state,
            steps=steps if (at := replicas.diverged_at[replica]) is None else at,
            status=replicas.statuses[replica],
            diverged_at=replicas.diverged_at[replica],
            reason=replicas.reasons[replica],
            history=histories[replica],
        )
        for replica in range(replicas.count)
    ]
