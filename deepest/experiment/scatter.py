"""One figure across the runs of an experiment: a result against each stability measure.

Panel j plots the column `y` of the results table (test accuracy by default; any numeric
column) against stability measure j over the runs, coloured by a config key, and gives
Spearman's rank correlation ρ over the runs that have both numbers (`scipy.stats.spearmanr`;
ρ is NaN with fewer than three such runs or a constant column).
"""

import math
import pathlib

import numpy as np
from scipy import stats

from . import rundir
from .results import collect

STABILITY_MEASURES = ("outside", "max_growth", "max_log_norm", "gradient_slope", "top_lyapunov")


def _number(value) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan


def rank_correlations(header: list[str], rows: list[list], y: str) -> dict[str, float]:
    """Spearman's ρ between column `y` and each stability measure, over the runs with both."""
    if y not in header:
        raise ValueError(f"No column {y!r} in the results table. Columns are: {', '.join(header)}.")
    targets = np.array([_number(row[header.index(y)]) for row in rows])
    correlations = {}
    for measure in STABILITY_MEASURES:
        values = np.array([_number(row[header.index(measure)]) for row in rows])
        both = np.isfinite(values) & np.isfinite(targets)
        constant = both.sum() < 3 or np.ptp(values[both]) == 0 or np.ptp(targets[both]) == 0
        correlations[measure] = math.nan if constant else float(stats.spearmanr(values[both], targets[both]).statistic)
    return correlations


def write_scatter(directory, path, *, y: str = "test_accuracy", colour_by: str | None = None) -> dict[str, float]:
    """Draw the figure of the runs below `directory` to `path` (PNG); returns the ρ per measure.

    `colour_by` is a config column of the table (default: the first swept key).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    header, rows = collect(directory)
    correlations = rank_correlations(header, rows, y)
    swept = header[1 : header.index("status")]
    colour_by = colour_by or (swept[0] if swept else None)
    if colour_by is not None and colour_by not in swept:
        raise ValueError(f"Cannot colour by {colour_by!r}: it is not a swept key. Swept keys are: {', '.join(swept) or 'none'}.")
    groups = sorted({repr(row[header.index(colour_by)]) for row in rows}) if colour_by else ["all runs"]
    figure, axes = plt.subplots(1, len(STABILITY_MEASURES), figsize=(3.4 * len(STABILITY_MEASURES), 3.2), sharey=True)
    for axis, measure in zip(axes, STABILITY_MEASURES):
        for group in groups:
            members = [row for row in rows if colour_by is None or repr(row[header.index(colour_by)]) == group]
            xs = [_number(row[header.index(measure)]) for row in members]
            ys = [_number(row[header.index(y)]) for row in members]
            axis.scatter(xs, ys, s=22, alpha=0.8, label=group.strip("'"))
        axis.set_xlabel(measure)
        axis.set_title(f"Spearman ρ = {correlations[measure]:.2f}", fontsize="medium")
    axes[0].set_ylabel(y)
    axes[-1].legend(title=colour_by, fontsize="small", loc="best")
    figure.tight_layout()
    rundir.write_atomic(pathlib.Path(path), lambda file: figure.savefig(file, format="png", dpi=110))
    plt.close(figure)
    return correlations
