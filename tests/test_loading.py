"""Loading experiments: files and shipped names, `--set` overrides, sweeps."""

import pytest
from _experiments import EXPERIMENTS, write_toml

from deepest.experiment import ConfigError, config, loading


def test_a_file_is_read_with_its_overrides_and_an_unknown_key_is_named(tmp_path):
    path = write_toml(tmp_path, 'name = "small"\n[training]\nnum_steps = 5\n')
    (loaded,) = loading.load(path, ["training.learning_rate=3e-3", "model.field=linear"])
    assert (loaded.name, loaded.training.num_steps, loaded.training.learning_rate, loaded.model.field) == ("small", 5, 0.003, "linear")
    with pytest.raises(ConfigError, match=r"Unknown key 'training.learning_rat'. Did you mean 'training.learning_rate'"):
        loading.load(write_toml(tmp_path, "[training]\nlearning_rat = 0.1\n"))
    with pytest.raises(ConfigError, match="is not valid TOML"):
        loading.load(write_toml(tmp_path, "[training\n"))


def test_overrides_parse_as_toml_and_bare_words():
    assert loading.parse_override("training.learning_rate=3e-3") == ("training.learning_rate", 0.003)
    assert loading.parse_override("discretisation.solver=rk4") == ("discretisation.solver", "rk4")
    assert loading.parse_override("evaluation.num_steps=[4, 8]") == ("evaluation.num_steps", [4, 8])
    with pytest.raises(ConfigError, match="section.key=value"):
        loading.parse_override("learning_rate")


def test_sweep_expands_the_grid_product_times_the_zip():
    runs = loading.expand_sweep(
        {"training": {"num_steps": 5}},
        {
            "grid": {"discretisation.solver": ["euler", "rk4"], "discretisation.num_steps": [2, 4, 8]},
            "zip": {"training.seed": [0, 1], "data.seed": [5, 6]},
        },
    )
    assert len(runs) == 12
    combos = {(r["discretisation"]["solver"], r["discretisation"]["num_steps"], r["training"]["seed"], r["data"]["seed"]) for r in runs}
    assert len(combos) == 12 and ("rk4", 8, 1, 6) in combos and ("rk4", 8, 1, 5) not in combos
    assert all(r["training"]["num_steps"] == 5 for r in runs)
    with pytest.raises(ConfigError, match="one length"):
        loading.expand_sweep({}, {"zip": {"a.b": [1, 2], "c.d": [1]}})
    with pytest.raises(ConfigError, match="in both"):
        loading.expand_sweep({}, {"grid": {"a.b": [1]}, "zip": {"a.b": [1]}})


def test_a_swept_key_cannot_be_overridden_and_a_missing_experiment_names_the_shipped_ones(tmp_path):
    path = write_toml(tmp_path, '[sweep.grid]\n"training.seed" = [0, 1]\n')
    assert [run.training.seed for run in loading.load(path)] == [0, 1]
    with pytest.raises(ConfigError, match="drop the sweep"):
        loading.load(path, ["training.seed=3"])
    assert [run.training.seed for run in loading.load(path, ["sweep={}", "training.seed=3"])] == [3]
    with pytest.raises(ConfigError, match=r"No experiment file '.*missing.toml', and no shipped experiment of that name: .* quickstart"):
        loading.load(tmp_path / "missing.toml")


def test_the_experiment_name_cannot_be_swept(tmp_path):
    # Its runs would all go to the directory of the first name.
    for kind in ("grid", "zip"):
        with pytest.raises(ConfigError, match=rf"sweep.{kind}.'name' cannot be swept: an experiment's runs share one directory, <out>/<name>/"):
            loading.load(write_toml(tmp_path, f'[sweep.{kind}]\nname = ["a", "b"]\n'))


def test_a_shipped_experiment_loads_by_name_as_from_its_file():
    shipped = loading.shipped_experiments()
    assert list(shipped) == sorted(path.stem for path in EXPERIMENTS.glob("*.toml"))
    by_name = [config.to_dict(run) for run in loading.load("quickstart")]
    by_path = [config.to_dict(run) for run in loading.load(EXPERIMENTS / "quickstart.toml")]
    assert by_name == by_path and len(by_name) == 4
