"""The robustness summary of a linear net against the affine closed forms, and what it writes
into summary.json."""

import json

import equinox as eqx
import numpy as np
import pytest
from _robustness_models import BIAS, KEY, LABELS, LINEAR, WEIGHTS, XS, affine_score, linear_net

from deepest.robustness import RobustnessSummary, robustness_summary


def test_robustness_summary_of_a_linear_net_matches_the_affine_closed_forms():
    # Euler on y' = 0.2·L y, then the score wᵀy + b: an affine classifier f(x) = vᵀx + b with
    # v = ((I + 0.2L)^5)ᵀ w, so every number has its closed form (see test_attacks.py).
    readout_weights = WEIGHTS[:3]
    net = eqx.tree_at(lambda n: n.readout, linear_net(0.2 * LINEAR), lambda y: y @ readout_weights + BIAS, is_leaf=lambda x: x is None)
    power = np.linalg.matrix_power(np.eye(3) + 0.2 * LINEAR, 5)
    effective = power.T @ readout_weights
    xs, labels = XS[:, :3], LABELS  # labels of another classifier: some samples start misclassified
    scores = xs @ effective + BIAS
    epsilons = [0.05, 0.2]
    summary = robustness_summary(net, xs, labels, epsilons=epsilons, pgd_steps=5, fgsm_high=20.0, key=KEY)
    assert isinstance(summary, RobustnessSummary)
    values = summary.to_dict()
    # What summary.json holds: plain JSON values, unchanged by a round trip.
    assert json.loads(json.dumps(values)) == values
    correct = (scores > 0) == labels
    threshold = np.abs(scores) / np.linalg.norm(effective, 1)  # FGSM's (and L∞ PGD's) flip budget
    assert values["attack"] == "pgd" and values["norm"] == "linf" and values["epsilons"] == epsilons
    assert values["clean_accuracy"] == np.mean(correct)
    assert values["robust_accuracy"] == [np.mean(correct & (threshold > epsilon)) for epsilon in epsilons]
    assert values["mean_robust_accuracy"] == np.mean(values["robust_accuracy"])
    norms = np.linalg.norm(xs, axis=1)
    # DeepFool: one projection (1 + 0.02 overshoot) onto f = 0; FGSM: the corner at the threshold,
    # ‖r‖₂ = ε*·√3, bisected to (20 / 2^16) relative to ε* ≈ 0.1–1: rtol 1e-3 covers it.
    deepfool_ratio = np.mean(1.02 * np.abs(scores) / np.linalg.norm(effective) / norms)
    np.testing.assert_allclose(values["rho_deepfool"], deepfool_ratio, rtol=1e-9)
    np.testing.assert_allclose(values["rho_fgsm"], np.mean(threshold * np.sqrt(3) / norms), rtol=1e-3)
    assert values["fgsm_flipped"] == values["deepfool_flipped"] == 1.0
    np.testing.assert_allclose(values["growth_bound"], np.linalg.norm(np.eye(3) + 0.2 * LINEAR, 2) ** 5, rtol=1e-12)
    # The results behind the numbers stay at hand.
    assert summary.rho_deepfool == values["rho_deepfool"] and summary.growth_bound == values["growth_bound"]
    np.testing.assert_array_equal(summary.deepfool.flipped, True)


def test_a_model_that_is_no_solver_net_has_no_growth_bound():
    summary = robustness_summary(affine_score, XS, LABELS, epsilons=[0.1], attack="fgsm", key=KEY)
    assert summary.growth is None and summary.to_dict()["growth_bound"] is None
    assert summary.to_dict()["clean_accuracy"] == 1.0


def test_an_unknown_attack_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="Unknown attack 'cw'. Valid attacks are: fgsm, pgd"):
        robustness_summary(affine_score, XS, LABELS, epsilons=[0.1], attack="cw", key=KEY)
