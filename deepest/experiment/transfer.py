"""The transfer matrix: each trained field's test metric under every discretisation it was re-tested at.

Row: where the field was trained (solver and step count, with any other swept key but seeds);
column: where it was tested (the `[evaluation]` solvers × step counts, `evaluate_discretisations`).
A cell summarises that metric over the seeds of the row's setting (`spread.summarise`: mean ±
standard deviation over the trained nets, replicas included). A field that behaves like its
ODE keeps its accuracy along its row; a net that learned its discretisation keeps it only in
the column of its own training.
"""

from .results import Runs
from .rundir import FINISHED
from .spread import is_seed, summarise

# The config keys of the training discretisation, which name a row.
_TRAINED_AT = ("discretisation.solver", "discretisation.num_steps")


def _label(solver, num_steps) -> str:
    return f"{solver} {num_steps or 'adaptive'}"


def transfer_table(runs: Runs, metric: str = "test_accuracy") -> tuple[list[str], list[list]]:
    """Header and rows of the transfer matrix of `metric` ("test_accuracy" or "test_loss"):
    the row's swept keys other than seeds and the training discretisation, "trained at", then
    one column per tested discretisation. ValueError if no finished run was re-evaluated."""
    if metric not in ("test_accuracy", "test_loss"):
        raise ValueError(f"Unknown metric {metric!r}: test_accuracy or test_loss.")
    others = [key for key in runs.varying if not is_seed(key) and key not in _TRAINED_AT]
    cells: dict[tuple, dict[str, list]] = {}
    tested: dict[str, None] = {}
    for config, summary in zip(runs.configs, runs.summaries):
        if summary.get("status") not in FINISHED:
            continue
        row = (*(config.get(key) for key in others), _label(config.get("discretisation.solver"), config.get("discretisation.num_steps")))
        for net in summary.get("replicas") or [summary]:
            for entry in net.get("evaluation") or []:
                column = _label(entry["solver"], entry["num_steps"])
                tested.setdefault(column)
                cells.setdefault(row, {}).setdefault(column, []).append(entry.get(metric))
    if not cells:
        raise ValueError("No finished run has re-evaluations (an [evaluation] table) to tabulate.")
    # A discretisation no field could be tested at (adaptive steps without an error estimate) is no column.
    columns = [column for column in tested if any(summarise(values.get(column, [])) is not None for values in cells.values())]
    header = [*others, "trained at", *(f"tested {column}" for column in columns)]
    rows = [[*row, *(summarise(values.get(column, [])) for column in columns)] for row, values in cells.items()]
    return header, rows
