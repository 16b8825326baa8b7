"""Sweep throughput: an 8-run experiment run one run after another against run as a parallel sweep.

Both contenders run `deepest run <config> --jobs J` (as `python -m deepest`, what the script
calls; `deepest.experiment.run_experiment(path, jobs=J)` behind it) on the same generated 8-run
TOML file (two solvers × two step counts × two seeds of a small spirals model), in a fresh
process into a fresh output directory (finished runs would otherwise be skipped): `--jobs 1`
runs the 8 runs one after another in that process; `--jobs N`, N the cores available, runs them
in a spawned process pool. Each time is the command's wall time (import, compile, train,
analyse, the results table).

Target (issue 7): the sweep ≥ 1.8× faster than one run after another.

    python -m benchmarks --only sweep [--repeats 3]
"""

import itertools
import os
import pathlib
import tempfile

from ._process import run_python
from ._report import Section, Target, significant
from ._timing import interleaved_medians

RUNS = 8
ROUNDS = 3
TARGET_SPEEDUP = 1.8
TRAINING_STEPS, QUICK_TRAINING_STEPS = 200, 5

_CONFIG = """\
name = "benchmark_sweep"
description = "8 small spirals models for the sweep-throughput benchmark"

[data]
name = "spirals"
num_samples = 256

[model]
field = "mlp"
width = 16
depth = 1
augment = 2

[training]
num_steps = {training_steps}
batch_size = 64
log_every = {training_steps}
checkpoint_every = {training_steps}

[analysis]
num_samples = 32
figures = false

[sweep.grid]
"discretisation.solver" = ["euler", "rk4"]
"discretisation.num_steps" = [4, 8]
"model.seed" = [0, 1]
"""


def _contender(config: pathlib.Path, directory: pathlib.Path, jobs: int):
    """A callable running the experiment with `jobs` in a fresh process and a fresh directory."""
    counter = itertools.count()

    def call():
        out = directory / f"jobs{jobs}-{next(counter)}"
        run_python("-m", "deepest", "run", str(config), "--out", str(out), "--jobs", str(jobs))
        finished = len(list(out.glob("*/*/summary.json")))
        if finished != RUNS:
            raise RuntimeError(f"the sweep benchmark expected {RUNS} finished runs in {out}, found {finished}")

    return call


def run(*, quick: bool = False, repeats: int | None = None) -> Section:
    """Median wall time of each contender over interleaved rounds, and their ratio."""
    jobs = len(os.sched_getaffinity(0))
    rounds = repeats or (1 if quick else ROUNDS)
    training_steps = QUICK_TRAINING_STEPS if quick else TRAINING_STEPS
    with tempfile.TemporaryDirectory(prefix="deepest-benchmark-sweep-") as directory:
        directory = pathlib.Path(directory)
        config = directory / "sweep.toml"
        config.write_text(_CONFIG.format(training_steps=training_steps))
        contenders = {"one after another (--jobs 1)": _contender(config, directory, 1), f"sweep (--jobs {jobs})": _contender(config, directory, jobs)}
        seconds = interleaved_medians(contenders, rounds=rounds, warmup=False)
    sequential, parallel = seconds.values()
    speedup = sequential / parallel
    return Section(
        title="Sweep throughput",
        method=(
            f"`deepest run --jobs J` on a generated {RUNS}-run TOML (spirals, 256 samples; MLP width 16; euler, rk4 × 4, 8 steps × "
            f"seeds 0, 1; {training_steps} Adam steps of batch 64; stability report on 32 samples, no figures), "
            f"each time in a fresh process into a fresh directory; median of {rounds} interleaved rounds."
        ),
        columns=("how", "wall time (s)", "speed-up"),
        rows=tuple((name, significant(value), significant(sequential / value)) for name, value in seconds.items()),
        targets=(Target(f"sweep of {RUNS} ≥ {TARGET_SPEEDUP}× faster than one after another", f"{speedup:.2f}× with --jobs {jobs}", None if quick else speedup >= TARGET_SPEEDUP),),
    )
