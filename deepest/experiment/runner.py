"""Running experiments: one run into its directory, a sweep of runs, resumption, skipping.

A run trains, evaluates the trained field under other discretisations, writes its stability
report (and, with `[analysis] robustness`, its robustness under attack) and finally
summary.json. A run that diverges is finished too (status "diverged", with the step and
reason); a sweep goes on with its other runs.
"""

import concurrent.futures
import math
import multiprocessing
import os
import pathlib
import threading
import time

import equinox as eqx
import jax
import numpy as np

from .. import _devices, _stacking, train
from ..analysis import stability_report
from ..fields import AbstractSeparableField
from ..robustness import robustness_summary
from ..solvers import PARTITIONED, supports_adaptive
from . import build, config as config_module, rundir
from .pool_schedule import PoolSchedule


def _evaluate(net, dataset, solver: str, num_steps: int) -> dict:
    """Test loss and accuracy of the trained field under another discretisation."""
    entry = {"solver": solver, "num_steps": num_steps}
    separable = isinstance(net.field, AbstractSeparableField)
    if (num_steps == 0 and not supports_adaptive(solver)) or (solver in PARTITIONED and not separable):
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
    """Run (or resume, or skip) one config under root/<run_id>/; returns its summary.

    With model.replicas = R > 1 the R seeds train together (`train.fit_replicas`); the summary
    then holds each replica's own entry under "replicas" and, at the top, their mean final
    metrics, evaluations and stability numbers (the table's row) with "status" "diverged" if
    any replica diverged.
    """
    resolved = config_module.to_dict(config)
    directory = pathlib.Path(root) / rundir.run_id(resolved)
    summary_path = directory / "summary.json"
    if summary_path.exists():
        return {**rundir.read_json(summary_path), "skipped": True}
    started = time.perf_counter()
    count = config.model.replicas
    replicated = count > 1
    # Everything that can refuse the config is built before the first file is written.
    dataset = build.dataset(config)
    nets = [build.network(config, dataset, replica=replica) for replica in range(count)]
    net = train.stack_models(nets) if replicated else nets[0]
    optimiser = build.optimiser(config)
    state = train.init_state(optimiser, net, replicated=replicated)
    rundir.write_json(directory / "config.json", resolved)
    rundir.write_json(directory / "env.json", rundir.environment())
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
    if replicated:
        # Replicas that diverged before the checkpoint stay frozen, as in an uninterrupted run.
        stopped = {record["replica"]: (record["step"], record["reason"]) for record in records if record.get("diverged")}
        results = train.fit_replicas(net, dataset, optimiser, replicas=count, stopped=stopped, **options)
        final_model = train.stack_models([result.model for result in results])
        final_state = _stacking.stack([result.optimiser_state for result in results], "optimiser states")
    else:
        results = [train.fit(net, dataset, optimiser, **options)]
        final_model, final_state = results[0].model, results[0].optimiser_state
    rundir.save_checkpoint(directory, max(result.steps for result in results), final_model, final_state)
    records = rundir.metrics_up_to(metrics_path, spec.num_steps)
    entries = []
    for replica, result in enumerate(results):
        entry = {
            "seed": config.model.seed + replica,
            "status": result.status,
            "steps": result.steps,
            "diverged_at": result.diverged_at,
            "reason": result.reason,
            "final": _final_metrics([record for record in records if record.get("replica", 0) == replica]),
            "evaluation": [],
            "stability": None,
            "robustness": None,
        }
        if result.status == "completed":
            entry["evaluation"] = [
                _evaluate(result.model, dataset, solver, steps)
                for solver in config.evaluation.solvers
                for steps in config.evaluation.num_steps
            ]
        if config.analysis.report and config.discretisation.num_steps:
            # Also for a diverged run: the report of its last good model (the initial one if it
            # diverged at step 0) is what says why it blew up.
            figure = f"stability_report_replica{replica}.png" if replicated else "stability_report.png"
            entry["stability"] = _stability(config, result.model, dataset, directory / "figures" / figure)
        if config.analysis.robustness and result.status == "completed":
            entry["robustness"] = _robustness(config, result.model, dataset)
        entries.append(entry)
    summary = {"experiment": config.name, "run_id": directory.name, **(_replica_mean(entries) if replicated else entries[0])}
    if replicated:
        summary["replicas"] = entries
    summary["runtime_seconds"] = time.perf_counter() - started
    rundir.write_json(summary_path, summary)
    return summary


def _replica_mean(entries: list[dict]) -> dict:
    """One summary row from R replicas: means of the numbers (over the replicas that have
    them), element by element in lists of equal length, the first replica's value for anything
    else; status "diverged" if any diverged."""

    def mean(values):
        numbers = [value for value in values if isinstance(value, int | float) and not isinstance(value, bool)]
        if numbers and len(numbers) == len([value for value in values if value is not None]):
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


def _final_metrics(records: list[dict]) -> dict:
    """The last record, minus wall time (which differs between equal runs). Records come back
    from metrics.jsonl, where non-finite values were already written as null."""
    if not records:
        return {}
    return {key: value for key, value in records[-1].items() if key not in ("wall_time", "replica")}


def _stability(config, model, dataset, figure_path: pathlib.Path) -> dict:
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
        _save_report_figure(report, figure_path)
    return report.to_dict()


def _robustness(config, model, dataset) -> dict:
    """Attacks on the samples of the stability report (`deepest.robustness.robustness_summary`)."""
    spec = config.analysis
    count = min(spec.num_samples, len(dataset.x_test))
    return robustness_summary(
        model,
        np.asarray(dataset.x_test[:count]),
        np.asarray(dataset.y_test[:count]),
        epsilons=spec.epsilons,
        attack=spec.attack,
        norm=spec.attack_norm,
        pgd_steps=spec.pgd_steps,
        # PGD's random starts: a fixed function of the run's seed, so a rerun gives the same numbers.
        key=jax.random.PRNGKey(config.training.seed),
    )


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
    """A process-pool entry point: one run (its config travels as a plain dict)."""
    return run_one(config_module.from_dict(resolved), root, progress=False)


def run_experiment(
    path,
    *,
    overrides=(),
    out="runs",
    jobs: int = 1,
    devices: int = 1,
    compilation_cache=None,
    progress: bool | None = None,
    work_here: bool = False,
) -> list[dict]:
    """Load, validate and run every run of an experiment file; returns their summaries.

    Runs go to <out>/<experiment name>/<run_id>/. With jobs > 1 and several runs they run on
    W = min(jobs, runs) workers, each pinned to its own share of the available cores
    (`deepest._devices.sweep_layout`) with `devices` CPU devices, each keeping to the runs of
    one setting (differing in seeds only) while it can, the settings with the most training
    work first (`PoolSchedule`). The workers are processes of a `spawn` pool (JAX and fork do
    not mix); with `work_here`, this process is one of them, in a thread pinned to the first
    share, which saves a worker's start (importing jax and deepest, ~1.7 s on one core) and
    lets the others load the programs all runs share (initial weights, minibatch order) from
    the compilation cache it has already filled. Pass it only where nothing has started JAX's
    backend yet (the `deepest run` command): XLA's threads take the affinity of the thread
    that starts it, and would stay on that one core for the rest of the process.
    Otherwise they run one after another in this process, on its devices. `compilation_cache`,
    a directory, is the workers' shared compilation cache (`deepest._compilation_cache`); this
    process's own is its owner's choice (the `deepest run` command sets one).
    """
    configs = config_module.load(path, overrides)
    # A sweep listing a value twice gives the same run twice: run it once.
    unique = {rundir.run_id(config_module.to_dict(config)): config for config in configs}
    configs = list(unique.values())
    root = pathlib.Path(out) / configs[0].name
    shares = _devices.sweep_layout(jobs, len(configs), _devices.available_cores())
    if len(shares) == 1:
        return [run_one(config, root, progress=progress) for config in configs]
    schedule, schedule_lock = PoolSchedule(configs), threading.Lock()
    summaries: dict[int, dict] = {}

    def next_run(worker: int) -> int | None:
        with schedule_lock:
            return schedule.next_run(worker)

    # This process, the first to start, takes the largest setting (the schedule's first pick).
    local = _LocalWorker(shares[0], next_run(0), lambda: next_run(0), lambda index: run_one(configs[index], root, progress=False), summaries) if work_here else None
    spawned = shares[1:] if work_here else shares
    context = multiprocessing.get_context("spawn")
    # Each worker takes one share in its initializer, which runs after it imports deepest
    # (and jax) but before any JAX computation: the last moment its devices can be set.
    queue = context.Queue()
    for share in spawned:
        queue.put(share)
    try:
        with concurrent.futures.ProcessPoolExecutor(
            max_workers=len(spawned),
            mp_context=context,
            initializer=_devices.start_worker,
            initargs=(queue, devices, None if compilation_cache is None else str(compilation_cache)),
        ) as pool:
            # One run in flight per worker: a finished run frees its own worker, the one idle
            # process, which then takes the run the schedule picks for it (its setting's next
            # seed, if any). Should two finish at once, their next runs may swap workers.
            in_flight = {}

            def submit(worker: int) -> None:
                index = next_run(worker)
                if index is not None:
                    in_flight[pool.submit(_run_from_dict, config_module.to_dict(configs[index]), str(root))] = (worker, index)

            for worker in range(len(shares) - len(spawned), len(shares)):
                submit(worker)
            if local is not None:
                local.start()
            while in_flight:
                done, _ = concurrent.futures.wait(in_flight, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in done:
                    worker, index = in_flight.pop(future)
                    summaries[index] = future.result()
                    submit(worker)
    except BaseException:
        if local is not None:
            local.stop()
        raise
    if local is not None:
        local.finish()
    return [summaries[index] for index in range(len(configs))]


class _LocalWorker(threading.Thread):
    """Worker 0 of a sweep in this process: a thread pinned to its share of the cores (Linux
    pins the calling thread only), running `first` and then the runs `next_run` hands it,
    into `summaries`."""

    def __init__(self, cores, first: int | None, next_run, run, summaries: dict):
        super().__init__(name="deepest-sweep-worker-0", daemon=True)
        self._cores, self._first, self._next_run, self._run, self._summaries = cores, first, next_run, run, summaries
        self._stopping = threading.Event()
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            if hasattr(os, "sched_setaffinity"):
                os.sched_setaffinity(0, self._cores)
            index = self._first
            while index is not None and not self._stopping.is_set():
                self._summaries[index] = self._run(index)
                index = self._next_run()
        except BaseException as error:  # re-raised in the caller's thread by `finish`
            self._error = error

    def stop(self) -> None:
        """Take no further run (the sweep failed elsewhere); the current one ends as it would."""
        self._stopping.set()

    def finish(self) -> None:
        """Wait for the last run; raise what the thread raised."""
        self.join()
        if self._error is not None:
            raise self._error
