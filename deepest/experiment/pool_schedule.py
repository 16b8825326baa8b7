"""Which run each worker of a sweep's process pool does next.

Two things decide a sweep's wall time on W workers: compiling, which runs that differ only in
their seeds share when one worker runs them one after another (same programs, traced and
compiled once; other workers would at best load them from the compilation cache), and
balance, since the sweep ends when its busiest worker does. So a worker keeps to one setting
(a group of runs differing only in seeds) until that group is done, takes the untouched group
with the most training work next (largest first, as in longest-processing-time scheduling,
Graham 1969), and once every group is taken, helps the worker with the most work left by
taking that worker's last run.
"""

import json
import math

from ..solvers import function_evaluations
from .config import ExperimentConfig, to_dict

# An adaptive run's step count is known only once it has trained: counted as this many.
ADAPTIVE_STEPS_ESTIMATE = 10
# An implicit step's evaluations depend on its root finder's iterations: counted as this many.
IMPLICIT_EVALUATIONS_PER_STEP = 4


def training_work(config: ExperimentConfig) -> float:
    """A run's training work in evaluations of its field on one sample: training steps ×
    batch size × replicas × evaluations per solve (`deepest.solvers.function_evaluations`).
    Comparable between the runs of one sweep, which share a field type; not a time."""
    steps = config.discretisation.num_steps or ADAPTIVE_STEPS_ESTIMATE
    evaluations = function_evaluations(config.discretisation.solver, steps)
    if not math.isfinite(evaluations):
        evaluations = IMPLICIT_EVALUATIONS_PER_STEP * steps
    return config.training.num_steps * config.training.batch_size * config.model.replicas * evaluations


def _settings(configs: list) -> list[list[int]]:
    """The runs (indices into `configs`) grouped by everything but their seeds, in order."""
    groups: dict[str, list[int]] = {}
    for index, config in enumerate(configs):
        resolved = to_dict(config)
        unseeded = {
            section: {key: value for key, value in values.items() if key != "seed"} if isinstance(values, dict) else values
            for section, values in resolved.items()
        }
        groups.setdefault(json.dumps(unseeded, sort_keys=True), []).append(index)
    return list(groups.values())


class PoolSchedule:
    """The next run for a worker of the pool as it becomes free (`next_run(worker)`), each run
    once. Workers are named by the caller (e.g. 0 … W − 1), one task at a time each."""

    def __init__(self, configs: list):
        self._work = [training_work(config) for config in configs]
        self._untouched = sorted(_settings(configs), key=self._work_of, reverse=True)
        self._left: dict[int, list[int]] = {}

    def _work_of(self, runs: list[int]) -> float:
        return sum(self._work[index] for index in runs)

    def next_run(self, worker: int) -> int | None:
        """The run `worker` should do next, or None when every run has been handed out."""
        if self._left.get(worker):
            return self._left[worker].pop(0)
        if self._untouched:
            first, *rest = self._untouched.pop(0)
            self._left[worker] = rest
            return first
        busiest = max(self._left, key=lambda other: self._work_of(self._left[other]), default=None)
        if busiest is None or not self._left[busiest]:
            return None
        return self._left[busiest].pop()
