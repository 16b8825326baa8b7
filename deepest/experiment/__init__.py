"""Experiments: TOML configs, sweeps, run directories and the runs behind `deepest run`.

config.py      the schema: one frozen dataclass per table, validated
loading.py     a file or shipped experiment, `--set` overrides, the sweep → configs
build.py       a config → its dataset, network and optimiser
evaluation.py  a trained field under other solvers × step counts
run.py         one run: train → evaluate → stability report → summary.json
pool.py        every run of an experiment, one after another or on pinned workers
pool_schedule.py  which run a worker of the pool does next
rundir.py      run directories and their files (JSON, metrics), written atomically, checked when read
checkpoint.py  a run's checkpoints, verified before use
results.py, scatter.py, report.py   tables, correlations and reports across finished runs
spread.py      mean ± standard deviation over the seeds of each setting
transfer.py    the train-at / test-at matrix of the re-evaluations
"""

from .config import ConfigError as ConfigError
from .config import ExperimentConfig as ExperimentConfig
from .config import from_dict as from_dict
from .evaluation import DiscretisationEvaluation as DiscretisationEvaluation
from .evaluation import evaluate_discretisations as evaluate_discretisations
from .loading import load as load
from .loading import shipped_experiments as shipped_experiments
from .pool import run_experiment as run_experiment
from .run import run_one as run_one
