"""The `deepest` command: its options, the shipped experiments by name, and figures off-screen."""

import os

import pytest
from _experiments import TINY, set_options

from deepest import _compilation_cache, cli
from deepest._cores import available_cores
from deepest.experiment import config, loading


def test_run_options_default_to_the_available_cores_and_one_device():
    defaults = cli.parser().parse_args(["run", "x.toml"])
    assert defaults.jobs == len(available_cores()) and defaults.devices == 1 and not defaults.no_compilation_cache
    assert cli.parser().parse_args(["run", "x.toml", "--no-compilation-cache"]).no_compilation_cache
    assert defaults.compilation_cache is None  # the per-user default
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["run", "x.toml", "--no-compilation-cache", "--compilation-cache", "cache"])


def test_the_compilation_cache_is_private_to_its_user(tmp_path, monkeypatch):
    # Its entries are machine code that the next run loads: a directory others may write to is refused.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home"))
    assert _compilation_cache.default_directory() == tmp_path / "home" / "deepest" / "compilation"
    created = _compilation_cache.check_trusted(_compilation_cache.default_directory())
    assert created.stat().st_mode & 0o777 == 0o700
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(_compilation_cache.UntrustedCacheError, match="writable by others .*chmod go-w"):
        _compilation_cache.check_trusted(shared)
    for option in ("--jobs", "--devices"):
        with pytest.raises(SystemExit):
            cli.parser().parse_args(["run", "x.toml", option, "0"])


def test_list_shows_every_shipped_experiment_and_draws_off_screen(capsys, monkeypatch):
    monkeypatch.delenv("MPLBACKEND", raising=False)
    assert cli.main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(loading.shipped_experiments())
    assert any(line.startswith("quickstart") and "Euler (ResNet) vs RK4" in line for line in lines)
    # The command chooses matplotlib's backend, for itself and the workers it spawns.
    assert os.environ["MPLBACKEND"] == "Agg"


def test_run_names_what_it_cannot_find(tmp_path, capsys):
    assert cli.main(["run", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "runs")]) == 2
    assert cli.main(["run", "quickstrat", "--out", str(tmp_path / "runs")]) == 2
    error = capsys.readouterr().err
    assert "No experiment file 'quickstrat'" in error and "quickstart" in error
    assert not (tmp_path / "runs").exists()
    latin = tmp_path / "latin.toml"
    latin.write_bytes('name = "café"\n'.encode("latin-1"))
    assert cli.main(["run", str(latin), "--out", str(tmp_path / "runs")]) == 2
    assert "latin.toml is not a text file in UTF-8" in capsys.readouterr().err
    # --out where a file is: one line naming what could not be written, status 1.
    occupied = tmp_path / "occupied"
    occupied.write_text("")
    assert cli.main(["run", "quickstart", "--out", str(occupied), "--jobs", "1", *set_options(["sweep={}", *TINY])]) == 1
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and f"cannot write {occupied}/quickstart/" in error


@pytest.mark.slow
@pytest.mark.parametrize("name", list(loading.shipped_experiments()))
def test_every_shipped_experiment_runs_small_by_name(name, tmp_path, capsys):
    # Every run of the full sweep validates; the first run of it then runs at a tiny size.
    configs = loading.load(name)
    first = config.to_dict(configs[0])["discretisation"]
    pinned = [f"discretisation.{key}={value!r}".replace("'", '"') for key, value in first.items()]
    # One net a run: the replicated path is tested in test_run; here the configs are.
    overrides = ["sweep={}", *TINY, "model.replicas=1", *pinned]
    assert cli.main(["run", name, "--out", str(tmp_path), *set_options(overrides)]) == 0
    printed = capsys.readouterr().out
    assert "completed" in printed and "Runs, metrics and figures" in printed
    run_dir = next((tmp_path / name).iterdir())
    assert cli.main(["report", str(run_dir)]) == 0
    assert (run_dir / "report.md").exists()
