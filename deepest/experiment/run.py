"""One run of an experiment: train → evaluate under other discretisations → report → summary.

A run trains (resuming from its last checkpoint if it was interrupted), evaluates the trained
field under the `[evaluation]` discretisations (`evaluate_discretisations`), writes its
stability report (and, with `[analysis] robustness`, its robustness under attack) and finally
summary.json. A run that diverges is finished too (status "diverged", with the step and
reason): the report of its last good model says why. A finished run is skipped.
"""

import math
import pathlib
import time

import jax
import numpy as np

from .. import _stacking, train
from ..analysis import stability_report
from ..robustness import robustness_summary
from . import build, rundir
from .config import ExperimentConfig, to_dict
from .evaluation import evaluate_discretisations


def run_one(config: ExperimentConfig, root, *, progress: bool | None = None) -> dict:
    """Run (or resume, or skip) one config under root/<run_id>/; returns its summary.

    With model.replicas = R > 1 the R seeds train together (`train.fit_replicas`); the summary
    then holds each replica's own entry under "replicas" and, at the top, their mean final
    metrics, evaluations and stability numbers (the table's row) with "status" "diverged" if
    any replica diverged.
    """
    resolved = to_dict(config)
    directory = pathlib.Path(root) / rundir.run_id(resolved)
    summary_path = directory / "summary.json"
    if summary_path.exists():
        return {**rundir.read_json(summary_path), "skipped": True}
    started = time.perf_counter()
    # Everything that can refuse the config is built before the first file is written.
    dataset = build.dataset(config)
    nets = [build.network(config, dataset, replica=replica) for replica in range(config.model.replicas)]
    replicated = len(nets) > 1
    net = train.stack_models(nets) if replicated else nets[0]
    optimiser = build.optimiser(config)
    state = train.init_state(optimiser, net, replicated=replicated)
    rundir.write_json(directory / "config.json", resolved)
    rundir.write_json(directory / "env.json", rundir.environment())
    results = _train(config, directory, dataset, net, optimiser, state, progress)
    records = rundir.metrics_up_to(directory / "metrics.jsonl", config.training.num_steps)
    entries = []
    for replica, result in enumerate(results):
        figure = directory / "figures" / (f"stability_report_replica{replica}.png" if replicated else "stability_report.png")
        own_records = [record for record in records if record.get("replica", 0) == replica]
        entries.append(_entry(config, dataset, replica, result, own_records, figure))
    summary = {"experiment": config.name, "run_id": directory.name, **(_replica_mean(entries) if replicated else entries[0])}
    if replicated:
        summary["replicas"] = entries
    summary["runtime_seconds"] = time.perf_counter() - started
    summary = rundir.json_ready(summary)
    rundir.write_json(summary_path, summary)
    return summary


def _train(config: ExperimentConfig, directory: pathlib.Path, dataset, net, optimiser, state, progress) -> list:
    """Train `net` (a stack of R > 1 replicas: together, `train.fit_replicas`) from the run's
    last checkpoint, recording metrics.jsonl and checkpoints; one result per replica."""
    replicas = config.model.replicas
    metrics_path = directory / "metrics.jsonl"
    start_step, records = 0, []
    checkpoint = rundir.load_checkpoint(directory, net, state)
    if checkpoint is not None:
        start_step, net, state = checkpoint
        records = rundir.metrics_up_to(metrics_path, start_step)
    rundir.write_metrics(metrics_path, records)
    spec = config.training
    options = dict(
        num_steps=spec.num_steps,
        batch_size=spec.batch_size,
        key=jax.random.PRNGKey(spec.seed),
        log_every=spec.log_every,
        max_state_norm=spec.max_state_norm,
        start_step=start_step,
        optimiser_state=state,
        on_record=lambda record: rundir.append_metrics(metrics_path, record),
        checkpoint_every=spec.checkpoint_every,
        on_checkpoint=lambda step, model, opt_state: rundir.save_checkpoint(directory, step, model, opt_state),
        progress=progress,
        regularisation=config.regularisation.terms(adaptive=config.discretisation.num_steps == 0),
    )
    if replicas > 1:
        # Replicas that diverged before the checkpoint stay frozen, as in an uninterrupted run.
        stopped = {record["replica"]: (record["step"], record["reason"]) for record in records if record.get("diverged")}
        results = train.fit_replicas(net, dataset, optimiser, replicas=replicas, stopped=stopped, **options)
        final_model = train.stack_models([result.model for result in results])
        final_state = _stacking.stack([result.optimiser_state for result in results], "optimiser states")
    else:
        results = [train.fit(net, dataset, optimiser, **options)]
        final_model, final_state = results[0].model, results[0].optimiser_state
    rundir.save_checkpoint(directory, max(result.steps for result in results), final_model, final_state)
    return results


def _entry(config: ExperimentConfig, dataset, replica: int, result, records: list[dict], figure: pathlib.Path) -> dict:
    """The summary entry of one trained net: status, final metrics, evaluations, stability
    report (written to `figure` too) and robustness."""
    completed = result.status == "completed"
    entry = {
        "seed": config.model.seed + replica,
        "status": result.status,
        "steps": result.steps,
        "diverged_at": result.diverged_at,
        "reason": result.reason,
        "final": _final_metrics(records),
        "evaluation": [],
        "stability": None,
        "robustness": None,
    }
    if completed:
        spec = config.evaluation
        entry["evaluation"] = [
            evaluation.to_dict() for evaluation in evaluate_discretisations(result.model, dataset, solvers=spec.solvers, num_steps=spec.num_steps)
        ]
    if config.analysis.report and config.discretisation.num_steps:
        # Also for a diverged run: the report of its last good model (the initial one if it
        # diverged at step 0) is what says why it blew up.
        entry["stability"] = _stability(config, result.model, dataset, figure)
    if config.analysis.robustness and completed:
        entry["robustness"] = _robustness(config, result.model, dataset)
    return entry


def _final_metrics(records: list[dict]) -> dict:
    """The last record, minus wall time (which differs between equal runs). Records come back
    from metrics.jsonl, where non-finite values were already written as null."""
    if not records:
        return {}
    return {key: value for key, value in records[-1].items() if key not in ("wall_time", "replica")}


def _analysis_samples(config: ExperimentConfig, dataset) -> tuple[np.ndarray, np.ndarray]:
    """The first `analysis.num_samples` test samples and their targets."""
    count = min(config.analysis.num_samples, len(dataset.x_test))
    return np.asarray(dataset.x_test[:count]), np.asarray(dataset.y_test[:count])


def _stability(config: ExperimentConfig, model, dataset, figure: pathlib.Path) -> dict:
    xs, targets = _analysis_samples(config, dataset)
    report = stability_report(
        model,
        xs,
        targets,
        train.loss_fn_for(dataset.task),
        gradients=config.analysis.gradients,
        io_jacobian=config.analysis.io_jacobian,
    )
    if config.analysis.figures:
        _write_report_figure(report, figure)
    return report.to_dict()


def _write_report_figure(report, path: pathlib.Path) -> None:
    try:
        from .. import plot
    except ModuleNotFoundError:  # the `plot` extra is not installed: numbers only
        return
    figure = plot.stability_report(report)
    rundir.write_atomic(path, lambda file: plot.write_png(figure, file, tight=True))


def _robustness(config: ExperimentConfig, model, dataset) -> dict:
    """Attacks on the samples of the stability report (`deepest.robustness.robustness_summary`)."""
    spec = config.analysis
    xs, labels = _analysis_samples(config, dataset)
    return robustness_summary(
        model,
        xs,
        labels,
        epsilons=spec.epsilons,
        attack=spec.attack,
        norm=spec.attack_norm,
        pgd_steps=spec.pgd_steps,
        # PGD's random starts: a fixed function of the run's seed, so a rerun gives the same numbers.
        key=jax.random.PRNGKey(config.training.seed),
    ).to_dict()


def _replica_mean(entries: list[dict]) -> dict:
    """One summary row from R replicas: means of the numbers (over the replicas that have
    them: null, NaN and ±inf, written as null, are missing), element by element in lists of
    equal length, the first replica's value for anything else; status "diverged" if any
    diverged."""

    def missing(value) -> bool:
        return value is None or (isinstance(value, float) and not math.isfinite(value))

    def mean(values):
        present = [value for value in values if not missing(value)]
        numbers = [value for value in present if isinstance(value, int | float) and not isinstance(value, bool)]
        if numbers and len(numbers) == len(present):
            return float(np.mean(numbers))
        if all(isinstance(value, dict) for value in values):
            return {key: mean([value.get(key) for value in values]) for key in values[0]}
        if all(isinstance(value, list) for value in values) and len({len(value) for value in values}) == 1:
            return [mean(list(group)) for group in zip(*values)]  # e.g. robust accuracy per budget
        return values[0]

    diverged = [entry for entry in entries if entry["status"] == "diverged"]
    return {
        "status": "diverged" if diverged else "completed",
        "steps": max(entry["steps"] for entry in entries),
        "diverged_at": min((entry["diverged_at"] for entry in diverged), default=None),
        "reason": f"{len(diverged)} of {len(entries)} replicas diverged; first: {diverged[0]['reason']}" if diverged else None,
        "final": mean([entry["final"] for entry in entries]),
        "evaluation": [mean(list(group)) for group in zip(*(entry["evaluation"] for entry in entries))]
        if all(entry["evaluation"] for entry in entries)
        else [],
        "stability": mean([entry["stability"] for entry in entries]) if all(entry["stability"] for entry in entries) else None,
        "robustness": mean([entry["robustness"] for entry in entries]) if all(entry["robustness"] for entry in entries) else None,
    }
