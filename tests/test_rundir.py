"""Run directories: strict JSON (non-finite numbers as null), atomic writes, metrics read back."""

import errno
import json
import math
import os
import subprocess
import sys

import pytest

from deepest.experiment import rundir


def _strict(text: str):
    """JSON as the standard has it: no NaN or Infinity."""
    return json.loads(text, parse_constant=lambda constant: pytest.fail(f"{constant} in a JSON file"))


def test_non_finite_numbers_are_written_as_null_at_any_depth(tmp_path):
    value = {"loss": math.nan, "nested": {"growth": [1.5, math.inf, -math.inf], "pair": (2, math.nan)}, "name": "run", "count": 3}
    assert rundir.json_ready(value) == {"loss": None, "nested": {"growth": [1.5, None, None], "pair": [2, None]}, "name": "run", "count": 3}
    rundir.write_json(tmp_path / "summary.json", value)
    assert _strict((tmp_path / "summary.json").read_text()) == rundir.json_ready(value)
    rundir.write_metrics(tmp_path / "metrics.jsonl", [{"step": 1, "loss": math.nan}])
    rundir.append_metrics(tmp_path / "metrics.jsonl", {"step": 2, "loss": 0.5, "gradient_norm": math.inf})
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [_strict(line) for line in lines] == [{"step": 1, "loss": None}, {"step": 2, "loss": 0.5, "gradient_norm": None}]


def test_metrics_read_back_skip_a_line_cut_short_and_later_steps(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rundir.write_metrics(path, [{"step": step} for step in (1, 2, 3)])
    with open(path, "a") as file:
        file.write('{"step": 4, "lo')
    assert rundir.metrics_up_to(path, 2) == [{"step": 1}, {"step": 2}]
    assert rundir.metrics_up_to(path, 10) == [{"step": 1}, {"step": 2}, {"step": 3}]
    assert rundir.metrics_up_to(tmp_path / "none.jsonl", 10) == []


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path):
    path = tmp_path / "config.json"
    rundir.write_json(path, {"a": 1})

    def fail(file):
        file.write(b"half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        rundir.write_atomic(path, fail)
    assert [entry.name for entry in tmp_path.iterdir()] == ["config.json"] and rundir.read_json(path) == {"a": 1}
    # The run id hashes the canonical JSON: the order of keys does not matter.
    assert rundir.run_id({"a": 1, "b": {"c": 2}}) == rundir.run_id({"b": {"c": 2}, "a": 1}) != rundir.run_id({"a": 2, "b": {"c": 2}})


def test_an_interrupt_just_after_the_rename_stays_an_interrupt(tmp_path, monkeypatch):
    replace = os.replace

    def replace_then_interrupt(source, target):
        replace(source, target)
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", replace_then_interrupt)
    with pytest.raises(KeyboardInterrupt):  # not the cleanup's FileNotFoundError
        rundir.write_json(tmp_path / "summary.json", {"a": 1})
    monkeypatch.undo()
    assert [entry.name for entry in tmp_path.iterdir()] == ["summary.json"] and rundir.read_json(tmp_path / "summary.json") == {"a": 1}


def test_a_full_disk_names_the_file_and_leaves_the_old_one(tmp_path):
    path = tmp_path / "config.json"
    rundir.write_json(path, {"a": 1})

    def full(file):
        file.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(rundir.RunFileError, match=f"cannot write {path}: No space left on device"):
        rundir.write_atomic(path, full)
    assert [entry.name for entry in tmp_path.iterdir()] == ["config.json"] and rundir.read_json(path) == {"a": 1}


def test_a_run_lock_is_held_by_one_process_and_a_dead_holders_is_no_lock(tmp_path):
    directory = tmp_path / "0123456789ab"
    with rundir.run_lock(directory, wait=False) as held:
        assert held
        # Another holder (another open file, as another process has): refused at once.
        with rundir.run_lock(directory, wait=False) as also:
            assert not also
    # A lock file left behind by a holder that is gone (as after a SIGKILL) is simply taken.
    assert (directory / ".lock").exists()
    holder = subprocess.run([sys.executable, "-c", f"import fcntl; fcntl.flock(open({str(directory / '.lock')!r}, 'a'), fcntl.LOCK_EX)"])
    assert holder.returncode == 0
    with rundir.run_lock(directory, wait=False) as held:
        assert held
