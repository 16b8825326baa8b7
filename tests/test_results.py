"""Results across the runs of an experiment: the table, and a column against each stability measure."""

import numpy as np
import pytest

from deepest import cli
from deepest.experiment import rundir
from deepest.experiment.results import collect, read_runs
from deepest.experiment.scatter import rank_correlations
from deepest.experiment.spread import spread_table
from deepest.experiment.transfer import transfer_table


def _fake_run(root, config: dict, summary: dict) -> None:
    """A run directory with a hand-written config and summary (no training), named by the config's hash as a run's is."""
    directory = root / rundir.run_id(config)
    rundir.write_json(directory / "config.json", config)
    rundir.write_json(directory / "summary.json", {**summary, "run_id": directory.name})


def _fake_runs(root, values):
    for scale, accuracy, outside in values:
        summary = {
            "status": "completed",
            "final": {"test_accuracy": accuracy},
            "stability": {"fraction_outside": outside, "max_growth": accuracy, "top_lyapunov": None},
        }
        _fake_run(root, {"name": "fake", "model": {"scale": scale}}, summary)


def test_results_figure_gives_spearman_rank_correlations(tmp_path, capsys):
    # Accuracy falls monotonically (not linearly) with the share outside: ρ = −1 exactly; it
    # rises with max_growth (set equal to it): ρ = +1; no Lyapunov numbers: ρ undefined (NaN).
    _fake_runs(tmp_path, [(1.0, 0.9, 0.0), (2.0, 0.8, 0.1), (3.0, 0.3, 0.5), (4.0, 0.29, 0.9)])
    figure = tmp_path / "scatter.png"
    assert cli.main(["results", str(tmp_path), "--figure", str(figure)]) == 0
    assert figure.exists() and "outside -1.00  max_growth +1.00" in capsys.readouterr().out
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
            summary = {"status": "completed", "final": {"test_accuracy": accuracy}, "stability": {"fraction_outside": outside}}
            _fake_run(tmp_path, {"name": "fake", "model": {"kind": kind, "scale": index}}, summary)
    figure = tmp_path / "scatter.png"
    csv = tmp_path / "results.csv"
    assert cli.main(["results", str(tmp_path), "--figure", str(figure), "--by", "model.kind", "--csv", str(csv)]) == 0
    printed = capsys.readouterr().out
    lines = {line.split(":")[0]: line for line in printed.splitlines() if line.startswith("model.kind=")}
    assert figure.exists() and "outside -1.00" in lines["model.kind=a"] and "outside +1.00" in lines["model.kind=b"]
    assert csv.read_text().splitlines()[0].startswith("run_id,model.kind,model.scale,status")
    assert cli.main(["results", str(tmp_path), "--figure", str(figure), "--by", "data.name"]) == 2
    assert "Cannot split by 'data.name'" in capsys.readouterr().err
    assert cli.main(["results", str(tmp_path / "nothing")]) == 2
    assert "No runs" in capsys.readouterr().err


def test_the_table_over_seeds_is_numpys_mean_and_standard_deviation_of_the_trained_nets(tmp_path, capsys):
    # Setting a: three runs of seeds 0–2; setting b: one run of three replicas. Text columns count.
    accuracies = {"a": [0.9, 0.7, 0.8], "b": [0.5, 0.6, 0.1]}
    regimes = ["stable", "exploding", "stable"]
    for seed, (accuracy, regime) in enumerate(zip(accuracies["a"], regimes)):
        summary = {"status": "completed", "final": {"test_accuracy": accuracy}, "stability": {"gradient_regime": regime}}
        _fake_run(tmp_path, {"name": "fake", "model": {"kind": "a", "seed": seed}}, summary)
    replicas = [{"status": "completed", "final": {"test_accuracy": accuracy}} for accuracy in accuracies["b"]]
    _fake_run(tmp_path, {"name": "fake", "model": {"kind": "b", "seed": 0}}, {"status": "completed", "replicas": replicas})
    header, rows = spread_table(read_runs(tmp_path))
    assert header[:2] == ["model.kind", "n"] and [row[:2] for row in rows] == [["a", 3], ["b", 3]]
    for row in rows:
        spread = row[header.index("test_accuracy")]
        values = accuracies[row[0]]
        assert (spread.mean, spread.std, spread.count) == (
            pytest.approx(np.mean(values), rel=1e-15),
            pytest.approx(np.std(values, ddof=1), rel=1e-15),
            3,
        )
    assert rows[0][header.index("gradients")] == "2× stable, 1× exploding" and rows[1][header.index("gradients")] is None
    assert cli.main(["results", str(tmp_path)]) == 0
    assert f"{np.mean(accuracies['a']):.4g} ± {np.std(accuracies['a'], ddof=1):.2g}" in capsys.readouterr().out


def test_the_transfer_matrix_has_a_row_per_training_and_a_column_per_test_discretisation(tmp_path, capsys):
    # Euler-4 and RK4-4 fields, two seeds each, re-tested under both: cells are numpy's mean ± std.
    accuracy = {("euler", "euler"): [0.9, 0.8], ("euler", "rk4"): [0.6, 0.4], ("rk4", "euler"): [0.7, 0.7], ("rk4", "rk4"): [0.95, 0.85]}
    for trained in ("euler", "rk4"):
        for seed in (0, 1):
            evaluation = [
                {"solver": tested, "num_steps": 4, "test_loss": 0.1, "test_accuracy": accuracy[trained, tested][seed]} for tested in ("euler", "rk4")
            ]
            config = {"name": "fake", "discretisation": {"solver": trained, "num_steps": 4}, "model": {"seed": seed}}
            _fake_run(tmp_path, config, {"status": "completed", "evaluation": evaluation})
    header, rows = transfer_table(read_runs(tmp_path))
    assert header == ["trained at", "tested euler 4", "tested rk4 4"] and [row[0] for row in rows] == ["euler 4", "rk4 4"]
    for row, trained in zip(rows, ("euler", "rk4")):
        for cell, tested in zip(row[1:], ("euler", "rk4")):
            values = accuracy[trained, tested]
            assert (cell.mean, cell.std, cell.count) == (pytest.approx(np.mean(values)), pytest.approx(np.std(values, ddof=1)), 2)
    figure = tmp_path / "transfer.png"
    assert cli.main(["results", str(tmp_path), "--transfer-figure", str(figure)]) == 0
    assert figure.stat().st_size > 5_000 and "trained at" in capsys.readouterr().out
