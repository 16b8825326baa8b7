"""From a validated config to the objects it describes: dataset, network, optimiser."""

import dataclasses

import equinox as eqx
import jax

from .. import _caches, data, train
from ..encoders import ZeroAugmentation
from ..fields import SPLIT_FIELDS, AbstractVectorField, PerLayer, make_field
from ..network import SolverNet
from .config import ConfigError, DataConfig, ExperimentConfig


def dataset(config: ExperimentConfig) -> data.Dataset:
    """The dataset of a config's `[data]` table (a negative noise means the generator's default).

    A ConfigError where training.batch_size exceeds its training split: `train.fit` would
    draw batches of the whole split while config.json kept the larger request. The split's
    size is first known here (`validate` asks before a sweep writes any file).
    """
    spec = config.data
    made = _generated(spec)
    batch_size, size = config.training.batch_size, len(made.x_train)
    if batch_size > size:
        raise ConfigError(
            f"training.batch_size = {batch_size} is not allowed: at most the training split's {size} samples "
            f"({size + len(made.x_test)} samples of {spec.name!r}, data.test_fraction = {spec.test_fraction}). "
            f"Lower training.batch_size or raise data.num_samples."
        )
    return made


@_caches.lru_cache(maxsize=8)
def _generated(spec: DataConfig) -> data.Dataset:
    """One generation per `[data]` table in a process: a sweep's runs and `validate` share it."""
    return data.make(
        spec.name,
        num_samples=spec.num_samples or None,
        noise=None if spec.noise < 0 else spec.noise,
        test_fraction=spec.test_fraction,
        seed=spec.seed,
    )


def validate(config: ExperimentConfig) -> None:
    """Raise the ConfigError that building this config's dataset or network would, without
    building the network: a sweep asks for every run before any run writes a file."""
    _check_state_dim(config, dataset(config))


def _check_state_dim(config: ExperimentConfig, dataset: data.Dataset) -> None:
    model = config.model
    state_dim = dataset.input_dim + model.augment
    if model.field in SPLIT_FIELDS and state_dim % 2:
        raise ConfigError(
            f"model.field = {model.field!r} splits the state into two halves, but {dataset.name!r} has "
            f"{dataset.input_dim} inputs and model.augment = {model.augment} makes the state {state_dim}-dimensional: "
            f"choose model.augment = {model.augment + 1} (or another value giving an even state)."
        )


def network(config: ExperimentConfig, dataset: data.Dataset, *, replica: int = 0) -> SolverNet:
    """The SolverNet of a config for a dataset's input and output sizes, initialised from
    seed model.seed + replica."""
    model, steps = config.model, config.discretisation
    state_dim = dataset.input_dim + model.augment
    field_key, readout_key = jax.random.split(jax.random.PRNGKey(model.seed + replica))
    _check_state_dim(config, dataset)
    settings = dataclasses.asdict(model)  # each field takes the settings it has parameters for
    if model.per_layer:
        keys = jax.random.split(field_key, max(steps.num_steps, 1))
        field: AbstractVectorField = PerLayer([make_field(model.field, state_dim, key=key, **settings) for key in keys], t1=steps.t1)
    else:
        field = make_field(model.field, state_dim, key=field_key, **settings)
    outputs = dataset.num_classes or dataset.y_train.shape[1]
    return SolverNet(
        field,
        solver=steps.solver,
        solver_options={"k": steps.lm_resnet_k} if steps.solver == "lm_resnet" else None,
        t1=steps.t1,
        num_steps=steps.num_steps or None,
        rtol=steps.rtol,
        atol=steps.atol,
        adjoint=steps.adjoint,
        batch_stepping=steps.batch_stepping,
        encoder=ZeroAugmentation(model.augment) if model.augment else None,
        readout=eqx.nn.Linear(state_dim, outputs, key=readout_key),
        throw=False,
    )


def optimiser(config: ExperimentConfig):
    """The optax optimiser of a config's `[training]` table, its schedule over the run's steps."""
    spec = config.training
    return train.optimiser(spec.optimiser, spec.learning_rate, schedule=spec.schedule, num_steps=spec.num_steps, warmup_steps=spec.warmup_steps)
