"""Running every run of an experiment: one after another, or on a pool of pinned workers.

A sweep of several runs goes to W = min(jobs, runs) workers, each pinned by CPU affinity to its
own share of the available cores (`sweep_layout`) and showing JAX its own CPU devices. XLA
sizes its intra-op thread pool by the affinity mask, so W workers together keep one busy
thread per core, where unpinned each would run its large operations on every core.
(`--xla_cpu_multi_thread_eigen=false` in XLA_FLAGS does not stop that: measured, a
single-device step on batch 2048 still keeps two threads busy on two cores.) Which run a
worker takes next is `PoolSchedule`'s choice. The workers are processes of a `spawn` pool
(JAX and fork do not mix); with `work_here`, the calling process's main thread is worker 0,
so that an interrupt (Ctrl-C) reaches the training loop it runs.

Two commands on one sweep split it: a run whose lock another command holds is passed over
and taken again, waiting for it, once the rest is done (`run_one(wait=...)`). Workers die
with the command: each watches its parent and exits when it is gone. An interrupt stops
every run in progress at its current step, with a checkpoint, and the workers with them.
"""

import concurrent.futures
import contextlib
import multiprocessing
import os
import pathlib
import signal
import threading
import time
import warnings

import numpy as np

from .._compilation_cache import use_compilation_cache
from .._cores import available_cores, pin_to
from .._devices import use_cpu_devices
from .._interrupts import keep_swallowed_interrupts, raise_if_swallowed
from . import build, rundir
from .config import from_dict, to_dict
from .loading import load
from .pool_schedule import PoolSchedule
from .run import run_one

# How often a spawned worker checks that its parent is alive.
PARENT_POLL_SECONDS = 0.5
# How long the workers of an interrupted sweep get to checkpoint and exit before they are killed.
STOP_TIMEOUT_SECONDS = 10.0


def run_experiment(
    experiment,
    *,
    overrides=(),
    out="runs",
    jobs: int = 1,
    devices: int = 1,
    compilation_cache=None,
    progress: bool | None = None,
    work_here: bool = False,
) -> list[dict]:
    """Load, validate and run every run of an experiment (a TOML path or the name of a
    shipped experiment); returns their summaries.

    Runs go to <out>/<experiment name>/<run_id>/. With jobs > 1 and several runs they run on
    W = min(jobs, runs) workers, each pinned to its own share of the available cores
    (`sweep_layout`) with `devices` CPU devices, each keeping to the runs of one setting
    (differing in seeds only) while it can, the settings with the most training work first
    (`PoolSchedule`). With `work_here`, this process is one of them, its calling thread pinned
    to the first share for the sweep, which saves a worker's start (importing jax and deepest, ~1.7 s on one core)
    and lets the others load the programs all runs share (initial weights, minibatch order)
    from the compilation cache it has already filled. Pass it only where nothing has started
    JAX's backend yet (the `deepest run` command): XLA's threads take the affinity of the
    thread that starts it, and would stay on that one core for the rest of the process.
    Otherwise they run one after another in this process, on its devices. `compilation_cache`,
    a directory, is the workers' shared compilation cache (`deepest._compilation_cache`); this
    process's own is its owner's choice (the `deepest run` command sets one).

    A run another process holds (a second command on the same sweep and `out`) is passed
    over, and waited for once the others are done: its summary is that process's.
    """
    configs = load(experiment, overrides)
    # A sweep listing a value twice gives the same run twice: run it once.
    configs = list({rundir.run_id(to_dict(config)): config for config in configs}.values())
    for config in configs:  # what only the data can refuse, for every run before any writes a file
        build.validate(config)
    root = pathlib.Path(out) / configs[0].name
    shares = sweep_layout(jobs, len(configs), available_cores())
    summaries: dict[int, dict] = {}
    if len(shares) == 1:
        _work(_Tasks(configs), 0, lambda index, wait: run_one(configs[index], root, progress=progress, wait=wait), summaries)
    else:
        _run_on_workers(configs, root, shares, summaries, devices=devices, compilation_cache=compilation_cache, work_here=work_here)
    return [summaries[index] for index in range(len(configs))]


def sweep_layout(jobs: int, runs: int, cores: list[int]) -> list[list[int]]:
    """The cores of each of the W = min(jobs, runs) workers of a sweep.

    W ≤ len(cores): the cores dealt into W disjoint contiguous shares (sizes differing by at
    most one); more workers than cores: one core each, round robin. A single share means: run
    in this process, on all its cores, no pool.
    """
    for name, value in (("jobs", jobs), ("runs", runs), ("cores", len(cores))):
        if value < 1:
            raise ValueError(f"`{name}` must be a positive integer, got {value}.")
    workers = min(jobs, runs)
    if workers > len(cores):
        return [[cores[index % len(cores)]] for index in range(workers)]
    return [[int(core) for core in share] for share in np.array_split(np.asarray(cores), workers)]


def start_worker(shares, devices: int, compilation_cache: str | None, parent: int) -> None:
    """A spawned worker's initializer: take one share of the cores from `shares` (a
    multiprocessing queue holding one per worker), run on it alone, show JAX `devices` CPU
    devices and, given a directory, share the sweep's compilation cache. It runs after the
    worker imports deepest (and jax) but before any JAX computation: the last moment its
    devices can be set. Interrupts are the parent's to give (`_run_from_dict` takes one
    while a run is in progress), and the worker exits when its parent, the process `parent`,
    is gone (perhaps already: spawning and importing take seconds)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked by `_PoolFeeder`, which spawned it
    keep_swallowed_interrupts()
    threading.Thread(target=_exit_with_parent, args=(parent,), name="deepest-exit-with-parent", daemon=True).start()
    warnings.formatwarning = rundir.one_line_warning
    pin_to(shares.get())
    use_cpu_devices(devices)
    if compilation_cache is not None:
        use_compilation_cache(compilation_cache)


def _exit_with_parent(parent: int) -> None:
    """Exit this process within a second of its parent's death (a SIGKILL leaves the parent
    no chance to stop its workers). Its run resumes from its last checkpoint."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(1)


def _interrupt_once(signum, frame):
    """SIGINT during a worker's run: stop it (its training checkpoints the steps done) and
    ignore any further SIGINT (Ctrl-C reaches the worker once from the terminal, and again
    from the parent) so that the checkpoint is written."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def _run_from_dict(resolved: dict, root: str, wait: bool) -> dict | None:
    """A spawned worker's task: one run (its config travels as a plain dict), interruptible."""
    signal.signal(signal.SIGINT, _interrupt_once)
    try:
        return run_one(from_dict(resolved), root, progress=False, wait=wait)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _spawn_pool(shares: list[list[int]], devices: int, compilation_cache) -> concurrent.futures.ProcessPoolExecutor:
    """A `spawn` process pool of one worker per share, each pinned to its own (`start_worker`)."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    for share in shares:
        queue.put(share)
    return concurrent.futures.ProcessPoolExecutor(
        max_workers=len(shares),
        mp_context=context,
        initializer=start_worker,
        initargs=(queue, devices, None if compilation_cache is None else str(compilation_cache), os.getpid()),
    )


class _Tasks:
    """The runs to hand out to a sweep's workers, thread-safe: the schedule's (`PoolSchedule`),
    then those passed over because another command held their lock, handed out again to
    wait for it. `next` gives (run index, wait) or None, and None for good once `stop`ped."""

    def __init__(self, configs: list):
        self._schedule, self._lock = PoolSchedule(configs), threading.Lock()
        self._passed_over: list[int] = []
        self._stopped = False

    def next(self, worker: int) -> tuple[int, bool] | None:
        with self._lock:
            if self._stopped:
                return None
            index = self._schedule.next_run(worker)
            if index is not None:
                return index, False
            return (self._passed_over.pop(0), True) if self._passed_over else None

    def pass_over(self, index: int) -> None:
        with self._lock:
            self._passed_over.append(index)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True


def _work(tasks: _Tasks, worker: int, run, summaries: dict) -> None:
    """Worker `worker`'s loop in this thread: run(index, wait) → summary, or None if another
    command has the run, until `tasks` has none left."""
    while (task := tasks.next(worker)) is not None:
        raise_if_swallowed()
        index, wait = task
        summary = run(index, wait)
        if summary is None:
            tasks.pass_over(index)
        else:
            summaries[index] = summary


def _run_on_workers(configs: list, root: pathlib.Path, shares: list[list[int]], summaries: dict, *, devices: int, compilation_cache, work_here: bool):
    """Fill `summaries` (run index → summary) with one worker per share: spawned processes,
    fed by a `_PoolFeeder` thread, and with `work_here` this thread as worker 0, pinned to the
    first share. On any error or interrupt the workers are stopped (`_stop_workers`)."""
    tasks = _Tasks(configs)
    spawned = shares[1:] if work_here else shares
    children_before = set(multiprocessing.active_children())
    pool = _spawn_pool(spawned, devices, compilation_cache)
    feeder = _PoolFeeder(pool, tasks, range(len(shares) - len(spawned), len(shares)), configs, root, summaries)
    affinity = available_cores()
    try:
        # The spawned workers start first: they take longest to get going.
        feeder.start()
        if work_here:
            pin_to(shares[0])
            _work(tasks, 0, lambda index, wait: run_one(configs[index], root, progress=False, wait=wait), summaries)
        feeder.join()
        feeder.raise_error()
    except BaseException:
        tasks.stop()
        _stop_workers(pool, set(multiprocessing.active_children()) - children_before)
        raise
    finally:
        pin_to(affinity)
    pool.shutdown()


class _PoolFeeder(threading.Thread):
    """Keeps one run in flight on each spawned worker: a finished run frees its own worker,
    the one idle process, which then takes the run the schedule picks for it (its setting's
    next seed, if any; should two finish at once, their next runs may swap workers). An
    error, a worker's run raising included, stops `tasks` and is kept for `raise_error`."""

    def __init__(self, pool, tasks: _Tasks, workers, configs: list, root: pathlib.Path, summaries: dict):
        super().__init__(name="deepest-sweep-feeder", daemon=True)
        self._pool, self._tasks, self._workers = pool, tasks, workers
        self._configs, self._root, self._summaries = configs, root, summaries
        self._error: BaseException | None = None

    def run(self) -> None:
        # The workers this thread spawns inherit its signal mask: SIGINT stays blocked in them
        # until `start_worker` ignores it, so that an interrupt cannot break their imports.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        in_flight: dict = {}

        def submit(worker: int) -> None:
            task = self._tasks.next(worker)
            if task is not None:
                index, wait = task
                in_flight[self._pool.submit(_run_from_dict, to_dict(self._configs[index]), str(self._root), wait)] = (worker, index)

        try:
            for worker in self._workers:
                submit(worker)
            while in_flight:
                done, _ = concurrent.futures.wait(in_flight, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in done:
                    worker, index = in_flight.pop(future)
                    summary = future.result()
                    if summary is None:
                        self._tasks.pass_over(index)
                    else:
                        self._summaries[index] = summary
                    submit(worker)
        except BaseException as error:  # re-raised in the sweep's thread by `raise_error`
            self._error = error
            self._tasks.stop()

    def raise_error(self) -> None:
        if self._error is not None:
            raise self._error


def _stop_workers(pool, workers: set, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
    """Cancel the runs not started and interrupt the workers' runs in progress, which
    checkpoint their current step and return; kill any worker still alive after `timeout`."""
    pool.shutdown(wait=False, cancel_futures=True)
    for worker in workers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, signal.SIGINT)
    deadline = time.monotonic() + timeout
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
        if worker.is_alive():
            worker.kill()
