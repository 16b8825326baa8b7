"""The layers of a fixed-step SolverNet: its time grid and its one-step (layer) map.

Layer k of a net with solver Φ and step h is the map y_k ↦ y_{k+1} = Φ_h(t_k, y_k; θ); for
explicit Euler Φ_h(t, y) = y + h f_θ(t, y), a residual block. The map is one step of the same
diffrax solver the net integrates with, so its value and its derivatives (in y and in θ) are
those of the network's actual layer. Analysis (spectra, gradients, Lyapunov exponents),
regularisers and robustness bounds are built on it:

    times = layers.layer_times(net)                       # t_0 … t_L, L = net.num_steps
    y1 = layers.layer_step(net, net.field, times[0], times[1], y0)   # one layer
    yL = layers.layer_chain(net, y0)                      # all L layers: net.final_state's numbers
    ts, ys = layers.trajectories(net, xs)                 # every layer's state of a batch

The two-step solvers (`deepest.solvers.MULTISTEP`) have no layer map of y_k alone: the
functions that need one raise a ValueError naming them (`check_one_step`).

Reference: Haber & Ruthotto, "Stable architectures for deep neural networks" (2017,
arXiv:1705.03341).
"""

import dataclasses

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp

from .fields import AbstractVectorField
from .network import SolverNet
from .solvers import MULTISTEP, join_state, ode_terms, solver, split_state


def layer_times(net: SolverNet):
    """t_0 … t_L of a fixed-step net (L = num_steps); a ValueError for adaptive nets."""
    if net.num_steps is None:
        raise ValueError(
            "Layer-wise analysis needs a fixed-step SolverNet (num_steps=None is adaptive, with "
            "no fixed layers). Analyse a fixed-step version, e.g. net.with_solver(net.solver, num_steps=20)."
        )
    return jnp.linspace(net.t0, net.t1, net.num_steps + 1)


def check_batch(xs, what: str):
    """xs as an array with a leading batch axis; a ValueError naming `what` for a single sample."""
    xs = jnp.asarray(xs)
    if xs.ndim < 2:
        raise ValueError(
            f"{what} takes a batch with a leading batch axis, e.g. shape (batch, input_dim); got shape "
            f"{xs.shape}. For a single sample x pass x[None]."
        )
    return xs


def check_one_step(net: SolverNet, what: str) -> None:
    """Raise a ValueError naming `what` for the two-step solvers, whose layer map is not a
    function of y_k alone."""
    if net.solver in MULTISTEP:
        raise ValueError(
            f"{what} needs the layer map y_k ↦ y_(k+1), but {net.solver!r} is a two-step method: "
            f"its step also depends on the previous state. Use a one-step solver, e.g. "
            f"net.with_solver('euler') (jacobian_spectrum and the dense "
            f"io_jacobian_singular_values work for every solver)."
        )


def trajectories(net: SolverNet, xs):
    """Layer times t_0 … t_L, shape (L + 1,), and states y_0 … y_L of a batch, (batch, L + 1, d)."""
    times = layer_times(net)
    return times, _states(net, check_batch(xs, "This analysis"))


@eqx.filter_jit
def _states(net: SolverNet, xs):
    """`trajectories`' states as one program: nets differing only in their weights share it."""
    return jax.vmap(net.trajectory)(xs)[1]


def layer_step(net: SolverNet, field: AbstractVectorField, t, t_next, y):
    """y_{k+1} = Φ_h(t_k, y_k): one step of the net's solver from (t, y) to t_next.

    `field` is passed separately (usually `net.field`) so that callers can differentiate
    with respect to its parameters.
    """
    check_one_step(net, "The layer map")
    return solver_step(net.solver, field, t, t_next, y, root_rtol=net.root_rtol, root_atol=net.root_atol)


def layer_chain(net: SolverNet, y0):
    """y_L from y_0 by the net's layer maps in sequence: the same numbers as the net's solve,
    differentiable in forward and reverse mode (one-step solvers, fixed steps)."""
    check_one_step(net, "The chained layer map")
    times = layer_times(net)

    def one_layer(y, interval):
        return layer_step(net, net.field, interval[0], interval[1], y), None

    return jax.lax.scan(one_layer, y0, (times[:-1], times[1:]))[0]


def solver_step(name: str, field, t, t_next, y, *, root_rtol: float = 1e-6, root_atol: float = 1e-6):
    """One step of the one-step solver `name` on y' = field(t, y, args), from (t, y) to t_next.

    `field` is any callable field(t, y, args) (an `AbstractVectorField`, or a plain function
    with that signature; args is None); the partitioned `semi_implicit_euler` needs an
    `AbstractSeparableField`.
    """
    return solver_step_with_error(name, field, t, t_next, y, root_rtol=root_rtol, root_atol=root_atol)[0]


def solver_step_with_error(name: str, field, t, t_next, y, *, root_rtol: float = 1e-6, root_atol: float = 1e-6):
    """`solver_step` and the solver's embedded local error estimate of that step (diffrax's
    `y_error`; None for solvers without one)."""
    # Array times: the implicit solvers' closure-converted root find refuses Python floats.
    t, t_next = jnp.asarray(t), jnp.asarray(t_next)
    method = solver(name, root_rtol=root_rtol, root_atol=root_atol)
    if isinstance(method, diffrax.AbstractRungeKutta):
        # diffrax's default stage loop is checkpointed, a custom_vjp without forward-mode
        # derivatives; the "bounded" loop gives the same numbers and supports jvp and vjp.
        method = dataclasses.replace(method, scan_kind="bounded")
    terms, state = ode_terms(name, field), split_state(name, y)
    # A fresh solver state: first-same-as-last solvers recompute f(t_k, y_k) from y_k, so
    # the map (and its derivative) depends on y_k only, exactly as in a chained solve.
    solver_state = method.init(terms, t, t_next, state, None)
    next_state, error, *_ = method.step(terms, t, t_next, state, None, solver_state, made_jump=False)
    # The partitioned solver has no error estimate, so only its state needs joining.
    return join_state(name, next_state), error
