"""Experiments: TOML configs, sweeps, run directories and the runner behind `deepest run`."""

from .config import ConfigError as ConfigError
from .config import ExperimentConfig as ExperimentConfig
from .config import from_dict as from_dict
from .config import load as load
from .runner import run_experiment as run_experiment
from .runner import run_one as run_one
