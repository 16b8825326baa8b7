"""The experiment schema: defaults, and errors that name the key, the value and what is allowed."""

import dataclasses

import jax
import numpy as np
import pytest

from deepest import data, fields
from deepest.experiment import ConfigError, build, config, run_one


def test_unknown_key_names_the_closest_valid_one():
    with pytest.raises(ConfigError, match=r"Unknown key 'training.learning_rat'. Did you mean 'training.learning_rate'"):
        config.from_dict({"training": {"learning_rat": 0.1}})
    with pytest.raises(ConfigError, match="Unknown key 'trainng'. Did you mean 'training'"):
        config.from_dict({"trainng": {}})


def test_robustness_settings_are_checked_before_anything_runs():
    with pytest.raises(ConfigError, match=r"analysis.robustness = True is not allowed: false for the regression dataset"):
        config.from_dict({"data": {"name": "regression"}, "analysis": {"robustness": True}})
    with pytest.raises(ConfigError, match=r"analysis.attack = 'cw' is not allowed: one of fgsm, pgd"):
        config.from_dict({"analysis": {"attack": "cw"}})
    with pytest.raises(ConfigError, match=r"analysis.epsilons = \(0.1, -0.1\) is not allowed: a non-empty list of non-negative budgets"):
        config.from_dict({"analysis": {"epsilons": [0.1, -0.1]}})
    with pytest.raises(ConfigError, match=r"analysis.attack_norm = 'l1' is not allowed: one of linf, l2"):
        config.from_dict({"analysis": {"attack_norm": "l1"}})


def test_wrong_type_and_range_name_key_value_and_what_is_allowed():
    with pytest.raises(ConfigError, match=r"training.num_steps = 'ten' is not allowed: expected int, got str"):
        config.from_dict({"training": {"num_steps": "ten"}})
    with pytest.raises(ConfigError, match=r"discretisation.solver = 'rk5' is not allowed: one of euler, midpoint"):
        config.from_dict({"discretisation": {"solver": "rk5"}})
    with pytest.raises(ConfigError, match=r"training.learning_rate = -0.1 is not allowed: a positive number"):
        config.from_dict({"training": {"learning_rate": -0.1}})
    with pytest.raises(ConfigError, match="with num_steps = 0 \\(adaptive\\), one of"):
        config.from_dict({"discretisation": {"solver": "rk4", "num_steps": 0}})
    # An integer where a float is expected is fine.
    assert config.from_dict({"training": {"learning_rate": 1}}).training.learning_rate == 1.0


def test_more_bad_configs_are_refused():
    for table, message in [
        ({"training": {"learning_rate": float("inf")}}, "a finite number"),
        ({"training": {"warmup_steps": 400}}, r"in \[0, num_steps = 400\)"),
        ({"name": "../up"}, "names a directory"),
        ({"discretisation": {"solver": "semi_implicit_euler"}}, "only for the separable"),
        ({"evaluation": {"solvers": ["rk4"]}}, "both given"),
        ({"data": {"seed": -1}}, r"\[0, 4294967296\)"),
        ({"model": {"replicas": 0}}, "model.replicas"),
        ({"discretisation": {"lm_resnet_k": 0.5}}, 'unless discretisation.solver = "lm_resnet"'),
        ({"discretisation": {"batch_stepping": "batch"}}, "one of per_sample, shared"),
        ({"regularisation": {"kinetic_energy": -1.0}}, "non-negative weight"),
        ({"regularisation": {"weight_smoothness": 0.1}}, "model.per_layer = true"),
        ({"regularisation": {"spectral_penalty": 0.1}, "discretisation": {"num_steps": 0, "solver": "tsit5"}}, "fixed layer grid"),
        ({"regularisation": {"local_error": 0.1}, "discretisation": {"solver": "reversible_heun"}}, "has an error estimate"),
        ({"regularisation": {"margin": 1.0}}, "below 1"),
    ]:
        with pytest.raises(ConfigError, match=message):
            config.from_dict(table)


def test_field_names_come_from_the_fields_registry_and_reach_each_field():
    allowed = ", ".join(fields.FIELDS)
    assert allowed.startswith("mlp, linear, antisymmetric, hamiltonian")
    with pytest.raises(ConfigError, match=f"model.field = 'mlpp' is not allowed: one of {allowed}."):
        config.from_dict({"model": {"field": "mlpp"}})
    with pytest.raises(ValueError, match=f"Unknown field 'mlpp'. Valid fields are: {allowed}."):
        fields.make_field("mlpp", 4, key=jax.random.PRNGKey(0))
    # Each field gets the [model] settings it takes: moons' 2 inputs + 2 zero dimensions.
    moons = data.make("moons", num_samples=16, seed=0)
    settings = {"width": 3, "depth": 2, "scale": 0.5, "gamma": 0.25, "stiffness": 2.0, "damping": 0.125}
    built = {name: build.network(config.from_dict({"model": {"field": name, **settings}}), moons).field for name in fields.FIELDS}
    assert all(field.state_dim == 4 for field in built.values())
    assert isinstance(built["mlp"], fields.MLP) and len(built["mlp"].network.layers) == 3
    np.testing.assert_array_equal(built["linear"].matrix, -0.5 * np.eye(4))
    assert built["antisymmetric"].gamma == 0.25 and built["parabolic"].width == 3
    assert (built["second_order"].stiffness, built["second_order"].damping) == (2.0, 0.125)
    assert isinstance(built["hamiltonian"], fields.Hamiltonian)


def test_step_counts_have_limits_far_beyond_any_practical_run():
    with pytest.raises(ConfigError, match=r"training.num_steps = 10000001 is not allowed: a positive integer up to 10000000."):
        config.from_dict({"training": {"num_steps": 10_000_001}})
    with pytest.raises(ConfigError, match=r"discretisation.num_steps = 100001 is not allowed: a positive integer up to 100000, or 0 for adaptive."):
        config.from_dict({"discretisation": {"num_steps": 100_001}})
    with pytest.raises(ConfigError, match=r"evaluation.num_steps = 100001 is not allowed: integers in \[0, 100000\] \(0: adaptive\)."):
        config.from_dict({"evaluation": {"solvers": ["rk4"], "num_steps": [4, 100_001]}})
    at_the_limits = config.from_dict({"training": {"num_steps": 10_000_000}, "discretisation": {"num_steps": 100_000}})
    assert (at_the_limits.training.num_steps, at_the_limits.discretisation.num_steps) == (config.MAX_TRAINING_STEPS, config.MAX_SOLVER_STEPS)


def test_a_batch_larger_than_the_training_split_is_refused_before_the_run_writes_a_file(tmp_path):
    # 64 moons less the 13 held out (test_fraction 0.2) leave 51 to train on.
    asked = config.from_dict({"data": {"name": "moons", "num_samples": 64}, "training": {"batch_size": 52}})
    refusal = r"training.batch_size = 52 is not allowed: at most the training split's 51 samples \(64 samples of 'moons', data.test_fraction = 0.2\)"
    with pytest.raises(ConfigError, match=refusal):
        build.dataset(asked)
    with pytest.raises(ConfigError, match=refusal):
        run_one(asked, tmp_path / "runs")
    assert not (tmp_path / "runs").exists()
    assert len(build.dataset(dataclasses.replace(asked, training=config.TrainingConfig(batch_size=51))).x_train) == 51
