"""What the experiment tests share: a size that compiles and trains in seconds, and config files."""

import pathlib

# Small enough to compile and train in seconds; every key is a real config key.
TINY = [
    "data.num_samples=64",
    "model.width=8",
    "training.num_steps=6",
    "training.batch_size=16",
    "training.log_every=3",
    "training.checkpoint_every=3",
    "analysis.num_samples=4",
]
# The repository's experiments/, which an install ships as the package `deepest.experiments`.
EXPERIMENTS = pathlib.Path(__file__).resolve().parent.parent / "experiments"


def write_toml(directory: pathlib.Path, text: str, name: str = "exp.toml") -> pathlib.Path:
    path = directory / name
    path.write_text(text)
    return path


def set_options(overrides) -> list[str]:
    """`--set` options of the command line for a list of overrides."""
    return [option for override in overrides for option in ("--set", override)]
