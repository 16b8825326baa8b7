"""Named discretisations: the depth of a solver-network, chosen by name.

`solver("euler")` is explicit Euler, y_{k+1} = y_k + h f(t_k, y_k): with fixed steps, a ResNet.
Every name maps to a diffrax solver. Classical RK3 and RK4, which diffrax does not ship, are
defined here the diffrax way: as Butcher tableaux on `diffrax.AbstractERK`.

`butcher_tableau(name)` exposes the full (A, b, c) of every one-step Runge–Kutta method, read
from diffrax's own tableau where it has one, so that `deepest.stability` computes R(z) from the
same numbers the solver steps with.
"""

import dataclasses
from collections.abc import Callable
from typing import ClassVar

import diffrax
import numpy as np
import optimistix as optx

SOLVERS = (
    "euler",
    "midpoint",
    "heun",
    "ralston",
    "rk3",
    "rk4",
    "bosh3",
    "tsit5",
    "dopri5",
    "dopri8",
    "implicit_euler",
    "kvaerno3",
    "kvaerno5",
    "semi_implicit_euler",
    "leapfrog_midpoint",
    "reversible_heun",
)

# Kutta's third-order method: c = (0, 1/2, 1), b = (1/6, 2/3, 1/6).
_rk3_tableau = diffrax.ButcherTableau(
    c=np.array([1 / 2, 1.0]),
    b_sol=np.array([1 / 6, 2 / 3, 1 / 6]),
    b_error=np.zeros(3),
    a_lower=(np.array([1 / 2]), np.array([-1.0, 2.0])),
)

# The classical fourth-order method: c = (0, 1/2, 1/2, 1), b = (1/6, 1/3, 1/3, 1/6).
_rk4_tableau = diffrax.ButcherTableau(
    c=np.array([1 / 2, 1 / 2, 1.0]),
    b_sol=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]),
    b_error=np.zeros(4),
    a_lower=(np.array([1 / 2]), np.array([0.0, 1 / 2]), np.array([0.0, 0.0, 1.0])),
)


class ClassicalRK3(diffrax.AbstractERK):
    """Kutta's third-order Runge–Kutta method, for fixed steps.

    It has no embedded error estimate (`b_error` is zero), so it cannot drive an adaptive
    step-size controller; `supports_adaptive("rk3")` is False.

    Reference: Hairer, Nørsett & Wanner, Solving ODEs I (1993), Table II.1.1.
    """

    tableau: ClassVar[diffrax.ButcherTableau] = _rk3_tableau
    interpolation_cls: ClassVar[Callable] = diffrax.ThirdOrderHermitePolynomialInterpolation.from_k

    def order(self, terms):
        del terms
        return 3


class ClassicalRK4(diffrax.AbstractERK):
    """The classical fourth-order Runge–Kutta method, for fixed steps.

    It has no embedded error estimate (`b_error` is zero), so it cannot drive an adaptive
    step-size controller; `supports_adaptive("rk4")` is False.

    Reference: Kutta (1901); Hairer, Nørsett & Wanner, Solving ODEs I (1993), Table II.1.2.
    """

    tableau: ClassVar[diffrax.ButcherTableau] = _rk4_tableau
    interpolation_cls: ClassVar[Callable] = diffrax.ThirdOrderHermitePolynomialInterpolation.from_k

    def order(self, terms):
        del terms
        return 4


_EXPLICIT = {
    "euler": diffrax.Euler,
    "midpoint": diffrax.Midpoint,
    "heun": diffrax.Heun,
    "ralston": diffrax.Ralston,
    "rk3": ClassicalRK3,
    "rk4": ClassicalRK4,
    "bosh3": diffrax.Bosh3,
    "tsit5": diffrax.Tsit5,
    "dopri5": diffrax.Dopri5,
    "dopri8": diffrax.Dopri8,
    "semi_implicit_euler": diffrax.SemiImplicitEuler,
    "leapfrog_midpoint": diffrax.LeapfrogMidpoint,
    "reversible_heun": diffrax.ReversibleHeun,
}
_IMPLICIT = {
    "implicit_euler": diffrax.ImplicitEuler,
    "kvaerno3": diffrax.Kvaerno3,
    "kvaerno5": diffrax.Kvaerno5,
}

# The solvers whose state is split into two halves (q, p) with q' = f(p), p' = g(q).
PARTITIONED = ("semi_implicit_euler",)
# The solvers that carry more than y_k from step to step.
MULTISTEP = ("leapfrog_midpoint", "reversible_heun")


def check_solver_name(name: str) -> str:
    """Return `name` if it is a known solver, else raise a ValueError listing the valid ones."""
    if name not in SOLVERS:
        raise ValueError(f"Unknown solver {name!r}. Valid solvers are: {', '.join(SOLVERS)}.")
    return name


def solver(name: str, *, root_rtol: float = 1e-6, root_atol: float = 1e-6) -> diffrax.AbstractSolver:
    """The diffrax solver called `name`.

    Args:
        name: one of `SOLVERS`.
        root_rtol, root_atol: tolerances of the implicit solvers' chord root finder
            (`optimistix.Chord`). diffrax otherwise borrows them from an adaptive step-size
            controller, which a fixed-step solve does not have. (diffrax's own `VeryChord`
            reports "diverged" on y' = cos(t) y with h = 0.25 in float64, so it is not used.) The defaults are reachable in float32; pass
            tighter ones (e.g. 1e-12) for float64 accuracy studies. Ignored by explicit solvers.

    Example:
        >>> deepest.solver("rk4")
        ClassicalRK4()
    """
    check_solver_name(name)
    if name in _IMPLICIT:
        return _IMPLICIT[name](root_finder=optx.Chord(rtol=root_rtol, atol=root_atol))
    return _EXPLICIT[name]()


def supports_adaptive(name: str) -> bool:
    """Whether the solver has an embedded error estimate to drive adaptive step sizes."""
    method = solver(name)
    if not isinstance(method, diffrax.AbstractAdaptiveSolver):
        return False
    tableau = getattr(method, "tableau", None)
    return tableau is None or bool(np.any(tableau.b_error != 0))


@dataclasses.dataclass(frozen=True)
class Tableau:
    """Full Butcher tableau of a one-step Runge–Kutta method: stages k_i = f(t + c_i h,
    y + h Σ_j A_ij k_j), step y_1 = y_0 + h Σ_i b_i k_i."""

    A: np.ndarray
    b: np.ndarray
    c: np.ndarray

    @property
    def explicit(self) -> bool:
        return bool(np.all(np.triu(self.A) == 0))


# Euler and implicit Euler are hand-written steppers in diffrax; these are their tableaux.
_ONE_STAGE = {
    "euler": Tableau(A=np.zeros((1, 1)), b=np.ones(1), c=np.zeros(1)),
    "implicit_euler": Tableau(A=np.ones((1, 1)), b=np.ones(1), c=np.ones(1)),
}


def butcher_tableau(name: str) -> Tableau:
    """The Butcher tableau (A, b, c) of the one-step Runge–Kutta method `name`.

    Read from the diffrax solver's own `ButcherTableau` (lower triangle, diagonal, first
    stage time), so R(z) in `deepest.stability` uses the numbers the solver steps with.
    Raises ValueError for the partitioned and multistep methods, which have none.
    """
    check_solver_name(name)
    if name in _ONE_STAGE:
        return _ONE_STAGE[name]
    if name in PARTITIONED or name in MULTISTEP:
        raise ValueError(
            f"{name!r} is not a one-step Runge–Kutta method and has no Butcher tableau; "
            f"its stability comes from a characteristic polynomial (deepest.stability)."
        )
    table = type(solver(name)).tableau
    num_stages = table.num_stages
    A = np.zeros((num_stages, num_stages))
    for i, row in enumerate(table.a_lower, start=1):
        A[i, : len(row)] = row
    if table.a_diagonal is not None:
        A[np.diag_indices(num_stages)] = table.a_diagonal
    c = np.concatenate([[table.c1], table.c])
    return Tableau(A=A, b=np.asarray(table.b_sol, dtype=float), c=c)
