"""Spectra throughput, as measured by `benchmarks/spectra.py`, in the suite's table.

The measurement is `benchmarks.spectra.main` (dense `jacobian_spectrum` on 256 samples × 50
layers × 64-dim states, its steps alone, and the matrix-free method on 8 samples); this module
runs it and turns the lines it prints into rows, so that the two never disagree. It reads each
indented result line as "<name>[:] <seconds> s<details>" under the last unindented heading line.

Target (issue 7): the eigenvalues of those 12,800 64 × 64 Jacobians in ≤ 2.8 s (the line
"eigenvalues alone").

    python -m benchmarks --only spectra [--repeats 5]
"""

import contextlib
import io
import re

from . import spectra
from ._report import Section, Target

SIZES = {"batch": 256, "layers": 50, "state_dim": 64, "matrix_free_batch": 8}
QUICK_SIZES = {"batch": 2, "layers": 2, "state_dim": 16, "matrix_free_batch": 0}
TARGET_SECONDS = 2.8
TARGET_LINE = "eigenvalues alone"

_RESULT = re.compile(r"^(?P<name>.*?):?\s*(?P<seconds>\d+(?:\.\d+)?) s\b,?\s*(?P<details>.*)$")


def _rows(printed: str) -> list[tuple[str, str, float, str]]:
    """(heading, measurement, seconds, details) of each result line of `spectra.main`'s output."""
    rows, heading = [], None
    for line in printed.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            heading = line.strip().rstrip(":")
            continue
        match = _RESULT.match(line.strip())
        if match is None:
            raise ValueError(f"benchmarks.spectra printed a line this table cannot read: {line!r}")
        rows.append((heading, match["name"], float(match["seconds"]), match["details"]))
    return rows


def run(*, quick: bool = False, repeats: int | None = None) -> Section:
    """Run `benchmarks.spectra.main` once and tabulate what it printed."""
    sizes = dict(QUICK_SIZES if quick else SIZES)
    if repeats or quick:
        sizes["repeats"] = repeats or 1
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        spectra.main(**sizes)
    rows = _rows(printed.getvalue())
    eigenvalue_seconds = next((seconds for _, name, seconds, _ in rows if name == TARGET_LINE), None)
    if eigenvalue_seconds is None:
        raise ValueError(f"benchmarks.spectra printed no {TARGET_LINE!r} line:\n{printed.getvalue()}")
    count, dim = sizes["batch"] * sizes["layers"], sizes["state_dim"]
    return Section(
        title="Spectra throughput",
        method=(
            "`python -m benchmarks.spectra` (`benchmarks/spectra.py`), float32, each line as it measures and prints it "
            "(a median over its repeats after a compiling call); its headings name the sizes."
        ),
        columns=("run", "measurement", "seconds", "details"),
        # Each heading once, on the first of its rows.
        rows=tuple(
            (heading if index == 0 or rows[index - 1][0] != heading else "", name, f"{seconds:.2f}", details)
            for index, (heading, name, seconds, details) in enumerate(rows)
        ),
        targets=(
            Target(
                f"eigenvalues of 12,800 64 × 64 Jacobians ≤ {TARGET_SECONDS} s",
                f"{eigenvalue_seconds:.2f} s for {count:,} of {dim} × {dim}",
                None if quick else eigenvalue_seconds <= TARGET_SECONDS,
            ),
        ),
    )
