"""Experiment configs, sweeps, the runner's run directories, resumption, divergence and results."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from deepest import _devices, cli
from deepest.experiment import ConfigError, config, rundir, run_experiment, sweep
from deepest.experiment.pool_schedule import PoolSchedule, training_work
from deepest.experiment.results import collect, format_table, to_csv
from deepest.experiment.runner import _LocalWorker

EXPERIMENTS = pathlib.Path(__file__).resolve().parent.parent / "experiments"
# Small enough to compile and train in seconds; every key is a real config key.
TINY = [
    "data.num_samples=64",
    "model.width=8",
    "training.num_steps=6",
    "training.batch_size=16",
    "training.log_every=3",
    "training.checkpoint_every=3",
    "analysis.num_samples=4",
]


def _write(tmp_path, text, name="exp.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_unknown_key_names_the_closest_valid_one(tmp_path):
    path = _write(tmp_path, "[training]\nlearning_rat = 0.1\n")
    with pytest.raises(ConfigError, match=r"Unknown key 'training.learning_rat'. Did you mean 'training.learning_rate'"):
        config.load(path)
    with pytest.raises(ConfigError, match="Unknown key 'trainng'. Did you mean 'training'"):
        config.from_dict({"trainng": {}})


def test_robustness_settings_are_checked_before_anything_runs():
    with pytest.raises(ConfigError, match=r"analysis.robustness = True is not allowed: false for the regression dataset"):
        config.from_dict({"data": {"name": "regression"}, "analysis": {"robustness": True}})
    with pytest.raises(ConfigError, match=r"analysis.attack = 'cw' is not allowed: one of fgsm, pgd"):
        config.from_dict({"analysis": {"attack": "cw"}})
    with pytest.raises(ConfigError, match=r"analysis.epsilons = \(0.1, -0.1\) is not allowed: a non-empty list of non-negative budgets"):
        config.from_dict({"analysis": {"epsilons": [0.1, -0.1]}})
    with pytest.raises(ConfigError, match=r"analysis.attack_norm = 'l1' is not allowed: one of linf, l2"):
        config.from_dict({"analysis": {"attack_norm": "l1"}})


def test_wrong_type_and_range_name_key_value_and_what_is_allowed():
    with pytest.raises(ConfigError, match=r"training.num_steps = 'ten' is not allowed: expected int, got str"):
        config.from_dict({"training": {"num_steps": "ten"}})
    with pytest.raises(ConfigError, match=r"discretisation.solver = 'rk5' is not allowed: one of euler, midpoint"):
        config.from_dict({"discretisation": {"solver": "rk5"}})
    with pytest.raises(ConfigError, match=r"training.learning_rate = -0.1 is not allowed: a positive number"):
        config.from_dict({"training": {"learning_rate": -0.1}})
    with pytest.raises(ConfigError, match="with num_steps = 0 \\(adaptive\\), one of"):
        config.from_dict({"discretisation": {"solver": "rk4", "num_steps": 0}})
    # An integer where a float is expected is fine.
    assert config.from_dict({"training": {"learning_rate": 1}}).training.learning_rate == 1.0


def test_overrides_parse_as_toml_and_bare_words():
    assert config.parse_override("training.learning_rate=3e-3") == ("training.learning_rate", 0.003)
    assert config.parse_override("discretisation.solver=rk4") == ("discretisation.solver", "rk4")
    assert config.parse_override("evaluation.num_steps=[4, 8]") == ("evaluation.num_steps", [4, 8])
    with pytest.raises(ConfigError, match="section.key=value"):
        config.parse_override("learning_rate")


def test_sweep_expands_the_grid_product_times_the_zip():
    runs = sweep.expand(
        {"training": {"num_steps": 5}},
        {"grid": {"discretisation.solver": ["euler", "rk4"], "discretisation.num_steps": [2, 4, 8]},
         "zip": {"training.seed": [0, 1], "data.seed": [5, 6]}},
    )
    assert len(runs) == 12
    combos = {(r["discretisation"]["solver"], r["discretisation"]["num_steps"], r["training"]["seed"], r["data"]["seed"]) for r in runs}
    assert len(combos) == 12 and ("rk4", 8, 1, 6) in combos and ("rk4", 8, 1, 5) not in combos
    assert all(r["training"]["num_steps"] == 5 for r in runs)
    with pytest.raises(ConfigError, match="one length"):
        sweep.expand({}, {"zip": {"a.b": [1, 2], "c.d": [1]}})


def test_more_bad_configs_are_refused_before_running(tmp_path):
    for table, message in [
        ({"training": {"learning_rate": float("inf")}}, "a finite number"),
        ({"training": {"warmup_steps": 400}}, r"in \[0, num_steps = 400\)"),
        ({"name": "../up"}, "names a directory"),
        ({"discretisation": {"solver": "semi_implicit_euler"}}, "only for the separable"),
        ({"evaluation": {"solvers": ["rk4"]}}, "both given"),
        ({"data": {"seed": -1}}, r"\[0, 4294967296\)"),
        ({"model": {"replicas": 0}}, "model.replicas"),
        ({"discretisation": {"lm_resnet_k": 0.5}}, 'unless discretisation.solver = "lm_resnet"'),
        ({"discretisation": {"batch_stepping": "batch"}}, "one of per_sample, shared"),
        ({"regularisation": {"kinetic_energy": -1.0}}, "non-negative weight"),
        ({"regularisation": {"weight_smoothness": 0.1}}, "model.per_layer = true"),
        ({"regularisation": {"spectral_penalty": 0.1}, "discretisation": {"num_steps": 0, "solver": "tsit5"}}, "fixed layer grid"),
        ({"regularisation": {"local_error": 0.1}, "discretisation": {"solver": "reversible_heun"}}, "has an error estimate"),
        ({"regularisation": {"margin": 1.0}}, "below 1"),
    ]:
        with pytest.raises(ConfigError, match=message):
            config.from_dict(table)
    odd = _write(tmp_path, '[data]\nname = "moons"\n[model]\nfield = "hamiltonian"\naugment = 1\n', "odd.toml")
    with pytest.raises(ConfigError, match="choose model.augment = 2"):
        run_experiment(odd, out=tmp_path / "odd")
    assert not (tmp_path / "odd").exists()
    path = _write(tmp_path, '[sweep.grid]\n"training.seed" = [0, 1]\n')
    with pytest.raises(ConfigError, match="drop the sweep"):
        config.load(path, ["training.seed=3"])
    with pytest.raises(ConfigError, match="No experiment file"):
        config.load(tmp_path / "missing.toml")
    assert cli.main(["run", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "runs")]) == 2


def test_invalid_config_writes_nothing(tmp_path):
    path = _write(tmp_path, 'name = "bad"\n[sweep.grid]\n"discretisation.solver" = ["euler", "nope"]\n')
    with pytest.raises(ConfigError, match="nope"):
        run_experiment(path, out=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_divergent_run_is_recorded_and_the_sweep_completes(tmp_path):
    # A = 50 I with Euler, h = 0.1: each layer multiplies the state by 6, 6^10 ≈ 6e7 > 1e6.
    path = _write(tmp_path, 'name = "mixed"\n[data]\nname = "moons"\n[analysis]\nio_jacobian = false\n[sweep.zip]\n"model.field" = ["mlp", "linear"]\n"model.scale" = [1.0, -50.0]\n')
    summaries = run_experiment(path, overrides=TINY, out=tmp_path / "runs", progress=False)
    statuses = sorted(summary["status"] for summary in summaries)
    assert statuses == ["completed", "diverged"]
    diverged = next(summary for summary in summaries if summary["status"] == "diverged")
    assert diverged["diverged_at"] == 0 and "state norm" in diverged["reason"]
    header, rows = collect(tmp_path / "runs" / "mixed")
    assert header[:3] == ["run_id", "model.field", "model.scale"] and len(rows) == 2
    assert "diverged" in format_table(header, rows) and to_csv(header, rows).count("\n") == 3
    # Every run directory is complete, and the summary is valid JSON written last.
    for summary in summaries:
        directory = tmp_path / "runs" / "mixed" / summary["run_id"]
        assert {p.name for p in directory.iterdir()} >= {"config.json", "env.json", "metrics.jsonl", "summary.json", "ckpt"}
    completed = next(summary for summary in summaries if summary["status"] == "completed")
    assert 0 <= completed["stability"]["fraction_outside"] <= 1
    # [analysis] io_jacobian = false leaves out the input-output Jacobian and its exponents.
    assert completed["stability"]["top_lyapunov"] is None and completed["stability"]["gradient_regime"] is not None
    # Re-submitting skips finished runs.
    again = run_experiment(path, overrides=TINY, out=tmp_path / "runs", progress=False)
    assert all(summary.get("skipped") for summary in again)


@pytest.mark.parametrize("replicas", [1, 2])
def test_interrupted_run_resumes_to_the_same_final_metrics(replicas, tmp_path, monkeypatch):
    path = _write(tmp_path, 'name = "resume"\n[data]\nname = "moons"\n[analysis]\nreport = false\n')
    overrides = [*TINY, "training.num_steps=9", "training.log_every=1", "training.checkpoint_every=3", f"model.replicas={replicas}"]
    straight = run_experiment(path, overrides=overrides, out=tmp_path / "straight", progress=False)[0]

    append = rundir.append_metrics

    def append_then_die(file, record):
        append(file, record)
        if record["step"] == 7:
            raise KeyboardInterrupt  # the machine goes away one record after the step-6 checkpoint

    monkeypatch.setattr(rundir, "append_metrics", append_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(path, overrides=overrides, out=tmp_path / "resumed", progress=False)
    directory = tmp_path / "resumed" / "resume" / straight["run_id"]
    assert not (directory / "summary.json").exists()
    with open(directory / "metrics.jsonl", "a") as file:
        file.write('{"step": 8, "lo')  # and a line cut short, for good measure
    monkeypatch.setattr(rundir, "append_metrics", append)
    resumed = run_experiment(path, overrides=overrides, out=tmp_path / "resumed", progress=False)[0]
    assert resumed["final"] == straight["final"]
    assert resumed.get("replicas") == straight.get("replicas")
    # Records after the checkpoint (7 and the broken line) are dropped and written again.
    steps = [json.loads(line)["step"] for line in (directory / "metrics.jsonl").read_text().splitlines()]
    assert steps == [step for step in range(1, 10) for _ in range(replicas)]


def test_regularisers_and_lm_resnet_from_the_config_reach_training(tmp_path):
    path = _write(tmp_path, 'name = "regular"\n[data]\nname = "moons"\n[discretisation]\nsolver = "lm_resnet"\nlm_resnet_k = 0.5\n[regularisation]\nkinetic_energy = 0.1\nspectral_penalty = 1.0\n[analysis]\nio_jacobian = false\n')
    summary = run_experiment(path, overrides=TINY, out=tmp_path / "runs", progress=False)[0]
    final = summary["final"]
    assert final["kinetic_energy"] > 0 and final["regularisation"] == pytest.approx(0.1 * final["kinetic_energy"] + final["spectral_penalty"], rel=1e-9)
    assert final["function_evaluations"] == 10  # lm_resnet: one evaluation per step, 10 steps
    assert summary["stability"]["solver_options"] == {"k": 0.5}


def test_replicas_train_together_and_the_row_is_their_mean(tmp_path):
    robustness = "robustness = true\nepsilons = [0.0, 0.5]\npgd_steps = 3\n"
    path = _write(tmp_path, f'name = "seeds"\n[data]\nname = "moons"\n[model]\nreplicas = 3\nseed = 5\n[analysis]\nio_jacobian = false\ngradients = false\n{robustness}')
    # The attacks see the whole test split (13 samples), as the evaluation does.
    summary = run_experiment(path, overrides=[*TINY, "analysis.num_samples=64"], out=tmp_path / "runs", progress=False)[0]
    replicas = summary["replicas"]
    assert [entry["seed"] for entry in replicas] == [5, 6, 7]
    assert all(entry["status"] == "completed" for entry in replicas) and summary["status"] == "completed"
    accuracies = [entry["final"]["test_accuracy"] for entry in replicas]
    assert summary["final"]["test_accuracy"] == pytest.approx(sum(accuracies) / 3, rel=1e-12)
    outside = [entry["stability"]["fraction_outside"] for entry in replicas]
    assert summary["stability"]["fraction_outside"] == pytest.approx(sum(outside) / 3, rel=1e-12)
    # Robustness per replica: at ε = 0 PGD returns the input, so robust = clean accuracy, which
    # is the test accuracy the training loop measured on the same samples by another path.
    for entry in replicas:
        attacked = entry["robustness"]
        assert attacked["robust_accuracy"][0] == attacked["clean_accuracy"] == pytest.approx(entry["final"]["test_accuracy"], abs=1e-6)
        assert attacked["robust_accuracy"][1] <= attacked["clean_accuracy"] and attacked["rho_deepfool"] > 0
    per_budget = [sum(entry["robustness"]["robust_accuracy"][index] for entry in replicas) / 3 for index in range(2)]
    assert summary["robustness"]["robust_accuracy"] == pytest.approx(per_budget, rel=1e-12)
    header, rows = collect(tmp_path / "runs" / "seeds")
    assert rows[0][header.index("robust@0.5")] == pytest.approx(per_budget[1], rel=1e-12)
    assert rows[0][header.index("robust_accuracy")] == pytest.approx(sum(per_budget) / 2, rel=1e-12)
    figures = tmp_path / "runs" / "seeds" / summary["run_id"] / "figures"
    assert {path.name for path in figures.iterdir()} == {f"stability_report_replica{index}.png" for index in range(3)}
    assert cli.main(["report", str(figures.parent)]) == 0 and (figures / "training.png").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(path.stem for path in EXPERIMENTS.glob("*.toml")))
def test_every_shipped_experiment_runs_small_through_the_cli(name, tmp_path, capsys):
    # Every run of the full sweep validates; the first run of it then runs at a tiny size.
    configs = config.load(EXPERIMENTS / f"{name}.toml")
    first = config.to_dict(configs[0])["discretisation"]
    pinned = [f"discretisation.{key}={value!r}".replace("'", '"') for key, value in first.items()]
    overrides = ["sweep={}", *TINY, *pinned]
    assert cli.main(["run", str(EXPERIMENTS / f"{name}.toml"), "--out", str(tmp_path), *sum((["--set", o] for o in overrides), [])]) == 0
    printed = capsys.readouterr().out
    assert "completed" in printed and "Runs, metrics and figures" in printed
    run_dir = next((tmp_path / name).iterdir())
    assert cli.main(["report", str(run_dir)]) == 0
    assert (run_dir / "report.md").exists()


def test_list_shows_every_shipped_experiment(capsys):
    assert cli.main(["list"]) == 0
    printed = capsys.readouterr().out
    assert "quickstart" in printed and "Euler (ResNet) vs RK4" in printed


def _fake_runs(root, values):
    """Run directories with hand-written configs and summaries (no training)."""
    for index, (scale, accuracy, outside) in enumerate(values):
        directory = root / f"run{index}"
        rundir.write_json(directory / "config.json", {"name": "fake", "model": {"scale": scale}})
        summary = {"status": "completed", "final": {"test_accuracy": accuracy}, "stability": {"fraction_outside": outside, "max_growth": accuracy, "top_lyapunov": None}}
        rundir.write_json(directory / "summary.json", summary)


def test_results_figure_gives_spearman_rank_correlations(tmp_path, capsys):
    # Accuracy falls monotonically (not linearly) with the share outside: ρ = −1 exactly; it
    # rises with max_growth (set equal to it): ρ = +1; no Lyapunov numbers: ρ undefined (NaN).
    _fake_runs(tmp_path, [(1.0, 0.9, 0.0), (2.0, 0.8, 0.1), (3.0, 0.3, 0.5), (4.0, 0.29, 0.9)])
    figure = tmp_path / "scatter.png"
    assert cli.main(["results", str(tmp_path), "--figure", str(figure)]) == 0
    assert figure.exists() and "outside -1.00  max_growth +1.00" in capsys.readouterr().out
    from deepest.experiment.scatter import rank_correlations

    correlations = rank_correlations(*collect(tmp_path), "test_accuracy")
    assert correlations["outside"] == pytest.approx(-1.0, abs=1e-12) and correlations["top_lyapunov"] != correlations["top_lyapunov"]
    assert cli.main(["results", str(tmp_path), "--figure", str(figure), "--y", "accuracy"]) == 2
    assert "No column 'accuracy'" in capsys.readouterr().err


def test_results_figure_by_a_swept_key_correlates_within_each_group(tmp_path, capsys):
    # Within kind "a" accuracy falls as the share outside grows (ρ = −1), within "b" it rises
    # (ρ = +1); pooled, the groups' offset would decide the sign instead.
    points = {"a": [(0.0, 0.9), (0.5, 0.8), (0.9, 0.7)], "b": [(0.0, 0.1), (0.5, 0.2), (0.9, 0.3)]}
    for kind, pairs in points.items():
        for index, (outside, accuracy) in enumerate(pairs):
            directory = tmp_path / f"{kind}{index}"
            rundir.write_json(directory / "config.json", {"name": "fake", "model": {"kind": kind, "scale": index}})
            summary = {"status": "completed", "final": {"test_accuracy": accuracy}, "stability": {"fraction_outside": outside}}
            rundir.write_json(directory / "summary.json", summary)
    figure = tmp_path / "scatter.png"
    assert cli.main(["results", str(tmp_path), "--figure", str(figure), "--by", "model.kind"]) == 0
    printed = capsys.readouterr().out
    assert figure.exists() and "model.kind=a: outside -1.00" in printed and "model.kind=b: outside +1.00" in printed
    assert cli.main(["results", str(tmp_path), "--figure", str(figure), "--by", "data.name"]) == 2
    assert "Cannot split by 'data.name'" in capsys.readouterr().err


def test_a_sweep_pool_keeps_a_worker_on_one_setting_takes_the_largest_first_and_shares_the_tail():
    grid = 'sweep.grid={"discretisation.solver"=["euler","rk4"],"discretisation.num_steps"=[4,8],"model.seed"=[0,1]}'
    configs = config.load(EXPERIMENTS / "quickstart.toml", [grid])
    # Training work: RK4 with 8 steps costs 32 evaluations per solve, Euler with 4 steps 4.
    assert training_work(configs[0]) == configs[0].training.num_steps * configs[0].training.batch_size * 4
    schedule = PoolSchedule(configs)
    setting = lambda index: (configs[index].discretisation.solver, configs[index].discretisation.num_steps, configs[index].model.seed)
    # Two workers, free in turn: each finishes its setting's seeds before taking the next setting.
    order = [setting(schedule.next_run(worker)) for worker in (0, 1, 0, 1, 0, 1, 0, 1)]
    assert order == [("rk4", 8, 0), ("rk4", 4, 0), ("rk4", 8, 1), ("rk4", 4, 1), ("euler", 8, 0), ("euler", 4, 0), ("euler", 8, 1), ("euler", 4, 1)]
    assert schedule.next_run(0) is None and schedule.next_run(1) is None
    # One setting, three seeds: the second worker takes the first one's last run, so both work.
    seeds_only = PoolSchedule(config.load(EXPERIMENTS / "quickstart.toml", ['sweep.grid={"model.seed"=[0,1,2]}']))
    assert [seeds_only.next_run(worker) for worker in (0, 1, 0, 1)] == [0, 2, 1, None]


@pytest.mark.slow
def test_a_parallel_sweep_finishes_every_run_and_its_workers_share_a_compilation_cache(tmp_path):
    overrides = [*TINY, "analysis.figures=false", 'sweep.grid={"model.seed"=[0,1,2]}']
    cache = tmp_path / "cache"
    summaries = run_experiment(EXPERIMENTS / "quickstart.toml", overrides=overrides, out=tmp_path / "runs", jobs=2, compilation_cache=cache)
    assert [summary["status"] for summary in summaries] == ["completed"] * 3
    assert sorted(json.loads((tmp_path / "runs" / "quickstart" / summary["run_id"] / "config.json").read_text())["model"]["seed"] for summary in summaries) == [0, 1, 2]
    assert any(cache.iterdir()), "the workers wrote no compiled programs to the shared cache"


@pytest.mark.slow
def test_deepest_run_sweeps_in_its_own_process_and_a_spawned_one(tmp_path):
    # As a user runs it: a fresh process, whose JAX has not started, is worker 0 of the sweep
    # in a pinned thread, beside one spawned worker.
    overrides = [*TINY, "analysis.figures=false", 'sweep.grid={"model.seed"=[0,1,2]}']
    command = [sys.executable, "-m", "deepest", "run", str(EXPERIMENTS / "quickstart.toml"), "--out", str(tmp_path), "--jobs", "2"]
    finished = subprocess.run([*command, *sum((["--set", o] for o in overrides), [])], capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    summaries = [json.loads(path.read_text()) for path in (tmp_path / "quickstart").glob("*/summary.json")]
    assert sorted(summary["seed"] for summary in summaries) == [0, 1, 2]
    assert all(summary["status"] == "completed" for summary in summaries)
    assert finished.stdout.count("completed") == 3

def test_the_local_worker_runs_its_share_on_its_own_core_and_passes_errors_on():
    cores = _devices.available_cores()[:1]
    summaries, seen = {}, {}

    def run(index):
        seen[index] = os.sched_getaffinity(0)
        return {"index": index}

    worker = _LocalWorker(cores, 0, iter([2, 1, None]).__next__, run, summaries)
    worker.start()
    worker.finish()
    assert summaries == {0: {"index": 0}, 2: {"index": 2}, 1: {"index": 1}}
    # Pinned: the worker's thread alone, not the caller's.
    assert all(affinity == set(cores) for affinity in seen.values())
    assert os.sched_getaffinity(0) == set(_devices.available_cores())

    def failing(index):
        if index == 1:
            raise RuntimeError("run 1 failed")
        return {"index": index}

    summaries = {}
    worker = _LocalWorker(cores, 0, iter([1, 2, None]).__next__, failing, summaries)
    worker.start()
    with pytest.raises(RuntimeError, match="run 1 failed"):
        worker.finish()
    assert summaries == {0: {"index": 0}}
    # Stopped (the sweep failed elsewhere): no further run is taken.
    summaries = {}
    worker = _LocalWorker(cores, 0, iter([1, None]).__next__, run, summaries)
    worker.stop()
    worker.start()
    worker.finish()
    assert summaries == {}
