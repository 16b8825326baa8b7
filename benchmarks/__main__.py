"""The benchmark suite: speed and memory against baselines, and the issue's targets.

    python -m benchmarks                                  # every benchmark, printed as markdown
    python -m benchmarks --write benchmarks/README.md     # ... and the README's results regenerated
    python -m benchmarks --only training_step --only memory --repeats 3
    python -m benchmarks --quick                          # toy sizes: proves the code runs, nothing more

Benchmarks (one module each): training_step (SolverNet against a hand-written scan and
torchdiffeq), compile_time, memory (backpropagation against backsolve), spectra (the
`benchmarks/spectra.py` measurement), devices (`fit` on one CPU device against two), sweep (8 runs one after another against a parallel sweep),
quickstart (the main job end to end). Run it on an otherwise idle machine: the timings are
medians of interleaved rounds, which tolerate noise but do not remove a constant load.
"""

import argparse
import sys

from . import compile_time, devices, memory, quickstart, spectra_throughput, sweep, training_step
from ._report import header, render, write_readme

BENCHMARKS = {
    "training_step": training_step.run,
    "compile_time": compile_time.run,
    "memory": memory.run,
    "devices": devices.run,
    "spectra": spectra_throughput.run,
    "sweep": sweep.run,
    "quickstart": quickstart.run,
}


def main(argv=None) -> str:
    """Run the chosen benchmarks, print the report and, with --write, put it in a README."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="toy sizes and one round: a smoke run, no target judged")
    parser.add_argument("--only", action="append", choices=tuple(BENCHMARKS), help="run this benchmark (repeatable; default: all)")
    parser.add_argument("--repeats", type=int, help="rounds of every benchmark (default: each its own)")
    parser.add_argument("--write", metavar="PATH", help="replace the generated part of this README with the report")
    arguments = parser.parse_args(argv)
    if arguments.repeats is not None and arguments.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {arguments.repeats}")
    names = arguments.only or list(BENCHMARKS)
    command = " ".join(["python -m benchmarks", *(argv if argv is not None else sys.argv[1:])])
    head = header(command)
    sections = []
    for name in names:
        print(f"benchmarks: running {name} …", file=sys.stderr, flush=True)
        sections.append(BENCHMARKS[name](quick=arguments.quick, repeats=arguments.repeats))
    report = render(head, sections, smoke=arguments.quick)
    print(report)
    if arguments.write:
        write_readme(arguments.write, report)
    return report


if __name__ == "__main__":
    main()
