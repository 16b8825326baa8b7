"""deepest: deep neural networks as discretised dynamical systems.

A network is a vector field f_θ(t, y) integrated by a diffrax solver; the solver and its step
are the architecture's depth (fixed-step explicit Euler = ResNet). See README.md.
"""

import importlib

from . import analysis as analysis
from . import data as data
from . import encoders as encoders
from . import fields as fields
from . import regularisers as regularisers
from . import robustness as robustness
from . import solvers as solvers
from . import stability as stability
from .network import ADJOINTS as ADJOINTS
from .network import SolverNet as SolverNet
from .solvers import SOLVERS as SOLVERS
from .solvers import solver as solver
from .solvers import supports_adaptive as supports_adaptive

__version__ = "0.1.0"


def __getattr__(name):
    # `deepest.plot` needs matplotlib (the `plot` extra): imported on first use only, so the
    # core never depends on it.
    if name == "plot":
        return importlib.import_module(".plot", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
