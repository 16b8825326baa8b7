"""The package as installed from a wheel: every sub-package, and the shipped experiments."""

import importlib.resources
import json
import os
import pathlib
import shutil
import site
import subprocess
import sys

import pytest
from _experiments import EXPERIMENTS, TINY, set_options

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_the_shipped_experiments_are_the_repositorys_experiments_folder():
    # The editable install maps the package `deepest.experiments` onto experiments/ (setup.py).
    shipped = importlib.resources.files("deepest.experiments")
    assert pathlib.Path(str(shipped)).resolve() == EXPERIMENTS.resolve()


@pytest.mark.slow
def test_a_wheel_in_a_fresh_venv_lists_and_runs_the_shipped_experiments(tmp_path):
    # Built from a copy of the sources: an in-tree build would reuse build/, which keeps the
    # files of modules since deleted. Offline: no build isolation, no index.
    ignored = shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", "runs", ".pytest_cache", ".mypy_cache", ".ruff_cache", "*venv", "notebooks"
    )
    shutil.copytree(ROOT, tmp_path / "source", ignore=ignored)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", tmp_path / "wheel", tmp_path / "source"],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "wheel").glob("deepest-*.whl")
    # The dependencies come from this environment; deepest itself only from the wheel (the
    # editable install of this checkout, visible through the system site, is ignored).
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", tmp_path / "venv"], check=True)
    # Where this environment is itself a venv, "system" is the interpreter's own site: put this
    # environment's site directories on the new venv's path too, after its own.
    (own_site,) = (tmp_path / "venv" / "lib").glob("python*/site-packages")
    (own_site / "dependencies.pth").write_text("".join(f"{directory}\n" for directory in site.getsitepackages()))
    python = tmp_path / "venv" / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", wheel], check=True, capture_output=True)
    environment = {name: value for name, value in os.environ.items() if name not in ("PYTHONPATH", "JAX_NUM_CPU_DEVICES")}
    environment["XDG_CACHE_HOME"] = str(tmp_path / "cache")  # the per-user compilation cache, kept out of the user's home

    def run(*command):
        finished = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=120)
        assert finished.returncode == 0, finished.stderr
        return finished.stdout

    where = run(python, "-c", "import deepest; print(deepest.__file__)")
    assert pathlib.Path(where.strip()).is_relative_to(tmp_path / "venv"), where
    deepest = tmp_path / "venv" / "bin" / "deepest"
    listed = [line.split()[0] for line in run(deepest, "list").splitlines()]
    assert listed == sorted(path.stem for path in EXPERIMENTS.glob("*.toml"))
    run(deepest, "run", "quickstart", "--out", tmp_path / "runs", "--jobs", "1", *set_options(["sweep={}", *TINY]))
    (summary,) = (tmp_path / "runs" / "quickstart").glob("*/summary.json")
    assert json.loads(summary.read_text())["status"] == "completed"
