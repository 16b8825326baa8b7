"""Per-layer gradient norms and the input–output Jacobian: vanishing, exploding, isometric.

Backpropagation through a net of layer maps y_{k+1} = Φ_k(y_k) carries the adjoint
a_k = ∂L/∂y_k = (∂Φ_k/∂y_k)ᵀ a_{k+1} from a_L = ∂L/∂y_L down to the input. For a linear
Euler ResNet Φ_k = I + hA, so a_k = ((I + hA)ᵀ)^{L−k} a_L: the profile log‖a_k‖ is linear in
k, with slope set by the layer map's spectrum. A profile that falls towards the input means
vanishing gradients; one that rises, exploding ones. The singular values of ∂y_L/∂y_0 all
near 1 is dynamical isometry (Pennington, Schoenholz & Ganguli 2017, arXiv:1711.04735).

Reference: Haber & Ruthotto, "Stable architectures for deep neural networks" (2017,
arXiv:1705.03341), section 3.
"""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._batched_linalg import singular_values
from ..layers import check_batch, check_one_step, layer_chain, solver_step, trajectories
from ..network import SolverNet
from ..solvers import MULTISTEP
from . import krylov
from .spectra import choose_method

GRADIENT_REGIMES = ("vanishing", "stable", "exploding", "diverged")

# The change of the fitted gradient profile across the whole depth beyond which it counts as
# vanishing or exploding: one order of magnitude. A convention, not a result of theory: the
# profile of a stable net still wanders by small factors between samples, and a tenfold trend
# is what a log plot shows plainly. `GradientNorms.regime` and `stability_report` take another.
REGIME_FACTOR = 10.0


def _tree_norm(tree) -> Float[Array, ""]:
    leaves = jax.tree.leaves(eqx.filter(tree, eqx.is_inexact_array))
    return jnp.sqrt(sum(jnp.sum(leaf**2) for leaf in leaves))


class GradientNorms(eqx.Module):
    """Gradient norms through depth, per sample.

    Fields:
        state: (batch, num_steps + 1) ‖∂L/∂y_k‖ for k = 0 … L (input state to output state).
        parameters: (batch, num_steps) the norm of layer k's contribution to ∂L/∂θ: the
            gradient through the field's parameters at step k alone. For explicit Euler on a
            `PerLayer` field this is exactly ‖∂L/∂θ_k‖; with shared weights, ∂L/∂θ is the sum
            of these contributions.
        loss: (batch,) the per-sample loss.
    """

    state: Float[Array, "batch layers_plus_one"]
    parameters: Float[Array, "batch layers"]
    loss: Float[Array, " batch"]

    @property
    def log_profile(self) -> Float[Array, " layers_plus_one"]:
        """mean over the batch of log‖∂L/∂y_k‖, k = 0 … L.

        An exactly zero gradient counts as the smallest positive float (log ≈ −708 in float64):
        as vanished as a gradient can be, without turning the mean into −inf.
        """
        tiny = jnp.finfo(self.state.dtype).tiny
        return jnp.mean(jnp.log(jnp.maximum(self.state, tiny)), axis=0)

    @property
    def slope(self) -> Float[Array, ""]:
        """Least-squares slope of `log_profile` against k: log-growth per layer, towards the output.

        Positive: gradients shrink towards the input (vanishing); negative: they grow (exploding).
        """
        profile = self.log_profile
        layers = jnp.arange(profile.shape[0], dtype=profile.dtype)
        centred = layers - layers.mean()
        return jnp.sum(centred * (profile - profile.mean())) / jnp.sum(centred**2)

    def regime(self, factor: float = REGIME_FACTOR) -> str:
        """ "vanishing", "exploding" or "stable": whether the fitted profile changes by more
        than `factor` (default `REGIME_FACTOR`) across the net's depth (|slope|·L > ln factor),
        and in which direction; "diverged" if any gradient norm is NaN or infinite."""
        if not np.all(np.isfinite(np.asarray(self.state))):
            return "diverged"
        slope = float(self.slope)
        change = abs(slope) * (self.state.shape[-1] - 1)
        if change <= np.log(factor):
            return "stable"
        return "vanishing" if slope > 0 else "exploding"


def gradient_norms(net: SolverNet, xs, targets, loss_fn) -> GradientNorms:
    """‖∂L/∂y_k‖ at every layer and each layer's share of ∂L/∂θ, per sample.

    Args:
        net: a fixed-step SolverNet with a one-step solver.
        xs: inputs (batch, ...).
        targets: targets (batch, ...), one per input.
        loss_fn: loss_fn(output, target) → scalar, for one sample (output = net(x)). The
            backward pass compiles once per function object: pass the same one, not a new
            lambda each call, to reuse it.

    The adjoints are propagated backwards through the net's own layer maps (vjp of one
    solver step), so they are the exact gradients of the discrete network.

    Example:
        >>> def loss_fn(logits, label):
        ...     return optax.softmax_cross_entropy_with_integer_labels(logits, label)
        >>> grads = deepest.analysis.gradient_norms(net, xs, labels, loss_fn)
        >>> grads.regime()
        'stable'
    """
    check_one_step(net, "gradient_norms")
    grid, states = trajectories(net, xs)
    state, parameters, loss = _backward_norms(
        net.field, net.readout, grid, states, jnp.asarray(targets), net.solver, net.root_rtol, net.root_atol, loss_fn
    )
    return GradientNorms(state=state, parameters=parameters, loss=loss)


@eqx.filter_jit
def _backward_norms(field, readout, grid, states, targets, solver_name, root_rtol, root_atol, loss_fn):
    """`gradient_norms`' backward pass as one program. The layer times come in as data, not
    as the net's static t0 and t1, so nets differing in step size or seed alone share the
    program (one compile per field structure, solver, shapes and `loss_fn` object)."""

    def one_sample(states, target):
        def loss_of_final(y):
            output = y if readout is None else readout(y)
            return loss_fn(output, target)

        loss, adjoint = jax.value_and_grad(loss_of_final)(states[-1])

        def backward(adjoint, layer):
            t, t_next, y = layer

            def step(field, state):
                return solver_step(solver_name, field, t, t_next, state, root_rtol=root_rtol, root_atol=root_atol)

            _, pullback = eqx.filter_vjp(step, field, y)
            field_gradient, previous = pullback(adjoint)
            return previous, (jnp.linalg.norm(previous), _tree_norm(field_gradient))

        _, (state_norms, parameter_norms) = jax.lax.scan(backward, adjoint, (grid[:-1], grid[1:], states[:-1]), reverse=True)
        return jnp.append(state_norms, jnp.linalg.norm(adjoint)), parameter_norms, loss

    return jax.vmap(one_sample)(states, targets)


class InputOutputSpectrum(eqx.Module):
    """Singular values of the input–output Jacobian ∂y_L/∂y_0, per sample.

    Fields:
        singular_values: (batch, k) descending; all of them ("dense") or the largest few
            ("matrix_free"; NaN where the iteration did not converge).
        time: the depth T = t1 − t0 the Jacobian spans.
        method: "dense" or "matrix_free".
    """

    singular_values: Float[Array, "batch k"]
    time: float = eqx.field(static=True)
    method: str = eqx.field(static=True)

    @property
    def largest(self) -> Float[Array, " batch"]:
        """σ_max = ‖∂y_L/∂y_0‖₂: the worst amplification of an input perturbation."""
        return self.singular_values[:, 0]

    @property
    def smallest(self) -> Float[Array, " batch"]:
        """σ_min (NaN for "matrix_free", which computes only the largest few)."""
        return self.singular_values[:, -1] if self.method == "dense" else jnp.full_like(self.largest, jnp.nan)

    @property
    def log_spread(self) -> Float[Array, " batch"]:
        """ln(σ_max/σ_min); 0 for perfect isometry (NaN for "matrix_free")."""
        return jnp.log(self.largest / self.smallest)

    @property
    def lyapunov_exponents(self) -> Float[Array, "batch k"]:
        """Finite-time Lyapunov exponents (1/T) ln σ_i(∂y_L/∂y_0), per unit depth.

        The basis-independent finite-time exponents of the whole net (Storm et al. 2024,
        arXiv:2306.12548): exp(λ_1 T) is exactly the largest stretching of a perturbation of
        y_0. `layer_lyapunov_spectrum`'s QR exponents approach them only over long depths.
        """
        return jnp.log(self.singular_values) / self.time


def io_jacobian_singular_values(net: SolverNet, xs, *, method: str = "auto", num_values: int = 6) -> InputOutputSpectrum:
    """Singular values of ∂y_L/∂y_0 (state to state, without encoder and readout).

    "dense" forms the Jacobian by reverse mode through the net's own solve, so it works for
    every solver, fixed or adaptive. "matrix_free" (auto above `spectra.DENSE_LIMIT`, except
    for two-step solvers) runs Lanczos bidiagonalisation on jvp/vjp of the chained layer maps
    (fixed steps, one-step solvers) and returns the `num_values` largest, from the fixed
    `krylov.start_vector` (no random numbers).

    The dense values can be differentiated in the net's parameters (`jax.grad` of σ_max or of
    a Lyapunov exponent, e.g. as a loss): they then come from `jnp.linalg.svd`, with
    dσ_i = u_iᵀ dJ v_i, defined where σ_i is simple (`deepest._batched_linalg` says what a
    repeated one gives), and otherwise from LAPACK without vectors. That needs a Jacobian
    JAX can differentiate again: fixed steps of an explicit solver, whose solve is a scan
    (whatever the net's adjoint). Adaptive and implicit nets form theirs through
    diffrax's checkpointed solve, and "matrix_free" iterates in a while loop, neither of
    which reverse mode goes through; `deepest.regularisers.lyapunov` and `io_condition`
    differentiate the same quantities for every fixed-step net.
    """
    requested = method
    method = choose_method(method, net.field.state_dim)
    if net.solver in MULTISTEP and requested == "auto":
        method = "dense"
    initial_states = jax.vmap(net.encode)(check_batch(xs, "io_jacobian_singular_values"))
    time = net.t1 - net.t0
    if method == "dense":
        # The discrete network's exact derivative, whatever adjoint the net trains with
        # (backsolve would give the continuous adjoint's approximation).
        jacobians = _state_jacobians(dataclasses.replace(net, encoder=None, adjoint="recursive_checkpoint"), initial_states)
        return InputOutputSpectrum(singular_values=singular_values(jacobians), time=time, method=method)

    # Forward-mode products cannot go through diffrax's checkpointed adjoint; the chain of
    # layer maps is the same computation, differentiable both ways.
    def flow(y0):
        return layer_chain(net, y0)

    def largest(y0):
        matvec, rmatvec = krylov.jacobian_products(flow, y0)
        top = krylov.top_singular_values(matvec, rmatvec, y0.shape[-1], num_values=num_values, dtype=y0.dtype)
        return top.values_or_nan

    return InputOutputSpectrum(singular_values=jax.vmap(largest)(initial_states), time=time, method=method)


@eqx.filter_jit
def _state_jacobians(net: SolverNet, initial_states):
    """∂y_L/∂y_0 of `net`'s solve at each initial state, by reverse mode, as one program:
    nets differing only in their weights (a sweep's seeds) share it."""
    return jax.vmap(jax.jacrev(net.final_state))(initial_states)
