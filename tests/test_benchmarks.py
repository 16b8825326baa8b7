"""The benchmark scripts run (at toy sizes; their timings are not checked here)."""

import pytest

from benchmarks import spectra
from benchmarks.__main__ import main
from benchmarks._report import MARKER


def test_spectra_benchmark_runs_and_reports(capsys):
    spectra.main(batch=2, layers=3, state_dim=4, repeats=1, matrix_free_batch=0)
    printed = capsys.readouterr().out
    assert "spectra/s" in printed and "eigenvalues alone" in printed


@pytest.mark.slow
def test_quick_suite_writes_every_table_below_the_readme_marker(tmp_path, capsys):
    # The sweep, quickstart and devices benchmarks start whole experiments or fits in fresh
    # processes, too slow for the suite even at toy sizes; every other benchmark runs, memory's
    # probes included.
    readme = tmp_path / "README.md"
    readme.write_text(f"# Hand-written introduction\n\n{MARKER}\n\nold results\n")
    only = ["--only", "training_step", "--only", "compile_time", "--only", "memory", "--only", "spectra"]
    report = main(["--quick", *only, "--write", str(readme)])
    assert report in capsys.readouterr().out
    for section in ("### Targets", "### Training step", "### Compile time", "### Peak memory", "### Spectra throughput"):
        assert section in report
    for row in ("| backsolve | 2 |", "| jacobian_spectrum dense", "| eigenvalues alone |"):
        assert row in report, row
    # The quick setting once in the training-step table and once in the compile-time table.
    assert report.count("| small | euler, 2 steps |") == 2
    assert "not judged" in report and "| met |" not in report and "not met" not in report
    written = readme.read_text()
    assert written.startswith("# Hand-written introduction\n\n" + MARKER)
    assert "old results" not in written and written.endswith(report)
