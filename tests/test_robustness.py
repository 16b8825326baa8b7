"""Attacks against closed forms on affine classifiers and on a trained net; the Grönwall bounds
against measured perturbation growth and the exact flow exp(tA)."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg

import deepest as dp
from deepest.layers import layer_chain
from deepest.robustness import (
    adversarial_ratio,
    deepfool,
    empirical_sensitivity,
    fgsm,
    gronwall_bound,
    minimal_epsilon,
    perturbation_growth,
    pgd,
    predict,
    robust_accuracy,
    robustness_summary,
)

KEY = jax.random.PRNGKey(0)
# Ground truth in NumPy (eager jnp calls would each compile). f(x) = wᵀx + b with weights of
# unequal size, so that ‖w‖₁, ‖w‖₂ and the L∞ and L2 attacks differ.
RNG = np.random.default_rng(0)
WEIGHTS = np.array([0.7, -1.3, 0.4, 2.1])
BIAS = 0.2
XS = RNG.standard_normal((8, 4))
SCORES = XS @ WEIGHTS + BIAS
LABELS = (SCORES > 0).astype(np.int32)
MATRIX = RNG.standard_normal((5, 4))
OFFSET = RNG.standard_normal(5)


def affine_score(x):
    return x @ WEIGHTS + BIAS


def affine_score_vector(x):
    return jnp.reshape(affine_score(x), (1,))


def affine_logits(x):
    return MATRIX @ x + OFFSET


def fgsm_thresholds(norm="linf"):
    """|f(x)| / ‖w‖_dual: the budget at which FGSM reaches the hyperplane f = 0."""
    return np.abs(SCORES) / np.linalg.norm(WEIGHTS, 1 if norm == "linf" else 2)


# ---------------------------------------------------------------- affine classifiers


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
    np.testing.assert_allclose(result.norm / (1 + result.overshoot), distances.min(axis=1), rtol=1e-10)
    np.testing.assert_array_equal(result.iterations, 1)
    assert bool(result.flipped.all())
    # Restricted to the runner-up class by score, DeepFool measures the distance to that facet.
    runner_up = np.argsort(-logits, axis=1)[:, 1]
    restricted = deepfool(affine_logits, XS, num_classes=2)
    np.testing.assert_allclose(restricted.norm / (1 + restricted.overshoot), distances[samples, runner_up], rtol=1e-10)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fgsm_on_an_affine_classifier_flips_exactly_beyond_the_dual_norm_threshold(norm):
    # FGSM moves f by −sign(f) ε ‖w‖_dual (‖w‖₁ for L∞, ‖w‖₂ for L2): it reaches f = 0 at
    # ε = |f|/‖w‖_dual. A relative margin of 1e-9 is far above the round-off of f (1e-16).
    threshold = fgsm_thresholds(norm)
    below = fgsm(affine_score, XS, LABELS, threshold * (1 - 1e-9), norm=norm)
    above = fgsm(affine_score, XS, LABELS, threshold * (1 + 1e-9), norm=norm)
    np.testing.assert_array_equal(predict(affine_score, below), LABELS)
    np.testing.assert_array_equal(predict(affine_score, above), 1 - LABELS)
    # f(x') = f − sign(f)(1 + 1e-9)|f| = −1e-9 f; its round-off 1e-16|f| is 1e-7 of that.
    np.testing.assert_allclose(np.asarray(above) @ WEIGHTS + BIAS, -1e-9 * SCORES, rtol=1e-5)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_on_an_affine_classifier_converges_to_the_worst_point_of_the_ball(norm):
    epsilon = 0.3
    away = -np.sign(SCORES)[:, None]
    if norm == "linf":
        # Default step 2.5ε/N: every coordinate reaches its clip at ±ε within 0.8 N steps
        # and stays; the clipped offset is exactly ±ε, so only the rounding of x ± ε remains.
        adversarial = pgd(affine_score, XS, LABELS, epsilon, num_steps=20, key=KEY)
        np.testing.assert_allclose(adversarial, XS + epsilon * away * np.sign(WEIGHTS), rtol=0, atol=1e-15)
    else:
        # With α = ε the angle to the optimum w/‖w‖ halves every step once on the sphere.
        # The loss is flat to second order there: iterates within √(1e-16) = 1e-8 in angle
        # tie in loss, and the highest-loss one returned may be any of them.
        adversarial = pgd(affine_score, XS, LABELS, epsilon, norm="l2", num_steps=60, step_size=epsilon, key=KEY)
        np.testing.assert_allclose(adversarial, XS + epsilon * away * WEIGHTS / np.linalg.norm(WEIGHTS), rtol=0, atol=1e-7)


def test_minimal_fgsm_epsilon_is_the_threshold_within_the_bisection_tolerance():
    threshold = fgsm_thresholds()
    order = np.argsort(threshold)
    # `high` between the two largest thresholds: the last sample cannot be flipped.
    high = (threshold[order[-1]] + threshold[order[-2]]) / 2
    unreachable, misclassified = order[-1], order[0]
    labels = LABELS.copy()
    labels[misclassified] = 1 - labels[misclassified]
    result = minimal_epsilon(fgsm, affine_score, XS, labels, high=high, num_bisections=40)
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


def test_attacks_compile_once_for_new_budgets():
    traces = []

    def counted(x):
        traces.append(None)
        return affine_score(x)

    fgsm(counted, XS, LABELS, 0.1)
    fgsm(counted, XS, LABELS, np.full(len(XS), 0.2))
    assert len(traces) == 1


# ---------------------------------------------------------------- a trained net


@pytest.fixture(scope="module")
def trained():
    """A SolverNet (linear lift 64 → 8, 4 Euler layers of a ReLU MLP field, linear readout to
    10 classes) trained for 200 full-batch Adam steps on the 64-pixel digits.

    Inputs of 64 dimensions, not a 2-D toy set: in 2-D the L∞ FGSM step along a diagonal is
    within 2% of the shortest L2 path for a quarter of all boundary orientations, so DeepFool
    with its 2% overshoot cannot be shorter on 90% of samples even for a linear model. ReLU,
    not tanh: DeepFool's linearisation is exact inside each linear piece (measured with tanh:
    DeepFool shorter on 72% of samples). Training and attacks run through the chained layer
    maps, the same numbers as the net's solve but compiled in a fraction of the time.
    """
    data = dp.data.make("digits", seed=0)

    # Jitted: the initialisers compile together, not as one small program per weight shape.
    @eqx.filter_jit
    def build(key):
        lift, field_key, readout_key = jax.random.split(key, 3)
        return dp.SolverNet(
            dp.fields.MLP(state_dim=8, width=16, depth=1, activation="relu", key=field_key),
            solver="euler",
            num_steps=4,
            encoder=eqx.nn.Linear(64, 8, key=lift),
            readout=eqx.nn.Linear(8, 10, key=readout_key),
        )

    net = build(jax.random.PRNGKey(0))
    x_train, y_train = data.x_train.astype(np.float64), data.y_train
    optimiser = optax.adam(0.01)

    def chained(net, x):
        return net.readout(layer_chain(net, net.encode(x)))

    @eqx.filter_jit
    def train(net):
        parameters, structure = eqx.partition(net, eqx.is_inexact_array)

        def mean_loss(parameters):
            logits = jax.vmap(functools.partial(chained, eqx.combine(parameters, structure)))(x_train)
            return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y_train))

        def step(carry, _):
            parameters, state = carry
            updates, state = optimiser.update(jax.grad(mean_loss)(parameters), state)
            return (optax.apply_updates(parameters, updates), state), None

        (parameters, _), _ = jax.lax.scan(step, (parameters, optimiser.init(parameters)), length=200)
        return eqx.combine(parameters, structure)

    net = train(net)
    xs, labels = data.x_test[:64].astype(np.float64), data.y_test[:64]
    return net, functools.partial(chained, net), xs, labels


def test_trained_net_is_accurate_and_attacks_take_the_solver_net_itself(trained):
    net, model, xs, labels = trained
    assert np.mean(predict(model, xs) == labels) >= 0.9  # measured 0.98
    # The SolverNet as the model (gradients through diffeqsolve) and the chained layer maps
    # agree: the same arithmetic in another order, so round-off only.
    np.testing.assert_allclose(fgsm(net, xs[:8], labels[:8], 0.1), fgsm(model, xs[:8], labels[:8], 0.1), atol=1e-12)


def test_deepfool_is_no_larger_than_minimal_fgsm_on_a_trained_net(trained):
    _, model, xs, labels = trained
    correct = predict(model, xs) == labels
    found = deepfool(model, xs)
    assert bool(found.flipped.all())
    smallest_fgsm = minimal_epsilon(fgsm, model, xs, labels, high=2.0, num_bisections=20).perturbation_norm
    # Measured: 98% (62 of 63 correct samples). FGSM not flipping within `high` counts as an
    # infinite perturbation (3 samples, whose softmax is saturated: logit margins 40 to 80
    # leave cross-entropy gradients of 1e-17 to 1e-35, and FGSM fails on them up to ε = 3).
    share = np.sum((found.norm <= smallest_fgsm) & correct) / np.sum(correct)
    assert float(share) >= 0.9


@pytest.mark.parametrize(
    "attack", [fgsm, functools.partial(pgd, num_steps=20, key=jax.random.PRNGKey(1))], ids=["fgsm", "pgd"]
)
def test_robust_accuracy_on_a_trained_net_is_non_increasing(trained, attack):
    _, model, xs, labels = trained
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


# ---------------------------------------------------------------- Grönwall bounds


def random_field_net(solver):
    field = dp.fields.MLP(state_dim=4, width=8, depth=1, activation="tanh", time_input=True, key=KEY)
    # Weights doubled so that layers expand some directions and contract others.
    field = jax.tree.map(lambda leaf: 2 * leaf if eqx.is_inexact_array(leaf) else leaf, field)
    return dp.SolverNet(field, solver=solver, t1=1.5, num_steps=5)


@pytest.mark.parametrize("solver", ["euler", "rk4"])
def test_discrete_bound_is_above_measured_growth_on_random_fields(solver):
    net = random_field_net(solver)
    bound = gronwall_bound(net, XS)
    # Every basis direction and four random ones, linearised through the layers.
    directions = np.concatenate([np.eye(4), np.random.default_rng(5).standard_normal((4, 4))])
    growth = perturbation_growth(net, XS, directions)
    # Submultiplicativity is exact; the two sides differ by round-off only.
    assert np.all(growth.growth <= bound.discrete_per_layer * (1 + 1e-12))
    assert np.max(growth.final) > 1.0  # not a trivially contracting net


def test_log_norms_of_a_time_dependent_field_are_those_of_the_analysis():
    # The same μ₂(∂f/∂y(t_k, y_k)) as deepest.analysis computes in its own pass over the
    # net's solve; the field takes t as an input, so a wrong layer time would show. (The
    # step norms are checked against closed forms on linear fields below.)
    net = random_field_net("euler")
    expected = dp.analysis.jacobian_spectrum(net, XS, method="dense").log_norm
    np.testing.assert_allclose(gronwall_bound(net, XS).log_norm, expected, rtol=1e-12)


def test_discrete_bound_is_above_measured_growth_on_the_trained_net(trained):
    net, _, xs, _ = trained
    bound = gronwall_bound(net, xs)
    worst = empirical_sensitivity(net, xs, epsilon=1e-6, key=jax.random.PRNGKey(6))
    # A finite δ adds O(ε ‖∂²y_L‖/‖∂y_L‖) ≈ 1e-6 relative to the linear growth; cancellation
    # in y_L(y_0 + δ) − y_L(y_0) adds 1e-16/ε = 1e-10. Measured: the bound is at least 1.2%
    # above the worst growth found, which is within 7e-4 below and 4e-9 above ‖∂y_L/∂y_0‖₂.
    assert np.all(worst.growth <= bound.discrete * (1 + 1e-4))


# A non-normal matrix: μ₂(A) ≈ 0.53 exceeds its spectral abscissa, so exp(tA) first grows.
LINEAR = np.array([[-1.0, 3.0, 0.0], [0.0, -1.0, 0.5], [0.2, 0.0, -1.5]])


def linear_net(matrix):
    """Five Euler layers of step h = 1 on y' = My: one compiled shape for every linear test."""
    return dp.SolverNet(dp.fields.Linear(matrix), solver="euler", t1=5.0, num_steps=5)


def test_linear_field_growth_and_worst_growth_are_the_matrix_power():
    net = linear_net(0.2 * LINEAR)
    step = np.eye(3) + 0.2 * LINEAR
    directions = np.random.default_rng(3).standard_normal((3, 3))
    powers = [np.linalg.matrix_power(step, k) for k in range(6)]
    expected = np.stack([np.linalg.norm(directions @ power.T, axis=1) for power in powers], axis=1)
    expected /= np.linalg.norm(directions, axis=1, keepdims=True)
    np.testing.assert_allclose(perturbation_growth(net, XS[:3, :3], directions).growth, expected, rtol=1e-12)
    # A linear map: the ascent is a shifted power iteration on (I + hA)^5ᵀ(I + hA)^5 with rate
    # (σ₁² + σ₂²)/2σ₁² ≈ 0.51 here, so 50 steps reach round-off.
    worst = empirical_sensitivity(net, XS[:3, :3], epsilon=1e-3, key=KEY)
    np.testing.assert_allclose(worst.growth, np.linalg.norm(powers[-1], 2), rtol=1e-10)
    bound = gronwall_bound(net, XS[:3, :3])
    np.testing.assert_allclose(bound.discrete, np.linalg.norm(step, 2) ** 5, rtol=1e-12)


def test_robustness_summary_of_a_linear_net_matches_the_affine_closed_forms():
    # Euler on y' = 0.2·L y, then the score wᵀy + b: an affine classifier f(x) = vᵀx + b with
    # v = ((I + 0.2L)^5)ᵀ w, so every number has its closed form (see the affine tests above).
    readout_weights = WEIGHTS[:3]
    net = eqx.tree_at(lambda n: n.readout, linear_net(0.2 * LINEAR), lambda y: y @ readout_weights + BIAS, is_leaf=lambda x: x is None)
    power = np.linalg.matrix_power(np.eye(3) + 0.2 * LINEAR, 5)
    effective = power.T @ readout_weights
    xs, labels = XS[:, :3], LABELS  # labels of another classifier: some samples start misclassified
    scores = xs @ effective + BIAS
    epsilons = [0.05, 0.2]
    summary = robustness_summary(net, xs, labels, epsilons=epsilons, pgd_steps=5, fgsm_high=20.0, key=KEY)
    correct = (scores > 0) == labels
    threshold = np.abs(scores) / np.linalg.norm(effective, 1)  # FGSM's (and L∞ PGD's) flip budget
    assert summary["clean_accuracy"] == np.mean(correct)
    assert summary["robust_accuracy"] == [np.mean(correct & (threshold > epsilon)) for epsilon in epsilons]
    norms = np.linalg.norm(xs, axis=1)
    # DeepFool: one projection (1 + 0.02 overshoot) onto f = 0; FGSM: the corner at the threshold,
    # ‖r‖₂ = ε*·√3, bisected to (20 / 2^16) relative to ε* ≈ 0.1–1: rtol 1e-3 covers it.
    deepfool_ratio = np.mean(1.02 * np.abs(scores) / np.linalg.norm(effective) / norms)
    np.testing.assert_allclose(summary["rho_deepfool"], deepfool_ratio, rtol=1e-9)
    np.testing.assert_allclose(summary["rho_fgsm"], np.mean(threshold * np.sqrt(3) / norms), rtol=1e-3)
    assert summary["fgsm_flipped"] == summary["deepfool_flipped"] == 1.0
    np.testing.assert_allclose(summary["growth_bound"], np.linalg.norm(np.eye(3) + 0.2 * LINEAR, 2) ** 5, rtol=1e-12)


def test_continuous_bound_holds_for_the_exact_flow_of_a_linear_field():
    bound = gronwall_bound(linear_net(0.2 * LINEAR), XS[:3, :3])
    log_norm = np.linalg.eigvalsh((LINEAR + LINEAR.T) / 2)[-1]
    # μ₂ is constant along any trajectory, so the quadrature is exact: exp(T μ₂(0.2 A)) with
    # T = 5, i.e. exp(μ₂(A)).
    np.testing.assert_allclose(bound.continuous, np.exp(log_norm), rtol=1e-12)
    flow = np.linalg.norm(scipy.linalg.expm(LINEAR), 2)
    assert flow <= float(bound.continuous.min())
    assert flow > 1.0  # the flow does grow (1.28): the bound is not vacuous


def test_continuous_bound_does_not_bound_the_discrete_euler_net():
    # y' = −3y with h = 1: each Euler layer multiplies by 1 − 3 = −2 while the flow decays
    # by e^{−3}. The discrete bound (2 per layer) is the exact growth; the continuous is not.
    net = linear_net(-3.0 * np.eye(3))
    bound = gronwall_bound(net, XS[:3, :3])
    growth = perturbation_growth(net, XS[:3, :3], np.ones((3, 3))).final
    np.testing.assert_allclose(growth, 2.0**5, rtol=1e-14)
    np.testing.assert_allclose(bound.discrete, 2.0**5, rtol=1e-14)
    np.testing.assert_allclose(bound.continuous, np.exp(-15.0), rtol=1e-14)


# ---------------------------------------------------------------- bad input


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
        (lambda: pgd(affine_score, XS, LABELS, 0.1), "needs a PRNG key"),
        (lambda: pgd(affine_score, XS, LABELS, 0.1, num_steps=0, key=KEY), "num_steps must be a positive integer"),
        (lambda: fgsm(lambda x: jnp.outer(x, x), XS, LABELS, 0.1), r"returned shape \(4, 4\)"),
        (lambda: deepfool(affine_logits, XS, num_classes=1), "num_classes must be an integer ≥ 2"),
        (lambda: deepfool(affine_logits, XS, num_classes=6), "num_classes=6 exceeds the model's 5 classes"),
        (lambda: deepfool(affine_logits, XS, overshoot=-0.1), "overshoot must be non-negative"),
        (lambda: minimal_epsilon(fgsm, affine_score, XS, LABELS, low=-1.0, high=1.0), "0 ≤ low < high"),
        (lambda: minimal_epsilon(fgsm, affine_score, XS, LABELS[:2], high=1.0), "labels of shape"),
        (lambda: robust_accuracy(affine_score, XS, LABELS, [0.1, -0.2]), "epsilons must be non-negative"),
        (lambda: robust_accuracy(affine_score, XS, LABELS, [[0.1]]), "non-empty 1-D"),
        (lambda: adversarial_ratio(XS, XS[:, :2]), "perturbations must have the shape of xs"),
    ],
)
def test_bad_attack_input_raises_a_value_error_naming_the_problem(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_labels_outside_the_classes_raise_when_the_attack_runs():
    # The number of classes is known only once the model is traced: a run-time check.
    with pytest.raises(RuntimeError, match="labels must lie in 0 … 1"):
        fgsm(affine_score, XS, np.full(len(XS), 2, dtype=np.int32), 0.1)


def test_bad_bound_input_raises_a_value_error_naming_the_problem():
    net = dp.SolverNet(dp.fields.Linear(LINEAR), solver="euler", num_steps=2)
    with pytest.raises(ValueError, match=r"directions must be .* shape \(2, 3\); got shape \(2, 4\)"):
        perturbation_growth(net, XS[:2, :3], XS[:2])
    with pytest.raises(ValueError, match="epsilon must be positive"):
        empirical_sensitivity(net, XS[:2, :3], epsilon=0.0, key=KEY)
    with pytest.raises(ValueError, match="leading batch axis"):
        gronwall_bound(net, XS[0, :3])
    with pytest.raises(ValueError, match="two-step method"):
        gronwall_bound(net.with_solver("leapfrog_midpoint"), XS[:2, :3])
    with pytest.raises(ValueError, match="fixed-step"):
        perturbation_growth(net.with_solver("tsit5", num_steps=None), XS[:2, :3], XS[:2, :3])
