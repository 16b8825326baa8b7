"""`deepest run` as processes meet it: two commands on one sweep, a SIGKILL, a SIGINT."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest
from _experiments import EXPERIMENTS, TINY, set_options

# Long enough (10 checkpoints a run) to be interrupted while it trains; one net a run, as
# the sweep over seeds already gives four.
SWEEP = [
    *TINY,
    "model.replicas=1",
    "analysis.figures=false",
    "training.num_steps=100",
    "training.log_every=10",
    "training.checkpoint_every=10",
    'sweep.grid={"model.seed"=[0,1,2,3]}',
]
UNTIMED = ("runtime_seconds", "skipped")


def _command(tmp_path: pathlib.Path, out: str, jobs: int) -> list[str]:
    config = str(EXPERIMENTS / "quickstart.toml")
    return [
        sys.executable,
        "-m",
        "deepest.cli",
        "run",
        config,
        "--out",
        str(tmp_path / out),
        "--jobs",
        str(jobs),
        "--compilation-cache",
        str(tmp_path / "cache"),
    ]


def _summaries(directory: pathlib.Path) -> dict:
    """The finished runs' summaries by seed, without what differs between equal runs."""
    summaries = [json.loads(path.read_text()) for path in directory.glob("*/summary.json")]
    return {summary["seed"]: {key: value for key, value in summary.items() if key not in UNTIMED} for summary in summaries}


def _children(pid: int) -> set[int]:
    """The processes whose parent is `pid`."""
    children = set()
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[1]) == pid:
            children.add(int(stat.parent.name))
    return children


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def _wait_until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def _training(process: subprocess.Popen, out: pathlib.Path, since: float) -> set[int]:
    """Once the command has a spawned worker and some run has written a record since `since`: the worker pids."""
    workers = _children(process.pid)
    fresh = any(path.stat().st_mtime > since for path in out.glob("*/*/metrics.jsonl"))
    return workers if workers and fresh else set()


@pytest.mark.slow
@pytest.mark.skipif(not pathlib.Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_two_commands_split_a_sweep_and_a_killed_or_interrupted_one_resumes_to_the_same_numbers(tmp_path):
    # Two commands at once on one sweep and directory: each run is trained exactly once.
    both = [
        subprocess.Popen([*_command(tmp_path, "both", 1), *set_options(SWEEP)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [command.communicate(timeout=300) for command in both]
    assert [command.returncode for command in both] == [0, 0], outputs
    assert outputs[0][0] == outputs[1][0]  # the same table
    for metrics in (tmp_path / "both").glob("*/*/metrics.jsonl"):
        assert [json.loads(line)["step"] for line in metrics.read_text().splitlines()] == list(range(10, 101, 10))
    reference = _summaries(tmp_path / "both" / "quickstart")
    assert sorted(reference) == [0, 1, 2, 3]

    # SIGKILL to the command alone: its spawned worker goes within seconds.
    out = tmp_path / "resumed"
    started = time.time()
    command = subprocess.Popen([*_command(tmp_path, "resumed", 2), *set_options(SWEEP)], stderr=subprocess.DEVNULL)
    workers = _wait_until(lambda: _training(command, out, started), 120, "the sweep to train")
    command.kill()
    command.wait()
    _wait_until(lambda: not _alive(workers), 5, f"workers {workers} to exit with their parent")

    # SIGINT to the command alone (as `timeout -s INT` sends it), then to its process group (as
    # Ctrl-C on a terminal sends it): exit 130 within seconds, one line, no worker left.
    for interrupt in (lambda command: command.send_signal(signal.SIGINT), lambda command: os.killpg(command.pid, signal.SIGINT)):
        started = time.time()
        command = subprocess.Popen(
            [*_command(tmp_path, "resumed", 2), *set_options(SWEEP)], stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        workers = _wait_until(lambda command=command, started=started: _training(command, out, started), 120, "the sweep to train")
        interrupt(command)
        _, error = command.communicate(timeout=20)
        assert command.returncode == 130 and error.strip() == "deepest run: interrupted; run the same command again to resume", error
        _wait_until(lambda workers=workers: not _alive(workers), 5, f"workers {workers} to exit")

    # The next command finishes the sweep with the numbers of the uninterrupted one.
    finished = subprocess.run([*_command(tmp_path, "resumed", 2), *set_options(SWEEP)], capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert _summaries(out / "quickstart") == reference
    for metrics in out.glob("*/*/metrics.jsonl"):
        assert [json.loads(line)["step"] for line in metrics.read_text().splitlines()] == list(range(10, 101, 10))
