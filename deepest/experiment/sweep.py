"""Sweeps: a `[sweep]` table expands one experiment into many runs.

    [sweep.grid]                      # every combination (a Cartesian product)
    "discretisation.solver" = ["euler", "rk4"]
    "discretisation.num_steps" = [5, 10, 20]
    [sweep.zip]                       # lists of one length, taken together
    "training.learning_rate" = [1e-2, 3e-3]
    "training.seed" = [0, 1]

gives 3 · 2 · 2 = 12 runs: the grid's product times the zipped tuples.
"""

import itertools

from .config import ConfigError, set_dotted


def expand(table: dict, sweep: dict) -> list[dict]:
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
