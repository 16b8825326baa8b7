"""Where setuptools finds deepest's packages; everything else about the package is in pyproject.toml.

The shipped experiments stay in experiments/ at the top of the repository (`deepest run
experiments/quickstart.toml`) and install as the package `deepest.experiments`, whose TOML
files `deepest list` shows and `deepest run <name>` runs. pyproject.toml can either find the
packages under deepest/ or list packages by hand, not both: a list would have to name every
new sub-package.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["deepest", "deepest.*"]), "deepest.experiments"],
    package_dir={"deepest.experiments": "experiments"},
    package_data={"deepest.experiments": ["*.toml"]},
)
