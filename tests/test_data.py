"""Datasets: shapes, seeding, standardisation, disjoint splits and clear errors."""

import random

import numpy as np
import pytest

from deepest import data

SMALL = {"circles": 60, "moons": 60, "spirals": 60, "swiss_roll": 60, "digits": 100, "mnist1d": 100, "regression": 60}
INPUT_DIMS = {"circles": 2, "moons": 2, "spirals": 2, "swiss_roll": 2, "digits": 64, "mnist1d": 40, "regression": 1}


@pytest.mark.parametrize("name", data.DATASETS)
def test_every_dataset_is_seeded_split_and_standardised(name):
    first = data.make(name, num_samples=SMALL[name], seed=3)
    again = data.make(name, num_samples=SMALL[name], seed=3)
    other = data.make(name, num_samples=SMALL[name], seed=4)
    assert first.input_dim == INPUT_DIMS[name]
    assert len(first.x_train) + len(first.x_test) == SMALL[name]
    assert len(first.x_test) == round(0.2 * SMALL[name])
    np.testing.assert_array_equal(first.x_train, again.x_train)
    np.testing.assert_array_equal(first.y_test, again.y_test)
    assert not np.array_equal(first.x_train, other.x_train)
    assert first.x_train.dtype == np.float32
    # Standardised on the training part: mean 0 and standard deviation 1 per non-constant
    # feature, to float32 round-off (≈1e-7 relative, summed over ≤ 80 samples).
    varying = first.x_train.std(axis=0) > 0
    np.testing.assert_allclose(first.x_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(first.x_train.std(axis=0)[varying], 1, atol=1e-5)
    # No sample is in both parts.
    train_rows = {row.tobytes() for row in first.x_train}
    assert not any(row.tobytes() in train_rows for row in first.x_test)
    if first.num_classes is None:
        assert first.task == "regression" and first.y_train.shape == (len(first.x_train), 1)
    else:
        assert first.y_train.dtype == np.int32
        assert set(np.unique(np.concatenate([first.y_train, first.y_test]))) <= set(range(first.num_classes))


def test_mnist1d_leaves_the_global_random_states_alone():
    np.random.seed(123)
    random.seed(456)
    numpy_before, python_before = np.random.get_state(), random.getstate()
    data.make("mnist1d", num_samples=50, seed=0)
    numpy_after = np.random.get_state()
    assert numpy_after[0] == numpy_before[0] and numpy_after[2:] == numpy_before[2:]
    np.testing.assert_array_equal(numpy_after[1], numpy_before[1])
    assert random.getstate() == python_before


def test_bad_arguments_name_what_is_allowed():
    with pytest.raises(ValueError, match="Did you mean 'spirals'"):
        data.make("spiral", seed=0)
    with pytest.raises(ValueError, match="Valid datasets are: circles, moons"):
        data.make("imagenet", seed=0)
    with pytest.raises(ValueError, match="test_fraction"):
        data.make("moons", test_fraction=1.5, seed=0)
    with pytest.raises(ValueError, match="num_samples"):
        data.make("moons", num_samples=2, seed=0)
