"""Run directories: runs/<experiment>/<run_id>/ and the files in them, written atomically.

    config.json    the resolved config            metrics.jsonl  one record per log interval
    env.json       versions and platform          summary.json   status and results; written last
    ckpt/          latest.eqx, previous.eqx       figures/       report figures

Every file is written to a temporary name and renamed into place, so an interrupted run never
leaves a half-written file; a summary.json means the run finished (completed or diverged).
The run id is a hash of the resolved config: the same config maps to the same directory, so
a re-submitted sweep skips its finished runs and resumes its interrupted ones.

Nothing read back is trusted blindly. A checkpoint carries a header (run id, step, size and
SHA-256 of its payload) that is checked before its bytes are deserialised; config.json must
hash to its directory's run id; summary.json must be a finished run's summary of that run.
A damaged file is named in a `DamagedFileWarning`, set aside as <name>.damaged (kept for
inspection, never read again) and recovered from: the previous checkpoint, else a clean
restart; a config rewritten; a summary's run finished again from its final checkpoint.
Concurrent commands take a per-run lock (`run_lock`), so they split a sweep between them.
"""

import contextlib
import fcntl
import hashlib
import json
import math
import os
import pathlib
import platform
import tempfile
import warnings
from importlib import metadata

# What a finished run's summary.json says in "status".
FINISHED = ("completed", "diverged")


class RunFileError(Exception):
    """A file of a run could not be written (a full disk, no permission); names the file."""


class DamagedFile(Exception):
    """A file read back from a run directory is not what the runner wrote there."""

    def __init__(self, path: pathlib.Path, problem: str):
        super().__init__(path, problem)  # the constructor's arguments: a worker's error unpickles
        self.path, self.problem = path, problem

    def __str__(self) -> str:
        return f"{self.path} is damaged: {self.problem}"


class DamagedFileWarning(UserWarning):
    """A damaged file was found and is not used; the message says what is done instead."""


def set_aside(damaged: DamagedFile, action: str) -> None:
    """Move the damaged file to <name>.damaged (kept for inspection, never read again) and
    warn, naming it and `action`, what is done instead."""
    kept = damaged.path.with_name(damaged.path.name + ".damaged")
    os.replace(damaged.path, kept)
    warnings.warn(f"{damaged}; {action} (kept as {kept.name})", DamagedFileWarning, stacklevel=2)


def one_line_warning(message, category, filename, lineno, line=None) -> str:
    """A `warnings.formatwarning` for the command line: "deepest: <message>", one line, for
    the `DamagedFileWarning`s a user acts on (the code that warned is of no use to them)."""
    if issubclass(category, DamagedFileWarning):
        return f"deepest: {message}\n"
    return _format_warning(message, category, filename, lineno, line)


_format_warning = warnings.formatwarning


def run_id(resolved: dict) -> str:
    """12 hex digits of the SHA-256 of the config's canonical JSON."""
    canonical = json.dumps(resolved, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def write_atomic(path: pathlib.Path, write) -> None:
    """Call write(file) on a temporary file beside `path`, then rename it to `path`.

    Raises `RunFileError`, naming `path`, if the disk refuses (no space, no permission); the
    file at `path`, if any, is then left as it was.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as error:
        raise RunFileError(f"cannot write {path}: {error.strerror or error}") from error
    try:
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide run files from a shared group
        with os.fdopen(handle, "wb") as file:
            write(file)
        os.replace(temporary, path)
    except BaseException as error:
        # Already gone when an interrupt lands just after the rename.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        if isinstance(error, OSError):
            raise RunFileError(f"cannot write {path}: {error.strerror or error}") from error
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
    """The JSON value stored at `path`; `DamagedFile` if it is not JSON."""
    try:
        return json.loads(path.read_bytes())
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
        raise DamagedFile(path, f"not valid JSON ({error})") from None


def checked_config(directory: pathlib.Path) -> dict:
    """The run's config.json; `DamagedFile` unless it is a config whose hash is the
    directory's name, the run id."""
    path = directory / "config.json"
    config = read_json(path)
    if not isinstance(config, dict) or run_id(config) != directory.name:
        raise DamagedFile(path, f"not the config of run {directory.name} (its hash differs)")
    return config


def checked_summary(directory: pathlib.Path) -> dict | None:
    """The run's summary.json, or None while it has none; `DamagedFile` unless it is the
    summary of a finished run of this directory."""
    path = directory / "summary.json"
    if not path.exists():
        return None
    summary = read_json(path)
    if not isinstance(summary, dict) or summary.get("status") not in FINISHED or summary.get("run_id") != directory.name:
        raise DamagedFile(path, f"not the summary of a finished run {directory.name}")
    return summary


def read_summary(directory: pathlib.Path) -> dict:
    """The summary.json of a run directory; {"status": "running/interrupted"} while it has none,
    {"status": "needs re-run"} (with a `DamagedFileWarning`) if it is damaged: `deepest run`
    sets it aside and finishes the run again."""
    try:
        summary = checked_summary(directory)
    except DamagedFile as damaged:
        warnings.warn(f"{damaged}; the run needs re-running (deepest run)", DamagedFileWarning, stacklevel=2)
        return {"status": "needs re-run"}
    return {"status": "running/interrupted"} if summary is None else summary


@contextlib.contextmanager
def run_lock(directory: pathlib.Path, *, wait: bool):
    """Hold the run's lock (<run directory>/.lock) for the `with` block, which gets True; or,
    with wait=False while another process holds it, get False at once.

    An advisory `flock`: the kernel drops it when its holder exits or dies, so a lock left by
    a killed command is no lock at all and the next command simply takes it. (On NFS, flock
    locks only within one machine.)
    """
    path = directory / ".lock"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        file = open(path, "a")
    except OSError as error:
        raise RunFileError(f"cannot write {path}: {error.strerror or error}") from error
    with file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def environment() -> dict:
    """Library versions and platform, for env.json."""
    versions: dict[str, str | None] = {}
    for package in ("deepest", "jax", "jaxlib", "diffrax", "equinox", "optax", "numpy", "scikit-learn", "mnist1d"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"python": platform.python_version(), "platform": platform.platform(), "machine": platform.machine(), "versions": versions}


def metrics_up_to(path: pathlib.Path, step: float) -> list[dict]:
    """The records of metrics.jsonl with step ≤ `step` (what a resumed run keeps); a line that
    is not a record (cut short by a kill, or damaged) is skipped."""
    if not path.exists():
        return []
    records = []
    for line in path.read_bytes().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int | float) and record["step"] <= step:
            records.append(record)
    return records


def write_metrics(path: pathlib.Path, records: list[dict]) -> None:
    """`records` as a metrics.jsonl file, one JSON object a line, replacing `path` atomically."""
    write_atomic(path, lambda file: file.write("".join(_json_text(record) + "\n" for record in records).encode()))


def append_metrics(path: pathlib.Path, record: dict) -> None:
    """One line per record; a line cut short by a kill (or a full disk) is skipped when read back."""
    try:
        with open(path, "a") as file:
            file.write(_json_text(record) + "\n")
    except OSError as error:
        raise RunFileError(f"cannot write {path}: {error.strerror or error}") from error
