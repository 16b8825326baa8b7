"""Run directories: strict JSON (non-finite numbers as null), atomic writes, metrics read back."""

import json
import math

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
