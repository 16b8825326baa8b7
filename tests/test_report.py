"""The stability report: its numbers against closed forms, its text, JSON and figure."""

import json

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import pytest

import deepest as dp
import deepest.plot
from deepest.analysis import REGIME_FACTOR, stability_report

XS = jax.random.normal(jax.random.PRNGKey(1), (4, 3))
TARGETS = jax.random.normal(jax.random.PRNGKey(2), (4, 3))
# Euler with h = 0.1 on eigenvalues (−1, −2, 0.5) grows by |1 + hλ| = (0.9, 0.8, 1.05).
A = jnp.diag(jnp.array([-1.0, -2.0, 0.5]))


def _inner_product_loss(output, target):
    return jnp.dot(output, target)


@pytest.fixture(scope="module")
def report():
    net = dp.SolverNet(dp.fields.Linear(A), solver="euler", t1=1.0, num_steps=10)
    return stability_report(net, XS, TARGETS, _inner_product_loss)


def test_report_numbers_are_the_closed_forms(report):
    assert report.fraction_outside == pytest.approx(1 / 3, abs=1e-15)
    # The one h·λ outside, +0.05, is the ODE's own growth, integrated faithfully: no numerical
    # instability, and ratios |1 + hλ|/e^{hλ} of 0.8/e^−0.2, 0.9/e^−0.1 and 1.05/e^0.05.
    values = report.to_dict()
    assert values["fraction_numerically_unstable"] == 0.0 and values["fraction_over_damped"] == 0.0
    assert values["fraction_dynamically_growing"] == pytest.approx(1 / 3, abs=1e-15)
    ratios = sorted([0.8 / np.exp(-0.2), 0.9 / np.exp(-0.1), 1.05 / np.exp(0.05)])
    minimum, median, maximum = (values[f"{which}_amplification_ratio"] for which in ("min", "median", "max"))
    assert (minimum, median, maximum) == pytest.approx(ratios, rel=1e-12)
    np.testing.assert_allclose(report.fraction_outside_per_layer, 1 / 3, atol=1e-15)
    assert report.max_growth == pytest.approx(1.05, rel=1e-12)
    assert report.max_log_norm == pytest.approx(0.5, rel=1e-12)
    # ∂y_L/∂y_0 = diag(0.9, 0.8, 1.05)^10 over T = 1: λ_1 = 10 ln 1.05.
    assert report.top_lyapunov == pytest.approx(10 * np.log(1.05), rel=1e-12)
    values = report.to_dict()
    assert values["io_largest_singular_value"] == pytest.approx(1.05**10, rel=1e-12)
    assert values["io_smallest_singular_value"] == pytest.approx(0.8**10, rel=1e-12)


def test_report_serialises_and_summarises(report):
    values = json.loads(json.dumps(report.to_dict()))
    assert values["solver"] == "euler" and values["num_layers"] == 10
    # ∂L/∂y_k = D^(10−k) c with D = diag(0.9, 0.8, 1.05) and c the target: the closed-form
    # profile, its least-squares slope, and the regime rule (a change by REGIME_FACTOR) applied to it.
    growth = np.array([0.9, 0.8, 1.05])
    profile = np.mean([[np.log(np.linalg.norm(growth ** (10 - k) * c)) for k in range(11)] for c in np.asarray(TARGETS)], axis=0)
    slope = np.polyfit(np.arange(11), profile, 1)[0]
    assert values["gradient_slope"] == pytest.approx(slope, rel=1e-10)
    assert values["gradient_regime"] == ("stable" if abs(slope) * 10 <= np.log(REGIME_FACTOR) else "vanishing" if slope > 0 else "exploding")
    text = report.summary()
    assert "33.3%" in text and "euler" in text and report.gradient_regime in text
    assert text.splitlines()[1].startswith("  numerically unstable h·λ (Re λ ≤ 0, outside the region): 0.0%")
    assert str(report) == text


def test_two_step_solvers_report_what_they_can():
    net = dp.SolverNet(dp.fields.Linear(A), solver="leapfrog_midpoint", t1=1.0, num_steps=10)
    report = stability_report(net, XS, TARGETS, _inner_product_loss)
    assert report.gradients is None
    assert report.to_dict()["gradient_regime"] is None
    assert "two-step" in report.summary()
    # Leapfrog is stable only on the imaginary segment: every real h·λ ≠ 0 is outside.
    assert report.fraction_outside == pytest.approx(1.0)


def test_report_figure_has_its_four_panels(report, tmp_path):
    fig = deepest.plot.stability_report(report)
    titles = [ax.get_title() for ax in fig.axes]
    assert any("outside euler" in title for title in titles)
    assert any(ax.get_ylabel() == "‖∂L/∂y_k‖" for ax in fig.axes)
    assert any(ax.get_ylabel().startswith("finite-time exponent") for ax in fig.axes)
    fig.savefig(tmp_path / "report.png")
    assert (tmp_path / "report.png").stat().st_size > 10_000
    plt.close(fig)


def test_analyses_can_be_left_out():
    net = dp.SolverNet(dp.fields.Linear(A), solver="euler", t1=1.0, num_steps=10)
    report = stability_report(net, XS, TARGETS, _inner_product_loss, gradients=False, io_jacobian=False)
    assert report.gradients is None and report.io is None
    values = report.to_dict()
    assert values["top_lyapunov"] is None and values["io_largest_singular_value"] is None
    assert values["fraction_outside"] == pytest.approx(1 / 3, abs=1e-15)
    assert "not computed" in report.summary()
    plt.close(deepest.plot.stability_report(report))
