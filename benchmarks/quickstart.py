"""The main job end to end: `deepest run experiments/quickstart.toml`, wall time of a fresh process.

The command users type first: import, compile, train the four nets, re-evaluate them under the
other discretisations, write each stability report and its figures, print the table. Run as
`python -m deepest run …` (what the `deepest` script calls) into a fresh output directory each
time, since finished runs would be skipped.

Target (issue 7): ≤ 60 s.

    python -m benchmarks --only quickstart [--repeats 3]
"""

import itertools
import pathlib
import tempfile

from ._process import ROOT, run_python
from ._report import Section, Target, significant
from ._timing import interleaved_medians

CONFIG = "experiments/quickstart.toml"
ROUNDS = 3
TARGET_SECONDS = 60.0
# --quick: a few training steps and a small analysis, to prove the command runs.
QUICK_OVERRIDES = ("training.num_steps=5", "training.log_every=5", "training.checkpoint_every=5", "analysis.num_samples=8")


def run(*, quick: bool = False, repeats: int | None = None) -> Section:
    """Median wall time of the command over `repeats` fresh processes."""
    rounds = repeats or (1 if quick else ROUNDS)
    overrides = [argument for override in (QUICK_OVERRIDES if quick else ()) for argument in ("--set", override)]
    counter = itertools.count()
    with tempfile.TemporaryDirectory(prefix="deepest-benchmark-quickstart-") as directory:

        def call():
            out = pathlib.Path(directory) / str(next(counter))
            run_python("-m", "deepest", "run", str(ROOT / CONFIG), "--out", str(out), *overrides)

        seconds = interleaved_medians({"quickstart": call}, rounds=rounds, warmup=False)["quickstart"]
    command = " ".join(["deepest run", CONFIG, *overrides])
    return Section(
        title="Quickstart end to end",
        method=f"`{command}` as a fresh process into a fresh directory, median wall time of {rounds}.",
        columns=("command", "wall time (s)"),
        rows=((f"`{command}`", significant(seconds)),),
        targets=(Target(f"`deepest run {CONFIG}` ≤ {TARGET_SECONDS:g} s", f"{seconds:.1f} s", None if quick else seconds <= TARGET_SECONDS),),
    )
