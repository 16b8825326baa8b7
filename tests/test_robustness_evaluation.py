"""What the attacks measure: robust accuracy across budgets, the adversarial ratio ρ_adv and the
minimal flipping budget, against closed forms on affine classifiers and on a trained net."""

import functools

import jax
import numpy as np
import pytest
from _robustness_models import LABELS, SCORES, WEIGHTS, XS, affine_score, fgsm_thresholds, trained_digits_net

from deepest.robustness import adversarial_ratio, deepfool, fgsm, minimal_epsilon, pgd, predict, robust_accuracy


def test_minimal_fgsm_epsilon_is_the_threshold_within_the_bisection_tolerance():
    threshold = fgsm_thresholds()
    order = np.argsort(threshold)
    # `high` between the two largest thresholds: the last sample cannot be flipped.
    high = (threshold[order[-1]] + threshold[order[-2]]) / 2
    unreachable, misclassified = order[-1], order[0]
    labels = LABELS.copy()
    labels[misclassified] = 1 - labels[misclassified]
    result = minimal_epsilon(affine_score, XS, labels, attack=fgsm, high=high, num_bisections=40)
    flippable = np.setdiff1d(np.arange(len(XS)), [unreachable, misclassified])
    epsilon = np.asarray(result.epsilon)[flippable]
    # The bracket's upper end, at most `tolerance` (1e-12 here) above the threshold; the
    # flip test at a budget within round-off (~1e-16) of the threshold may go either way.
    assert np.all(epsilon >= threshold[flippable] - 1e-14)
    assert np.all(epsilon <= threshold[flippable] + result.tolerance + 1e-14)
    expected = epsilon[:, None] * -np.sign(SCORES[flippable])[:, None] * np.sign(WEIGHTS)
    np.testing.assert_allclose(np.asarray(result.perturbation)[flippable], expected, rtol=1e-14)
    # Already misclassified: the attack succeeds at low = 0 with no perturbation.
    assert float(result.epsilon[misclassified]) == 0.0
    np.testing.assert_array_equal(result.perturbation[misclassified], 0.0)
    assert float(result.epsilon[unreachable]) == np.inf and not bool(result.found[unreachable])
    assert np.all(np.isnan(result.perturbation[unreachable]))
    assert float(result.perturbation_norm[unreachable]) == np.inf


def test_robust_accuracy_on_an_affine_classifier_is_the_share_beyond_each_threshold():
    epsilons = np.array([0.0, 0.05, 0.2, 0.6])
    threshold = fgsm_thresholds()
    # No threshold within round-off of a budget, where the flip would be decided by rounding.
    assert np.min(np.abs(threshold[:, None] - epsilons[None])) > 1e-6
    result = robust_accuracy(affine_score, XS, LABELS, epsilons)
    np.testing.assert_array_equal(result.accuracy, np.mean(threshold[None] > epsilons[:, None], axis=1))
    assert float(result.clean_accuracy) == 1.0


def test_adversarial_ratio_is_the_mean_relative_distance_over_found_perturbations():
    result = deepfool(affine_score, XS)
    perturbations = np.array(result.perturbation)
    # r = (1 + η) r*, ‖r*‖ = |f(x)|/‖w‖₂.
    ratios = (1 + result.overshoot) * np.abs(SCORES) / np.linalg.norm(WEIGHTS) / np.linalg.norm(XS, axis=1)
    np.testing.assert_allclose(adversarial_ratio(XS, perturbations), np.mean(ratios), rtol=1e-12)
    # A sample without a perturbation (NaN, as minimal_epsilon reports it) is left out.
    perturbations[0] = np.nan
    np.testing.assert_allclose(adversarial_ratio(XS, perturbations), np.mean(ratios[1:]), rtol=1e-12)


def test_deepfool_is_no_larger_than_minimal_fgsm_on_a_trained_net():
    _, model, xs, labels = trained_digits_net()
    correct = predict(model, xs) == labels
    found = deepfool(model, xs)
    assert bool(found.flipped.all())
    smallest_fgsm = minimal_epsilon(model, xs, labels, attack=fgsm, high=2.0, num_bisections=20).perturbation_norm
    # Measured: 98% (62 of 63 correct samples). FGSM not flipping within `high` counts as an
    # infinite perturbation (3 samples, whose softmax is saturated: logit margins 40 to 80
    # leave cross-entropy gradients of 1e-17 to 1e-35, and FGSM fails on them up to ε = 3).
    share = np.sum((found.perturbation_norm <= smallest_fgsm) & correct) / np.sum(correct)
    assert float(share) >= 0.9


@pytest.mark.parametrize("attack", [fgsm, functools.partial(pgd, num_steps=20, key=jax.random.PRNGKey(1))], ids=["fgsm", "pgd"])
def test_robust_accuracy_on_a_trained_net_is_non_increasing(attack):
    _, model, xs, labels = trained_digits_net()
    result = robust_accuracy(model, xs, labels, np.linspace(0.0, 0.5, 11), attack=attack)
    # The ε-balls are nested, so the worst case can only get worse as ε grows; but an attack
    # is a search and need not find a worse point in a larger ball (FGSM's one step along a
    # fixed ray can cross a curved boundary and back: it did on the 2-D moons). Measured on
    # this net, for both attacks, every sample once fooled stays fooled at every larger ε
    # (PGD: step 2.5ε/N, the same random start direction at every ε, the highest-loss
    # iterate kept), so the check needs no tolerance.
    assert float(result.accuracy[0]) == float(result.clean_accuracy)
    assert np.all(np.diff(result.accuracy) <= 0)
    assert float(result.accuracy[-1]) < 0.2  # the attacks do bite (measured 0.06 and 0.05)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: minimal_epsilon(affine_score, XS, LABELS, low=-1.0, high=1.0), "0 ≤ low < high"),
        (lambda: minimal_epsilon(affine_score, XS, LABELS[:2], high=1.0), "labels of shape"),
        (lambda: robust_accuracy(affine_score, XS, LABELS, [0.1, -0.2]), "epsilons must be non-negative"),
        (lambda: robust_accuracy(affine_score, XS, LABELS, [[0.1]]), "non-empty 1-D"),
        (lambda: adversarial_ratio(XS, XS[:, :2]), "perturbations must have the shape of xs"),
    ],
)
def test_bad_input_raises_a_value_error_naming_the_problem(call, message):
    with pytest.raises(ValueError, match=message):
        call()
