"""Running experiments: one run into its directory, a sweep of runs, resumption, skipping.

A run trains, evaluates the trained field under other discretisations, writes its stability
report and finally summary.json. A run that diverges is finished too (status "diverged",
with the step and reason); a sweep goes on with its other runs.
"""

import concurrent.futures
import math
import multiprocessing
import pathlib
import time

import equinox as eqx
import jax
import numpy as np

from .. import train
from ..analysis import stability_report
from ..solvers import PARTITIONED, supports_adaptive
from . import build, config as config_module, rundir


def _evaluate(net, dataset, solver: str, num_steps: int) -> dict:
    """Test loss and accuracy of the trained field under another discretisation."""
    entry = {"solver": solver, "num_steps": num_steps}
    if (num_steps == 0 and not supports_adaptive(solver)) or solver in PARTITIONED:
        return {**entry, "test_loss": None, "test_accuracy": None, "note": "not applicable to this field/solver"}
    variant = net.with_solver(solver, num_steps=num_steps or None, throw=False)
    loss, diagnostics = train.make_evaluate(dataset.task)(variant, dataset.x_test, dataset.y_test)
    failures = int(diagnostics["solver_failures"])
    if failures:
        return {**entry, "test_loss": None, "test_accuracy": None, "note": f"solver failed on {failures} of {len(dataset.x_test)} samples"}
    return {**entry, "test_loss": _finite(loss), "test_accuracy": _finite(diagnostics["accuracy"])}


def _finite(value):
    value = float(value)
    return value if math.isfinite(value) else None


def run_one(config: config_module.ExperimentConfig, root, *, progress: bool | None = None) -> dict:
    """Run (or resume, or skip) one config under root/<run_id>/; returns its summary."""
    resolved = config_module.to_dict(config)
    directory = pathlib.Path(root) / rundir.run_id(resolved)
    summary_path = directory / "summary.json"
    if summary_path.exists():
        return {**rundir.read_json(summary_path), "skipped": True}
    started = time.perf_counter()
    # Everything that can refuse the config is built before the first file is written.
    dataset = build.dataset(config)
    net = build.network(config, dataset)
    optimiser = build.optimiser(config)
    state = optimiser.init(eqx.filter(net, eqx.is_inexact_array))
    rundir.write_json(directory / "config.json", resolved)
    rundir.write_json(directory / "env.json", rundir.environment())
    start_step, records = 0, []
    checkpoint = rundir.load_checkpoint(directory, net, state)
    if checkpoint is not None:
        start_step, net, state = checkpoint
        records = rundir.metrics_up_to(directory / "metrics.jsonl", start_step)
    rundir.write_metrics(directory / "metrics.jsonl", records)
    spec = config.training
    result = train.fit(
        net,
        dataset,
        optimiser,
        num_steps=spec.num_steps,
        batch_size=spec.batch_size,
        key=jax.random.PRNGKey(spec.seed),
        log_every=spec.log_every,
        max_state_norm=spec.max_state_norm,
        start_step=start_step,
        optimiser_state=state,
        on_record=lambda record: rundir.append_metrics(directory / "metrics.jsonl", record),
        checkpoint_every=spec.checkpoint_every,
        on_checkpoint=lambda step, model, opt_state: rundir.save_checkpoint(directory, step, model, opt_state),
        progress=progress,
    )
    rundir.save_checkpoint(directory, result.steps, result.model, result.optimiser_state)
    summary = {
        "experiment": config.name,
        "run_id": directory.name,
        "status": result.status,
        "steps": result.steps,
        "diverged_at": result.diverged_at,
        "reason": result.reason,
        "final": _final_metrics(rundir.metrics_up_to(directory / "metrics.jsonl", result.steps)),
        "evaluation": [],
        "stability": None,
    }
    if result.status == "completed":
        summary["evaluation"] = [
            _evaluate(result.model, dataset, solver, count)
            for solver in config.evaluation.solvers
            for count in config.evaluation.num_steps
        ]
    if config.analysis.report and config.discretisation.num_steps:
        # Also for a diverged run: the report of its last good model (the initial one if it
        # diverged at step 0) is what says why it blew up.
        summary["stability"] = _stability(config, result.model, dataset, directory)
    summary["runtime_seconds"] = time.perf_counter() - started
    rundir.write_json(summary_path, summary)
    return summary


def _final_metrics(records: list[dict]) -> dict:
    """The last record, minus wall time (which differs between equal runs). Records come back
    from metrics.jsonl, where non-finite values were already written as null."""
    if not records:
        return {}
    return {key: value for key, value in records[-1].items() if key != "wall_time"}


def _stability(config, model, dataset, directory: pathlib.Path) -> dict:
    count = min(config.analysis.num_samples, len(dataset.x_test))
    xs, targets = np.asarray(dataset.x_test[:count]), np.asarray(dataset.y_test[:count])
    report = stability_report(
        model,
        xs,
        targets,
        train.loss_fn_for(dataset.task),
        gradients=config.analysis.gradients,
        io_jacobian=config.analysis.io_jacobian,
    )
    if config.analysis.figures:
        _save_report_figure(report, directory / "figures" / "stability_report.png")
    return report.to_dict()


def _save_report_figure(report, path: pathlib.Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from .. import plot
    except ModuleNotFoundError:  # the `plot` extra is not installed: numbers only
        return
    figure = plot.stability_report(report)
    rundir.write_atomic(path, lambda file: figure.savefig(file, format="png", dpi=110, bbox_inches="tight"))
    plt.close(figure)


def _run_from_dict(resolved: dict, root: str) -> dict:
    """A process-pool entry point: configs travel as plain dicts."""
    return run_one(config_module.from_dict(resolved), root, progress=False)


def run_experiment(path, *, overrides=(), out="runs", jobs: int = 1, progress: bool | None = None) -> list[dict]:
    """Load, validate and run every run of an experiment file; returns their summaries.

    Runs go to <out>/<experiment name>/<run_id>/. With jobs > 1 they run in a `spawn`
    process pool (JAX and fork do not mix).
    """
    configs = config_module.load(path, overrides)
    # A sweep listing a value twice gives the same run twice: run it once.
    unique = {rundir.run_id(config_module.to_dict(config)): config for config in configs}
    configs = list(unique.values())
    root = pathlib.Path(out) / configs[0].name
    if jobs <= 1 or len(configs) == 1:
        return [run_one(config, root, progress=progress) for config in configs]
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = [pool.submit(_run_from_dict, config_module.to_dict(config), str(root)) for config in configs]
        return [future.result() for future in futures]
