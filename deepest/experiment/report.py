"""`deepest report RUN_DIR`: a markdown summary of one run and its training-curve figure."""

import pathlib

from . import rundir
from .results import cell


def _training_curves(directory: pathlib.Path, records: list[dict]) -> str | None:
    """figures/training.png from metrics.jsonl (None without matplotlib or records)."""
    if not records:
        return None
    try:
        from .. import plot
    except ModuleNotFoundError:  # the `plot` extra is not installed: no figure
        return None
    figure = plot.training_curves(records)
    rundir.write_atomic(directory / "figures" / "training.png", lambda file: plot.write_png(figure, file))
    return "figures/training.png"


def write_report(run_dir) -> pathlib.Path:
    """Write RUN_DIR/report.md (and figures/training.png); returns the markdown's path."""
    directory = pathlib.Path(run_dir)
    if not (directory / "config.json").exists():
        raise FileNotFoundError(f"{directory} is not a run directory (no config.json).")
    config = rundir.checked_config(directory)  # a damaged one stops the report, naming it
    summary = rundir.read_summary(directory)
    records = rundir.metrics_up_to(directory / "metrics.jsonl", float("inf"))
    lines = [
        f"# {config['name']} — run {directory.name}",
        "",
        f"- solver {config['discretisation']['solver']}, {config['discretisation']['num_steps'] or 'adaptive'} steps, "
        f"t1 = {config['discretisation']['t1']}; data {config['data']['name']}; field {config['model']['field']}",
        f"- status: **{summary['status']}** after {summary.get('steps')} steps"
        + (f" (diverged at step {summary['diverged_at']}: {summary['reason']})" if summary.get("diverged_at") is not None else ""),
    ]
    final = summary.get("final") or {}
    if final:
        lines.append(f"- final: test accuracy {cell(final.get('test_accuracy'))}, test loss {cell(final.get('test_loss'))}")
    if summary.get("evaluation"):
        lines += ["", "## The trained field under other discretisations", "", "| solver | steps | test accuracy | test loss |", "|---|---|---|---|"]
        for entry in summary["evaluation"]:
            lines.append(f"| {entry['solver']} | {entry['num_steps'] or 'adaptive'} | {cell(entry['test_accuracy'])} | {cell(entry['test_loss'])} |")
    stability = summary.get("stability")
    if stability:
        lines += ["", "## Stability", ""]
        for key in (
            "fraction_numerically_unstable",
            "fraction_dynamically_growing",
            "fraction_over_damped",
            "median_amplification_ratio",
            "max_amplification_ratio",
            "fraction_outside",
            "max_growth",
            "max_spectral_abscissa",
            "max_log_norm",
            "gradient_slope",
            "gradient_regime",
            "io_largest_singular_value",
            "top_lyapunov",
        ):
            lines.append(f"- {key}: {cell(stability.get(key))}")
        if (directory / "figures" / "stability_report.png").exists():
            lines += ["", "![stability report](figures/stability_report.png)"]
    curves = _training_curves(directory, records)
    if curves:
        lines += ["", "## Training", "", f"![training curves]({curves})"]
    path = directory / "report.md"
    rundir.write_atomic(path, lambda file: file.write(("\n".join(lines) + "\n").encode()))
    return path
