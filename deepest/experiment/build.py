"""From a validated config to the objects it describes: dataset, network, optimiser."""

import equinox as eqx
import jax
import jax.numpy as jnp

from .. import data, fields, train
from ..encoders import ZeroAugmentation
from ..network import SolverNet
from .config import SPLIT_FIELDS, ConfigError, ExperimentConfig


def dataset(config: ExperimentConfig) -> data.Dataset:
    spec = config.data
    return data.make(
        spec.name,
        num_samples=spec.num_samples or None,
        noise=None if spec.noise < 0 else spec.noise,
        test_fraction=spec.test_fraction,
        seed=spec.seed,
    )


def network(config: ExperimentConfig, dataset: data.Dataset, *, replica: int = 0) -> SolverNet:
    """The SolverNet of a config for a dataset's input and output sizes, initialised from
    seed model.seed + replica."""
    model, steps = config.model, config.discretisation
    state_dim = dataset.input_dim + model.augment
    field_key, readout_key = jax.random.split(jax.random.PRNGKey(model.seed + replica))

    if model.field in SPLIT_FIELDS and state_dim % 2:
        raise ConfigError(
            f"model.field = {model.field!r} splits the state into two halves, but {dataset.name!r} has "
            f"{dataset.input_dim} inputs and model.augment = {model.augment} makes the state {state_dim}-dimensional: "
            f"choose model.augment = {model.augment + 1} (or another value giving an even state)."
        )

    def one_field(key):
        if model.field == "linear":
            return fields.Linear(-model.scale * jnp.eye(state_dim))
        if model.field == "antisymmetric":
            return fields.Antisymmetric(state_dim, gamma=model.gamma, activation=model.activation, key=key)
        if model.field == "hamiltonian":
            return fields.Hamiltonian(state_dim, activation=model.activation, key=key)
        if model.field == "parabolic":
            return fields.Parabolic(state_dim, model.width, activation=model.activation, key=key)
        if model.field == "second_order":
            return fields.SecondOrder(state_dim, stiffness=model.stiffness, damping=model.damping, activation=model.activation, key=key)
        return fields.MLP(state_dim, model.width, model.depth, activation=model.activation, time_input=model.time_input, key=key)

    if model.per_layer:
        layers = max(steps.num_steps, 1)
        field = fields.PerLayer([one_field(key) for key in jax.random.split(field_key, layers)], t1=steps.t1)
    else:
        field = one_field(field_key)
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
    spec = config.training
    return train.optimiser(
        spec.optimiser, spec.learning_rate, schedule=spec.schedule, num_steps=spec.num_steps, warmup_steps=spec.warmup_steps
    )
