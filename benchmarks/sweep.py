"""Sweep throughput: an 8-run experiment run one run after another against run as a parallel sweep.

Both contenders run `deepest run <config> --jobs J` (as `python -m deepest`, what the script
calls) on the same generated 8-run TOML file (Euler and RK4 × 4 and 8 steps × two seeds, on
spirals), in a fresh process into a fresh output directory (finished runs would otherwise be
skipped, and its compilation cache would be warm): `--jobs 1` runs the 8 runs one after
another in that process; `--jobs N`, N the cores available, runs them on N workers, that
process and N − 1 spawned ones. Each time is the command's wall time (import, compile, train,
analyse, the table).

Three sweeps: "training" is the issue's model (field 2 → 64 → 64 → 2, batch 256, Adam) for
1000 steps a run, where training is most of a run; the same sweep for 2000 steps, whose
extra time over the first is training alone, so that the ratio of the two contenders' extra
times is the speed-up of training itself (the setting of the issue's 1.9–2.1× for 8 models
on two processes), without the fixed costs of a run (starting, compiling, analysing); and
"compiling", a small model trained briefly, where compiling is most of a run, as in the
shipped experiments. All six commands alternate in each round.

Target (issue 7): the sweep ≥ 1.8× faster than one run after another, judged end to end on
"training" at 1000 steps, the issue's model and batch.

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

from deepest._cores import available_cores

from ._process import run_python
from ._report import Section, Target, significant
from ._timing import interleaved_medians

RUNS = 8
ROUNDS = 3
TARGET_SPEEDUP = 1.8
# name → (field width, depth, state augmentation, samples, batch).
MODELS = {"training": (64, 2, 0, 1024, 256), "compiling": (16, 1, 2, 256, 64)}
# (model, Adam steps per run). A model measured at two lengths also gives the extra steps alone.
SWEEPS = (("training", 1000), ("training", 2000), ("compiling", 200))
QUICK_SWEEPS = (("compiling", 5), ("compiling", 10))
JUDGED = ("training", 1000)
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
        run_python(
            "-m", "deepest", "run", str(config), "--out", str(out), "--jobs", str(jobs), "--compilation-cache", str(out / ".compilation_cache")
        )
        cores_busy.append((_children_cpu_seconds() - cpu) / (time.perf_counter() - start))
        finished = len(list(out.glob("*/*/summary.json")))
        if finished != RUNS:
            raise RuntimeError(f"the sweep benchmark expected {RUNS} finished runs in {out}, found {finished}")

    return call


def _describe(model: str) -> str:
    width, depth, augment, samples, batch = MODELS[model]
    field = f"MLP {2 + augment} → " + " → ".join([str(width)] * depth) + f" → {2 + augment}"
    return f"{model}: {field}, {samples} samples, batch {batch}"


def run(*, quick: bool = False, repeats: int | None = None) -> Section:
    """Median wall time of each contender over interleaved rounds, and their ratio, per sweep;
    the extra time of a longer sweep over a shorter one of the same model, and its ratio."""
    jobs = len(available_cores())
    rounds = repeats or (1 if quick else ROUNDS)
    sweeps = QUICK_SWEEPS if quick else SWEEPS
    hows = (ONE_AFTER_ANOTHER, f"sweep (--jobs {jobs})")
    busy = {(sweep, how): [] for sweep in sweeps for how in hows}
    with tempfile.TemporaryDirectory(prefix="deepest-benchmark-sweep-") as directory:
        directory = pathlib.Path(directory)
        contenders = {}
        for model, training_steps in sweeps:
            width, depth, augment, samples, batch = MODELS[model]
            config = directory / f"{model}-{training_steps}.toml"
            config.write_text(_CONFIG.format(width=width, depth=depth, augment=augment, samples=samples, batch=batch, training_steps=training_steps))
            for how, count in zip(hows, (1, jobs)):
                contenders[(model, training_steps), how] = _contender(config, directory, count, busy[(model, training_steps), how])
        seconds = interleaved_medians(contenders, rounds=rounds, warmup=False)
    cores_busy = {key: statistics.median(values) for key, values in busy.items()}
    sequential, parallel = hows
    rows, measured = [], []
    for sweep in sweeps:
        model, training_steps = sweep
        speedup = seconds[sweep, sequential] / seconds[sweep, parallel]
        bound = jobs / cores_busy[sweep, sequential]
        rows += [
            (
                f"{model}, {training_steps} steps",
                how,
                significant(seconds[sweep, how]),
                f"{cores_busy[sweep, how]:.2f}",
                significant(seconds[sweep, sequential] / seconds[sweep, how]),
            )
            for how in hows
        ]
        measured.append(
            f"{speedup:.2f}× {model} at {training_steps} steps (at most {bound:.2f}× for the same CPU work)"
            + ("" if sweep == JUDGED else ", not judged")
        )
    for short, long in zip(sweeps, sweeps[1:]):
        if short[0] != long[0]:
            continue
        extra = {how: seconds[long, how] - seconds[short, how] for how in hows}
        label = f"{long[0]}: the {long[1] - short[1]} extra steps alone"
        rows += [(label, how, significant(extra[how]), "", significant(extra[sequential] / extra[how])) for how in hows]
        measured.append(f"{extra[sequential] / extra[parallel]:.2f}× {label}, not judged")
    judged = None if JUDGED not in sweeps else seconds[JUDGED, sequential] / seconds[JUDGED, parallel]
    return Section(
        title="Sweep throughput",
        method=(
            f"`deepest run --jobs J` on generated {RUNS}-run TOMLs (spirals; euler, rk4 × 4, 8 steps × seeds 0, 1; "
            "stability report on 32 samples, no figures), each time in a fresh process into a fresh directory, so with a "
            f"cold compilation cache; median of {rounds} rounds in which all {len(contenders)} commands alternate. "
            f"Models: {'; '.join(_describe(model) for model in dict.fromkeys(model for model, _ in sweeps))}; Adam. "
            f"The target is judged on the {JUDGED[0]} sweep at {JUDGED[1]} steps, the issue's own model and batch. "
            "'The extra steps alone': a longer sweep's median minus the shorter one's, the time of training without "
            "the fixed costs of a run. Cores busy: the median of the command's CPU time (all its processes) over its "
            f"wall time; the same CPU work on {jobs} cores takes at least (cores busy)/{jobs} of the one-after-another "
            f"time: a speed-up of at most {jobs}/(cores busy of one after another)."
        ),
        columns=("sweep", "how", "wall time (s)", "cores busy", "speed-up"),
        rows=tuple(rows),
        targets=(
            Target(
                f"sweep of {RUNS} ≥ {TARGET_SPEEDUP}× faster than one after another",
                f"{'; '.join(measured)} (--jobs {jobs})",
                None if quick or judged is None else judged >= TARGET_SPEEDUP,
            ),
        ),
    )
