"""The `deepest` command: run experiments, tabulate and report their results.

    deepest run experiments/quickstart.toml [--out runs] [--set training.learning_rate=3e-3] [--jobs N] [--devices D]
                [--compilation-cache DIR | --no-compilation-cache]
    deepest run quickstart                   (a shipped experiment by name, as `deepest list` shows them)
    deepest results runs/quickstart [--csv results.csv] [--figure results.png --y test_accuracy --colour model.field --by data.name]
                                    [--transfer] [--transfer-figure transfer.png]
    deepest list
    deepest report runs/quickstart/<run_id>

`deepest run` uses the whole machine: a sweep runs on --jobs workers (default one per available
core), this process and spawned ones, each pinned to its own share of the cores. --devices D shows each
run's process D CPU devices, over which training splits every minibatch (`deepest._devices`);
the default, one: on the 2-core machine two devices were at best level with it (benchmarks/README.md).
Compiled programs are kept in a private per-user cache (`deepest._compilation_cache`, which
says why it is never a shared run directory), shared by a sweep's workers and reused by later
invocations; --no-compilation-cache compiles everything anew. Two commands on one sweep and
--out split its runs between them. Ctrl-C (SIGINT) stops every run at its current step with a
checkpoint and exits with status 130; the same command resumes them. A damaged file in a run
directory is named in one line and recovered from; a file that cannot be written (a full disk)
stops the command with one line, leaving the runs resumable.
Figures are drawn off-screen (matplotlib's Agg backend) and written to files.
"""

import argparse
import os
import pathlib
import sys
import warnings

from . import _devices
from ._compilation_cache import UntrustedCacheError, default_directory, use_compilation_cache
from ._cores import available_cores
from ._interrupts import keep_swallowed_interrupts


def _run(arguments) -> int:
    # Before anything starts JAX's backend, for the runs in this process (all of them, or its
    # share of a sweep); spawned workers set their own.
    cache = None if arguments.no_compilation_cache else pathlib.Path(arguments.compilation_cache or default_directory())
    fresh = True  # JAX's backend not started: this process can be one of a sweep's workers
    try:
        _devices.use_cpu_devices(arguments.devices)
    except RuntimeError as error:
        # `main` called from Python after JAX started (a test, a notebook): fine if it has them.
        # That process's compilation cache stays its owner's choice; the workers still share one.
        import jax

        if jax.local_device_count() != arguments.devices:
            print(f"deepest run: {error}", file=sys.stderr)
            return 2
        fresh = False
    else:
        if cache is not None:
            try:
                use_compilation_cache(cache)
            except UntrustedCacheError as error:
                print(f"deepest run: {error}", file=sys.stderr)
                return 2
    from .experiment import ConfigError, run_experiment
    from .experiment.results import read_runs
    from .experiment.rundir import RunFileError, one_line_warning

    warnings.formatwarning = one_line_warning

    try:
        summaries = run_experiment(
            arguments.config,
            overrides=arguments.set,
            out=arguments.out,
            jobs=arguments.jobs,
            devices=arguments.devices,
            compilation_cache=cache,
            work_here=fresh,
        )
    except ConfigError as error:
        print(f"deepest run: {arguments.config}: {error}", file=sys.stderr)
        return 2
    except (RunFileError, UntrustedCacheError) as error:
        print(f"deepest run: {error}; the runs resume when the same command is run again", file=sys.stderr)
        return 1
    directory = pathlib.Path(arguments.out) / summaries[0]["experiment"]
    _print_tables(read_runs(directory))
    print(f"\nRuns, metrics and figures: {directory}/<run_id>/ (figures/stability_report.png)")
    return 0


def _results(arguments) -> int:
    from .experiment.results import read_runs, to_csv
    from .experiment.rundir import RunFileError, one_line_warning, write_atomic

    warnings.formatwarning = one_line_warning

    try:
        runs = read_runs(arguments.directory)
    except FileNotFoundError as error:
        print(f"deepest results: {error}", file=sys.stderr)
        return 2
    header, rows = _print_tables(runs)
    if arguments.transfer or arguments.transfer_figure:
        code = _print_transfer(runs, arguments.transfer_figure)
        if code:
            return code
    if arguments.csv:
        try:
            write_atomic(pathlib.Path(arguments.csv), lambda file: file.write(to_csv(header, rows).encode()))
        except RunFileError as error:
            print(f"deepest results: {error}", file=sys.stderr)
            return 1
        print(f"\nCSV: {arguments.csv}")
    if arguments.figure:
        from .experiment.scatter import write_scatter

        try:
            groups = write_scatter(arguments.directory, arguments.figure, y=arguments.y, colour_by=arguments.colour, by=arguments.by)
        except ValueError as error:
            print(f"deepest results: {error}", file=sys.stderr)
            return 2
        except RunFileError as error:
            print(f"deepest results: {error}", file=sys.stderr)
            return 1
        print(f"\nSpearman rank correlation of {arguments.y} with each stability measure:")
        for label, correlations in groups.items():
            where = f"{label}: " if arguments.by else ""
            print(where + "  ".join(f"{measure} {rho:+.2f}" for measure, rho in correlations.items()))
        print(f"Figure: {arguments.figure}")
    return 0


def _print_tables(runs) -> tuple[list[str], list[list]]:
    """Print the table of the runs and, where seeds repeat a setting, its mean ± standard
    deviation over them; returns the first (header, rows)."""
    from .experiment.results import format_table, table
    from .experiment.spread import spread_table

    header, rows = table(runs)
    print(format_table(header, rows))
    spread = spread_table(runs)
    if spread is not None:
        print("\nMean ± standard deviation over the seeds of each setting (n: trained nets, replicas or runs):")
        print(format_table(*spread))
    return header, rows


def _print_transfer(runs, figure: str | None) -> int:
    """Print the transfer matrix of test accuracy and, given a path, draw it there; a status."""
    from .experiment.results import format_table
    from .experiment.rundir import RunFileError, write_atomic
    from .experiment.transfer import transfer_table

    try:
        header, rows = transfer_table(runs)
    except ValueError as error:
        print(f"deepest results: {error}", file=sys.stderr)
        return 2
    print("\nTest accuracy of each trained field (row) under each discretisation (column), mean ± std over seeds:")
    print(format_table(header, rows))
    if figure:
        from . import plot

        first = header.index("trained at")
        labels = [" ".join(str(value) for value in row[: first + 1]) for row in rows]
        cells = [row[first + 1 :] for row in rows]
        means = [[cell.mean if cell is not None else float("nan") for cell in row] for row in cells]
        stds = [[cell.std if cell is not None else float("nan") for cell in row] for row in cells]
        drawn = plot.transfer_matrix(labels, [name.removeprefix("tested ") for name in header[first + 1 :]], means, stds)
        try:
            write_atomic(pathlib.Path(figure), lambda file: plot.write_png(drawn, file))
        except RunFileError as error:
            print(f"deepest results: {error}", file=sys.stderr)
            return 1
        print(f"Figure: {figure}")
    return 0


def _list(arguments) -> int:
    import tomllib

    from .experiment import ConfigError
    from .experiment.loading import shipped_experiments

    try:
        shipped = shipped_experiments()
    except ConfigError as error:
        print(f"deepest list: {error}", file=sys.stderr)
        return 2
    width = max((len(name) for name in shipped), default=0)
    for name, file in shipped.items():
        with file.open("rb") as toml:
            print(f"{name.ljust(width)}  {tomllib.load(toml).get('description', '')}")
    return 0


def _report(arguments) -> int:
    from .experiment.report import write_report
    from .experiment.rundir import DamagedFile, RunFileError

    try:
        path = write_report(arguments.run_dir)
    except (FileNotFoundError, DamagedFile, RunFileError) as error:
        print(f"deepest report: {error}", file=sys.stderr)
        return 2
    print(path.read_text())
    print(f"Report: {path}")
    return 0


def _positive_integer(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="deepest", description="Deep networks as discretised dynamical systems.")
    commands = main.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run an experiment (a TOML config, with its sweep)")
    run.add_argument("config", help="an experiment TOML file, e.g. experiments/quickstart.toml, or a shipped experiment's name, e.g. quickstart")
    run.add_argument("--out", default="runs", help="root of the run directories (default: runs)")
    run.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key, e.g. training.learning_rate=3e-3 (repeatable)"
    )
    cores = len(available_cores())
    run.add_argument(
        "--jobs",
        type=_positive_integer,
        default=cores,
        help=f"runs in parallel, in this process and spawned ones, with a share of the cores each (default: the available cores, {cores} here)",
    )
    run.add_argument(
        "--devices",
        type=_positive_integer,
        default=1,
        help="JAX CPU devices per run's process, each minibatch split over them (default: 1; JAX_NUM_CPU_DEVICES in the environment wins)",
    )
    caching = run.add_mutually_exclusive_group()
    caching.add_argument(
        "--compilation-cache",
        metavar="DIR",
        help=f"keep compiled programs in DIR, which only you may write to (default: {default_directory()}), for this and later invocations",
    )
    caching.add_argument("--no-compilation-cache", action="store_true", help="compile every program anew, keeping none")
    run.set_defaults(handler=_run)
    results = commands.add_parser("results", help="one table across the runs of an experiment directory")
    results.add_argument("directory", help="e.g. runs/quickstart")
    results.add_argument("--csv", help="also write the table as CSV to this file")
    results.add_argument("--figure", help="also draw a column against each stability measure (PNG), with rank correlations")
    results.add_argument("--y", default="test_accuracy", help="the column the figure plots (default: test_accuracy)")
    results.add_argument("--colour", help="the swept config key that colours the points (default: the first)")
    results.add_argument("--by", help="a swept config key: one row of panels and one correlation per value, e.g. data.name")
    results.add_argument(
        "--transfer", action="store_true", help="also the transfer matrix: test accuracy of each trained field under each discretisation"
    )
    results.add_argument("--transfer-figure", metavar="PNG", help="draw the transfer matrix as a heatmap to this file (implies --transfer)")
    results.set_defaults(handler=_results)
    listing = commands.add_parser("list", help="the shipped experiments, with one-line descriptions")
    listing.set_defaults(handler=_list)
    report = commands.add_parser("report", help="figures and a markdown summary of one run")
    report.add_argument("run_dir", help="a run directory, runs/<experiment>/<run_id>")
    report.set_defaults(handler=_report)
    return main


def main(argv=None) -> int:
    arguments = parser().parse_args(argv)
    _draw_off_screen()
    keep_swallowed_interrupts()
    try:
        return arguments.handler(arguments)
    except KeyboardInterrupt:
        # The runs have checkpointed their current step (`deepest.experiment.pool`).
        resume = "; run the same command again to resume" if arguments.command == "run" else ""
        print(f"\ndeepest {arguments.command}: interrupted{resume}", file=sys.stderr)
        return 130


def _draw_off_screen() -> None:
    """Matplotlib's Agg backend for the figures the command writes to files: in this process,
    and through the environment in the workers a sweep spawns, which draw in processes and
    threads of their own (a GUI backend wants the main thread). The library never chooses a
    backend: a notebook keeps its own."""
    os.environ["MPLBACKEND"] = "Agg"
    try:
        import matplotlib
    except ModuleNotFoundError:  # the `plot` extra is not installed: the runs draw no figures
        return
    matplotlib.use("Agg")


if __name__ == "__main__":
    sys.exit(main())
