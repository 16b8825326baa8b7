"""Every run of an experiment on a pool of workers: cores per worker, the schedule, worker start-up."""

import json
import os
import subprocess
import sys

import pytest
from _experiments import EXPERIMENTS, TINY, set_options

from deepest._cores import available_cores
from deepest.experiment import loading, run_experiment
from deepest.experiment.pool import _Tasks, _work, sweep_layout
from deepest.experiment.pool_schedule import PoolSchedule, training_work


def test_sweeps_give_each_worker_its_own_cores():
    # (jobs, runs, cores) -> the cores of each worker; a single share runs in this process.
    assert sweep_layout(1, 4, [0, 1]) == [[0, 1]]
    assert sweep_layout(2, 1, [0, 1]) == [[0, 1]]
    assert sweep_layout(2, 4, [0, 1]) == [[0], [1]]
    assert sweep_layout(4, 3, list(range(16))) == [list(range(6)), list(range(6, 11)), list(range(11, 16))]
    assert sweep_layout(3, 8, [0, 1]) == [[0], [1], [0]]  # more jobs than cores: one each
    with pytest.raises(ValueError, match="`jobs` must be a positive integer, got 0"):
        sweep_layout(0, 4, [0, 1])
    assert available_cores() == sorted(os.sched_getaffinity(0))


def test_a_sweep_pool_keeps_a_worker_on_one_setting_takes_the_largest_first_and_shares_the_tail():
    grid = 'sweep.grid={"discretisation.solver"=["euler","rk4"],"discretisation.num_steps"=[4,8],"model.seed"=[0,1]}'
    configs = loading.load(EXPERIMENTS / "quickstart.toml", [grid])
    # Training work: RK4 with 8 steps costs 32 evaluations per solve, Euler with 4 steps 4, for
    # each of the replicas (quickstart trains three seeds together).
    assert training_work(configs[0]) == configs[0].training.num_steps * configs[0].training.batch_size * 4 * configs[0].model.replicas
    schedule = PoolSchedule(configs)
    setting = lambda index: (configs[index].discretisation.solver, configs[index].discretisation.num_steps, configs[index].model.seed)
    # Two workers, free in turn: each finishes its setting's seeds before taking the next setting.
    order = [setting(schedule.next_run(worker)) for worker in (0, 1, 0, 1, 0, 1, 0, 1)]
    assert order == [("rk4", 8, 0), ("rk4", 4, 0), ("rk4", 8, 1), ("rk4", 4, 1), ("euler", 8, 0), ("euler", 4, 0), ("euler", 8, 1), ("euler", 4, 1)]
    assert schedule.next_run(0) is None and schedule.next_run(1) is None
    # One setting, three seeds: the second worker takes the first one's last run, so both work.
    seeds_only = PoolSchedule(loading.load(EXPERIMENTS / "quickstart.toml", ['sweep.grid={"model.seed"=[0,1,2]}']))
    assert [seeds_only.next_run(worker) for worker in (0, 1, 0, 1)] == [0, 2, 1, None]


def test_a_sweep_worker_runs_on_its_share_with_the_devices_asked_for():
    # The worker's initializer in a process of its own, as the spawn pool runs it.
    script = (
        "import multiprocessing, os, jax\n"
        "from deepest.experiment.pool import start_worker\n"
        "shares = multiprocessing.get_context('spawn').Queue()\n"
        "shares.put([0])\n"
        "start_worker(shares, 2, None, os.getppid())\n"
        "print(sorted(os.sched_getaffinity(0)), jax.config.jax_num_cpu_devices, jax.local_device_count())\n"
    )
    environment = {name: value for name, value in os.environ.items() if name != "JAX_NUM_CPU_DEVICES"}
    finished = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True, timeout=60)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.split() == ["[0]", "2", "2"]  # the count set (unset it reads -1), then used


def test_a_worker_passes_over_the_runs_another_command_holds_and_waits_for_them_last():
    configs = loading.load("quickstart", ["sweep={}", 'sweep.grid={"model.seed"=[0,1,2]}'])
    held_elsewhere, calls, summaries = {1}, [], {}

    def run(index, wait):
        calls.append((index, wait))
        return None if index in held_elsewhere and not wait else {"index": index}

    _work(_Tasks(configs), 0, run, summaries)
    assert calls == [(0, False), (1, False), (2, False), (1, True)]
    assert summaries == {index: {"index": index} for index in range(3)}
    stopped = _Tasks(configs)
    stopped.stop()
    assert stopped.next(0) is None


@pytest.mark.slow
def test_a_parallel_sweep_finishes_every_run_and_its_workers_share_a_compilation_cache(tmp_path):
    overrides = [*TINY, "model.replicas=1", "analysis.figures=false", 'sweep.grid={"model.seed"=[0,1,2]}']
    cache = tmp_path / "cache"
    summaries = run_experiment("quickstart", overrides=overrides, out=tmp_path / "runs", jobs=2, compilation_cache=cache)
    assert [summary["status"] for summary in summaries] == ["completed"] * 3
    assert sorted(
        json.loads((tmp_path / "runs" / "quickstart" / summary["run_id"] / "config.json").read_text())["model"]["seed"] for summary in summaries
    ) == [0, 1, 2]
    assert any(cache.iterdir()), "the workers wrote no compiled programs to the shared cache"


@pytest.mark.slow
def test_deepest_run_sweeps_in_its_own_process_and_a_spawned_one(tmp_path):
    # As a user runs it: a fresh process, whose JAX has not started, is worker 0 of the sweep
    # in a pinned thread, beside one spawned worker.
    overrides = [*TINY, "model.replicas=1", "analysis.figures=false", 'sweep.grid={"model.seed"=[0,1,2]}']
    command = [sys.executable, "-m", "deepest.cli", "run", str(EXPERIMENTS / "quickstart.toml"), "--out", str(tmp_path), "--jobs", "2"]
    command += ["--compilation-cache", str(tmp_path / "cache")]
    finished = subprocess.run([*command, *set_options(overrides)], capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    summaries = [json.loads(path.read_text()) for path in (tmp_path / "quickstart").glob("*/summary.json")]
    assert sorted(summary["seed"] for summary in summaries) == [0, 1, 2]
    assert all(summary["status"] == "completed" for summary in summaries)
    # The runs' table, then the mean ± std over the three seeds of the one setting.
    runs_table, _, over_seeds = finished.stdout.partition("Mean ± standard deviation over the seeds")
    assert runs_table.count("completed") == 3 and "3× completed" in over_seeds
