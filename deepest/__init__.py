"""deepest: deep neural networks as discretised dynamical systems.

A network is a vector field f_θ(t, y) integrated by a diffrax solver; the solver and its step
are the architecture's depth (fixed-step explicit Euler = ResNet). See README.md.
"""

import importlib

from . import data as data
from . import encoders as encoders
from . import fields as fields
from . import layers as layers
from . import regularisers as regularisers
from . import solvers as solvers
from . import stability as stability
from ._caches import clear_caches as clear_caches
from .network import ADJOINTS as ADJOINTS
from .network import SolverNet as SolverNet
from .solvers import SOLVERS as SOLVERS
from .solvers import solver as solver
from .solvers import supports_adaptive as supports_adaptive

__version__ = "0.1.0"


# Imported on first use: `deepest.plot` needs matplotlib (the `plot` extra), and training
# (`deepest.train`) must load without the analysis and robustness packages it does not use.
_ON_FIRST_USE = ("analysis", "experiment", "plot", "robustness", "train")


def __getattr__(name):
    if name in _ON_FIRST_USE:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_ON_FIRST_USE])
