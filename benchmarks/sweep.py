"""Sweep throughput: an 8-run experiment run one run after another against run as a parallel sweep.

Both contenders run `deepest run <config> --jobs J` (as `python -m deepest`, what the script
calls) on the same generated 8-run TOML file (Euler and RK4 × 4 and 8 steps × two seeds, on
spirals), in a fresh process into a fresh output directory (finished runs would otherwise be
skipped, and its compilation cache would be warm): `--jobs 1` runs the 8 runs one after
another in that process; `--jobs N`, N the cores available, runs them on N workers, that
process and N − 1 spawned ones. Each time is the command's wall time (import, compile, train,
analyse, the table).

Two sweeps: "training" is the issue's model (field 2 → 64 → 64 → 2, batch 256, Adam), where
training is most of a run; "compiling" is a small model trained briefly, where compiling is
most of a run, as in the shipped experiments.

Target (issue 7): the sweep ≥ 1.8× faster than one run after another, judged on "training",
the setting of the issue's own measurements of 8-model sweeps.

Each contender's "cores busy" is its processes' CPU time over its wall time. It bounds the
speed-up: one run after another already keeps more than one core busy (XLA compiles a
program on several threads; training runs on one), and the same CPU work on N cores takes at
least busy/N of its wall time. A sweep's workers, one core each, compile their settings'
programs on one thread, and the programs all settings share (the initial weights, the
minibatch order) once per worker, unless another worker has already put them in the shared
compilation cache.

    python -m benchmarks --only sweep [--repeats 3]
"""

import itertools
import pathlib
import resource
import statistics
import tempfile
import time

from deepest._devices import available_cores

from ._process import run_python
from ._report import Section, Target, significant
from ._timing import interleaved_medians

RUNS = 8
ROUNDS = 3
TARGET_SPEEDUP = 1.8
# name → (field width, depth, state augmentation, samples, batch, training steps); quick: 5 steps.
SWEEPS = {"training": (64, 2, 0, 1024, 256, 1000), "compiling": (16, 1, 2, 256, 64, 200)}
JUDGED = "training"
QUICK_SWEEPS = ("compiling",)
QUICK_TRAINING_STEPS = 5
ONE_AFTER_ANOTHER = "one after another (--jobs 1)"

_CONFIG = """\
name = "benchmark_sweep"
description = "8 spirals models for the sweep-throughput benchmark"

[data]
name = "spirals"
num_samples = {samples}

[model]
field = "mlp"
width = {width}
depth = {depth}
augment = {augment}

[training]
num_steps = {training_steps}
batch_size = {batch}
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


def _children_cpu_seconds() -> float:
    """User and system time of this process's finished children (and theirs: the workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _contender(config: pathlib.Path, directory: pathlib.Path, jobs: int, cores_busy: list[float]):
    """A callable running the experiment with `jobs` in a fresh process and a fresh directory;
    each call appends its CPU time over its wall time to `cores_busy`."""
    counter = itertools.count()

    def call():
        out = directory / f"{config.stem}-jobs{jobs}-{next(counter)}"
        cpu, start = _children_cpu_seconds(), time.perf_counter()
        run_python("-m", "deepest", "run", str(config), "--out", str(out), "--jobs", str(jobs))
        cores_busy.append((_children_cpu_seconds() - cpu) / (time.perf_counter() - start))
        finished = len(list(out.glob("*/*/summary.json")))
        if finished != RUNS:
            raise RuntimeError(f"the sweep benchmark expected {RUNS} finished runs in {out}, found {finished}")

    return call


def _describe(name: str, training_steps: int) -> str:
    width, depth, augment, samples, batch, _ = SWEEPS[name]
    field = f"MLP {2 + augment} → " + " → ".join([str(width)] * depth) + f" → {2 + augment}"
    return f"{name}: {field}, {samples} samples, batch {batch}, {training_steps} Adam steps"


def run(*, quick: bool = False, repeats: int | None = None) -> Section:
    """Median wall time of each contender over interleaved rounds, and their ratio, per sweep."""
    jobs = len(available_cores())
    rounds = repeats or (1 if quick else ROUNDS)
    rows, speedups, bounds, descriptions = [], {}, {}, []
    with tempfile.TemporaryDirectory(prefix="deepest-benchmark-sweep-") as directory:
        directory = pathlib.Path(directory)
        for name in QUICK_SWEEPS if quick else tuple(SWEEPS):
            width, depth, augment, samples, batch, training_steps = SWEEPS[name]
            training_steps = QUICK_TRAINING_STEPS if quick else training_steps
            config = directory / f"{name}.toml"
            config.write_text(_CONFIG.format(width=width, depth=depth, augment=augment, samples=samples, batch=batch, training_steps=training_steps))
            busy = {ONE_AFTER_ANOTHER: [], f"sweep (--jobs {jobs})": []}
            contenders = {how: _contender(config, directory, count, busy[how]) for how, count in zip(busy, (1, jobs))}
            seconds = interleaved_medians(contenders, rounds=rounds, warmup=False)
            cores_busy = {how: statistics.median(values) for how, values in busy.items()}
            sequential, parallel = seconds.values()
            speedups[name] = sequential / parallel
            bounds[name] = jobs / cores_busy[ONE_AFTER_ANOTHER]
            descriptions.append(_describe(name, training_steps))
            rows += [(name, how, significant(value), f"{cores_busy[how]:.2f}", significant(sequential / value)) for how, value in seconds.items()]
    judged = speedups.get(JUDGED)
    measured = "; ".join(
        f"{speedup:.2f}× {name} (at most {bounds[name]:.2f}× for the same CPU work)" + ("" if name == JUDGED else ", not judged")
        for name, speedup in speedups.items()
    )
    return Section(
        title="Sweep throughput",
        method=(
            f"`deepest run --jobs J` on a generated {RUNS}-run TOML (spirals; euler, rk4 × 4, 8 steps × seeds 0, 1; "
            "stability report on 32 samples, no figures), each time in a fresh process into a fresh directory, so with a "
            f"cold compilation cache; median of {rounds} interleaved rounds. Sweeps: {'; '.join(descriptions)}. "
            f"The target is judged on the {JUDGED} sweep, the issue's own model and batch. Cores busy: the "
            "median of the command's CPU time (all its processes) over its wall time; the same CPU work on "
            f"{jobs} cores takes at least (cores busy)/{jobs} of the one-after-another time: a speed-up of at "
            f"most {jobs}/(cores busy of one after another)."
        ),
        columns=("sweep", "how", "wall time (s)", "cores busy", "speed-up"),
        rows=tuple(rows),
        targets=(
            Target(
                f"sweep of {RUNS} ≥ {TARGET_SPEEDUP}× faster than one after another",
                f"{measured} (--jobs {jobs})",
                None if quick or judged is None else judged >= TARGET_SPEEDUP,
            ),
        ),
    )
