"""The attacks (FGSM, PGD, DeepFool) against closed forms on affine classifiers, on a trained
net, and on bad input; the classifier convention they share."""

import functools

import jax.numpy as jnp
import numpy as np
import pytest
from _robustness_models import (
    BIAS,
    KEY,
    LABELS,
    MATRIX,
    OFFSET,
    SCORES,
    WEIGHTS,
    XS,
    affine_logits,
    affine_score,
    affine_score_vector,
    fgsm_thresholds,
    trained_digits_net,
)

from deepest.robustness import AbstractAttackResult, deepfool, fgsm, pgd, predict


@pytest.mark.parametrize("model", [affine_score, affine_score_vector], ids=["shape ()", "shape (1,)"])
def test_deepfool_on_an_affine_binary_classifier_projects_onto_the_hyperplane(model):
    result = deepfool(model, XS)
    projection = -SCORES[:, None] * WEIGHTS / (WEIGHTS @ WEIGHTS)
    # One exact projection step r* = −f(x) w/‖w‖²; float64 round-off is ~1e-16 |f|/‖w‖.
    np.testing.assert_allclose(result.perturbation / (1 + result.overshoot), projection, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(result.iterations, 1)
    assert bool(result.flipped.all())
    np.testing.assert_array_equal(result.original_class, LABELS)
    np.testing.assert_array_equal(result.adversarial_class, 1 - LABELS)
    # x + r, up to XLA's fused rounding (one ulp).
    np.testing.assert_allclose(result.adversarial, XS + result.perturbation, rtol=0, atol=1e-15)


def test_deepfool_on_an_affine_multiclass_model_reaches_the_nearest_facet():
    logits = XS @ MATRIX.T + OFFSET
    samples, predicted = np.arange(len(XS)), np.argmax(logits, axis=1)
    gaps = np.abs(logits - logits[samples, predicted][:, None])
    normals = np.linalg.norm(MATRIX[None] - MATRIX[predicted][:, None], axis=-1)
    # |f_k − f_k̂| / ‖w_k − w_k̂‖, the distance to the facet shared with class k (not k̂ itself).
    distances = np.where(np.arange(5)[None] == predicted[:, None], np.inf, gaps / np.where(normals > 0, normals, 1))
    result = deepfool(affine_logits, XS)
    # The first step lands on the nearest facet of k̂'s polyhedron; round-off only.
    np.testing.assert_allclose(result.perturbation_norm / (1 + result.overshoot), distances.min(axis=1), rtol=1e-10)
    np.testing.assert_array_equal(result.iterations, 1)
    assert bool(result.flipped.all())
    # Restricted to the runner-up class by score, DeepFool measures the distance to that facet.
    runner_up = np.argsort(-logits, axis=1)[:, 1]
    restricted = deepfool(affine_logits, XS, num_classes=2)
    np.testing.assert_allclose(restricted.perturbation_norm / (1 + restricted.overshoot), distances[samples, runner_up], rtol=1e-10)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fgsm_on_an_affine_classifier_flips_exactly_beyond_the_dual_norm_threshold(norm):
    # FGSM moves f by −sign(f) ε ‖w‖_dual (‖w‖₁ for L∞, ‖w‖₂ for L2): it reaches f = 0 at
    # ε = |f|/‖w‖_dual. A relative margin of 1e-9 is far above the round-off of f (1e-16).
    threshold = fgsm_thresholds(norm)
    below = fgsm(affine_score, XS, LABELS, threshold * (1 - 1e-9), norm=norm)
    above = fgsm(affine_score, XS, LABELS, threshold * (1 + 1e-9), norm=norm)
    np.testing.assert_array_equal(predict(affine_score, below.adversarial), LABELS)
    np.testing.assert_array_equal(predict(affine_score, above.adversarial), 1 - LABELS)
    # f(x') = f − sign(f)(1 + 1e-9)|f| = −1e-9 f; its round-off 1e-16|f| is 1e-7 of that.
    np.testing.assert_allclose(np.asarray(above.adversarial) @ WEIGHTS + BIAS, -1e-9 * SCORES, rtol=1e-5)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_on_an_affine_classifier_converges_to_the_worst_point_of_the_ball(norm):
    epsilon = 0.3
    away = -np.sign(SCORES)[:, None]
    if norm == "linf":
        # Default step 2.5ε/N: every coordinate reaches its clip at ±ε within 0.8 N steps
        # and stays; the clipped offset is exactly ±ε, so only the rounding of x ± ε remains.
        attacked = pgd(affine_score, XS, LABELS, epsilon, num_steps=20, key=KEY)
        np.testing.assert_allclose(attacked.adversarial, XS + epsilon * away * np.sign(WEIGHTS), rtol=0, atol=1e-15)
    else:
        # With α = ε the angle to the optimum w/‖w‖ halves every step once on the sphere.
        # The loss is flat to second order there: iterates within √(1e-16) = 1e-8 in angle
        # tie in loss, and the highest-loss one returned may be any of them.
        attacked = pgd(affine_score, XS, LABELS, epsilon, norm="l2", num_steps=60, step_size=epsilon, key=KEY)
        np.testing.assert_allclose(attacked.adversarial, XS + epsilon * away * WEIGHTS / np.linalg.norm(WEIGHTS), rtol=0, atol=1e-7)


@pytest.mark.parametrize(
    "attack",
    [
        functools.partial(fgsm, epsilon=0.3),
        functools.partial(fgsm, epsilon=0.3, norm="l2"),
        functools.partial(pgd, epsilon=0.3, num_steps=5, key=KEY),
        lambda model, xs, labels: deepfool(model, xs),
    ],
    ids=["fgsm", "fgsm l2", "pgd", "deepfool"],
)
def test_every_attack_returns_its_inputs_and_perturbations(attack):
    result = attack(affine_score, XS, LABELS)
    assert isinstance(result, AbstractAttackResult)
    # x' = x + r: exact for FGSM and DeepFool, which add r; PGD's r = x' − x rounds once.
    np.testing.assert_allclose(result.adversarial, XS + result.perturbation, rtol=0, atol=1e-15)
    np.testing.assert_allclose(result.perturbation_norm, np.linalg.norm(result.perturbation, axis=1), rtol=1e-15)


def test_attacks_compile_once_for_new_budgets():
    traces = []

    def counted(x):
        traces.append(None)
        return affine_score(x)

    fgsm(counted, XS, LABELS, 0.1)
    fgsm(counted, XS, LABELS, np.full(len(XS), 0.2))
    assert len(traces) == 1


def test_trained_net_is_accurate_and_attacks_take_the_solver_net_itself():
    net, model, xs, labels = trained_digits_net()
    assert np.mean(predict(model, xs) == labels) >= 0.9  # measured 0.98
    # The SolverNet as the model (gradients through diffeqsolve) and the chained layer maps
    # agree: the same arithmetic in another order, so round-off only.
    np.testing.assert_allclose(fgsm(net, xs[:8], labels[:8], 0.1).adversarial, fgsm(model, xs[:8], labels[:8], 0.1).adversarial, atol=1e-12)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: fgsm(affine_score, XS, LABELS, 0.1, norm="l1"), "Unknown norm 'l1'"),
        (lambda: pgd(affine_score, XS, LABELS, 0.1, norm="L2", key=KEY), "Unknown norm 'L2'"),
        (lambda: fgsm(affine_score, XS, LABELS, -0.1), "epsilon must be non-negative"),
        (lambda: pgd(affine_score, XS, LABELS, np.full(8, -1.0), key=KEY), "epsilon must be non-negative"),
        (lambda: fgsm(affine_score, XS, LABELS, np.ones(3)), r"one per sample, shape \(8,\)"),
        (lambda: fgsm(affine_score, XS, LABELS[:5], 0.1), r"labels of shape \(8,\).*got labels of shape \(5,\)"),
        (lambda: pgd(affine_score, XS, LABELS.astype(float), 0.1, key=KEY), "integer class labels"),
        (lambda: fgsm(affine_score, XS[0], LABELS[0], 0.1), "leading batch axis"),
        (lambda: pgd(affine_score, XS, LABELS, 0.1, num_steps=0, key=KEY), "num_steps must be a positive integer"),
        (lambda: fgsm(lambda x: jnp.outer(x, x), XS, LABELS, 0.1), r"returned shape \(4, 4\)"),
        (lambda: deepfool(affine_logits, XS, num_classes=1), "num_classes must be an integer ≥ 2"),
        (lambda: deepfool(affine_logits, XS, num_classes=6), "num_classes=6 exceeds the model's 5 classes"),
        (lambda: deepfool(affine_logits, XS, overshoot=-0.1), "overshoot must be non-negative"),
    ],
)
def test_bad_attack_input_raises_a_value_error_naming_the_problem(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_norm_is_keyword_only():
    with pytest.raises(TypeError, match="positional"):
        fgsm(affine_score, XS, LABELS, 0.1, "l2")


def test_labels_outside_the_classes_raise_when_the_attack_runs():
    # The number of classes is known only once the model is traced: a run-time check.
    with pytest.raises(RuntimeError, match="labels must lie in 0 … 1"):
        fgsm(affine_score, XS, np.full(len(XS), 2, dtype=np.int32), 0.1)
