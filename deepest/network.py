"""SolverNet: encoder → diffeqsolve(field, solver, steps) → readout.

With `solver="euler"` and `num_steps=L` the network is a ResNet of depth L with step
h = (t1 − t0)/L: y_{k+1} = y_k + h f_θ(t_k, y_k). Any other solver or step count is another
architecture built from the same field; `with_solver` swaps it without retraining.
`solver="lm_resnet", solver_options={"k": k}` is the two-step LM-ResNet,
y_{k+1} = (1 − k) y_k + k y_{k−1} + h f_θ(t_k, y_k) (Lu et al. 2018, arXiv:1710.10121).

Reference: Haber & Ruthotto, "Stable architectures for deep neural networks" (2017,
arXiv:1705.03341); Chen et al., "Neural ordinary differential equations" (2018, arXiv:1806.07366).
"""

import dataclasses
from collections.abc import Callable, Mapping

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp

from ._scan_solve import scan_solve
from .fields import AbstractSeparableField, AbstractVectorField
from .solvers import PARTITIONED, SOLVERS, check_solver_name, check_solver_options, join_state, ode_terms, solver, split_state, supports_adaptive

ADJOINTS = ("recursive_checkpoint", "backsolve", "direct")
# How `solve_batch` steps an adaptive net: each sample its own step sizes, or the batch as one system.
BATCH_STEPPING = ("per_sample", "shared")

# diffrax's own default budget for adaptive solves.
_ADAPTIVE_MAX_STEPS = 4096


class SolverNet(eqx.Module):
    """A network whose depth is the discretisation of y' = f_θ(t, y) on [t0, t1].

    Args:
        field: the vector field f_θ (`deepest.fields`).
        solver: a name from `deepest.SOLVERS`.
        solver_options: the solver's own parameters as a mapping, e.g. {"k": 0.5} for
            "lm_resnet" (the LM-ResNet weight; default 0, explicit Euler). Validated by
            `deepest.solvers.check_solver_options`: an option the solver does not take is a
            ValueError. Stored, defaults filled in, as sorted (option, value) pairs, so the
            net stays hashable and each value is static under jit (a new k compiles anew).
        t0, t1: the time interval; depth "length" T = t1 − t0.
        num_steps: fixed number of steps (layers), h = T/num_steps on the grid
            t_k = t0 + k h. `None` selects adaptive stepping with `rtol`/`atol` and a PID
            controller (solvers with an error estimate only).
        rtol, atol: adaptive step-size tolerances.
        max_steps: step budget; default `num_steps` for fixed steps, 4096 for adaptive.
        adjoint: "recursive_checkpoint" (discretise-then-optimise, checkpoints sized to the
            step count; with fixed steps and an explicit solver, a checkpointed scan over the
            solver's steps, see `solve`), "backsolve" (optimise-then-discretise: the adjoint
            ODE solved backwards) or "direct".
        encoder, readout: callables input → initial state and final state → output
            (default: identity), e.g. `deepest.encoders.ZeroAugmentation`, `eqx.nn.Linear`.
        throw: raise on solver failure (default), or return diffrax's result code in
            `solve(x).result` so that sweeps can record a failure instead of crashing.
        root_rtol, root_atol: root-finder tolerances of implicit solvers.
        batch_stepping: how `solve_batch` (and so `deepest.train`) steps an adaptive net:
            "per_sample" (default; each sample is its own ODE with its own step sizes, exactly
            `jax.vmap(net.solve)`) or "shared" (the batch is one system y' = [f(t, y_b)]_b
            with one step size, its error the RMS over the whole batch, as torchdiffeq steps a
            batch: a sample's output then depends on the rest of its batch, and the batch costs
            one solve's steps instead of its slowest sample's under vmap, whose backward pass
            also carries a cotangent of the field's parameters per sample, each sample's loop
            running its own count of steps). Fixed-step nets take the same steps either way.

    Calls act on one sample; batch with `jax.vmap(net)(xs)` or `net.solve_batch(xs)`.

    Example:
        >>> field = deepest.fields.MLP(state_dim=2, width=32, depth=1, key=key)
        >>> net = deepest.SolverNet(field, solver="euler", t1=1.0, num_steps=10)  # 10-layer ResNet
        >>> y = jax.vmap(net)(xs)
        >>> ts, ys = net.trajectory(xs[0])          # ys.shape == (11, 2)
        >>> net4 = net.with_solver("rk4", num_steps=5)
        >>> lm = net.with_solver("lm_resnet", solver_options={"k": 0.5})  # an LM-ResNet
    """

    field: AbstractVectorField
    encoder: Callable | None
    readout: Callable | None
    solver: str = eqx.field(static=True)
    solver_options: tuple[tuple[str, float], ...] = eqx.field(static=True)
    t0: float = eqx.field(static=True)
    t1: float = eqx.field(static=True)
    num_steps: int | None = eqx.field(static=True)
    rtol: float = eqx.field(static=True)
    atol: float = eqx.field(static=True)
    max_steps: int | None = eqx.field(static=True)
    adjoint: str = eqx.field(static=True)
    throw: bool = eqx.field(static=True)
    root_rtol: float = eqx.field(static=True)
    root_atol: float = eqx.field(static=True)
    batch_stepping: str = eqx.field(static=True)

    def __init__(
        self,
        field: AbstractVectorField,
        *,
        solver: str = "euler",
        solver_options: Mapping[str, float] | None = None,
        t0: float = 0.0,
        t1: float = 1.0,
        num_steps: int | None = 10,
        rtol: float = 1e-3,
        atol: float = 1e-6,
        max_steps: int | None = None,
        adjoint: str = "recursive_checkpoint",
        encoder: Callable | None = None,
        readout: Callable | None = None,
        throw: bool = True,
        root_rtol: float = 1e-6,
        root_atol: float = 1e-6,
        batch_stepping: str = "per_sample",
    ):
        check_solver_name(solver)
        # A mapping from users; `dataclasses.replace` (with_solver) passes the stored pairs.
        options = check_solver_options(solver, solver_options or ())
        if not isinstance(field, AbstractVectorField):
            raise TypeError(f"field must be a deepest.fields.AbstractVectorField, got {type(field).__name__}.")
        if adjoint not in ADJOINTS:
            raise ValueError(f"Unknown adjoint {adjoint!r}. Valid adjoints are: {', '.join(ADJOINTS)}.")
        if batch_stepping not in BATCH_STEPPING:
            raise ValueError(f"Unknown batch_stepping {batch_stepping!r}. Valid values are: {', '.join(BATCH_STEPPING)}.")
        if not t1 > t0:
            raise ValueError(f"SolverNet needs t1 > t0, got t0={t0}, t1={t1}.")
        if num_steps is None:
            if not supports_adaptive(solver):
                raise ValueError(
                    f"num_steps=None asks for adaptive steps, but {solver!r} has no error estimate. "
                    f"Give num_steps, or pick one of: "
                    f"{', '.join(name for name in SOLVERS if supports_adaptive(name))}."
                )
        elif not (isinstance(num_steps, int) and num_steps >= 1):
            raise ValueError(f"num_steps must be a positive integer or None (adaptive), got {num_steps!r}.")
        if max_steps is not None and num_steps is not None and max_steps < num_steps:
            raise ValueError(f"max_steps={max_steps} is below num_steps={num_steps}.")
        if solver in PARTITIONED and not isinstance(field, AbstractSeparableField):
            raise ValueError(
                f"{solver!r} integrates partitioned systems q' = f(p), p' = g(q); "
                f"it needs a deepest.fields.AbstractSeparableField, got {type(field).__name__}."
            )
        self.field = field
        self.encoder = encoder
        self.readout = readout
        self.solver = solver
        self.solver_options = options
        self.t0 = float(t0)
        self.t1 = float(t1)
        self.num_steps = num_steps
        self.rtol = rtol
        self.atol = atol
        self.max_steps = max_steps
        self.adjoint = adjoint
        self.throw = throw
        self.root_rtol = root_rtol
        self.root_atol = root_atol
        self.batch_stepping = batch_stepping

    @property
    def step_size(self) -> float:
        """h = (t1 − t0)/num_steps; a ValueError for adaptive nets, which have no single h."""
        if self.num_steps is None:
            raise ValueError("An adaptive SolverNet (num_steps=None) has no fixed step size.")
        return (self.t1 - self.t0) / self.num_steps

    def with_solver(self, solver: str, **changes) -> "SolverNet":
        """The same field (and encoder, readout) under another discretisation.

        `changes` may set any other constructor argument, e.g. `num_steps=5` or
        `num_steps=None, rtol=1e-6` for adaptive stepping. The solver options carry over when
        the solver stays the same and return to the new solver's defaults when it changes;
        `solver_options={...}` sets them.
        """
        if solver != self.solver:
            changes.setdefault("solver_options", None)
        return dataclasses.replace(self, solver=solver, **changes)

    def encode(self, x):
        """The initial state y(t0) of input x, in the dtype the field computes in (float32
        data into a float64 field gives a float64 state, as the field's output would be)."""
        y0 = x if self.encoder is None else self.encoder(x)
        y0 = y0.astype(jnp.result_type(y0, *jax.tree.leaves(eqx.filter(self.field, eqx.is_inexact_array))))
        if y0.shape != (self.field.state_dim,):
            raise ValueError(
                f"The initial state has shape {y0.shape} but the field acts on ({self.field.state_dim},). "
                f"Check the input (one sample; batch with jax.vmap) or the encoder."
            )
        return y0

    def solve(self, x, saveat: diffrax.SaveAt | None = None) -> diffrax.Solution:
        """The diffrax solution from input x: `ys`, `result` (a failure code when throw=False)
        and `stats` (steps taken, accepted, rejected). Saves the final state by default.

        A fixed-step net with an explicit solver and the "recursive_checkpoint" adjoint, saving
        the default y(t1), integrates by a scan over its solver's steps (`deepest._scan_solve`):
        the same numbers and gradients as `diffrax.diffeqsolve`, without its loop's bookkeeping.
        Its `Solution` holds `ts`, `ys`, `stats` and `result` (explicit steps always succeed; a
        diverging state shows as inf/NaN in `ys`, as from diffeqsolve). Every other net, or an
        explicit `saveat`, calls `diffrax.diffeqsolve`.
        """
        if saveat is None and self._scans:
            return self._scan_solution(x)
        return self._diffeqsolve(x, saveat)

    def solve_batch(self, xs) -> diffrax.Solution:
        """The solutions from a batch xs of shape (B, …), shaped as `jax.vmap(net.solve)(xs)`:
        `ys` (B, 1, state_dim), `stats` and `result` per sample.

        With `batch_stepping="shared"` an adaptive net solves the batch as one system, one step
        size for all of it (its `stats` and `result`, repeated for each sample); otherwise this
        is `jax.vmap(net.solve)(xs)`.
        """
        if self.num_steps is not None or self.batch_stepping == "per_sample":
            return jax.vmap(self.solve)(xs)
        # Adaptive solvers are never partitioned (none has an error estimate), so one term.
        batched_field = lambda t, ys, args: jax.vmap(self.field, in_axes=(None, 0, None))(t, ys, args)
        solution = self._solve_terms(diffrax.ODETerm(batched_field), jax.vmap(self.encode)(xs), saveat=None)
        # ys (saves, B, d) → (B, saves, d); every other leaf (times, stats, result) repeated per sample.
        per_sample = lambda leaf: jnp.broadcast_to(leaf, (xs.shape[0], *jnp.shape(leaf)))
        repeated = jax.tree.map(per_sample, dataclasses.replace(solution, ys=None))
        return dataclasses.replace(repeated, ys=jnp.swapaxes(jnp.asarray(solution.ys), 0, 1))

    def _scan_solution(self, x) -> diffrax.Solution:
        """The `Solution` diffeqsolve would give with SaveAt(t1=True), from `scan_solve`."""
        times = self._times()
        num_steps = jnp.asarray(self.num_steps)
        return diffrax.Solution(
            t0=times[0],
            t1=times[-1],
            ts=times[-1:],
            ys=self._scan(x, times, all_states=False)[None],
            interpolation=None,
            stats={
                "num_steps": num_steps,
                "num_accepted_steps": num_steps,
                "num_rejected_steps": jnp.zeros_like(num_steps),
                "max_steps": self.max_steps or self.num_steps,
            },
            # equinox declares an Enumeration's items as strings, which mypy takes them for.
            result=diffrax.RESULTS.successful,  # type: ignore[arg-type]
            solver_state=None,
            controller_state=None,
            made_jump=None,
            event_mask=None,
        )

    @property
    def _scans(self) -> bool:
        """Whether `solve` and `trajectory` integrate by `scan_solve`: fixed steps, an explicit
        solver (implicit root finds can fail, which diffeqsolve reports) and the checkpointed
        adjoint (the scan's own; "backsolve" and "direct" are diffrax's)."""
        return (
            self.num_steps is not None and self.adjoint == "recursive_checkpoint" and not isinstance(self._method(), diffrax.AbstractImplicitSolver)
        )

    def _method(self) -> diffrax.AbstractSolver:
        return solver(self.solver, root_rtol=self.root_rtol, root_atol=self.root_atol, **dict(self.solver_options))

    def _times(self):
        """The fixed grid t_k = t0 + k h, k = 0 … num_steps."""
        return jnp.linspace(self.t0, self.t1, self.num_steps + 1)

    def _terms_and_start(self, x):
        """The diffrax terms and y(t0); a partitioned solver gets two terms and the halves (q, p)."""
        return ode_terms(self.solver, self.field), split_state(self.solver, self.encode(x))

    def _scan(self, x, times, *, all_states: bool):
        """y(t1), or every state along `times` with all_states, by `scan_solve`."""
        terms, y0 = self._terms_and_start(x)
        return join_state(self.solver, scan_solve(self._method(), terms, times, y0, all_states=all_states))

    def _diffeqsolve(self, x, saveat: diffrax.SaveAt | None) -> diffrax.Solution:
        """`solve` by `diffrax.diffeqsolve`, whatever the net (the path of adaptive, implicit,
        backsolve and direct nets, and of explicit saveats)."""
        terms, y0 = self._terms_and_start(x)
        solution = self._solve_terms(terms, y0, saveat)
        return eqx.tree_at(lambda s: s.ys, solution, join_state(self.solver, solution.ys))

    def _solve_terms(self, terms, y0, saveat: diffrax.SaveAt | None) -> diffrax.Solution:
        """`diffrax.diffeqsolve` of the terms from y0 under this net's solver, steps and
        adjoint (one sample's state, or a batch's with shared steps)."""
        fixed = self.num_steps is not None
        controller: diffrax.AbstractStepSizeController
        backward_controller: diffrax.AbstractStepSizeController
        if fixed:
            grid = self._times()
            controller = diffrax.StepTo(ts=grid)
            # The adjoint ODE runs from t1 back to t0, over the same grid reversed.
            backward_controller = diffrax.StepTo(ts=grid[::-1])
            checkpoints = self.num_steps
        else:
            controller = backward_controller = diffrax.PIDController(rtol=self.rtol, atol=self.atol)
            checkpoints = None
        max_steps = self.max_steps or (self.num_steps if fixed else _ADAPTIVE_MAX_STEPS)
        adjoint = {
            "recursive_checkpoint": lambda: diffrax.RecursiveCheckpointAdjoint(checkpoints=checkpoints),
            "backsolve": lambda: diffrax.BacksolveAdjoint(stepsize_controller=backward_controller),
            "direct": diffrax.DirectAdjoint,
        }[self.adjoint]()
        return diffrax.diffeqsolve(
            terms,
            self._method(),
            t0=self.t0,
            t1=self.t1,
            dt0=None,
            y0=y0,
            saveat=saveat or diffrax.SaveAt(t1=True),
            stepsize_controller=controller,
            adjoint=adjoint,
            max_steps=max_steps,
            throw=self.throw,
        )

    def final_state(self, x):
        """y(t1), before the readout."""
        return self.solve(x).ys[-1]

    def __call__(self, x):
        y1 = self.final_state(x)
        return y1 if self.readout is None else self.readout(y1)

    def trajectory(self, x):
        """Times and states at every layer: `ts` (num_steps + 1,), `ys` (num_steps + 1, state_dim).

        Fixed steps work under jit (through the same scan as `solve` where that applies). An
        adaptive net returns its accepted steps, whose number is only known after the solve,
        so it cannot be traced: call it outside jit.
        """
        if self._scans:
            times = self._times()
            return times, self._scan(x, times, all_states=True)
        solution = self.solve(x, diffrax.SaveAt(t0=True, steps=True))
        if self.num_steps is not None:
            # diffrax pads the step buffer to max_steps, which may exceed num_steps.
            return solution.ts[: self.num_steps + 1], solution.ys[: self.num_steps + 1]
        # diffrax pads the step buffer to max_steps with inf; keep the filled part.
        count = solution.stats["num_accepted_steps"]
        if isinstance(count, jax.core.Tracer):
            raise ValueError(
                "trajectory() of an adaptive SolverNet cannot run under jit/vmap: its length is "
                "the number of accepted steps. Call it eagerly, or use fixed num_steps."
            )
        return solution.ts[: int(count) + 1], solution.ys[: int(count) + 1]
