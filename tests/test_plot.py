"""The figures: they draw what they are given, diverged nets included."""

import warnings

import matplotlib.pyplot as plt
import numpy as np
import pytest

import deepest as dp


def test_stability_region_draws_every_solver_and_the_points():
    points = np.array([-0.5 + 0.2j, -2.5 + 0j, 0.1 + 1j])
    ax = dp.plot.stability_region(["euler", "rk4", "leapfrog_midpoint"], points=points)
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels == ["euler", "rk4", "leapfrog_midpoint", "h·λ"]
    offsets = ax.collections[-1].get_offsets()
    np.testing.assert_allclose(offsets[:, 0] + 1j * offsets[:, 1], points)
    # The view contains RK4's real-axis limit and every point.
    left, right = ax.get_xlim()
    assert left < dp.stability.real_axis_limit("rk4") and right > 0.1
    plt.close(ax.figure)


def test_gradient_profile_of_a_diverged_net_bands_its_finite_norms_without_warnings():
    # A net that blew up: inf and NaN norms in some samples, a layer with no finite norm.
    state = np.array([[1.0, 2.0, np.inf], [3.0, np.nan, np.nan], [5.0, 4.0, np.inf]])
    gradients = dp.analysis.GradientNorms(state=state, parameters=np.ones((3, 2)), loss=np.ones(3))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        ax = dp.plot.gradient_profile(gradients)
    vertices = np.concatenate([path.vertices for path in ax.collections[0].get_paths()])
    # The band spans np.percentile's 25th to 75th of each layer's finite norms ({1, 3, 5}:
    # 2 to 4; {2, 4}: 2.5 to 3.5); layer 2, with none, is left out of the drawing.
    for layer, edges in ((0, [2.0, 4.0]), (1, [2.5, 3.5])):
        heights = vertices[vertices[:, 0] == layer, 1]
        np.testing.assert_allclose([heights.min(), heights.max()], edges)
    assert not np.any(vertices[:, 0] == 2)
    plt.close(ax.figure)


def test_training_curves_draw_each_replica_and_write_png_closes_the_figure_at_the_named_dpi(tmp_path):
    from PIL import Image

    records = [
        {"step": step, "replica": replica, "loss": 1 / step, "accuracy": 0.5, "test_loss": 2 / step, "test_accuracy": 0.4}
        for step in (1, 2, 3)
        for replica in (0, 1)
    ]
    figure = dp.plot.training_curves(records)
    loss_axis, accuracy_axis = figure.axes
    assert [line.get_label() for line in loss_axis.lines] == [
        "train batch (replica 0)",
        "test (replica 0)",
        "train batch (replica 1)",
        "test (replica 1)",
    ]
    np.testing.assert_allclose(loss_axis.lines[1].get_ydata(), [2, 1, 2 / 3])
    with open(tmp_path / "training.png", "wb") as file:
        dp.plot.write_png(figure, file)
    assert not plt.fignum_exists(figure.number)
    assert Image.open(tmp_path / "training.png").info["dpi"] == pytest.approx((dp.plot.DPI, dp.plot.DPI), abs=0.01)


def test_against_measures_draws_one_panel_per_group_and_measure():
    points = {
        "data.name=moons": {"euler": {"test_accuracy": [0.9, 0.8], "outside": [0.1, 0.5], "max_growth": [1.0, 2.0]}},
        "data.name=digits": {"euler": {"test_accuracy": [0.7], "outside": [0.2], "max_growth": [np.nan]}},
    }
    correlations = {"data.name=moons": {"outside": -1.0, "max_growth": -1.0}, "data.name=digits": {"outside": np.nan, "max_growth": np.nan}}
    figure = dp.plot.against_measures(points, correlations, y="test_accuracy", colour_by="discretisation.solver", by="data.name")
    axes = np.asarray(figure.axes).reshape(2, 2)
    np.testing.assert_allclose(axes[0, 0].collections[0].get_offsets(), [[0.1, 0.9], [0.5, 0.8]])
    assert axes[0, 1].get_title() == "data.name=moons: Spearman ρ = -1.00" and axes[1, 0].get_ylabel() == "test_accuracy"
    assert axes[0, 1].get_legend().get_title().get_text() == "discretisation.solver"
    plt.close(figure)


def test_order_star_shades_where_the_solver_outgrows_the_flow():
    ax = dp.plot.order_star("rk4", resolution=80)
    assert ax.get_title() == "Order star of rk4" and len(ax.collections) >= 1
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["|R(z)| > |e^z|", "boundary of the stability region"]
    plt.close(ax.figure)


def test_pseudospectra_are_drawn_as_contours_on_the_region():
    # A non-normal linear field (a Jordan-like block): its pseudospectra reach beyond its eigenvalue.
    field = dp.fields.Linear(np.array([[-1.0, 4.0], [0.0, -1.0]]))
    net = dp.SolverNet(field, solver="euler", num_steps=4, t1=1.0)
    pseudospectra = dp.analysis.field_pseudospectra(net, np.ones((1, 2)), grid=dp.analysis.complex_grid((-2.0, 1.0, -1.5, 1.5), 41))
    ax = dp.plot.pseudospectra_on_region(pseudospectra)
    assert ax.get_title() == "δ-pseudospectra of h·∂f/∂y, all layers"
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="2-D grid"):
        flat = dp.analysis.field_pseudospectra(net, np.ones((1, 2)), grid=dp.analysis.complex_grid((-2.0, 1.0, -1.5, 1.5), 5).ravel())
        dp.plot.pseudospectra_on_region(flat)
