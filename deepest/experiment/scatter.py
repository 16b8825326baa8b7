"""A result against each stability measure across the runs of an experiment: ρ and its figure.

Panel j plots the column `y` of the results table (test accuracy by default; any numeric
column) against stability measure j over the runs, coloured by a config key, and gives
Spearman's rank correlation ρ over the runs that have both numbers (`scipy.stats.spearmanr`;
ρ is NaN with fewer than three such runs or a constant column). The measures are those of
every stability report, plus the discrete growth bound where the runs measured robustness.
`by` splits the runs on a swept key (one row of panels and one ρ per value): pooling, say,
two datasets whose accuracies differ mostly by dataset would rank the datasets, not the nets.
"""

import math
import pathlib

import numpy as np
from scipy import stats

from . import rundir
from .results import collect

STABILITY_MEASURES = ("numerically_unstable", "max_amplification", "outside", "max_growth", "max_log_norm", "gradient_slope", "top_lyapunov")
# Written by `[analysis] robustness` runs only (`deepest.robustness.robustness_summary`).
OPTIONAL_MEASURES = ("growth_bound",)


def _number(value) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan


def measures(header: list[str]) -> tuple[str, ...]:
    """The stability measures the table has a column for."""
    return STABILITY_MEASURES + tuple(measure for measure in OPTIONAL_MEASURES if measure in header)


def rank_correlations(header: list[str], rows: list[list], y: str) -> dict[str, float]:
    """Spearman's ρ between column `y` and each stability measure, over the runs with both."""
    if y not in header:
        raise ValueError(f"No column {y!r} in the results table. Columns are: {', '.join(header)}.")
    targets = np.array([_number(row[header.index(y)]) for row in rows])
    correlations = {}
    for measure in measures(header):
        values = np.array([_number(row[header.index(measure)]) for row in rows])
        both = np.isfinite(values) & np.isfinite(targets)
        constant = both.sum() < 3 or np.ptp(values[both]) == 0 or np.ptp(targets[both]) == 0
        correlations[measure] = math.nan if constant else float(stats.spearmanr(values[both], targets[both]).statistic)
    return correlations


def write_scatter(directory, path, *, y: str = "test_accuracy", colour_by: str | None = None, by: str | None = None) -> dict[str, dict[str, float]]:
    """Draw the figure of the runs below `directory` to `path` (PNG, `deepest.plot.against_measures`);
    returns the ρ per measure of each group of runs: {"key=value": {measure: ρ}} split by the
    swept key `by`, or {"all runs": {measure: ρ}}.

    `colour_by` is a config column of the table (default: the first swept key).
    """
    from .. import plot

    header, rows = collect(directory)
    swept = header[1 : header.index("status")]
    for name, key in (("colour by", colour_by), ("split by", by)):
        if key is not None and key not in swept:
            raise ValueError(f"Cannot {name} {key!r}: it is not a swept key. Swept keys are: {', '.join(swept) or 'none'}.")
    colour_by = colour_by or (swept[0] if swept else None)
    split = _groups(header, rows, by) if by else {"all runs": rows}
    correlations = {label: rank_correlations(header, members, y) for label, members in split.items()}
    colours = sorted({repr(row[header.index(colour_by)]) for row in rows}) if colour_by else ["all runs"]
    points: dict[str, dict[str, dict[str, list[float]]]] = {}
    for label, members in split.items():
        points[label] = {}
        for colour in colours:
            coloured = [row for row in members if colour_by is None or repr(row[header.index(colour_by)]) == colour]
            points[label][colour.strip("'")] = {column: [_number(row[header.index(column)]) for row in coloured] for column in (y, *measures(header))}
    figure = plot.against_measures(points, correlations, y=y, colour_by=colour_by, by=by)
    rundir.write_atomic(pathlib.Path(path), lambda file: plot.write_png(figure, file))
    return correlations


def _groups(header: list[str], rows: list[list], key: str) -> dict[str, list[list]]:
    """The rows split by their value of the column `key`, labelled "key=value", in sorted order."""
    values = sorted({row[header.index(key)] for row in rows}, key=repr)
    return {f"{key}={value}": [row for row in rows if row[header.index(key)] == value] for value in values}
