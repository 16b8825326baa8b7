"""Training: it learns, compiles once, resumes exactly, and records divergence instead of raising."""

import dataclasses

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import deepest as dp
from deepest import _array_leaves, train
from deepest.train import _objective
from deepest.train._divergence import divergence

KEY = jax.random.PRNGKey(0)
MOONS = dp.data.make("moons", num_samples=128, seed=0)


def _net(solver="euler", key=KEY):
    field = dp.fields.MLP(state_dim=4, width=8, depth=1, key=key)
    return dp.SolverNet(field, solver=solver, num_steps=4, encoder=dp.encoders.ZeroAugmentation(2), readout=eqx.nn.Linear(4, 2, key=key))


def _parameters(model):
    return jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array))


def test_training_learns_and_compiles_each_function_once(traced):
    # Functions kept from other tests' fits would not trace at all.
    dp.clear_caches()
    result = train.fit(_net(), MOONS, train.optimiser("adam", 3e-2), num_steps=60, batch_size=32, key=KEY, log_every=20)
    # One trace of the training step, one of the test-set evaluation, for 60 steps and 3 records.
    assert traced.count("on_leaves") == 1 and traced.count("evaluate") == 1
    count = len(traced)
    # A net differing only in its weights (another seed, as in a sweep) reuses everything.
    other = train.fit(_net(key=jax.random.PRNGKey(1)), MOONS, train.optimiser("adam", 3e-2), num_steps=20, batch_size=32, key=KEY, log_every=20)
    assert len(traced) == count and other.status == "completed"
    assert result.status == "completed" and result.steps == 60
    assert [entry["step"] for entry in result.history] == [20, 40, 60]
    # Two balanced classes start at cross-entropy ≈ ln 2 = 0.69; 60 Adam steps on moons bring
    # the test loss to 0.37 (measured), well below chance level.
    assert result.history[-1]["test_loss"] < 0.5
    assert {"loss", "accuracy", "gradient_norm", "solver_steps", "solver_failures", "test_accuracy", "test_solver_failures"} <= set(result.history[0])
    assert result.history[0]["test_solver_failures"] == 0.0 and "test_failure" not in result.history[0]
    assert result.history[0]["solver_steps"] == 4


def test_clear_caches_makes_the_next_fit_trace_and_compile_again(traced):
    options = dict(num_steps=2, batch_size=32, key=KEY, log_every=2)
    train.fit(_net(), MOONS, train.optimiser("adam", 3e-2), **options)
    kept = len(traced)
    train.fit(_net(), MOONS, train.optimiser("adam", 3e-2), **options)
    assert len(traced) == kept
    dp.clear_caches()
    train.fit(_net(), MOONS, train.optimiser("adam", 3e-2), **options)
    # The step, the evaluation and both minibatch programs, traced anew.
    assert sorted(traced[kept:]) == ["evaluate", "on_leaves", "order", "take"]


def test_evaluating_a_trained_net_runs_the_program_fit_evaluated_it_with(compiled):
    # On one device fit places nothing on a mesh of its own, and make_evaluate gives one
    # function however it is called: an evaluation after training (the experiment runner's, a
    # notebook's) on plain arrays runs the program fit compiled.
    result = train.fit(_net(solver="heun"), MOONS, train.optimiser("adam", 1e-2), num_steps=2, batch_size=32, key=KEY, log_every=2)
    count = len(compiled)
    loss, _ = train.make_evaluate("classification")(result.model.with_solver("heun", throw=False), MOONS.x_test, MOONS.y_test)
    assert len(compiled) == count and loss == result.history[-1]["test_loss"]


def test_fit_takes_make_steps_step_on_the_minibatch_minibatches_draws(traced):
    net, optimiser = _net(), train.optimiser("adam", 3e-2)
    result = train.fit(net, MOONS, optimiser, num_steps=1, batch_size=16, key=KEY, log_every=1)
    count = len(traced)
    xs, targets = train.Minibatches(KEY, len(MOONS.x_train), 16)(0, jnp.asarray(MOONS.x_train), jnp.asarray(MOONS.y_train))
    # fit trains with throw=False (failures are data); the key only draws regularisers' probes.
    step, trained = train.make_step(optimiser, "classification"), dataclasses.replace(net, throw=False)
    model, state, metrics = step(trained, train.init_state(optimiser, trained), xs, targets, KEY, np.int32(0))
    # The same compiled step as fit's: not traced again, the same numbers to the last bit.
    assert "on_leaves" not in traced[count:]
    for a, b in zip(jax.tree.leaves((model, state)), jax.tree.leaves((result.model, result.optimiser_state)), strict=True):
        np.testing.assert_array_equal(a, b)
    # The records say a failure's code in words (a refused step's reason), not as a number.
    assert {name: float(value) for name, value in metrics.items() if name != "solver_result"} == {
        name: value
        for name, value in result.history[0].items()
        if name not in ("step", "wall_time", "test_loss", "test_accuracy", "test_solver_failures")
    }
    with pytest.raises(ValueError, match="Valid regularisers are"):
        train.make_step(optimiser, "classification", regularisation=[("kinetic", 0.1, {})])


def test_tree_layouts_refuse_other_trees_and_name_what_cannot_be_hashed():
    net = _net()
    layout, _ = _array_leaves.split(net)
    with pytest.raises(ValueError, match="Expected trees of the structure"):
        layout.of((net, None))

    class Opaque:
        __hash__ = None

    # Layouts are kept as keys of compiled steps: a non-array part that cannot be hashed is named.
    with pytest.raises(TypeError, match="of type Opaque is not"):
        _array_leaves.split((net, Opaque()))


def test_resumed_run_ends_exactly_like_an_uninterrupted_one():
    optimiser = train.optimiser("adam", 1e-2, schedule="cosine", num_steps=20)
    straight = train.fit(_net(), MOONS, optimiser, num_steps=20, batch_size=16, key=KEY, log_every=10)
    saved = {}
    train.fit(
        _net(),
        MOONS,
        optimiser,
        num_steps=10,
        batch_size=16,
        key=KEY,
        log_every=10,
        checkpoint_every=10,
        on_checkpoint=lambda step, model, state: saved.update(step=step, model=model, state=state),
    )
    assert saved["step"] == 10
    resumed = train.fit(
        saved["model"],
        MOONS,
        optimiser,
        num_steps=20,
        batch_size=16,
        key=KEY,
        log_every=10,
        start_step=10,
        optimiser_state=saved["state"],
    )
    for a, b in zip(_parameters(straight.model), _parameters(resumed.model)):
        np.testing.assert_array_equal(a, b)
    assert resumed.history[-1] == {**straight.history[-1], "wall_time": resumed.history[-1]["wall_time"]}


def test_exploding_net_is_recorded_as_diverged_not_raised():
    # Euler with h = 0.2 on y' = 5y grows by 2 per layer: 2^50 ≈ 1e15 > max_state_norm.
    regression = dp.data.make("regression", num_samples=32, seed=0)
    net = dp.SolverNet(dp.fields.Linear(5.0 * jnp.eye(1)), solver="euler", t1=10.0, num_steps=50)
    result = train.fit(net, regression, train.optimiser("sgd", 1e-3), num_steps=5, batch_size=8, key=KEY)
    assert result.status == "diverged" and result.diverged_at == 0 and result.steps == 0
    assert "state norm" in result.reason
    assert result.history[-1]["step"] == 0


def test_blown_up_training_stops_and_keeps_the_last_good_model():
    result = train.fit(_net(), MOONS, train.optimiser("sgd", 1e8), num_steps=50, batch_size=16, key=KEY)
    assert result.status == "diverged" and 0 < result.diverged_at < 50
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in _parameters(result.model))
    assert result.steps == result.diverged_at
    assert result.history[-1]["diverged"] == 1.0


def test_nan_loss_non_finite_update_and_solver_failure_each_diverge_with_their_reason():
    nan_targets = dp.data.Dataset(
        "nan", MOONS.x_train, np.full(MOONS.y_train.shape + (1,), np.nan, np.float32), MOONS.x_test, MOONS.y_test[:, None].astype(np.float32), None
    )
    plain = dp.SolverNet(dp.fields.Linear(-jnp.eye(2)), solver="euler", num_steps=3, readout=eqx.nn.Linear(2, 1, key=KEY))
    result = train.fit(plain, nan_targets, train.optimiser("sgd", 1e-3), num_steps=3, batch_size=8, key=KEY)
    assert (result.status, result.diverged_at, result.reason) == ("diverged", 0, "loss is nan")
    result = train.fit(_net(), MOONS, train.optimiser("sgd", float("inf")), num_steps=3, batch_size=8, key=KEY)
    assert (result.diverged_at, result.reason) == (0, "non-finite gradient or parameter update")
    result = train.fit(_starved_net(), MOONS, train.optimiser("adam", 1e-3), num_steps=3, batch_size=8, key=KEY)
    assert result.diverged_at == 0 and result.reason == f"solver failed on 8 samples: {MAX_STEPS_REACHED}"
    # Steps shared by the batch: the batch's one failure is every sample's.
    result = train.fit(
        _starved_net().with_solver("tsit5", batch_stepping="shared"), MOONS, train.optimiser("adam", 1e-3), num_steps=3, batch_size=8, key=KEY
    )
    assert result.diverged_at == 0 and result.reason == f"solver failed on 8 samples: {MAX_STEPS_REACHED}"


# diffrax's message for RESULTS.max_steps_reached, as the reasons quote it.
MAX_STEPS_REACHED = "the maximum number of solver steps was reached. Try increasing `max_steps`."


def _starved_net():
    """Adaptive Tsit5 with a budget of 2 steps, which cannot reach t1 at rtol 1e-8 from any input."""
    return _net().with_solver("tsit5", num_steps=None, rtol=1e-8, atol=1e-8, max_steps=2)


def test_failed_test_solves_record_no_test_metrics_but_what_failed():
    # The net fails every solve: its first step is refused, and the record of the model it was
    # refused from has no test loss or accuracy computed from wherever the solver stopped.
    result = train.fit(_starved_net(), MOONS, train.optimiser("adam", 1e-3), num_steps=3, batch_size=8, key=KEY)
    (record,) = result.history
    assert np.isnan(record["test_loss"]) and np.isnan(record["test_accuracy"])
    samples = len(MOONS.x_test)
    assert record["test_solver_failures"] == samples
    assert record["test_failure"] == f"solver failed on {samples} of {samples} samples: {MAX_STEPS_REACHED}"
    assert "solver_result" not in record


def test_a_failed_solves_reason_is_diffraxs_message_for_its_result_code():
    healthy = {"loss": 0.7, "max_state_norm": 1.0, "gradient_norm": 1.0, "finite_update": True}
    for item, reason in [
        (diffrax.RESULTS.dt_min_reached, "the minimum step size was reached in the differential equation solver."),
        (diffrax.RESULTS.nonfinite, "nonfinite (inf or nan) values detected during solve."),
        # A message of several paragraphs: its first, on one line.
        (diffrax.RESULTS.singular, "a linear solver returned non-finite (NaN or inf) output. This usually means that an operator was not well-posed"),
    ]:
        (code,) = jax.tree.leaves(item)
        said = divergence({**healthy, "solver_failures": 3.0, "solver_result": float(code)}, max_state_norm=1e6)
        assert said.startswith(f"solver failed on 3 samples: {reason}")
    # A batch's results name its most frequent failure, and success where none failed.
    results = [diffrax.RESULTS.successful, diffrax.RESULTS.nonfinite, diffrax.RESULTS.max_steps_reached, diffrax.RESULTS.nonfinite]
    batch = jax.tree.map(lambda *codes: jnp.stack(codes), *results)
    assert _objective._most_frequent_failure(batch) == jax.tree.leaves(diffrax.RESULTS.nonfinite)[0]
    assert _objective._most_frequent_failure(jax.tree.map(lambda codes: codes[:1], batch)) == jax.tree.leaves(diffrax.RESULTS.successful)[0]


def test_minibatches_are_slices_of_each_epochs_permutation_from_any_start():
    # 22 samples, batch 5: 4 batches an epoch, the last 2 samples of each permutation left out.
    def expected(step):
        epoch, position = divmod(step, 4)
        return np.asarray(jax.random.permutation(jax.random.fold_in(KEY, epoch), 22))[5 * position : 5 * position + 5]

    xs, labels = jnp.arange(22.0)[:, None], jnp.arange(22)
    # From the first step or a resumed one, across epochs (each permutation drawn once an epoch).
    for start in (0, 6):
        draw = train.Minibatches(KEY, 22, 5)
        for step in range(start, 13):
            batch, targets = draw(step, xs, labels)
            np.testing.assert_array_equal(targets, expected(step))
            np.testing.assert_array_equal(batch[:, 0], targets)
    # Each epoch, 20 different samples.
    epoch = np.concatenate([draw(step, xs, labels)[1] for step in range(8, 12)])
    assert len(set(epoch.tolist())) == 20


def test_unknown_optimiser_and_schedule_name_the_valid_ones():
    with pytest.raises(ValueError, match="Valid optimisers are: adam, adamw, sgd, rmsprop"):
        train.optimiser("adagrad", 1e-3)
    with pytest.raises(ValueError, match="Valid schedules are: constant, cosine, warmup_cosine"):
        train.optimiser("adam", 1e-3, schedule="linear")


def _seeded_net(seed):
    key = jax.random.PRNGKey(seed)
    field = dp.fields.MLP(state_dim=4, width=8, depth=1, key=key)
    return dp.SolverNet(field, num_steps=4, encoder=dp.encoders.ZeroAugmentation(2), readout=eqx.nn.Linear(4, 2, key=key))


def test_replicas_trained_in_one_vmapped_step_match_separate_runs():
    optimiser = train.optimiser("adam", 1e-2)
    options = dict(num_steps=12, batch_size=16, key=KEY, log_every=6)
    separate = [train.fit(_seeded_net(seed), MOONS, optimiser, **options) for seed in (1, 2)]
    together = train.fit_replicas(train.stack_models([_seeded_net(1), _seeded_net(2)]), MOONS, optimiser, replicas=2, **options)
    for alone, batched in zip(separate, together):
        assert batched.status == "completed" and batched.steps == 12
        # The same float64 arithmetic, batched: only the summation order inside XLA's batched
        # matmuls may differ, a few ulps per step, far below 1e-10 after 12 steps.
        for a, b in zip(_parameters(alone.model), _parameters(batched.model)):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
        assert [entry["replica"] for entry in batched.history] == [together.index(batched)] * 2
        np.testing.assert_allclose(alone.history[-1]["test_loss"], batched.history[-1]["test_loss"], rtol=1e-10)


def test_a_diverging_replica_is_frozen_while_the_others_train_and_resumes_exactly():
    broken = eqx.tree_at(lambda net: net.readout.weight, _seeded_net(2), jnp.full((2, 4), jnp.nan))
    optimiser = train.optimiser("adam", 1e-2)
    options = dict(batch_size=16, key=KEY, log_every=10)
    straight = train.fit_replicas(train.stack_models([_seeded_net(1), broken]), MOONS, optimiser, replicas=2, num_steps=20, **options)
    assert [result.status for result in straight] == ["completed", "diverged"]
    assert (straight[1].diverged_at, straight[1].reason, straight[1].steps) == (0, "loss is nan", 0)
    # Frozen exactly as it was: fit dispatches each step before checking the last one, and the
    # step it dispatched from the refused update is discarded (NaN equals NaN here).
    for a, b in zip(_parameters(straight[1].model), _parameters(broken), strict=True):
        np.testing.assert_array_equal(a, b)
    saved = {}
    first = train.fit_replicas(
        train.stack_models([_seeded_net(1), broken]),
        MOONS,
        optimiser,
        replicas=2,
        num_steps=10,
        checkpoint_every=10,
        on_checkpoint=lambda step, model, state: saved.update(step=step, model=model, state=state),
        **options,
    )
    resumed = train.fit_replicas(
        saved["model"],
        MOONS,
        optimiser,
        replicas=2,
        num_steps=20,
        start_step=10,
        optimiser_state=saved["state"],
        stopped={1: (first[1].diverged_at, first[1].reason)},
        **options,
    )
    assert [(r.status, r.diverged_at, r.steps) for r in resumed] == [(r.status, r.diverged_at, r.steps) for r in straight]
    for a, b in zip(_parameters(straight[0].model), _parameters(resumed[0].model)):
        np.testing.assert_array_equal(a, b)


def test_regularised_step_descends_the_loss_plus_the_weighted_regulariser():
    net, xs, targets = _net(), jnp.asarray(MOONS.x_train[:8], jnp.float64), jnp.asarray(MOONS.y_train[:8])
    optimiser, weight, rate = train.optimiser("sgd", 1e-2), 0.3, 1e-2
    step = train.make_step(optimiser, "classification", regularisation=[("kinetic_energy", weight, {})])
    new, _, metrics = step(net, optimiser.init(eqx.filter(net, eqx.is_inexact_array)), xs, targets, KEY, np.int32(0))
    evaluate = train.make_evaluate("classification")

    def objective(model):
        return evaluate(model, xs, targets)[0] + weight * dp.regularisers.kinetic_energy(model, xs)

    expected = eqx.apply_updates(net, jax.tree.map(lambda g: -rate * g, eqx.filter_grad(objective)(net)))
    # One SGD step is θ − η ∇(L + w R): the same float64 operations, to round-off.
    for a, b in zip(_parameters(new), _parameters(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    energy = dp.regularisers.kinetic_energy(net, xs)
    np.testing.assert_allclose(metrics["kinetic_energy"], energy, rtol=1e-12)
    np.testing.assert_allclose(metrics["regularisation"], weight * energy, rtol=1e-12)
    np.testing.assert_allclose(metrics["loss"], evaluate(net, xs, targets)[0], rtol=1e-12)
