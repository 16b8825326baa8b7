"""Running every run of an experiment: one after another, or on a pool of pinned workers.

A sweep of several runs goes to W = min(jobs, runs) workers, each pinned by CPU affinity to its
own share of the available cores (`sweep_layout`) and showing JAX its own CPU devices. XLA
sizes its intra-op thread pool by the affinity mask, so W workers together keep one busy
thread per core, where unpinned each would run its large operations on every core.
(`--xla_cpu_multi_thread_eigen=false` in XLA_FLAGS does not stop that: measured, a
single-device step on batch 2048 still keeps two threads busy on two cores.) Which run a
worker takes next is `PoolSchedule`'s choice. The workers are processes of a `spawn` pool
(JAX and fork do not mix); with `work_here`, the calling process is worker 0, in a pinned
thread (`_LocalWorker`).
"""

import concurrent.futures
import multiprocessing
import pathlib
import threading

import numpy as np

from .._compilation_cache import use_compilation_cache
from .._cores import available_cores, pin_to
from .._devices import use_cpu_devices
from . import rundir
from .config import from_dict, to_dict
from .loading import load
from .pool_schedule import PoolSchedule
from .run import run_one


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
    (`PoolSchedule`). With `work_here`, this process is one of them, in a thread pinned to the
    first share, which saves a worker's start (importing jax and deepest, ~1.7 s on one core)
    and lets the others load the programs all runs share (initial weights, minibatch order)
    from the compilation cache it has already filled. Pass it only where nothing has started
    JAX's backend yet (the `deepest run` command): XLA's threads take the affinity of the
    thread that starts it, and would stay on that one core for the rest of the process.
    Otherwise they run one after another in this process, on its devices. `compilation_cache`,
    a directory, is the workers' shared compilation cache (`deepest._compilation_cache`); this
    process's own is its owner's choice (the `deepest run` command sets one).
    """
    configs = load(experiment, overrides)
    # A sweep listing a value twice gives the same run twice: run it once.
    configs = list({rundir.run_id(to_dict(config)): config for config in configs}.values())
    root = pathlib.Path(out) / configs[0].name
    shares = sweep_layout(jobs, len(configs), available_cores())
    if len(shares) == 1:
        return [run_one(config, root, progress=progress) for config in configs]
    summaries = _run_on_workers(configs, root, shares, devices=devices, compilation_cache=compilation_cache, work_here=work_here)
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


def start_worker(shares, devices: int, compilation_cache: str | None) -> None:
    """A spawned worker's initializer: take one share of the cores from `shares` (a
    multiprocessing queue holding one per worker), run on it alone, show JAX `devices` CPU
    devices and, given a directory, share the sweep's compilation cache. It runs after the
    worker imports deepest (and jax) but before any JAX computation: the last moment its
    devices can be set."""
    pin_to(shares.get())
    use_cpu_devices(devices)
    if compilation_cache is not None:
        use_compilation_cache(compilation_cache)


def _run_from_dict(resolved: dict, root: str) -> dict:
    """A spawned worker's task: one run (its config travels as a plain dict)."""
    return run_one(from_dict(resolved), root, progress=False)


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
        initargs=(queue, devices, None if compilation_cache is None else str(compilation_cache)),
    )


def _run_on_workers(
    configs: list, root: pathlib.Path, shares: list[list[int]], *, devices: int, compilation_cache, work_here: bool
) -> dict[int, dict]:
    """The summaries of the runs, by index, done by one worker per share (worker 0 in this
    process with `work_here`), each taking the run the schedule picks for it as it is free."""
    schedule, schedule_lock = PoolSchedule(configs), threading.Lock()
    summaries: dict[int, dict] = {}

    def next_run(worker: int) -> int | None:
        with schedule_lock:
            return schedule.next_run(worker)

    # This process, the first to start, takes the largest setting (the schedule's first pick).
    local = (
        _LocalWorker(shares[0], next_run(0), lambda: next_run(0), lambda index: run_one(configs[index], root, progress=False), summaries)
        if work_here
        else None
    )
    spawned = shares[1:] if work_here else shares
    try:
        with _spawn_pool(spawned, devices, compilation_cache) as pool:
            # One run in flight per worker: a finished run frees its own worker, the one idle
            # process, which then takes the run the schedule picks for it (its setting's next
            # seed, if any). Should two finish at once, their next runs may swap workers.
            in_flight = {}

            def submit(worker: int) -> None:
                index = next_run(worker)
                if index is not None:
                    in_flight[pool.submit(_run_from_dict, to_dict(configs[index]), str(root))] = (worker, index)

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
    return summaries


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
            pin_to(self._cores)
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
