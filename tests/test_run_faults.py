"""Faults injected into run directories through `run_experiment` and the CLI: damaged files end
in a correct run or one line naming the file, never a traceback or a wrong number."""

import errno
import json
import shutil

import pytest
from _experiments import TINY, write_toml

from deepest import cli
from deepest.experiment import run_experiment, rundir

SEEDS = [*TINY, 'sweep.grid={"model.seed"=[0,1]}']
# Differ between equal runs: the time they took, and the mark of a run found finished.
UNTIMED = ("runtime_seconds", "skipped")


def _untimed(summary: dict) -> dict:
    return {key: value for key, value in summary.items() if key not in UNTIMED}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished two-run experiment (seeds 0 and 1): its directory and summaries by seed."""
    root = tmp_path_factory.mktemp("finished")
    path = write_toml(root, 'name = "faults"\n[data]\nname = "moons"\n[analysis]\nio_jacobian = false\ngradients = false\n')
    summaries = run_experiment(path, overrides=SEEDS, out=root / "runs", progress=False)
    return path, root / "runs" / "faults", {summary["seed"]: summary for summary in summaries}


def _copy(finished, tmp_path):
    """A copy of the finished experiment to damage; returns its config path, directory and run dirs by seed."""
    path, directory, summaries = finished
    copy = tmp_path / "runs" / "faults"
    shutil.copytree(directory, copy)
    return path, copy, {seed: copy / summary["run_id"] for seed, summary in summaries.items()}


def test_an_unfinished_run_with_damaged_checkpoints_is_trained_again_to_the_same_numbers(finished, tmp_path):
    path, directory, runs = _copy(finished, tmp_path)
    (runs[0] / "summary.json").unlink()  # unfinished
    latest, previous = runs[0] / "ckpt" / "latest.eqx", runs[0] / "ckpt" / "previous.eqx"
    latest.write_bytes(latest.read_bytes()[:100])
    previous.write_bytes((runs[1] / "ckpt" / "latest.eqx").read_bytes())  # seed 1's, copied into seed 0's run
    with pytest.warns(rundir.DamagedFileWarning) as warned:
        again = run_experiment(path, overrides=SEEDS, out=tmp_path / "runs", progress=False)
    messages = [str(warning.message) for warning in warned]
    assert f"{latest} is damaged" in messages[0] and f"a checkpoint of run {runs[1].name}" in messages[1]
    assert "restarting the run from step 0" in messages[1]
    by_seed = {summary["seed"]: summary for summary in again}
    assert _untimed(by_seed[0]) == _untimed(finished[2][0]) and by_seed[1]["skipped"]
    steps = [json.loads(line)["step"] for line in (runs[0] / "metrics.jsonl").read_text().splitlines()]
    assert steps == [3, 6]


def test_a_damaged_summary_or_config_stops_no_command_and_is_repaired_by_the_next_run(finished, tmp_path, capsys):
    path, directory, runs = _copy(finished, tmp_path)
    summary = runs[0] / "summary.json"
    summary.write_text(summary.read_text()[:40])
    (runs[1] / "config.json").write_text("null")
    with pytest.warns(rundir.DamagedFileWarning) as warned:
        assert cli.main(["results", str(directory)]) == 0
    messages = "\n".join(str(warning.message) for warning in warned)
    assert f"{summary} is damaged: not valid JSON" in messages
    assert f"{runs[1] / 'config.json'} is damaged: not the config of run {runs[1].name}" in messages
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:]}
    assert "needs re-run" in rows[runs[0].name] and "completed" in rows[runs[1].name]
    assert cli.main(["report", str(runs[1])]) == 2 and "config.json is damaged" in capsys.readouterr().err
    with pytest.warns(rundir.DamagedFileWarning) as warned:
        again = run_experiment(path, overrides=SEEDS, out=tmp_path / "runs", progress=False)
    actions = sorted(str(warning.message).split("; ")[-1] for warning in warned)
    assert actions == [
        "finishing the run again from its last checkpoint (kept as summary.json.damaged)",
        "writing the run's config again (kept as config.json.damaged)",
    ]
    assert [_untimed(summary) for summary in again] == [_untimed(finished[2][seed]) for seed in (0, 1)]
    assert json.loads((runs[1] / "config.json").read_text()) == json.loads((finished[1] / runs[1].name / "config.json").read_text())
    assert (runs[0] / "summary.json.damaged").exists() and (runs[1] / "config.json.damaged").exists()


def test_a_full_disk_stops_the_command_in_one_line_and_leaves_the_run_resumable(finished, tmp_path, monkeypatch, capsys):
    path, _, summaries = finished
    write_atomic = rundir.write_atomic

    def full_disk_at(name):
        def write(target, writer):
            def half(file):
                file.write(b"half")
                raise OSError(errno.ENOSPC, "No space left on device")

            write_atomic(target, half if target.name == name else writer)

        return write

    command = ["run", str(path), "--out", str(tmp_path / "runs"), *(f"--set={option}" for option in SEEDS), "--jobs", "1"]
    for name in ("config.json", "latest.eqx", "stability_report.png"):
        monkeypatch.setattr(rundir, "write_atomic", full_disk_at(name))
        assert cli.main(command) == 1
        error = capsys.readouterr().err.strip()
        assert "\n" not in error and f"{name}: No space left on device; the runs resume" in error
        assert not list((tmp_path / "runs").rglob(".*.*")), "a temporary file was left behind"
    monkeypatch.setattr(rundir, "write_atomic", write_atomic)
    again = run_experiment(path, overrides=SEEDS, out=tmp_path / "runs", progress=False)
    assert [_untimed(summary) for summary in again] == [_untimed(summaries[seed]) for seed in (0, 1)]


def test_a_diverged_run_resumed_before_its_summary_records_its_divergence_once(tmp_path):
    # The linear field at scale −50 with Euler, h = 0.1, as in test_run: the state norm passes 1e6 at step 0.
    path = write_toml(tmp_path, 'name = "blowup"\n[data]\nname = "moons"\n[model]\nfield = "linear"\nscale = -50.0\n[analysis]\nreport = false\n')
    (first,) = run_experiment(path, overrides=TINY, out=tmp_path / "runs", progress=False)
    assert first["status"] == "diverged"
    directory = tmp_path / "runs" / "blowup" / first["run_id"]
    (directory / "summary.json").unlink()
    (again,) = run_experiment(path, overrides=TINY, out=tmp_path / "runs", progress=False)
    assert _untimed(again) == _untimed(first)
    diverged = [line for line in (directory / "metrics.jsonl").read_text().splitlines() if json.loads(line).get("diverged")]
    assert len(diverged) == 1
