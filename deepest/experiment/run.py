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
from .._interrupts import raise_if_swallowed
from ..analysis import stability_report
from ..robustness import robustness_summary
from . import build, rundir
from .checkpoint import load_checkpoint, save_checkpoint
from .config import ExperimentConfig, to_dict
from .evaluation import evaluate_discretisations
from .spread import count_texts


def run_one(config: ExperimentConfig, root, *, progress: bool | None = None, wait: bool = True) -> dict | None:
    """Run (or resume, or skip) one config under root/<run_id>/; returns its summary.

    With model.replicas = R > 1 the R seeds train together (`train.fit_replicas`); the summary
    then holds each replica's own entry under "replicas" and, at the top, their mean final
    metrics, evaluations and stability numbers (the table's row) with "status" "diverged" if
    any replica diverged.

    The run holds its lock (`rundir.run_lock`) while it works: if another process holds it,
    this call waits for it to finish, or with wait=False returns None at once (the run is
    that process's). Damaged files are set aside and recovered from (`rundir`, `checkpoint`).
    """
    resolved = to_dict(config)
    directory = pathlib.Path(root) / rundir.run_id(resolved)
    finished = _finished(directory, resolved, repair=False)
    if finished is not None:
        return finished
    started = time.perf_counter()
    # Everything that can refuse the config is built before the first file (the lock's) is written.
    dataset = build.dataset(config)
    nets = [build.network(config, dataset, replica=replica) for replica in range(config.model.replicas)]
    with rundir.run_lock(directory, wait=wait) as held:
        if not held:
            return None
        # Another command may have finished it while this one waited, or left it damaged.
        finished = _finished(directory, resolved, repair=True)
        return finished if finished is not None else _run(config, resolved, directory, dataset, nets, progress, started)


def _finished(directory: pathlib.Path, resolved: dict, *, repair: bool) -> dict | None:
    """The summary of the finished run in `directory` (marked skipped), or None if it has to
    run. With `repair` (the lock held): a damaged summary is set aside, so the run finishes
    again from its last checkpoint; a missing or damaged config.json is written again."""
    try:
        summary = rundir.checked_summary(directory)
        if summary is not None:
            rundir.checked_config(directory)
    except rundir.DamagedFile as damaged:
        if not repair:
            return None
        if damaged.path.name == "summary.json":
            rundir.set_aside(damaged, "finishing the run again from its last checkpoint")
            return None
        rundir.set_aside(damaged, "writing the run's config again")
        rundir.write_json(directory / "config.json", resolved)
    except FileNotFoundError:  # a finished run without its config.json
        if not repair:
            return None
        rundir.write_json(directory / "config.json", resolved)
    return None if summary is None else {**summary, "skipped": True}


def _run(config: ExperimentConfig, resolved: dict, directory: pathlib.Path, dataset, nets: list, progress, started: float) -> dict:
    """Train `nets` (resuming from the last sound checkpoint), evaluate, report, and write summary.json."""
    replicated = len(nets) > 1
    net = train.stack_models(nets) if replicated else nets[0]
    optimiser = build.optimiser(config)
    state = train.init_state(optimiser, net, replicated=replicated)
    rundir.write_json(directory / "config.json", resolved)
    rundir.write_json(directory / "env.json", rundir.environment())
    results, runtime_before = _train(config, directory, dataset, net, optimiser, state, progress, started)
    records = rundir.metrics_up_to(directory / "metrics.jsonl", config.training.num_steps)
    entries = []
    for replica, result in enumerate(results):
        raise_if_swallowed()  # between the analyses: where an interrupt a callback swallowed stops the run
        figure = directory / "figures" / (f"stability_report_replica{replica}.png" if replicated else "stability_report.png")
        own_records = [record for record in records if record.get("replica", 0) == replica]
        entries.append(_entry(config, dataset, replica, result, own_records, figure))
    summary = {"experiment": config.name, "run_id": directory.name, **(_replica_mean(entries) if replicated else entries[0])}
    if replicated:
        summary["replicas"] = entries
    # Over all the run's invocations: what the checkpoint it resumed from had spent, and this one.
    summary["runtime_seconds"] = runtime_before + time.perf_counter() - started
    summary = rundir.json_ready(summary)
    rundir.write_json(directory / "summary.json", summary)
    return summary


def _train(config: ExperimentConfig, directory: pathlib.Path, dataset, net, optimiser, state, progress, started: float) -> tuple[list, float]:
    """Train `net` (a stack of R > 1 replicas: together, `train.fit_replicas`) from the run's
    last sound checkpoint, recording metrics.jsonl and checkpoints; returns one result per
    replica and the seconds the run had spent before this invocation."""
    replicas = config.model.replicas
    metrics_path = directory / "metrics.jsonl"
    start_step, records, runtime_before, training_before = 0, [], 0.0, 0.0
    checkpoint = load_checkpoint(directory, net, state)
    if checkpoint is not None:
        start_step, net, state = checkpoint.step, checkpoint.model, checkpoint.optimiser_state
        runtime_before, training_before = checkpoint.runtime_seconds, checkpoint.training_seconds
        records = rundir.metrics_up_to(metrics_path, start_step)
    rundir.write_metrics(metrics_path, records)
    training_started = time.perf_counter()

    def seconds() -> dict:
        now = time.perf_counter()
        return {"runtime_seconds": runtime_before + now - started, "training_seconds": training_before + now - training_started}

    def save(step, model, optimiser_state):
        save_checkpoint(directory, step, model, optimiser_state, **seconds())

    # Replicas that diverged before the checkpoint stay frozen, as in an uninterrupted run.
    stopped = {record.get("replica", 0): (record["step"], record["reason"]) for record in records if record.get("diverged")}
    spec = config.training
    options = dict(
        num_steps=spec.num_steps,
        batch_size=spec.batch_size,
        key=jax.random.PRNGKey(spec.seed),
        log_every=spec.log_every,
        max_state_norm=spec.max_state_norm,
        start_step=start_step,
        optimiser_state=state,
        # wall_time counts from the start of training, over all the run's invocations.
        on_record=lambda record: rundir.append_metrics(metrics_path, {**record, "wall_time": seconds()["training_seconds"]}),
        checkpoint_every=spec.checkpoint_every,
        on_checkpoint=save,
        progress=progress,
        regularisation=config.regularisation.terms(adaptive=config.discretisation.num_steps == 0),
    )
    if replicas > 1:
        results = train.fit_replicas(net, dataset, optimiser, replicas=replicas, stopped=stopped, **options)
        final_model = train.stack_models([result.model for result in results])
        final_state = _stacking.stack([result.optimiser_state for result in results], "optimiser states")
    elif stopped:
        # It diverged before it was interrupted: its last model is the checkpoint's.
        ((at, reason),) = stopped.values()
        results = [
            train.TrainingResult(model=net, optimiser_state=state, steps=at, status="diverged", diverged_at=at, reason=reason, history=records)
        ]
        final_model, final_state = net, state
    else:
        results = [train.fit(net, dataset, optimiser, **options)]
        final_model, final_state = results[0].model, results[0].optimiser_state
    save(max(result.steps for result in results), final_model, final_state)
    return results, runtime_before


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
    equal length; a text the replicas differ in is counted ("2× exploding, 1× stable", most
    frequent first), one they share is kept; status "diverged" if any diverged."""

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
        if all(isinstance(value, str) for value in present) and len(set(present)) > 1:
            return count_texts(present)
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
