"""Vector fields f_θ(t, y): the right-hand sides y' = f_θ(t, y) that solver-networks integrate.

Every field is an `eqx.Module` called as `field(t, y, args=None)`, the signature of
`diffrax.ODETerm`, so fields can also be handed to diffrax directly. The architecture (which
field) and the discretisation (which solver, which step) are independent choices.
"""

import abc
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

ACTIVATIONS = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "leaky_relu": jax.nn.leaky_relu,
    "elu": jax.nn.elu,
    "gelu": jax.nn.gelu,
    "silu": jax.nn.silu,
    "softplus": jax.nn.softplus,
    "sigmoid": jax.nn.sigmoid,
    "identity": lambda x: x,
}


def activation_function(name: str):
    """The activation function called `name`; a ValueError lists the valid names."""
    if name not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {name!r}. Valid activations are: {', '.join(ACTIVATIONS)}.")
    return ACTIVATIONS[name]


class AbstractVectorField(eqx.Module):
    """f_θ(t, y) ∈ ℝ^state_dim for y ∈ ℝ^state_dim."""

    state_dim: eqx.AbstractVar[int]

    @abc.abstractmethod
    def __call__(self, t, y: Float[Array, " state_dim"], args=None) -> Float[Array, " state_dim"]:
        raise NotImplementedError


class AbstractSeparableField(AbstractVectorField):
    """A partitioned field on y = (q, p): q' = f(t, p), p' = g(t, q), each half state_dim/2.

    This is the structure `semi_implicit_euler` (symplectic Euler) integrates: it updates q
    with the old p, then p with the new q.
    """

    @abc.abstractmethod
    def position_rate(self, t, p, args=None):
        """q' = f(t, p)."""
        raise NotImplementedError

    @abc.abstractmethod
    def momentum_rate(self, t, q, args=None):
        """p' = g(t, q)."""
        raise NotImplementedError

    def __call__(self, t, y, args=None):
        q, p = jnp.split(y, 2, axis=-1)
        return jnp.concatenate([self.position_rate(t, p, args), self.momentum_rate(t, q, args)], axis=-1)


class Linear(AbstractVectorField):
    """f(t, y) = A y. The field with known answers: the flow is exp(tA), the spectrum eig(A)."""

    matrix: Float[Array, "state_dim state_dim"]

    def __init__(self, matrix):
        matrix = jnp.asarray(matrix)
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"Linear needs a square matrix, got shape {matrix.shape}.")
        self.matrix = matrix

    @property
    def state_dim(self) -> int:
        return self.matrix.shape[0]

    def __call__(self, t, y, args=None):
        return self.matrix @ y


class MLP(AbstractVectorField):
    """f(t, y) = W_out σ(… σ(W_in [y; t] + b_in) …) + b_out, `depth` hidden layers of `width`.

    With `time_input=True` the time t is appended to the input, making the field
    non-autonomous; otherwise f ignores t (shared weights across depth).
    """

    network: eqx.nn.MLP
    state_dim: int = eqx.field(static=True)
    activation: str = eqx.field(static=True)
    time_input: bool = eqx.field(static=True)

    def __init__(
        self,
        state_dim: int,
        width: int,
        depth: int,
        activation: str = "tanh",
        time_input: bool = False,
        *,
        key: PRNGKeyArray,
    ):
        self.network = eqx.nn.MLP(
            in_size=state_dim + int(time_input),
            out_size=state_dim,
            width_size=width,
            depth=depth,
            activation=activation_function(activation),
            key=key,
        )
        self.state_dim = state_dim
        self.activation = activation
        self.time_input = time_input

    def __call__(self, t, y, args=None):
        if self.time_input:
            y = jnp.concatenate([y, jnp.reshape(t, (1,)).astype(y.dtype)])
        return self.network(y)


# Stage times within this many steps of a layer boundary count as on it: t_k + c h with c
# computed in floating point can land a hair below t_{k+1}. Runge–Kutta stage fractions c
# are never this close to an integer without being one (the closest: tsit5's 0.980).
_BOUNDARY_SNAP = 1e-3


class PerLayer(AbstractVectorField):
    """Distinct weights θ_k per layer: f(t, y) = f_{θ_k}(t, y) for t ∈ [t_k, t_{k+1}).

    A ResNet with per-layer weights is explicit Euler on this non-autonomous field, with
    θ(t) piecewise constant on the layer grid t_k = t0 + k h, h = (t1 − t0)/num_layers.
    θ is right-continuous: a stage of a multi-stage solver evaluated at t_k + c h uses θ_k
    for 0 ≤ c < 1 and θ_{k+1} for c = 1 (RK4's last stage, Heun's second); times beyond t1
    use the last layer, before t0 the first. The layer grid belongs to the field, not to the
    solver, so the same trained field can be re-integrated with other steps.

    Example:
        >>> keys = jax.random.split(key, 10)
        >>> field = PerLayer([MLP(2, 16, 1, key=k) for k in keys], t1=1.0)
    """

    stacked: AbstractVectorField
    num_layers: int = eqx.field(static=True)
    t0: float = eqx.field(static=True)
    t1: float = eqx.field(static=True)

    def __init__(self, fields: Sequence[AbstractVectorField], *, t0: float = 0.0, t1: float = 1.0):
        if len(fields) == 0:
            raise ValueError("PerLayer needs at least one field.")
        if not t1 > t0:
            raise ValueError(f"PerLayer needs t1 > t0, got t0={t0}, t1={t1}.")
        parameters, structures = zip(*(eqx.partition(field, eqx.is_array) for field in fields))
        treedefs = {jax.tree.structure(p) for p in parameters}
        if len(treedefs) > 1 or any(s != structures[0] for s in structures):
            raise ValueError("PerLayer needs fields of one architecture (same class, sizes and options).")
        stacked_parameters = jax.tree.map(lambda *layers: jnp.stack(layers), *parameters)
        self.stacked = eqx.combine(stacked_parameters, structures[0])
        self.num_layers = len(fields)
        self.t0 = float(t0)
        self.t1 = float(t1)

    @property
    def state_dim(self) -> int:
        return self.stacked.state_dim

    def layer_index(self, t):
        """k with t ∈ [t_k, t_{k+1}), clipped to 0 … num_layers − 1."""
        position = (t - self.t0) / (self.t1 - self.t0) * self.num_layers
        return jnp.clip(jnp.floor(position + _BOUNDARY_SNAP), 0, self.num_layers - 1).astype(int)

    def layer(self, index) -> AbstractVectorField:
        """The field of layer `index` (an int or a traced integer)."""
        parameters, structure = eqx.partition(self.stacked, eqx.is_array)
        return eqx.combine(jax.tree.map(lambda leaf: leaf[index], parameters), structure)

    def __call__(self, t, y, args=None):
        return self.layer(self.layer_index(t))(t, y, args)
