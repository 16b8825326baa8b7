"""One run: training into its directory, resumption, divergence, replicas."""

import json

import pytest
from _experiments import TINY, write_toml

from deepest import cli
from deepest.experiment import ConfigError, run_experiment
from deepest.experiment.results import collect, format_table, to_csv
from deepest.experiment.run import _replica_mean
from deepest.train import _divergence


def test_invalid_config_writes_nothing(tmp_path):
    path = write_toml(tmp_path, 'name = "bad"\n[sweep.grid]\n"discretisation.solver" = ["euler", "nope"]\n')
    with pytest.raises(ConfigError, match="nope"):
        run_experiment(path, out=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()
    # Refused while building the net (the Hamiltonian needs an even state), before any file.
    odd = write_toml(tmp_path, '[data]\nname = "moons"\n[model]\nfield = "hamiltonian"\naugment = 1\n', "odd.toml")
    with pytest.raises(ConfigError, match="choose model.augment = 2"):
        run_experiment(odd, out=tmp_path / "odd")
    assert not (tmp_path / "odd").exists()
    # Refused by the data of the sweep's second run (a batch larger than its training split):
    # before the first run writes a file.
    small = write_toml(tmp_path, '[data]\nname = "moons"\n[sweep.grid]\n"data.num_samples" = [64, 8]\n', "small.toml")
    with pytest.raises(ConfigError, match="training.batch_size = 16 is not allowed: at most the training split's 6 samples"):
        run_experiment(small, overrides=["training.batch_size=16"], out=tmp_path / "small")
    assert not (tmp_path / "small").exists()


def test_divergent_run_is_recorded_and_the_sweep_completes(tmp_path):
    # A = 50 I with Euler, h = 0.1: each layer multiplies the state by 6, 6^10 ≈ 6e7 > 1e6.
    path = write_toml(
        tmp_path,
        'name = "mixed"\n[data]\nname = "moons"\n[analysis]\nio_jacobian = false\n[sweep.zip]\n"model.field" = ["mlp", "linear"]\n"model.scale" = [1.0, -50.0]\n',
    )
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
    path = write_toml(tmp_path, 'name = "resume"\n[data]\nname = "moons"\n[analysis]\nreport = false\n')
    overrides = [*TINY, "training.num_steps=9", "training.log_every=1", "training.checkpoint_every=3", f"model.replicas={replicas}"]
    straight = run_experiment(path, overrides=overrides, out=tmp_path / "straight", progress=False)[0]

    divergence = _divergence.divergence
    calls = iter(range(10**6))

    def interrupted_in_step_7(metrics, max_state_norm):
        # Ctrl-C in the middle of step 7, steps 1–7 recorded (log_every = 1): the machine goes away.
        if next(calls) == 7 * replicas:
            raise KeyboardInterrupt
        return divergence(metrics, max_state_norm)

    monkeypatch.setattr(_divergence, "divergence", interrupted_in_step_7)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(path, overrides=overrides, out=tmp_path / "resumed", progress=False)
    directory = tmp_path / "resumed" / "resume" / straight["run_id"]
    assert not (directory / "summary.json").exists()
    # The steps done were checkpointed on the way out, past the regular checkpoint at step 6.
    assert json.loads((directory / "ckpt" / "latest.eqx").read_bytes().partition(b"\n")[0])["step"] == 7
    with open(directory / "metrics.jsonl", "a") as file:
        file.write('{"step": 8, "lo')  # and a line cut short, for good measure
    monkeypatch.setattr(_divergence, "divergence", divergence)
    resumed = run_experiment(path, overrides=overrides, out=tmp_path / "resumed", progress=False)[0]
    assert resumed["final"] == straight["final"]
    assert resumed.get("replicas") == straight.get("replicas")
    # The broken line is dropped and step 8 written again; the wall time goes on counting.
    records = [json.loads(line) for line in (directory / "metrics.jsonl").read_text().splitlines()]
    assert [record["step"] for record in records] == [step for step in range(1, 10) for _ in range(replicas)]
    assert [record["wall_time"] for record in records] == sorted(record["wall_time"] for record in records)
    assert resumed["runtime_seconds"] > records[-1]["wall_time"]


def test_regularisers_and_lm_resnet_from_the_config_reach_training(tmp_path):
    path = write_toml(
        tmp_path,
        'name = "regular"\n[data]\nname = "moons"\n[discretisation]\nsolver = "lm_resnet"\nlm_resnet_k = 0.5\n[regularisation]\nkinetic_energy = 0.1\nspectral_penalty = 1.0\n[analysis]\nio_jacobian = false\n',
    )
    summary = run_experiment(path, overrides=TINY, out=tmp_path / "runs", progress=False)[0]
    final = summary["final"]
    assert final["kinetic_energy"] > 0 and final["regularisation"] == pytest.approx(
        0.1 * final["kinetic_energy"] + final["spectral_penalty"], rel=1e-9
    )
    assert final["function_evaluations"] == 10  # lm_resnet: one evaluation per step, 10 steps
    assert summary["stability"]["solver_options"] == {"k": 0.5}


def test_replicas_train_together_and_the_row_is_their_mean(tmp_path):
    robustness = "robustness = true\nepsilons = [0.0, 0.5]\npgd_steps = 3\n"
    path = write_toml(
        tmp_path,
        f'name = "seeds"\n[data]\nname = "moons"\n[model]\nreplicas = 3\nseed = 5\n[analysis]\nio_jacobian = false\ngradients = false\n{robustness}',
    )
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


def test_the_row_of_replicas_averages_what_each_has_and_null_is_missing():
    # A replica's NaN (a diverged net's evaluation) is written as null and left out of the mean,
    # as a null is; lists average element by element; texts the replicas differ in are counted
    # (a regime of "exploding" beside a mean slope that the rule calls stable would mislead).
    def entry(status, loss, outside, reason=None):
        evaluation = [{"solver": "rk4", "num_steps": 4, "test_loss": loss, "test_accuracy": 0.5}]
        stability = {"fraction_outside": outside, "gradient_regime": status, "per_layer": [outside, 1.0]}
        return {
            "status": status,
            "steps": 6,
            "diverged_at": 3 if reason else None,
            "reason": reason,
            "final": {"loss": loss},
            "evaluation": evaluation,
            "stability": stability,
            "robustness": None,
        }

    row = _replica_mean([entry("completed", 0.25, 0.5), entry("diverged", float("nan"), 0.25, "NaN loss"), entry("completed", None, 0.0)])
    assert row["status"] == "diverged" and row["diverged_at"] == 3 and row["reason"] == "1 of 3 replicas diverged; first: NaN loss"
    assert row["final"] == {"loss": 0.25} and row["evaluation"][0]["test_loss"] == 0.25
    assert row["stability"] == {"fraction_outside": 0.25, "gradient_regime": "2× completed, 1× diverged", "per_layer": [0.25, 1.0]}
    same = _replica_mean([entry("completed", 0.5, 0.5), entry("completed", 0.5, 0.5)])
    assert same["stability"]["gradient_regime"] == "completed"
    assert row["robustness"] is None
