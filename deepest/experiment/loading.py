"""Loading an experiment: its file, `--set` overrides, and the sweep that expands it into runs.

    [sweep.grid]                      # every combination (a Cartesian product)
    "discretisation.solver" = ["euler", "rk4"]
    "discretisation.num_steps" = [5, 10, 20]
    [sweep.zip]                       # lists of one length, taken together
    "training.learning_rate" = [1e-2, 3e-3]
    "training.seed" = [0, 1]

gives 3 · 2 · 2 = 12 runs: the grid's product times the zipped tuples. An experiment is a path
to a TOML file or the name of a shipped one (`shipped_experiments`: the repository's
experiments/ folder, installed as the package data `deepest.experiments`).
"""

import importlib.resources
import itertools
import pathlib
import tomllib
from importlib.resources.abc import Traversable

from .config import ConfigError, ExperimentConfig, from_dict

# The package whose TOML files are the shipped experiments (setup.py maps it to experiments/).
SHIPPED_PACKAGE = "deepest.experiments"


def shipped_experiments() -> dict[str, Traversable]:
    """The experiments shipped with deepest, name -> file, in the order of their names."""
    try:
        package = importlib.resources.files(SHIPPED_PACKAGE)
    except ModuleNotFoundError as error:
        # An editable install made before the experiments became package data maps no such package.
        raise ConfigError(
            f"This installation of deepest has no shipped experiments ({SHIPPED_PACKAGE} is missing): "
            f"reinstall it, e.g. `python -m pip install -e .` in the repository."
        ) from error
    files = sorted(package.iterdir(), key=lambda file: file.name)
    return {file.name.removesuffix(".toml"): file for file in files if file.name.endswith(".toml")}


def experiment_file(experiment) -> pathlib.Path | Traversable:
    """The file of `experiment`: a path to a TOML file, or else the name of a shipped one."""
    path = pathlib.Path(experiment)
    if path.is_file():
        return path
    shipped = shipped_experiments()
    if str(experiment) in shipped:
        return shipped[str(experiment)]
    raise ConfigError(
        f"No experiment file {str(experiment)!r}, and no shipped experiment of that name: "
        f"give a path to a TOML file or one of {', '.join(shipped)} (`deepest list`)."
    )


def load(experiment, overrides=()) -> list[ExperimentConfig]:
    """Read an experiment (a TOML path or a shipped experiment's name), apply `--set`
    overrides, expand its sweep and validate every run.

    Returns the validated configs, one per run. Raises ConfigError (naming file and key)
    before anything is written.
    """
    try:
        with experiment_file(experiment).open("rb") as file:
            table = tomllib.load(file)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{experiment} is not valid TOML: {error}.") from error
    except UnicodeDecodeError as error:
        raise ConfigError(f"{experiment} is not a text file in UTF-8, as TOML must be: {error}.") from error
    except OSError as error:  # a directory, a file one may not read
        raise ConfigError(f"cannot read {experiment}: {error.strerror or error}.") from error
    for assignment in overrides:
        key, value = parse_override(assignment)
        if key in swept_keys(table.get("sweep", {})):
            raise ConfigError(f"--set {key} would be overridden by the [sweep], which varies {key!r}; drop the sweep with --set 'sweep={{}}' first.")
        table = set_dotted(table, key, value)
    sweep = table.pop("sweep", {})
    return [from_dict(variant) for variant in expand_sweep(table, sweep)]


def parse_override(assignment: str) -> tuple[str, object]:
    """'training.learning_rate=3e-3' → ('training.learning_rate', 0.003); values are TOML
    (numbers, booleans, [lists], "strings"), and a bare word is a string."""
    key, separator, text = assignment.partition("=")
    if not separator or not key.strip():
        raise ConfigError(f"An override must look like section.key=value, got {assignment!r}.")
    try:
        value = tomllib.loads(f"value = {text.strip()}")["value"]
    except tomllib.TOMLDecodeError:
        value = text.strip()
    return key.strip(), value


def set_dotted(table: dict, key: str, value) -> dict:
    """A copy of the nested dict with `key` ('section.name') set to `value`."""
    if not isinstance(table, dict):
        raise ConfigError(f"Cannot set {key!r} inside {table!r}, which is not a table.")
    head, _, rest = key.partition(".")
    updated = dict(table)
    updated[head] = set_dotted(table.get(head, {}), rest, value) if rest else value
    return updated


def expand_sweep(table: dict, sweep: dict) -> list[dict]:
    """The run tables of an experiment table and its sweep table (one run if no sweep)."""
    if not isinstance(sweep, dict) or not all(isinstance(sweep.get(kind, {}), dict) for kind in ("grid", "zip")):
        raise ConfigError(f"[sweep] must be a table with [sweep.grid] and/or [sweep.zip] tables, got {sweep!r}.")
    repeated = set(sweep.get("grid", {})) & set(sweep.get("zip", {}))
    if repeated:
        raise ConfigError(f"Keys {sorted(repeated)} are in both [sweep.grid] and [sweep.zip]; sweep each key once.")
    unknown = set(sweep) - {"grid", "zip"}
    if unknown:
        raise ConfigError(f"Unknown sweep table(s) {sorted(unknown)}: a [sweep] has [sweep.grid] and [sweep.zip].")
    grid, zipped = sweep.get("grid", {}), sweep.get("zip", {})
    for kind, entries in (("grid", grid), ("zip", zipped)):
        for key, values in entries.items():
            if not isinstance(values, list) or not values:
                raise ConfigError(f"sweep.{kind}.{key!r} must be a non-empty list, got {values!r}.")
        if "name" in entries:
            # The runner puts every run of the sweep under <out>/<name>/ of the first run.
            raise ConfigError(
                f"sweep.{kind}.'name' cannot be swept: an experiment's runs share one directory, <out>/<name>/. "
                f"Sweep other keys, or write one experiment file per name."
            )
    lengths = {len(values) for values in zipped.values()}
    if len(lengths) > 1:
        raise ConfigError(f"The lists of [sweep.zip] must have one length, got lengths {sorted(lengths)}.")
    zip_rows = list(zip(*zipped.values())) if zipped else [()]
    runs = []
    for grid_row in itertools.product(*grid.values()):
        for zip_row in zip_rows:
            run = table
            for key, value in [*zip(grid, grid_row), *zip(zipped, zip_row)]:
                run = set_dotted(run, key, value)
            runs.append(run)
    return runs


def swept_keys(sweep) -> list[str]:
    """The dotted keys a sweep varies (none if `sweep` is not a table)."""
    if not isinstance(sweep, dict):
        return []
    return [key for kind in ("grid", "zip") if isinstance(sweep.get(kind), dict) for key in sweep[kind]]
