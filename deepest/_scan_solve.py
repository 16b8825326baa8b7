"""Fixed steps without diffrax's loop: a `lax.scan` over a diffrax solver's own step.

On a fixed grid t_0 < t_1 < … < t_L a solve is the recurrence

    (y_{k+1}, s_{k+1}) = Φ(t_k, t_{k+1}, y_k, s_k),   s_0 = init(t_0, t_1, y_0),

of the solver's step map Φ, where s is the solver's state: f(t_k, y_k) for the
first-same-as-last Runge–Kutta methods (bosh3, tsit5, dopri5, dopri8), the previous state of
the two-step methods (with its time for leapfrog_midpoint; lm_resnet), the auxiliary ŷ and its
field value for reversible_heun, nothing for the others. `diffrax.diffeqsolve` runs the same
recurrence inside a while loop that also adapts the step, saves, watches for events and
counts; on a fixed grid that bookkeeping is pure cost (a training step of a 10-layer ResNet
took 1.4 times as long through diffeqsolve, measured on CPU). Scanning Φ directly takes the
same steps of the same solver in the same order, so it gives the same numbers, and
`jax.checkpoint` on the scan body keeps reverse mode at the memory of diffrax's
`RecursiveCheckpointAdjoint(checkpoints=L)`: the L carried (y_k, s_k), each step recomputed
once on the way back.

An explicit Runge–Kutta step (`diffrax.AbstractERK`) is evaluated from that solver's own
Butcher tableau with its stages written out (`explicit_runge_kutta_step`): diffrax runs the
stages in a loop built for variable stage counts and implicit stages, whose reverse mode makes
a classical-RK4 training step 1.4–1.7 times as long as a hand-written one (benchmarks/README.md);
written out, the stages are what a hand-written step computes. The other
explicit solvers (Euler, the partitioned, multistep and reversible ones) take diffrax's step.
"""

import functools

import diffrax
import jax
import jax.numpy as jnp


def scan_solve(method: diffrax.AbstractSolver, terms, times, y0, *, all_states: bool = False):
    """y_L from y_0 by L steps of the explicit diffrax solver `method` over the grid `times`.

    Args:
        method: an explicit diffrax solver, e.g. `deepest.solver("rk4")`. Its steps cannot
            fail, so the step's result code is not read (implicit solvers, whose root finds
            can fail, are a ValueError: integrate them with `diffrax.diffeqsolve`).
        terms: its terms with args None: a `diffrax.ODETerm`, or a pair of them for a
            partitioned solver.
        times: the grid t_0 < … < t_L, shape (L + 1,), L ≥ 1.
        y0: the state at t_0: an array, or the pair (q, p) of a partitioned solver. Like
            `diffeqsolve`, it is promoted to at least the precision of `times`.
        all_states: return every y_0 … y_L, stacked along a new leading axis, not y_L alone.

    Returns:
        y_L, or the stacked y_0 … y_L, with the structure of y0.

    Example:
        >>> terms = diffrax.ODETerm(lambda t, y, args: -y)
        >>> scan_solve(deepest.solver("rk4"), terms, jnp.linspace(0.0, 1.0, 11), jnp.ones(2))
        Array([0.36787975, 0.36787975], dtype=float32)    # e^{-1} = 0.36787944
    """
    if isinstance(method, diffrax.AbstractImplicitSolver):
        raise ValueError(
            f"scan_solve takes explicit solvers, whose steps cannot fail; {type(method).__name__} is "
            f"implicit (its root find may fail). Integrate it with diffrax.diffeqsolve."
        )
    # Time enters the state through the field, so the state computes in at least its precision.
    y0 = jax.tree.map(lambda part: part.astype(jnp.result_type(part, times.dtype)), y0)
    tableau = getattr(type(method), "tableau", None) if isinstance(method, diffrax.AbstractERK) else None
    if isinstance(tableau, diffrax.ButcherTableau):
        # What diffrax's FSAL state holds after its first step: f(t_0, y_0).
        solver_state = terms.vf(times[0], y0, None) if tableau.fsal else None
    else:
        solver_state = method.init(terms, times[0], times[1], y0, None)

    # Only the carry (y_k, s_k) of each step is kept for the backward pass; the stages are
    # recomputed there. prevent_cse=False is JAX's advice for a checkpoint inside a scan,
    # whose loop already keeps the recomputation from being merged with the forward pass.
    @functools.partial(jax.checkpoint, prevent_cse=False)
    def one_step(carry, interval):
        y, state = carry
        if tableau is not None:
            y, state = explicit_runge_kutta_step(tableau, terms, interval[0], interval[1], y, state)
        else:
            y, _, _, state, _ = method.step(terms, interval[0], interval[1], y, None, state, made_jump=False)
        return (y, state), (y if all_states else None)

    (y_last, _), later_states = jax.lax.scan(one_step, (y0, solver_state), (times[:-1], times[1:]))
    if all_states:
        return jax.tree.map(lambda first, rest: jnp.concatenate([first[None], rest]), y0, later_states)
    return y_last


def explicit_runge_kutta_step(tableau: diffrax.ButcherTableau, term: diffrax.ODETerm, t0, t1, y, first_stage):
    """One step of the explicit Runge–Kutta method of `tableau` from (t0, y) to t1, h = t1 − t0:

        k_1 = f(t0 + c_1 h, y),   k_i = f(t0 + c_i h, y + h Σ_{j<i} a_ij k_j),   y_1 = y + h Σ_i b_i k_i

    (Hairer, Nørsett & Wanner, Solving ODEs I, §II.1), the stages written out. A
    first-same-as-last tableau takes k_1 = `first_stage` = f(t0, y), the last stage of the
    step before (as diffrax's steps pass it on), and returns its own last stage f(t1, y_1);
    others take and return None. Zero coefficients are skipped, as they add nothing.

    Returns:
        (y_1, the next solver state).
    """
    h = t1 - t0
    # Python floats: weakly typed, so a float32 state stays float32.
    stages = [first_stage if tableau.fsal else term.vf(t0 + float(tableau.c1) * h, y, None)]
    for c_i, a_i in zip(tableau.c, tableau.a_lower, strict=True):
        increment = _combination(a_i, stages)
        stages.append(term.vf(t0 + float(c_i) * h, y if increment is None else y + h * increment, None))
    y1 = y + h * _combination(tableau.b_sol, stages)
    return y1, (stages[-1] if tableau.fsal else None)


def _combination(coefficients, stages):
    """Σ_j coefficients_j stages_j over the nonzero coefficients; None if all are zero."""
    terms = [float(coefficient) * stage for coefficient, stage in zip(coefficients, stages) if coefficient != 0]
    return functools.reduce(lambda total, term: total + term, terms) if terms else None
