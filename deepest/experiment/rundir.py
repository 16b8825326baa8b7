"""Run directories: runs/<experiment>/<run_id>/ and the files in them, written atomically.

    config.json    the resolved config            metrics.jsonl  one record per log interval
    env.json       versions and platform          summary.json   status and results; written last
    ckpt/          latest.eqx (step, model, state)  figures/  report figures

Every file is written to a temporary name and renamed into place, so an interrupted run never
leaves a half-written file; a summary.json means the run finished (completed or diverged).
The run id is a hash of the resolved config: the same config maps to the same directory, so
a re-submitted sweep skips its finished runs and resumes its interrupted ones.
"""

import hashlib
import json
import math
import os
import pathlib
import platform
import tempfile
from importlib import metadata

import equinox as eqx
import numpy as np


def run_id(resolved: dict) -> str:
    """12 hex digits of the SHA-256 of the config's canonical JSON."""
    canonical = json.dumps(resolved, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def write_atomic(path: pathlib.Path, write) -> None:
    """Call write(file) on a temporary file beside `path`, then rename it to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide run files from a shared group
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def json_ready(value):
    """`value` as strict JSON data: NaN and ±inf, which JSON lacks, become None (null), through
    nested dicts, lists and tuples. Every JSON file of a run is written through it."""
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _json_text(value, **options) -> str:
    return json.dumps(json_ready(value), allow_nan=False, **options)


def write_json(path: pathlib.Path, value) -> None:
    """`value` as indented JSON at `path`, written atomically (NaN and ±inf as null)."""
    write_atomic(path, lambda file: file.write((_json_text(value, indent=2, sort_keys=True) + "\n").encode()))


def read_json(path: pathlib.Path):
    """The JSON value stored at `path`."""
    return json.loads(path.read_text())


def read_summary(directory: pathlib.Path) -> dict:
    """The summary.json of a run directory, or {"status": "running/interrupted"} while it has none."""
    path = directory / "summary.json"
    return read_json(path) if path.exists() else {"status": "running/interrupted"}


def environment() -> dict:
    """Library versions and platform, for env.json."""
    versions: dict[str, str | None] = {}
    for package in ("deepest", "jax", "jaxlib", "diffrax", "equinox", "optax", "numpy", "scikit-learn", "mnist1d"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"python": platform.python_version(), "platform": platform.platform(), "machine": platform.machine(), "versions": versions}


def save_checkpoint(directory: pathlib.Path, step: int, model, optimiser_state) -> None:
    """ckpt/latest.eqx: the step, model and optimiser state in one file (equinox serialisation),
    so a kill can never pair one step's model with another step's counter."""
    leaves = (np.asarray(step, dtype=np.int64), model, optimiser_state)
    write_atomic(directory / "ckpt" / "latest.eqx", lambda file: eqx.tree_serialise_leaves(file, leaves))


def load_checkpoint(directory: pathlib.Path, model, optimiser_state):
    """(step, model, optimiser_state) from the latest checkpoint, or None if there is none.

    `model` and `optimiser_state` are templates of the right structure (a fresh run's).
    """
    path = directory / "ckpt" / "latest.eqx"
    if not path.exists():
        return None
    with open(path, "rb") as file:
        step, model, optimiser_state = eqx.tree_deserialise_leaves(file, (np.asarray(0, dtype=np.int64), model, optimiser_state))
    return int(step), model, optimiser_state


def metrics_up_to(path: pathlib.Path, step: float) -> list[dict]:
    """The records of metrics.jsonl with step ≤ `step` (what a resumed run keeps)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by an interruption
            continue
    return [record for record in records if record["step"] <= step]


def write_metrics(path: pathlib.Path, records: list[dict]) -> None:
    """`records` as a metrics.jsonl file, one JSON object a line, replacing `path` atomically."""
    write_atomic(path, lambda file: file.write("".join(_json_text(record) + "\n" for record in records).encode()))


def append_metrics(path: pathlib.Path, record: dict) -> None:
    """One line per record; a line cut short by a kill is skipped when read back."""
    with open(path, "a") as file:
        file.write(_json_text(record) + "\n")
