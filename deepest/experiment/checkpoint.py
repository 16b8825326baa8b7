"""A run's checkpoints, ckpt/latest.eqx and the one before it, ckpt/previous.eqx, verified before use.

A checkpoint is one file: a JSON header line, then the (step, model, optimiser state) leaves in
equinox's serialisation, so that a kill can never pair one step's model with another step's
counter. The header names the run (its run id, the hash of its resolved config), the step,
the seconds the run had spent, and the payload's size and SHA-256. Loading checks all of them
before a byte of the payload is deserialised: a truncated, empty, overwritten or bit-flipped
file, or one copied from another run, is set aside (`rundir.set_aside`) and the run resumes
from the previous checkpoint, or restarts, instead of training on from wrong weights.
"""

import dataclasses
import hashlib
import io
import json
import os
import pathlib

import equinox as eqx
import numpy as np

from . import rundir

_FORMAT = "deepest-checkpoint/1"


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A verified checkpoint: the steps done, the model and optimiser state after them, and
    the seconds the run had spent by then (over all its invocations): `runtime` in all, and
    `training` since training began (the records' wall_time goes on from it)."""

    step: int
    model: object
    optimiser_state: object
    runtime_seconds: float
    training_seconds: float


def save_checkpoint(directory: pathlib.Path, step: int, model, optimiser_state, *, runtime_seconds: float, training_seconds: float) -> None:
    """Write ckpt/latest.eqx, keeping the one it replaces as ckpt/previous.eqx."""
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, (np.asarray(step, dtype=np.int64), model, optimiser_state))
    payload = buffer.getvalue()
    header = {
        "format": _FORMAT,
        "run_id": directory.name,
        "step": int(step),
        "runtime_seconds": runtime_seconds,
        "training_seconds": training_seconds,
        "bytes": len(payload),
        "sha256": hashlib.sha256(payload).hexdigest(),
    }
    latest = directory / "ckpt" / "latest.eqx"
    if latest.exists():
        # A kill between the two renames leaves only previous.eqx, which loading falls back to.
        os.replace(latest, latest.with_name("previous.eqx"))
    rundir.write_atomic(latest, lambda file: file.write(json.dumps(header).encode() + b"\n" + payload))


def load_checkpoint(directory: pathlib.Path, model, optimiser_state) -> Checkpoint | None:
    """The latest sound checkpoint of the run, or None if it has none.

    `model` and `optimiser_state` are templates of the right structure (a fresh run's). A
    damaged ckpt/latest.eqx is set aside with a warning and ckpt/previous.eqx tried; a
    damaged previous one too, and the run starts afresh.
    """
    latest, previous = directory / "ckpt" / "latest.eqx", directory / "ckpt" / "previous.eqx"
    for path in (latest, previous):
        if not path.exists():
            continue
        try:
            return _read(path, directory.name, model, optimiser_state)
        except rundir.DamagedFile as damaged:
            fallback = path == latest and previous.exists()
            rundir.set_aside(damaged, "resuming from ckpt/previous.eqx" if fallback else "restarting the run from step 0")
    return None


def _read(path: pathlib.Path, run_id: str, model, optimiser_state) -> Checkpoint:
    data = path.read_bytes()
    if not data:
        raise rundir.DamagedFile(path, "it is empty")
    header_line, _, payload = data.partition(b"\n")
    try:
        header = json.loads(header_line)
    except ValueError:
        header = None
    problem = _header_problem(header, run_id, payload)
    if problem is not None:
        raise rundir.DamagedFile(path, problem)
    try:
        step, model, optimiser_state = eqx.tree_deserialise_leaves(io.BytesIO(payload), (np.asarray(0, dtype=np.int64), model, optimiser_state))
    except Exception as error:  # sound bytes of another structure: written by another version of deepest
        raise rundir.DamagedFile(path, f"its contents do not fit this run's model and optimiser state ({type(error).__name__})") from None
    if int(step) != header["step"]:
        raise rundir.DamagedFile(path, f"it holds step {int(step)} under a header saying {header['step']}")
    return Checkpoint(int(step), model, optimiser_state, float(header["runtime_seconds"]), float(header["training_seconds"]))


def _header_problem(header, run_id: str, payload: bytes) -> str | None:
    """What is wrong with a checkpoint's header and payload, or None if nothing is."""
    types = {"run_id": str, "step": int, "runtime_seconds": int | float, "training_seconds": int | float, "bytes": int, "sha256": str}
    if (
        not isinstance(header, dict)
        or header.get("format") != _FORMAT
        or not all(isinstance(header.get(field), kind) for field, kind in types.items())
    ):
        return "it has no deepest checkpoint header"
    if header["run_id"] != run_id:
        return f"it is a checkpoint of run {header['run_id']}, not of {run_id}"
    if len(payload) != header["bytes"]:
        return f"it holds {len(payload)} of its {header['bytes']} bytes"
    if hashlib.sha256(payload).hexdigest() != header["sha256"]:
        return "its contents changed after it was written (SHA-256 mismatch)"
    return None
