"""Results with their spread: mean ± standard deviation over the seeds of each setting.

A *setting* is a group of runs whose configs differ only in seeds (keys named `seed`:
model.seed, training.seed, data.seed). Its *samples* are the trained nets: each replica of a
run with model.replicas = R (its own entry in summary.json), else the run itself. A number
is summarised as mean ± sample standard deviation (ddof = 1) over the samples that have it
(unfinished runs and missing values are left out; `Spread.count` says how many remain); a
text by the counts of its values ("2× exploding, 1× stable"). A claim about a setting is one
its spread does not undo: a difference of means within a standard deviation or two is not
a finding at these sample counts.
"""

import collections
import dataclasses
import math

import numpy as np

from .results import Runs
from .rundir import FINISHED


@dataclasses.dataclass(frozen=True)
class Spread:
    """Mean and sample standard deviation (NaN for a single sample) of `count` numbers."""

    mean: float
    std: float
    count: int

    def __str__(self) -> str:
        return f"{self.mean:.4g} ± {self.std:.2g}" if self.count > 1 else f"{self.mean:.4g}"


def is_seed(key: str) -> bool:
    """Whether a dotted config key is a seed (model.seed, training.seed, data.seed)."""
    return key.rsplit(".", 1)[-1] == "seed"


def count_texts(texts: list) -> str:
    """ "2× exploding, 1× stable": how often each text occurs, most frequent first (ties in the
    order they first occur)."""
    return ", ".join(f"{count}× {text}" for text, count in collections.Counter(map(str, texts)).most_common())


def summarise(values: list):
    """One cell from the samples' values: a `Spread` of the numbers, or the counts of the
    texts, or None if no sample has a value."""
    present = [value for value in values if value is not None and not (isinstance(value, float) and math.isnan(value))]
    numbers = [value for value in present if isinstance(value, int | float) and not isinstance(value, bool)]
    if numbers and len(numbers) == len(present):
        return Spread(float(np.mean(numbers)), float(np.std(numbers, ddof=1)) if len(numbers) > 1 else math.nan, len(numbers))
    if not present:
        return None
    return count_texts(present)


def spread_table(runs: Runs) -> tuple[list[str], list[list]] | None:
    """Header and rows of the table over seeds (`results.read_runs` reads `runs`): one row per
    setting, its swept keys other than seeds, n (the samples) and each column of `collect` as
    `summarise` gives it. None when no setting has more than one sample (nothing to spread)."""
    settings = [key for key in runs.varying if not is_seed(key)]
    samples: dict[tuple, list[dict]] = {}
    values: dict[tuple, list] = {}  # each setting's swept values
    for config, summary in zip(runs.configs, runs.summaries):
        setting = tuple(repr(config.get(key)) for key in settings)
        values.setdefault(setting, [config.get(key) for key in settings])
        finished = summary.get("status") in FINISHED
        samples.setdefault(setting, []).extend((summary.get("replicas") or [summary]) if finished else [])
    if max(len(group) for group in samples.values()) < 2:
        return None
    header = [*settings, "n", *(name for name, _ in runs.columns)]
    rows = [
        [*values[setting], len(group), *(summarise([value(sample) for sample in group]) for _, value in runs.columns)]
        for setting, group in samples.items()
    ]
    return header, rows
