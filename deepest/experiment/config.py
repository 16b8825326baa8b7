"""The experiment schema: frozen, validated dataclasses, one per table of a config.

A config is data. Every key has its default here; a file overrides some of them, and
`--set section.key=value` overrides the file (`deepest.experiment.loading`). Validation happens
before anything is written: an unknown key names the closest valid one, a wrong type or range
names the key, the value and what is allowed. Step counts have upper limits far beyond any
practical run (`MAX_TRAINING_STEPS`, `MAX_SOLVER_STEPS`), and the batch may not exceed the
training split (`deepest.experiment.build.dataset`, which knows its size).

    [data]            dataset and split          [training]    optimiser, steps, batches
    [model]           the vector field           [evaluation]  other discretisations to test at
    [discretisation]  solver, steps, adjoint     [analysis]    stability report, attacks
    [regularisation]  weights of the regularisers added to the loss
"""

import dataclasses
import difflib
import math
import re
import typing

from ..data import DATASETS
from ..fields import ACTIVATIONS, FIELDS
from ..network import ADJOINTS, BATCH_STEPPING
from ..robustness import ATTACKS, NORMS
from ..solvers import MULTISTEP, PARTITIONED, SOLVERS, supports_adaptive
from ..train import OPTIMISERS, SCHEDULES

# Seeds go to NumPy, scikit-learn and jax.random.PRNGKey, which all take [0, 2³²).
_SEEDS = f"an integer in [0, {2**32})"
# Step counts far beyond any practical run: a digit too many is refused here, not started
# as a run that would never finish.
MAX_TRAINING_STEPS = 10_000_000
MAX_SOLVER_STEPS = 100_000


class ConfigError(ValueError):
    """A config that does not validate; the message names the key and what is allowed."""


def _require(condition: bool, key: str, value, allowed: str) -> None:
    if not condition:
        raise ConfigError(f"{key} = {value!r} is not allowed: {allowed}.")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """The dataset (`deepest.data.make`)."""

    name: str = "spirals"
    num_samples: int = 0  # 0: the dataset's default size
    noise: float = -1.0  # negative: the dataset's default noise
    test_fraction: float = 0.2
    seed: int = 0

    def __post_init__(self):
        _require(self.name in DATASETS, "data.name", self.name, f"one of {', '.join(DATASETS)}")
        _require(self.num_samples == 0 or self.num_samples >= 4, "data.num_samples", self.num_samples, "0 (default) or ≥ 4")
        _require(0 < self.test_fraction < 1, "data.test_fraction", self.test_fraction, "a number in (0, 1)")
        _require(0 <= self.seed < 2**32, "data.seed", self.seed, _SEEDS)
        if self.name == "mnist1d":
            _require(
                self.num_samples == 0 or self.num_samples >= 10,
                "data.num_samples",
                self.num_samples,
                "for mnist1d, 0 (default) or ≥ 10 (one per class)",
            )


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The vector field f_θ, an augmentation of the input, and a linear readout."""

    field: str = "mlp"
    width: int = 32
    depth: int = 1
    activation: str = "tanh"
    time_input: bool = False
    per_layer: bool = False  # distinct weights per layer (a PerLayer field on the step grid)
    augment: int = 2  # zero dimensions appended to the input
    scale: float = 1.0  # linear: the matrix starts at −scale·I (eigenvalues h·λ = −scale·h)
    gamma: float = 0.0  # antisymmetric: f = σ((W − Wᵀ − γI) y + b)
    stiffness: float = 1.0  # second_order: v' = σ(W x + V v + b) − stiffness·x − damping·v
    damping: float = 0.0
    seed: int = 0
    replicas: int = 1  # seeds seed … seed + replicas − 1, trained together in one vmapped step

    def __post_init__(self):
        _require(self.field in FIELDS, "model.field", self.field, f"one of {', '.join(FIELDS)}")
        _require(self.width >= 1, "model.width", self.width, "a positive integer")
        _require(self.depth >= 0, "model.depth", self.depth, "a non-negative integer")
        _require(self.activation in ACTIVATIONS, "model.activation", self.activation, f"one of {', '.join(ACTIVATIONS)}")
        _require(self.augment >= 0, "model.augment", self.augment, "a non-negative integer")
        for name in ("gamma", "stiffness", "damping"):
            _require(getattr(self, name) >= 0, f"model.{name}", getattr(self, name), "a non-negative number")
        _require(0 <= self.seed < 2**32, "model.seed", self.seed, _SEEDS)
        _require(1 <= self.replicas <= 2**32 - self.seed, "model.replicas", self.replicas, "a positive integer (with seed + replicas ≤ 2^32)")


@dataclasses.dataclass(frozen=True)
class DiscretisationConfig:
    """The solver and its steps: the architecture's depth."""

    solver: str = "euler"
    num_steps: int = 10  # 0: adaptive steps with rtol/atol; at most MAX_SOLVER_STEPS
    t1: float = 1.0
    rtol: float = 1e-3
    atol: float = 1e-6
    adjoint: str = "recursive_checkpoint"
    batch_stepping: str = "per_sample"  # adaptive: each sample its own steps, or "shared" by the batch
    lm_resnet_k: float = 0.0  # lm_resnet: y_{k+1} = (1 − k) y_k + k y_{k−1} + h f (0: Euler)

    def __post_init__(self):
        _require(self.solver in SOLVERS, "discretisation.solver", self.solver, f"one of {', '.join(SOLVERS)}")
        _require(
            0 <= self.num_steps <= MAX_SOLVER_STEPS,
            "discretisation.num_steps",
            self.num_steps,
            f"a positive integer up to {MAX_SOLVER_STEPS}, or 0 for adaptive",
        )
        if self.num_steps == 0:
            adaptive = [name for name in SOLVERS if supports_adaptive(name)]
            _require(self.solver in adaptive, "discretisation.solver", self.solver, f"with num_steps = 0 (adaptive), one of {', '.join(adaptive)}")
        _require(self.t1 > 0, "discretisation.t1", self.t1, "a positive number")
        _require(self.rtol > 0 and self.atol > 0, "discretisation.rtol/atol", (self.rtol, self.atol), "positive numbers")
        _require(self.adjoint in ADJOINTS, "discretisation.adjoint", self.adjoint, f"one of {', '.join(ADJOINTS)}")
        _require(self.batch_stepping in BATCH_STEPPING, "discretisation.batch_stepping", self.batch_stepping, f"one of {', '.join(BATCH_STEPPING)}")
        if self.lm_resnet_k != 0:
            _require(self.solver == "lm_resnet", "discretisation.lm_resnet_k", self.lm_resnet_k, '0 unless discretisation.solver = "lm_resnet"')


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Optimiser, schedule, minibatches and the divergence threshold."""

    optimiser: str = "adam"
    learning_rate: float = 1e-2
    schedule: str = "constant"
    warmup_steps: int = 0
    num_steps: int = 400  # at most MAX_TRAINING_STEPS
    batch_size: int = 128  # at most the training split's size (checked once the dataset is built)
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 100
    max_state_norm: float = 1e6

    def __post_init__(self):
        _require(self.optimiser in OPTIMISERS, "training.optimiser", self.optimiser, f"one of {', '.join(OPTIMISERS)}")
        _require(self.learning_rate > 0, "training.learning_rate", self.learning_rate, "a positive number")
        _require(self.schedule in SCHEDULES, "training.schedule", self.schedule, f"one of {', '.join(SCHEDULES)}")
        for name in ("num_steps", "batch_size", "log_every", "checkpoint_every"):
            _require(getattr(self, name) >= 1, f"training.{name}", getattr(self, name), "a positive integer")
        _require(self.num_steps <= MAX_TRAINING_STEPS, "training.num_steps", self.num_steps, f"a positive integer up to {MAX_TRAINING_STEPS}")
        _require(self.max_state_norm > 0, "training.max_state_norm", self.max_state_norm, "a positive number")
        _require(
            0 <= self.warmup_steps < self.num_steps, "training.warmup_steps", self.warmup_steps, f"an integer in [0, num_steps = {self.num_steps})"
        )
        _require(0 <= self.seed < 2**32, "training.seed", self.seed, _SEEDS)


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """Re-integrate the trained field with these solvers × step counts (0: adaptive)."""

    solvers: tuple[str, ...] = ()
    num_steps: tuple[int, ...] = ()  # each at most MAX_SOLVER_STEPS

    def __post_init__(self):
        for solver in self.solvers:
            _require(solver in SOLVERS, "evaluation.solvers", solver, f"each one of {', '.join(SOLVERS)}")
        for count in self.num_steps:
            _require(0 <= count <= MAX_SOLVER_STEPS, "evaluation.num_steps", count, f"integers in [0, {MAX_SOLVER_STEPS}] (0: adaptive)")
        _require(
            bool(self.solvers) == bool(self.num_steps),
            "evaluation",
            {"solvers": self.solvers, "num_steps": self.num_steps},
            "solvers and num_steps both given (their product is evaluated) or both empty",
        )


@dataclasses.dataclass(frozen=True)
class AnalysisConfig:
    """The stability report on a subset of the test split."""

    report: bool = True  # the Jacobian spectrum against the solver's region, always in a report
    gradients: bool = True  # the per-layer gradient-norm profile and its regime
    io_jacobian: bool = True  # input–output singular values and finite-time Lyapunov exponents
    num_samples: int = 64
    figures: bool = True
    robustness: bool = False  # attacks on the same samples (`deepest.robustness.robustness_summary`)
    epsilons: tuple[float, ...] = (0.05, 0.1, 0.2)  # robust accuracy at these budgets (input units)
    attack: str = "pgd"
    attack_norm: str = "linf"
    pgd_steps: int = 10

    def __post_init__(self):
        _require(self.num_samples >= 1, "analysis.num_samples", self.num_samples, "a positive integer")
        _require(
            len(self.epsilons) >= 1 and all(epsilon >= 0 for epsilon in self.epsilons),
            "analysis.epsilons",
            self.epsilons,
            "a non-empty list of non-negative budgets",
        )
        _require(self.attack in ATTACKS, "analysis.attack", self.attack, f"one of {', '.join(ATTACKS)}")
        _require(self.attack_norm in NORMS, "analysis.attack_norm", self.attack_norm, f"one of {', '.join(NORMS)}")
        _require(self.pgd_steps >= 1, "analysis.pgd_steps", self.pgd_steps, "a positive integer")


@dataclasses.dataclass(frozen=True)
class RegularisationConfig:
    """Weights of the regularisers added to the loss (`deepest.regularisers`; 0 = off)."""

    kinetic_energy: float = 0.0  # ∫‖f‖² dt on the layer grid
    jacobian_frobenius: float = 0.0  # ∫‖∂f/∂y‖_F² dt, Hutchinson estimate
    weight_smoothness: float = 0.0  # Σ‖θ_{k+1} − θ_k‖²/h (model.per_layer = true)
    spectral_penalty: float = 0.0  # relu(growth(hλ) − 1 + margin)²: h·λ pushed into the region
    local_error: float = 0.0  # Σ‖embedded error estimate‖² (solvers with an error estimate)
    lyapunov: float = 0.0  # (1/T) ln σ_max(∂y_L/∂y_0): the top finite-time Lyapunov exponent
    io_condition: float = 0.0  # ln(σ_max/σ_min) of ∂y_L/∂y_0 (states of ≤ 256 dimensions)
    num_probes: int = 1  # Hutchinson probes per sample and layer
    margin: float = 0.0  # spectral_penalty: growth factors above 1 − margin are penalised
    local_error_steps: int = 10  # local_error of an adaptive net: the grid it re-steps on

    def __post_init__(self):
        for name in WEIGHTS:
            _require(getattr(self, name) >= 0, f"regularisation.{name}", getattr(self, name), "a non-negative weight (0: off)")
        _require(self.num_probes >= 1, "regularisation.num_probes", self.num_probes, "a positive integer")
        _require(self.local_error_steps >= 1, "regularisation.local_error_steps", self.local_error_steps, "a positive integer")
        _require(self.margin < 1, "regularisation.margin", self.margin, "a number below 1 (growth factors above 1 − margin are penalised)")

    def terms(self, adaptive: bool) -> tuple:
        """(name, weight, options) of the regularisers switched on, for `deepest.train`."""
        options = {
            "jacobian_frobenius": {"num_probes": self.num_probes},
            "spectral_penalty": {"margin": self.margin},
            "local_error": {"num_steps": self.local_error_steps} if adaptive else {},
        }
        return tuple((name, getattr(self, name), options.get(name, {})) for name in WEIGHTS if getattr(self, name) > 0)


# The regulariser weights of RegularisationConfig, in the order they are added.
WEIGHTS = ("kinetic_energy", "jacobian_frobenius", "weight_smoothness", "spectral_penalty", "local_error", "lyapunov", "io_condition")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """A whole experiment: one run (a sweep expands into many of these)."""

    name: str = "experiment"  # the runs go to <out>/<name>/
    description: str = ""
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    discretisation: DiscretisationConfig = DiscretisationConfig()
    training: TrainingConfig = TrainingConfig()
    regularisation: RegularisationConfig = RegularisationConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    analysis: AnalysisConfig = AnalysisConfig()

    def __post_init__(self):
        _require(re.fullmatch(r"[A-Za-z0-9_\-]+", self.name) is not None, "name", self.name, "letters, digits, _ and - only (it names a directory)")
        # Checks that involve two tables.
        if self.discretisation.solver in PARTITIONED:
            separable = self.model.field == "hamiltonian" and not self.model.per_layer
            _require(
                separable,
                "discretisation.solver",
                self.discretisation.solver,
                'a partitioned solver only for the separable model.field = "hamiltonian" (without per_layer)',
            )
        regularisation, adaptive = self.regularisation, self.discretisation.num_steps == 0
        if regularisation.weight_smoothness > 0:
            _require(
                self.model.per_layer,
                "regularisation.weight_smoothness",
                regularisation.weight_smoothness,
                "0 unless model.per_layer = true (it compares the weights of adjacent layers)",
            )
        for name in ("kinetic_energy", "jacobian_frobenius", "spectral_penalty", "lyapunov", "io_condition"):
            if getattr(regularisation, name) > 0:
                _require(
                    not adaptive,
                    f"regularisation.{name}",
                    getattr(regularisation, name),
                    "0 for adaptive nets (discretisation.num_steps = 0): it is measured on the fixed layer grid",
                )
        if self.analysis.robustness:
            _require(self.data.name != "regression", "analysis.robustness", True, "false for the regression dataset: the attacks need a classifier")
        if regularisation.local_error > 0:
            embedded = [solver for solver in SOLVERS if supports_adaptive(solver) and solver not in MULTISTEP]
            _require(
                self.discretisation.solver in embedded,
                "regularisation.local_error",
                regularisation.local_error,
                f"0 unless discretisation.solver has an error estimate: one of {', '.join(embedded)}",
            )


def _check_type(key: str, value, annotation):
    """`value` converted to `annotation` (int → float allowed), or a ConfigError."""
    if typing.get_origin(annotation) is tuple:
        (item_type, _) = typing.get_args(annotation)
        _require(isinstance(value, list | tuple), key, value, f"a list of {item_type.__name__}")
        return tuple(_check_type(key, item, item_type) for item in value)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is float and isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key} = {value!r} is not allowed: a finite number.")
    if annotation is int and isinstance(value, bool) or not isinstance(value, annotation):
        raise ConfigError(f"{key} = {value!r} is not allowed: expected {annotation.__name__}, got {type(value).__name__}.")
    return value


def _build(cls, table: dict, prefix: str):
    fields = {field.name: field for field in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in table.items():
        path = f"{prefix}{key}"
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f" Did you mean {prefix + close[0]!r}?" if close else ""
            raise ConfigError(f"Unknown key {path!r}.{hint} Valid keys here: {', '.join(fields)}.")
        annotation = hints[key]
        if dataclasses.is_dataclass(annotation):
            _require(isinstance(value, dict), path, value, "a table")
            values[key] = _build(annotation, value, f"{path}.")
        else:
            values[key] = _check_type(path, value, annotation)
    return cls(**values)


def from_dict(table: dict) -> ExperimentConfig:
    """Validate a nested dict (as TOML gives) into an `ExperimentConfig`; `sweep` not allowed."""
    return _build(ExperimentConfig, table, "")


def to_dict(config: ExperimentConfig) -> dict:
    """The resolved config as plain JSON-ready data (tuples become lists)."""
    return dataclasses.asdict(config, dict_factory=lambda items: {key: list(value) if isinstance(value, tuple) else value for key, value in items})
