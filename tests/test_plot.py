"""The stability-region figure: it draws what it is given."""

import matplotlib.pyplot as plt
import numpy as np

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
