"""The benchmark scripts run (at toy sizes; their timings are not checked here)."""

from benchmarks import spectra


def test_spectra_benchmark_runs_and_reports(capsys):
    spectra.main(batch=2, layers=3, state_dim=4, repeats=1, matrix_free_batch=0)
    printed = capsys.readouterr().out
    assert "spectra/s" in printed and "matrices/s" in printed
