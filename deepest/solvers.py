"""Named discretisations: the depth of a solver-network, chosen by name.

`solver("euler")` is explicit Euler, y_{k+1} = y_k + h f(t_k, y_k): with fixed steps, a ResNet.
Every name maps to a diffrax solver. Classical RK3 and RK4, which diffrax does not ship, are
defined here the diffrax way: as Butcher tableaux on `diffrax.AbstractERK`.

Some solvers take parameters, given by name: `solver("lm_resnet", k=0.5)`. Every such
option has a default, so each name alone is a complete solver; `check_solver_options`
validates a set of options and returns it as sorted (name, value) pairs, hashable and fit
for a static field of an equinox Module (as `SolverNet.solver_options` holds them).

`butcher_tableau(name)` exposes the full (A, b, c) of every one-step Runge–Kutta method, read
from diffrax's own tableau where it has one, so that `deepest.stability` computes R(z) from the
same numbers the solver steps with.
"""

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from typing import ClassVar

import diffrax
import jax
import jax.numpy as jnp
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
    "lm_resnet",
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


class LMResNet(diffrax.AbstractSolver):
    """The linear multistep ResNet (LM-ResNet): a two-step explicit method with a weight k.

    u_{n+1} = (1 − k) u_n + k u_{n−1} + h f(t_n, u_n),  with u_1 = u_0 + h f(t_0, u_0).

    k = 0 is explicit Euler (a ResNet); k = 1 is u_{n+1} = u_{n−1} + h f(t_n, u_n). The
    previous state rides in the solver state, and the first step, having none, is an Euler
    step (u_{−1} = u_0). On a non-uniform grid h is the current step; the weights stay fixed.

    Its first characteristic polynomial is ρ(μ) = (μ − 1)(μ + k): zero-stable (roots 1 and −k
    obey the root condition) iff −1 < k ≤ 1. Consistency needs ρ'(1) = σ(1) with σ(μ) = μ,
    that is 1 + k = 1: for k ≠ 0 the method is not consistent with y' = f but with the
    rescaled (1 + k) y' = f (Taylor expansion about t_n gives the modified equation
    (1 + k) u' + (1 − k)(h/2) u'' = f(u) + O(h²)). So a net on [t0, t1] approximates the
    flow of f over the time (t1 − t0)/(1 + k), to first order (`order`; the Euler start
    alone costs O(h) when k ≠ 0). Values of k outside (−1, 1] are allowed, to study the
    unstable regime. `deepest.stability` gives its characteristic polynomial on y' = λy.

    Example:
        >>> method = deepest.solver("lm_resnet", k=0.5)   # LMResNet(k=0.5)
        >>> net = deepest.SolverNet(field, solver="lm_resnet", solver_options={"k": 0.5})

    Reference: Lu, Zhong, Li & Dong, "Beyond finite layer neural networks: bridging deep
    architectures and numerical differential equations" (ICML 2018, arXiv:1710.10121).
    """

    k: float = 0.0

    term_structure: ClassVar = diffrax.AbstractTerm
    interpolation_cls: ClassVar[Callable] = diffrax.LocalLinearInterpolation

    def order(self, terms):
        del terms
        return 1

    def init(self, terms, t0, t1, y0, args):
        del terms, t0, t1, args
        # u_{−1} = u_0 turns the first step into explicit Euler: u_1 = u_0 + h f(t_0, u_0).
        return y0

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        del made_jump
        increment = terms.vf_prod(t0, y0, args, terms.contr(t0, t1))
        y1 = jax.tree.map(
            lambda current, previous, change: (1 - self.k) * current + self.k * previous + change,
            y0,
            solver_state,
            increment,
        )
        return y1, None, dict(y0=y0, y1=y1), y0, diffrax.RESULTS.successful

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)


class _ScaledChord(optx.AbstractRootFinder):
    """`optimistix.Chord`, stopped once its step is small relative to the iterate.

    An implicit stage solves F(k) = k − h f(t, y_p + a k) = 0 (diffrax iterates on k or on f):
    each iteration solves J Δ = F(k) with J = ∂F/∂k at the predictor and sets k ← k − Δ, and
    the iteration stops when ‖Δ / (atol + rtol |k − Δ|)‖_∞ < 1, the first half of optimistix's
    Cauchy test. Its second half, ‖F(k)‖_∞ < atol, is absolute, and F's rounding grows with
    the stiffness: ≈ ε |h ∂f/∂y| |y_p|, where the partial stage sum y_p of an ESDIRK grows
    like |hλ| on y' = λy (7e7 in Kvaerno5 at hλ = −1e8). So from hλ = −1e6 at atol = 1e-6 no
    iterate passes, and Kvaerno5 reports "maximum number of steps was reached in the nonlinear
    solver" on a value that is right. Δ = J⁻¹F divides that rounding by |J| ≈ |h ∂f/∂y| and
    keeps it at ≈ ε |k|: a test on Δ is scaled to the problem. It stops no later than the full
    Cauchy test, which adds the residual check to it. A failure is a value: the root finder's
    maximum number of steps, or a failed linear solve (singular J).

    Not the Hairer–Wanner rate test (`optimistix.Chord(cauchy_termination=False)`, `VeryChord`):
    it reports divergence whenever two iterations have not met it, so a fixed-step Kvaerno5
    net over 3 steps of a tanh MLP field failed on 8 of 8 inputs, where this test fails on
    none. The chord inside keeps no residual (`cauchy_termination=False`); its test is unused.

    Reference: Hairer & Wanner, Solving ODEs II (1996), Section IV.8 (simplified Newton).
    """

    rtol: float
    atol: float
    norm: Callable = optx.max_norm

    @property
    def _chord(self) -> optx.Chord:
        return optx.Chord(rtol=self.rtol, atol=self.atol, norm=self.norm, cauchy_termination=False)

    def init(self, fn, y, args, options, f_struct, aux_struct, tags):
        return self._chord.init(fn, y, args, options, f_struct, aux_struct, tags)

    def step(self, fn, y, args, options, state, tags):
        return self._chord.step(fn, y, args, options, state, tags)

    def terminate(self, fn, y, args, options, state, tags):
        del fn, y, args, options, tags
        # `diffsize` is ‖Δ / (atol + rtol |k − Δ|)‖_∞ of the last step, inf before the first.
        failed = state.result != optx.RESULTS.successful
        return (state.diffsize < 1) | failed, state.result

    def postprocess(self, fn, y, aux, args, options, state, tags, result):
        return self._chord.postprocess(fn, y, aux, args, options, state, tags, result)


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
    "lm_resnet": LMResNet,
}
_IMPLICIT = {
    "implicit_euler": diffrax.ImplicitEuler,
    "kvaerno3": diffrax.Kvaerno3,
    "kvaerno5": diffrax.Kvaerno5,
}

# The solvers whose state is split into two halves (q, p) with q' = f(p), p' = g(q).
PARTITIONED = ("semi_implicit_euler",)
# The solvers that carry more than y_k from step to step.
MULTISTEP = ("leapfrog_midpoint", "reversible_heun", "lm_resnet")
# The solvers that take parameters, with their defaults (see each solver's docstring).
_OPTIONS = {"lm_resnet": {"k": 0.0}}


def check_solver_name(name: str) -> str:
    """Return `name` if it is a known solver, else raise a ValueError listing the valid ones."""
    if name not in SOLVERS:
        raise ValueError(f"Unknown solver {name!r}. Valid solvers are: {', '.join(SOLVERS)}.")
    return name


def check_solver_options(name: str, options: Mapping[str, float] | Iterable[tuple[str, float]] = ()) -> tuple[tuple[str, float], ...]:
    """Every option of solver `name`, defaults filled in, as sorted (option, value) pairs.

    `options` is a mapping or (option, value) pairs, e.g. {"k": 0.5} for "lm_resnet"; values
    must be finite real numbers. An option the solver does not take raises a ValueError
    naming the ones it does. Solvers without options give ().

    Example:
        >>> check_solver_options("lm_resnet", {"k": 0.5})
        (('k', 0.5),)
    """
    check_solver_name(name)
    given = dict(options)
    allowed = _OPTIONS.get(name, {})
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        if not allowed:
            raise ValueError(f"Solver {name!r} takes no options, got {', '.join(map(repr, unknown))}.")
        raise ValueError(f"Unknown option {', '.join(map(repr, unknown))} for solver {name!r}. Its options are: {', '.join(allowed)}.")
    complete = {**allowed, **given}
    for option, value in complete.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            raise ValueError(f"Option {option}={value!r} of solver {name!r} must be a finite real number.")
        complete[option] = number
    return tuple(sorted(complete.items()))


def describe_solver(name: str, options: Iterable[tuple[str, float]] = ()) -> str:
    """A label for a solver and its options, e.g. "lm_resnet (k=0.5)", or just the name."""
    pairs = ", ".join(f"{option}={value:g}" for option, value in options)
    return f"{name} ({pairs})" if pairs else name


def solver(name: str, *, root_rtol: float = 1e-6, root_atol: float = 1e-6, **options) -> diffrax.AbstractSolver:
    """The diffrax solver called `name`, with its options.

    Args:
        name: one of `SOLVERS`.
        root_rtol, root_atol: tolerances of the implicit solvers' chord root finder: a stage
            is solved when the chord step Δ meets ‖Δ / (root_atol + root_rtol |k|)‖_∞ < 1,
            scaled to the stage value k, so that the stiff problems A- and L-stable methods
            exist for (hλ = −1e8) terminate as well as mild ones. diffrax otherwise borrows them
            from an adaptive step-size controller, which a fixed-step solve does not have.
            (diffrax's own `VeryChord` reports "diverged" on y' = cos(t) y with h = 0.25 in
            float64, as a stage that needs a third iteration reads as divergence to it, so it is
            not used.) The defaults are reachable in float32; pass tighter ones (e.g. 1e-12) for
            float64 accuracy studies. Ignored by explicit solvers.
        options: the solver's own parameters, e.g. k for "lm_resnet" (`check_solver_options`).

    Example:
        >>> deepest.solver("rk4")
        ClassicalRK4()
        >>> deepest.solver("lm_resnet", k=0.5)
        LMResNet(k=0.5)
    """
    options = dict(check_solver_options(name, options))
    if name in _IMPLICIT:
        return _IMPLICIT[name](root_finder=_ScaledChord(rtol=root_rtol, atol=root_atol))
    return _EXPLICIT[name](**options)


def ode_terms(name: str, field):
    """The diffrax terms solver `name` integrates field(t, y, args) with: one `ODETerm`, or for
    the partitioned solvers the pair (q' = field.position_rate, p' = field.momentum_rate) of an
    `AbstractSeparableField`."""
    if name in PARTITIONED:
        return diffrax.ODETerm(field.position_rate), diffrax.ODETerm(field.momentum_rate)
    return diffrax.ODETerm(field)


def split_state(name: str, y):
    """The state y as solver `name` steps it: y itself, or its halves (q, p) for a partitioned solver."""
    return tuple(jnp.split(y, 2, axis=-1)) if name in PARTITIONED else y


def join_state(name: str, state):
    """`split_state` undone: a partitioned solver's (q, p) as one state [q, p] along the last axis."""
    return jnp.concatenate(state, axis=-1) if name in PARTITIONED else state


def supports_adaptive(name: str) -> bool:
    """Whether the solver has an embedded error estimate to drive adaptive step sizes."""
    method = solver(name)
    if not isinstance(method, diffrax.AbstractAdaptiveSolver):
        return False
    tableau = getattr(method, "tableau", None)
    return tableau is None or bool(np.any(tableau.b_error != 0))


# Evaluations of f at the start and per step of the solvers without a Butcher tableau in diffrax
# (reversible Heun evaluates f(y_0) once to start its auxiliary state).
_EVALUATIONS = {
    "euler": (0, 1),
    "semi_implicit_euler": (0, 1),  # each half of the partitioned field once
    "leapfrog_midpoint": (0, 1),
    "reversible_heun": (1, 1),
    "lm_resnet": (0, 1),
}


def function_evaluations(name: str, num_steps):
    """Evaluations of the vector field by `num_steps` steps (accepted plus rejected) of `name`.

    An explicit Runge–Kutta method with s stages costs s per step, or s − 1 per step plus one
    at the start when it is first-same-as-last (the last stage is the next step's first:
    bosh3, tsit5, dopri5, dopri8). The two-step and partitioned methods cost one per step.
    Adaptive solves add up to two for diffrax's choice of the first step, not counted. NaN for
    implicit methods, whose cost depends on their root finder's iterations.
    Works on NumPy or JAX step counts (diffrax's `stats["num_steps"]`).

    Example:
        >>> function_evaluations("rk4", 10), function_evaluations("tsit5", 10)
        (40, 61)
    """
    check_solver_name(name)
    if name in _IMPLICIT:
        return num_steps * float("nan")
    if name in _EVALUATIONS:
        start, per_step = _EVALUATIONS[name]
    else:
        table = _diffrax_tableau(name)
        start, per_step = (1, table.num_stages - 1) if table.fsal else (0, table.num_stages)
    return start + per_step * num_steps


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


def _diffrax_tableau(name: str) -> diffrax.ButcherTableau:
    """The `diffrax.ButcherTableau` the Runge–Kutta solver `name` steps with."""
    tableau = getattr(type(solver(name)), "tableau", None)
    if not isinstance(tableau, diffrax.ButcherTableau):
        raise ValueError(f"{name!r} has no single Butcher tableau in diffrax.")
    return tableau


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
    table = _diffrax_tableau(name)
    num_stages = table.num_stages
    A = np.zeros((num_stages, num_stages))
    for i, row in enumerate(table.a_lower, start=1):
        A[i, : len(row)] = row
    if table.a_diagonal is not None:
        A[np.diag_indices(num_stages)] = table.a_diagonal
    c = np.concatenate([[table.c1], table.c])
    return Tableau(A=A, b=np.asarray(table.b_sol, dtype=float), c=c)
