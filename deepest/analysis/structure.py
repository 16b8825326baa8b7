"""What a discretisation keeps of a field's structure: conserved energy and time-reversibility.

The stable architectures of `deepest.fields` are built from structured flows: the
`Hamiltonian` field conserves its `energy`, linear skew fields (`Antisymmetric` with γ = 0 and
σ the identity) conserve ½‖y‖², and every flow is reversible, φ_{−T} ∘ φ_T = id. A solver keeps
that structure only in part, and how it fails is the question.

- `energy_drift` records E(y_k) at every layer. Explicit Euler on the skew system y' = Ay
  multiplies ½‖y‖² along an eigen-plane of frequency ω by exactly |1 + ihω|² = 1 + h²ω² per
  step, a secular drift; leapfrog_midpoint keeps it bounded for hω < 1, with no trend in time.
- `reversibility_error` integrates t0 → t1, then back, and measures how far it lands from the
  start. A fresh backward solve with a one-step method Φ_h computes Φ_{−h}^L ∘ Φ_h^L. The
  defect of one step, Φ_{−h} ∘ Φ_h − id = (1 + (−1)^{p+1}) h^{p+1} C + O(h^{p+2}) for a method
  of order p, vanishes only for symmetric methods (Φ_{−h} = Φ_h^{−1}), and none of the
  one-step solvers here is one: the error is O(h^p) for odd p (euler, semi_implicit_euler:
  O(h)) and O(h^{p+1}) for even p (midpoint O(h³), rk4 O(h⁵), measured). The two-step methods leapfrog_midpoint
  and reversible_heun are algebraically reversible recurrences, but a fresh backward solve
  restarts them from y(t1) alone (leapfrog with an Euler step, reversible Heun with ŷ = y):
  measured O(h²) and O(h⁴). Continued from the pair of states the forward solve ended with
  (`algebraic=True`), the backward solve inverts them step by step, to round-off.

References: Hairer, Lubich & Wanner, "Geometric numerical integration" (2006), II.3 (the
adjoint of a method), V (symmetric integration and reversibility), XV (multistep methods and
their parasitic roots); Chang et al.,
"Reversible architectures for arbitrarily deep residual neural networks" (2018,
arXiv:1709.03698); Kidger et al., "Efficient and accurate gradients for neural SDEs" (2021,
arXiv:2105.13493), for reversible Heun.
"""

from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ..layers import check_batch, layer_times, trajectories
from ..network import SolverNet
from ..solvers import join_state, ode_terms, solver, split_state


class EnergyDrift(eqx.Module):
    """An energy E(y_k) at every layer of every sample, and its drift from E(y_0).

    Fields:
        energy: (batch, num_steps + 1) E(y_k) for k = 0 … L (y_0 the encoded input).
        times: (num_steps + 1,) the layer times t_k.
        step_size: h.
        solver: the net's solver.
    """

    energy: Float[Array, "batch layers_plus_one"]
    times: Float[Array, " layers_plus_one"]
    step_size: float = eqx.field(static=True)
    solver: str = eqx.field(static=True)

    @property
    def drift(self) -> Float[Array, "batch layers_plus_one"]:
        """|E(y_k) − E(y_0)|."""
        return jnp.abs(self.energy - self.energy[:, :1])

    @property
    def relative_drift(self) -> Float[Array, "batch layers_plus_one"]:
        """|E(y_k) − E(y_0)| / |E(y_0)|; inf or NaN for a sample with E(y_0) = 0."""
        return self.drift / jnp.abs(self.energy[:, :1])

    @property
    def max_drift(self) -> Float[Array, " batch"]:
        """The largest drift over the layers, per sample."""
        return jnp.max(self.drift, axis=-1)

    @property
    def max_relative_drift(self) -> Float[Array, " batch"]:
        """The largest relative drift over the layers, per sample."""
        return jnp.max(self.relative_drift, axis=-1)


def energy_drift(net: SolverNet, xs, energy: Callable) -> EnergyDrift:
    """E(y_k) along the layer states of a batch of inputs, and its drift from E(y_0).

    Args:
        net: a fixed-step SolverNet, any solver.
        xs: inputs, shape (batch, ...) (what `net` takes, with a batch axis).
        energy: E(y) → scalar for one state y of shape (state_dim,). Supply one that the
            field's flow conserves: `Hamiltonian.energy` (any activation in
            `deepest.fields.ANTIDERIVATIVES`), or ½‖y‖² for linear skew fields. Nothing here
            checks that the flow conserves it: the drift then mixes the flow's own change of E
            with the solver's.

    Returns:
        An `EnergyDrift`. The states of every layer are held at once (batch × (L + 1) ×
        state_dim numbers: 10⁴ layers of a 4-dimensional state are 320 kB a sample in float64).

    Example:
        >>> field = deepest.fields.Hamiltonian(4, key=key)
        >>> net = deepest.SolverNet(field, solver="leapfrog_midpoint", t1=100.0, num_steps=10_000)
        >>> drift = deepest.analysis.energy_drift(net, xs[:4], field.energy)
        >>> drift.max_relative_drift
    """
    xs = check_batch(xs, "energy_drift")
    layer_times(net)
    # Checked on shapes alone, before the solve.
    state = jax.eval_shape(net.encode, xs[0])
    value = jax.eval_shape(energy, state)
    if getattr(value, "shape", None) != ():
        raise ValueError(
            f"energy must map one state of shape {state.shape} to a scalar; it returned "
            f"{getattr(value, 'shape', type(value).__name__)}. Reduce inside it, e.g. lambda y: 0.5 * jnp.sum(y**2)."
        )
    times, energies = _layer_energies(net, xs, energy)
    return EnergyDrift(energy=energies, times=times, step_size=net.step_size, solver=net.solver)


@eqx.filter_jit
def _layer_energies(net: SolverNet, xs, energy: Callable):
    """The layer times and E(y_k) of every sample, compiled as one program."""
    times, states = trajectories(net, xs)
    return times, jax.vmap(jax.vmap(energy))(states)


class Reversibility(eqx.Module):
    """Forward over [t0, t1], backward again: where each sample lands, against where it began.

    Fields:
        initial_state: (batch, state_dim) y(t0), the encoded inputs.
        final_state: (batch, state_dim) y(t1) of the forward solve.
        returned_state: (batch, state_dim) the backward solve's value at t0.
        step_size: h, forward and backward.
        solver: the net's solver, used both ways.
        algebraic: whether the backward solve continued from the forward solver's final
            state (see `reversibility_error`).
    """

    initial_state: Float[Array, "batch state_dim"]
    final_state: Float[Array, "batch state_dim"]
    returned_state: Float[Array, "batch state_dim"]
    step_size: float = eqx.field(static=True)
    solver: str = eqx.field(static=True)
    algebraic: bool = eqx.field(static=True)

    @property
    def error(self) -> Float[Array, " batch"]:
        """‖y_back(t0) − y(t0)‖₂ per sample."""
        return jnp.linalg.norm(self.returned_state - self.initial_state, axis=-1)

    @property
    def relative_error(self) -> Float[Array, " batch"]:
        """‖y_back(t0) − y(t0)‖₂ / ‖y(t0)‖₂; NaN or inf for a zero initial state."""
        return self.error / jnp.linalg.norm(self.initial_state, axis=-1)


# The state a two-step solver carries between steps, read in the reversed time s = t0 + t1 − t
# (so for the field −f(t0 + t1 − s, y)); `total` is t0 + t1.
# - leapfrog_midpoint carries (t_{L−1}, y_{L−1}). Placed at s = t0 + h, one step *ahead*, it makes
#   the first backward step's increment span s_1 − (t0 + h) = 0, which returns y_{L−1} exactly;
#   from then on y_{k−1} = y_{k+1} − 2h f(t_k, y_k) undoes the forward recurrence.
# - reversible_heun carries (ŷ_L, f(t_L, ŷ_L)); the reversed field's value there is −f. Its step
#   with −h is the forward step solved for its input (Kidger et al. 2021).
_REVERSED_SOLVER_STATE = {
    "leapfrog_midpoint": lambda state, total: (total - state[0], state[1]),
    "reversible_heun": lambda state, total: (state[0], -state[1]),
}


def _reversed_rate(rate, total, s, y, args):
    """−rate(t0 + t1 − s, y): the field of the time-reversed problem at the reversed time s."""
    return -rate(total - s, y, args)


def _backward_solve(net: SolverNet, y1, solver_state):
    """y' = −f(t0 + t1 − s, y) on the net's own grid s = t0 … t1 with its solver, from y1.

    Its value at s = t1 approximates y(t0): the forward problem solved backwards in time with
    the same step h, every solve still running forward in time as SolverNet's do.
    """
    total = net.t0 + net.t1
    terms = jax.tree.map(
        lambda term: diffrax.ODETerm(eqx.Partial(_reversed_rate, term.vector_field, total)),
        ode_terms(net.solver, net.field),
        is_leaf=lambda node: isinstance(node, diffrax.ODETerm),
    )
    method = solver(net.solver, root_rtol=net.root_rtol, root_atol=net.root_atol, **dict(net.solver_options))
    solution = diffrax.diffeqsolve(
        terms,
        method,
        t0=net.t0,
        t1=net.t1,
        dt0=None,
        y0=split_state(net.solver, y1),
        saveat=diffrax.SaveAt(t1=True),
        stepsize_controller=diffrax.StepTo(ts=layer_times(net)),
        max_steps=net.num_steps,
        throw=net.throw,
        solver_state=solver_state,
    )
    return join_state(net.solver, solution.ys)[-1]


@eqx.filter_jit
def _round_trips(net: SolverNet, xs, algebraic: bool):
    """y(t0), y(t1) and the backward solve's return to t0 for every sample, as one program."""

    def one_sample(x):
        forward = net.solve(x, diffrax.SaveAt(t1=True, solver_state=algebraic))
        final = forward.ys[-1]
        state = None
        if algebraic:
            state = _REVERSED_SOLVER_STATE[net.solver](forward.solver_state, net.t0 + net.t1)
        return net.encode(x), final, _backward_solve(net, final, state)

    return jax.vmap(one_sample)(xs)


def reversibility_error(net: SolverNet, xs, *, algebraic: bool = False) -> Reversibility:
    """Integrate each input t0 → t1 and back with the same solver and steps; how far from y(t0)?

    The backward solve integrates the time-reversed field −f(t0 + t1 − s, y) over the net's
    grid from y(t1): the forward problem with step −h, by the same solver. The exact flow
    returns to y(t0); the discrete one does so to round-off only for a symmetric method (see
    the module docstring for the orders of the others).

    Args:
        net: a fixed-step SolverNet, any solver.
        xs: inputs, shape (batch, ...).
        algebraic: False (default): a fresh backward solve from y(t1) alone, as one would
            reconstruct inputs from outputs. True: continue from the state the forward solve
            ended with, for the two-step solvers leapfrog_midpoint (the previous state) and
            reversible_heun (the auxiliary ŷ and its field value), so that the backward solve
            inverts the forward recurrence step by step: the error is then round-off, amplified
            only by the recurrence's own growth. A ValueError for the other solvers, which carry
            no such state.

    Returns:
        A `Reversibility`: the states, `error` ‖y_back(t0) − y(t0)‖₂ and `relative_error`.

    Example:
        >>> net = deepest.SolverNet(deepest.fields.Hamiltonian(4, key=key), solver="leapfrog_midpoint", num_steps=100)
        >>> deepest.analysis.reversibility_error(net, xs[:8]).error           # O(h²)
        >>> deepest.analysis.reversibility_error(net, xs[:8], algebraic=True).error   # ~1e-16
    """
    xs = check_batch(xs, "reversibility_error")
    layer_times(net)
    if algebraic and net.solver not in _REVERSED_SOLVER_STATE:
        raise ValueError(
            f"algebraic=True continues the backward solve from the forward solver's state, which only "
            f"the algebraically reversible two-step solvers carry: {', '.join(_REVERSED_SOLVER_STATE)}; "
            f"got {net.solver!r}. Use algebraic=False for a fresh backward solve."
        )

    initial, final, returned = _round_trips(net, xs, algebraic)
    return Reversibility(
        initial_state=initial,
        final_state=final,
        returned_state=returned,
        step_size=net.step_size,
        solver=net.solver,
        algebraic=algebraic,
    )
