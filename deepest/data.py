"""Datasets generated offline and seeded: 2-D toy sets, digits, MNIST-1D, a 1-D regression.

`make(name, seed=...)` returns a `Dataset` split into train and test parts, inputs
standardised with the training statistics. Nothing is downloaded: the toy sets and digits
come from scikit-learn, MNIST-1D from `mnist1d.data.make_dataset` (which seeds NumPy's global
generator; its state is restored afterwards), the spirals and the regression task are
generated here.

References: Greydanus, "Scaling down deep learning" (2020, arXiv:2011.14439) for MNIST-1D;
scikit-learn's `datasets` for circles, moons, swiss roll and digits.
"""

import dataclasses
import difflib
import random

import numpy as np

DATASETS = ("circles", "moons", "spirals", "swiss_roll", "digits", "mnist1d", "regression")

# Dataset sizes when `num_samples` is not given; digits has a fixed 1797 images.
_DEFAULT_SAMPLES = {"circles": 1000, "moons": 1000, "spirals": 1000, "swiss_roll": 1000, "mnist1d": 4000, "regression": 500}
_DEFAULT_NOISE = {"circles": 0.05, "moons": 0.1, "spirals": 0.05, "swiss_roll": 0.5, "regression": 0.05}


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A train/test split. Inputs float32 (samples, input_dim); labels int32 (samples,) for
    classification, targets float32 (samples, 1) for regression (`num_classes` None)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int | None

    @property
    def input_dim(self) -> int:
        return self.x_train.shape[1]

    @property
    def task(self) -> str:
        return "regression" if self.num_classes is None else "classification"


def check_dataset_name(name: str) -> str:
    """`name` if it is a known dataset; else a ValueError naming the closest and all valid ones."""
    if name not in DATASETS:
        close = difflib.get_close_matches(name, DATASETS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown dataset {name!r}.{hint} Valid datasets are: {', '.join(DATASETS)}.")
    return name


def make(
    name: str,
    *,
    num_samples: int | None = None,
    noise: float | None = None,
    test_fraction: float = 0.2,
    standardise: bool = True,
    seed: int,
) -> Dataset:
    """Generate dataset `name`, split it and standardise its inputs.

    Args:
        name: one of `DATASETS`.
        num_samples: total samples before the split (default per dataset; digits ignores
            it unless smaller than its 1797 images, then subsamples).
        noise: the generator's noise level (toy sets and regression; default per dataset).
        test_fraction: share of samples held out, in (0, 1).
        standardise: shift and scale every input feature to mean 0, standard deviation 1
            on the training part (constant features are left unscaled).
        seed: the same seed gives the same arrays.

    Example:
        >>> data = deepest.data.make("spirals", num_samples=512, seed=0)
        >>> data.x_train.shape, data.num_classes
        ((410, 2), 2)
    """
    check_dataset_name(name)
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}.")
    if num_samples is not None and not (isinstance(num_samples, int) and num_samples >= 4):
        raise ValueError(f"num_samples must be an integer ≥ 4 (to leave train and test parts), got {num_samples!r}.")
    size = num_samples or _DEFAULT_SAMPLES.get(name)
    level = _DEFAULT_NOISE.get(name) if noise is None else noise
    try:
        inputs, labels, num_classes = _GENERATORS[name](size, level, seed)
    except ModuleNotFoundError as missing:
        raise ModuleNotFoundError(
            f"Dataset {name!r} needs {missing.name!r}, from the `data` extra: python -m pip install -e '.[data]' (or pip install 'deepest[data]')."
        ) from missing
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(inputs))
    if num_samples is not None and num_samples < len(order):
        order = order[:num_samples]
    split = len(order) - max(1, int(round(test_fraction * len(order))))
    if split < 2:
        raise ValueError(f"{len(order)} samples with test_fraction={test_fraction} leave {split} for training; need at least 2.")
    train, test = order[:split], order[split:]
    x_train, x_test = inputs[train].astype(np.float32), inputs[test].astype(np.float32)
    if standardise:
        mean, scale = x_train.mean(axis=0), x_train.std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        x_train, x_test = (x_train - mean) / scale, (x_test - mean) / scale
    label_type = np.float32 if num_classes is None else np.int32
    return Dataset(
        name=name,
        x_train=x_train.astype(np.float32),
        y_train=labels[train].astype(label_type),
        x_test=x_test.astype(np.float32),
        y_test=labels[test].astype(label_type),
        num_classes=num_classes,
    )


def _circles(size, noise, seed):
    from sklearn.datasets import make_circles

    inputs, labels = make_circles(size, noise=noise, factor=0.5, random_state=seed)
    return inputs, labels, 2


def _moons(size, noise, seed):
    from sklearn.datasets import make_moons

    inputs, labels = make_moons(size, noise=noise, random_state=seed)
    return inputs, labels, 2


def _spirals(size, noise, seed):
    """Two interleaved spirals: radius r ∈ [0.15, 1], angle 3πr (+π for class 1)."""
    rng = np.random.default_rng(seed)
    radius = rng.uniform(0.15, 1.0, size)
    labels = np.arange(size) % 2
    angle = 3 * np.pi * radius + np.pi * labels
    points = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return points + noise * rng.standard_normal(points.shape), labels, 2


def _swiss_roll(size, noise, seed):
    """scikit-learn's swiss roll seen from above (x, z), labelled by alternate half-windings
    of the roll parameter t ∈ [1.5π, 4.5π]: three interleaved arcs, two classes."""
    from sklearn.datasets import make_swiss_roll

    points, position = make_swiss_roll(size, noise=noise, random_state=seed)
    labels = np.floor((position - 1.5 * np.pi) / np.pi).astype(int) % 2
    return points[:, [0, 2]], labels, 2


def _digits(size, noise, seed):
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.data, digits.target, 10


def _mnist1d(size, noise, seed):
    from mnist1d.data import get_dataset_args, make_dataset

    arguments = get_dataset_args()
    arguments.num_samples = size
    arguments.seed = seed
    # make_dataset seeds NumPy's and Python's global generators; leave both as they were.
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        generated = make_dataset(arguments)
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
    inputs = np.concatenate([generated["x"], generated["x_test"]])
    labels = np.concatenate([generated["y"], generated["y_test"]])
    return inputs, labels, 10


def _regression(size, noise, seed):
    """y = sin(3x) + noise for x uniform on [−1, 1]: inputs (size, 1), targets (size, 1)."""
    rng = np.random.default_rng(seed)
    inputs = rng.uniform(-1.0, 1.0, (size, 1))
    return inputs, np.sin(3 * inputs) + noise * rng.standard_normal(inputs.shape), None


_GENERATORS = {
    "circles": _circles,
    "moons": _moons,
    "spirals": _spirals,
    "swiss_roll": _swiss_roll,
    "digits": _digits,
    "mnist1d": _mnist1d,
    "regression": _regression,
}
