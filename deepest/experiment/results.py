"""One table across the runs of an experiment directory (and its CSV)."""

import csv
import dataclasses
import functools
import io
import pathlib
import warnings
from collections.abc import Callable
from typing import Any

from . import rundir

# Summary columns after the swept config keys: (header, path into summary.json).
_COLUMNS = (
    ("status", ("status",)),
    ("steps", ("steps",)),
    ("test_accuracy", ("final", "test_accuracy")),
    ("test_loss", ("final", "test_loss")),
    # The discretisation's own instability first: the share of h·λ where the solver grows a
    # mode the flow does not, and its worst amplification over the exact flow, |R(hλ)|/|e^{hλ}|.
    ("numerically_unstable", ("stability", "fraction_numerically_unstable")),
    ("max_amplification", ("stability", "max_amplification_ratio")),
    ("outside", ("stability", "fraction_outside")),
    ("max_growth", ("stability", "max_growth")),
    ("max_log_norm", ("stability", "max_log_norm")),
    ("gradient_slope", ("stability", "gradient_slope")),
    ("gradients", ("stability", "gradient_regime")),
    ("top_lyapunov", ("stability", "top_lyapunov")),
)
# With `[analysis] robustness` (shown only when some run has it): the mean over the budgets
# and, after these, the robust accuracy at each budget as robust@ε.
_ROBUSTNESS_COLUMNS = (
    ("robust_accuracy", ("robustness", "mean_robust_accuracy")),
    ("rho_deepfool", ("robustness", "rho_deepfool")),
    ("rho_fgsm", ("robustness", "rho_fgsm")),
    ("growth_bound", ("robustness", "growth_bound")),
)


def _flatten(table: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _lookup(summary: dict, path: tuple):
    value: Any = summary
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _robust_accuracy_at(summary: dict, epsilon: float):
    robustness = summary.get("robustness") or {"epsilons": []}
    budgets = robustness["epsilons"]
    return robustness["robust_accuracy"][budgets.index(epsilon)] if epsilon in budgets else None


def _config(run: pathlib.Path) -> dict:
    """The run's config.json, or {} (with a warning) if it is damaged."""
    try:
        return rundir.checked_config(run)
    except rundir.DamagedFile as damaged:
        warnings.warn(f"{damaged}; its row has no config values until `deepest run` writes it again", rundir.DamagedFileWarning, stacklevel=3)
        return {}


@dataclasses.dataclass(frozen=True)
class Runs:
    """The runs below an experiment directory, in the order of their swept values: their
    directories, flattened configs and summaries, the config keys that vary between them,
    and the table's columns as (name, summary → value) pairs (which also read a replica's
    entry of a summary)."""

    directories: list[pathlib.Path]
    configs: list[dict]
    summaries: list[dict]
    varying: list[str]
    columns: list[tuple[str, Callable[[dict], Any]]]


def read_runs(directory) -> Runs:
    """Every run directory below `directory` that has a config.json (`collect`'s rows)."""
    runs = sorted(path.parent for path in pathlib.Path(directory).rglob("config.json"))
    if not runs:
        raise FileNotFoundError(f"No runs (no config.json) below {directory}.")
    configs = [_flatten(_config(run)) for run in runs]
    sound = [config for config in configs if config] or [{}]
    varying = [key for key in sound[0] if len({repr(config.get(key)) for config in sound}) > 1]

    # Rows in the order of the swept values, not of the hashes.
    def sort_key(index):
        values = (configs[index].get(key) for key in varying)
        return [(0, value, "") if isinstance(value, int | float) else (1, 0, repr(value)) for value in values]

    order = sorted(range(len(runs)), key=sort_key)
    runs, configs = [runs[index] for index in order], [configs[index] for index in order]
    summaries = [rundir.read_summary(run) for run in runs]
    columns: list[tuple[str, Callable[[dict], Any]]] = [(name, functools.partial(_lookup, path=path)) for name, path in _COLUMNS]
    attacked = [summary["robustness"] for summary in summaries if summary.get("robustness")]
    if attacked:
        columns += [(name, functools.partial(_lookup, path=path)) for name, path in _ROBUSTNESS_COLUMNS]
        budgets = dict.fromkeys(epsilon for robustness in attacked for epsilon in robustness["epsilons"])
        columns += [(f"robust@{epsilon:g}", functools.partial(_robust_accuracy_at, epsilon=epsilon)) for epsilon in budgets]
    return Runs(runs, configs, summaries, varying, columns)


def collect(directory) -> tuple[list[str], list[list]]:
    """Header and rows: one row per run directory below `directory` that has a config.json.

    The config columns are the keys whose values differ between the runs; unfinished runs
    show status "running/interrupted", runs with a damaged summary.json "needs re-run" and
    with a damaged config.json no config values (each named in a `DamagedFileWarning`). The
    robustness columns appear when some run has them.
    """
    return table(read_runs(directory))


def table(runs: Runs) -> tuple[list[str], list[list]]:
    """`collect`'s header and rows from runs already read."""
    header = ["run_id", *runs.varying, *(name for name, _ in runs.columns)]
    rows = [
        [run.name, *(config.get(key) for key in runs.varying), *(value(summary) for _, value in runs.columns)]
        for run, config, summary in zip(runs.directories, runs.configs, runs.summaries)
    ]
    return header, rows


def cell(value) -> str:
    """A table cell: 4 significant digits for floats, — for missing values."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_table(header: list[str], rows: list[list]) -> str:
    """An aligned text table."""
    cells = [header, *([cell(value) for value in row] for row in rows)]
    widths = [max(len(row[column]) for row in cells) for column in range(len(header))]
    lines = ["  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def to_csv(header: list[str], rows: list[list]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows([["" if value is None else value for value in row] for row in rows])
    return buffer.getvalue()
