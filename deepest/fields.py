"""Vector fields f_θ(t, y): the right-hand sides y' = f_θ(t, y) that solver-networks integrate.

Every field is an `eqx.Module` called as `field(t, y, args=None)`, the signature of
`diffrax.ODETerm`, so fields can also be handed to diffrax directly. The architecture (which
field) and the discretisation (which solver, which step) are independent choices.
"""

import abc
import inspect
import math
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from . import _stacking

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


# Antiderivatives S (S' = σ, S(0) = 0) of the activations that have an elementary one, for
# `Hamiltonian.energy`. softplus and silu need the dilogarithm; jax's gelu is the tanh approximation.
ANTIDERIVATIVES = {
    "tanh": lambda x: jnp.logaddexp(x, -x) - jnp.log(2.0),  # log cosh x, without overflow
    "relu": lambda x: jax.nn.relu(x) ** 2 / 2,
    "leaky_relu": lambda x: x * jax.nn.leaky_relu(x) / 2,
    "elu": lambda x: jnp.where(x > 0, x**2 / 2, jnp.expm1(jnp.minimum(x, 0)) - jnp.minimum(x, 0)),
    "sigmoid": lambda x: jax.nn.softplus(x) - jnp.log(2.0),
    "identity": lambda x: x**2 / 2,
}


def _check_size(field: str, argument: str, value, *, even: bool = False) -> int:
    """`value` if it is a positive (even) integer, else a ValueError naming `argument`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (even and value % 2):
        if even:
            allowed = "a positive even integer: the state splits into two halves of state_dim/2"
        else:
            allowed = "a positive integer"
        raise ValueError(f"{field} needs {argument} to be {allowed}; got {value!r}.")
    return value


def _check_nonnegative(field: str, argument: str, value) -> float:
    """`value` as a float if it is finite and ≥ 0, else a ValueError naming `argument`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 <= value < math.inf):
        raise ValueError(f"{field} needs {argument} to be a finite number ≥ 0; got {value!r}.")
    return float(value)


def _normal(key, shape, fan_in: int):
    """Weights with entries N(0, 1/fan_in): unit-variance pre-activations for unit-variance inputs."""
    return jax.random.normal(key, shape) / math.sqrt(fan_in)


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

    # equinox lets a property meet an AbstractVar; mypy reads the AbstractVar as a dataclass field.
    @property  # type: ignore[misc]
    def state_dim(self) -> int:  # type: ignore[override]
        # The last axis: stacked in a PerLayer, the matrix gains a leading layer axis.
        return self.matrix.shape[-1]

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


class Antisymmetric(AbstractVectorField):
    """f(t, y) = σ((W − Wᵀ − γI) y + b): purely oscillatory linearisation at γ = 0, damped for γ > 0.

    The Jacobian is ∂f/∂y = D (S − γI) with S = W − Wᵀ skew and D = diag σ'((S − γI) y + b).
    For monotone σ, D ≥ 0, and D^{1/2}·D^{1/2}(S − γI) has the eigenvalues of
    D^{1/2}(S − γI)D^{1/2} = D^{1/2} S D^{1/2} − γD (AB and BA share their characteristic
    polynomial): skew minus γ times a non-negative diagonal. A unit eigenvector x of the latter
    gives λ = x*D^{1/2}SD^{1/2}x − γ x*Dx, the first term imaginary and the second real, so
    Re λ ∈ [−γ max d, −γ min d]; with γ = 0 the spectrum is purely imaginary and the linearised
    flow neither grows nor decays. Explicit Euler amplifies every imaginary mode
    (|1 + ihω| > 1); γ > 0 moves the spectrum into the left half-plane, and Euler on the
    linear part S − γI is stable iff h ≤ 2γ/(γ² + ρ(S)²).

    Args:
        state_dim: the dimension of y.
        gamma: the diffusion γ ≥ 0 (a fixed hyperparameter, not trained).
        activation: a name from `ACTIVATIONS`.
        key: initialises W with entries N(0, 1/state_dim); b starts at 0, so f(t, 0) = 0 for
            activations with σ(0) = 0.

    Example:
        >>> field = Antisymmetric(4, gamma=0.1, key=key)
        >>> field.linear_part()          # W − Wᵀ − 0.1 I: eigenvalues −0.1 ± iω

    References: Haber & Ruthotto, "Stable architectures for deep neural networks" (2017,
    arXiv:1705.03341); Chang, Chen, Haber & Chi, "AntisymmetricRNN: a dynamical system view on
    recurrent neural networks" (2019, arXiv:1902.09689).
    """

    weight: Float[Array, "state_dim state_dim"]
    bias: Float[Array, " state_dim"]
    state_dim: int = eqx.field(static=True)
    gamma: float = eqx.field(static=True)
    activation: str = eqx.field(static=True)

    def __init__(self, state_dim: int, gamma: float = 0.0, activation: str = "tanh", *, key: PRNGKeyArray):
        self.state_dim = _check_size("Antisymmetric", "state_dim", state_dim)
        self.gamma = _check_nonnegative("Antisymmetric", "gamma", gamma)
        activation_function(activation)
        self.activation = activation
        self.weight = _normal(key, (state_dim, state_dim), state_dim)
        self.bias = jnp.zeros(state_dim, self.weight.dtype)

    def linear_part(self) -> Float[Array, "state_dim state_dim"]:
        """W − Wᵀ − γI, whose eigenvalues have real part exactly −γ."""
        return self.weight - self.weight.T - self.gamma * jnp.eye(self.state_dim, dtype=self.weight.dtype)

    def __call__(self, t, y, args=None):
        return activation_function(self.activation)(self.linear_part() @ y + self.bias)


class Hamiltonian(AbstractSeparableField):
    """y = (Y, Z): Y' = σ(K Z + b₁), Z' = −σ(Kᵀ Y + b₂); conservative and volume-preserving.

    The Jacobian is D [[0, K], [−Kᵀ, 0]] with D = diag σ'(·) ≥ 0 for monotone σ: a non-negative
    diagonal times a skew matrix, whose eigenvalues are purely imaginary (see `Antisymmetric`
    with γ = 0). Y' does not depend on Y nor Z' on Z, so the divergence is zero and the flow
    preserves volume; it also conserves `energy`. The field is separable, (q, p) = (Y, Z) with
    q' = σ(K p + b₁) and p' = −σ(Kᵀ q + b₂), so `semi_implicit_euler` (symplectic Euler)
    integrates it, as does every other solver. With σ the identity and b = 0 it is the linear
    skew system y' = [[0, K], [−Kᵀ, 0]] y, which also conserves ½‖y‖²: an oscillator with the
    frequencies the singular values of K.

    Args:
        state_dim: the dimension of y = (Y, Z), even; K is (state_dim/2, state_dim/2).
        activation: a name from `ACTIVATIONS`.
        key: initialises K with entries N(0, 2/state_dim); b₁ and b₂ start at 0.

    Example:
        >>> field = Hamiltonian(4, key=key)
        >>> net = deepest.SolverNet(field, solver="semi_implicit_euler", num_steps=20)
        >>> field.energy(y)              # the same at every time of the exact flow

    Reference: Haber & Ruthotto, "Stable architectures for deep neural networks" (2017,
    arXiv:1705.03341).
    """

    weight: Float[Array, "half half"]
    position_bias: Float[Array, " half"]
    momentum_bias: Float[Array, " half"]
    state_dim: int = eqx.field(static=True)
    activation: str = eqx.field(static=True)

    def __init__(self, state_dim: int, activation: str = "tanh", *, key: PRNGKeyArray):
        self.state_dim = _check_size("Hamiltonian", "state_dim", state_dim, even=True)
        activation_function(activation)
        self.activation = activation
        half = state_dim // 2
        self.weight = _normal(key, (half, half), half)
        self.position_bias = jnp.zeros(half, self.weight.dtype)
        self.momentum_bias = jnp.zeros(half, self.weight.dtype)

    def position_rate(self, t, p, args=None):
        """Y' = σ(K Z + b₁)."""
        return activation_function(self.activation)(self.weight @ p + self.position_bias)

    def momentum_rate(self, t, q, args=None):
        """Z' = −σ(Kᵀ Y + b₂)."""
        return -activation_function(self.activation)(self.weight.T @ q + self.momentum_bias)

    def energy(self, y: Float[Array, " state_dim"]) -> Float[Array, ""]:
        """E(Y, Z) = Σ S(Kᵀ Y + b₂) + Σ S(K Z + b₁), S' = σ, S(0) = 0: conserved by the flow.

        With σ₁ = σ(K Z + b₁) = Y' and σ₂ = σ(Kᵀ Y + b₂) = −Z', the chain rule gives
        dE/dt = ⟨K σ₂, σ₁⟩ − ⟨Kᵀ σ₁, σ₂⟩ = 0 for every σ. E is an invariant, not the Hamiltonian
        of a canonical structure (Y' = σ₁ is not ∂E/∂Z = Kᵀσ₁). For σ = identity it is
        ½‖Kᵀ Y + b₂‖² + ½‖K Z + b₁‖². Defined for the activations in `ANTIDERIVATIVES`; the
        others raise a ValueError.
        """
        if self.activation not in ANTIDERIVATIVES:
            raise ValueError(
                f"Hamiltonian.energy needs an elementary antiderivative of the activation, which "
                f"{self.activation!r} lacks. Activations with one: {', '.join(ANTIDERIVATIVES)}."
            )
        antiderivative = ANTIDERIVATIVES[self.activation]
        position, momentum = jnp.split(y, 2, axis=-1)
        return jnp.sum(antiderivative(self.weight.T @ position + self.momentum_bias)) + jnp.sum(
            antiderivative(self.weight @ momentum + self.position_bias)
        )


class Parabolic(AbstractVectorField):
    """f(t, y) = −Kᵀ σ(K y + b), K of shape (width, state_dim): a field that only damps.

    The Jacobian −Kᵀ diag σ'(K y + b) K is symmetric and, for monotone σ, negative
    semi-definite: real eigenvalues ≤ 0, a nonlinear heat equation. f is the negative
    gradient of the convex (for monotone σ) potential Σ S(K y + b), S' = σ, so the flow
    never expands distances. The Euler layer's Jacobian I + h ∂f/∂y, symmetric too, has
    norm ≤ 1 iff h·ρ(∂f/∂y) ≤ 2.

    Args:
        state_dim: the dimension of y.
        width: the number of rows of K (hidden units); default state_dim, a square K like
            the W of `Antisymmetric`, so that, as for its siblings, the state dimension and a
            key are all a field needs.
        activation: a name from `ACTIVATIONS`.
        key: initialises K with entries N(0, 1/state_dim); b starts at 0.

    Example:
        >>> field = Parabolic(4, width=8, key=key)
        >>> Parabolic(4, key=key).weight.shape   # (4, 4)

    Reference: Ruthotto & Haber, "Deep neural networks motivated by partial differential
    equations" (2018, arXiv:1804.04272).
    """

    weight: Float[Array, "width state_dim"]
    bias: Float[Array, " width"]
    state_dim: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    activation: str = eqx.field(static=True)

    def __init__(self, state_dim: int, width: int | None = None, activation: str = "tanh", *, key: PRNGKeyArray):
        self.state_dim = _check_size("Parabolic", "state_dim", state_dim)
        width = state_dim if width is None else width
        self.width = _check_size("Parabolic", "width", width)
        activation_function(activation)
        self.activation = activation
        self.weight = _normal(key, (width, state_dim), state_dim)
        self.bias = jnp.zeros(width, self.weight.dtype)

    def __call__(self, t, y, args=None):
        return -self.weight.T @ activation_function(self.activation)(self.weight @ y + self.bias)


class SecondOrder(AbstractVectorField):
    """y = (x, v): x' = v, v' = σ(W x + V v + b) − k x − c v, the second-order x'' = f in first-order form.

    The coupled oscillatory RNN (coRNN) in continuous depth: with σ switched off (W = V = 0,
    b = 0, σ(0) = 0) it is the damped linear oscillator x'' = −k x − c x' (k = stiffness,
    c = damping), whose eigenvalues −c/2 ± √(c²/4 − k) lie in the closed left half-plane.
    With the forcing, E = ½(‖v‖² + k‖x‖²) obeys dE/dt = ⟨v, σ(·)⟩ − c‖v‖² ≤ √(2E) ‖σ(·)‖, so
    for bounded σ (tanh, |σ| ≤ 1) √E grows at most linearly in time: no exploding states.
    Momentum ResNets discretise ε x'' + x' = g(x), the case V = 0, stiffness = 0 up to scaling.

    Args:
        state_dim: the dimension of y = (x, v), even; W and V are (state_dim/2, state_dim/2).
        stiffness: k ≥ 0, the restoring force towards x = 0.
        damping: c ≥ 0, the friction on v. The defaults (k = 1, c = 0) make the field with
            zero weights the undamped oscillator x'' = −x.
        activation: a name from `ACTIVATIONS`.
        key: initialises W and V with entries N(0, 1/state_dim) (the pre-activation's fan-in
            is state_dim); b starts at 0.

    Example:
        >>> field = SecondOrder(4, stiffness=1.0, damping=0.5, key=key)

    References: Rusch & Mishra, "Coupled oscillatory recurrent neural network (coRNN)" (2021,
    arXiv:2010.00951); Sander, Ablin, Blondel & Peyré, "Momentum residual neural networks"
    (2021, arXiv:2102.07870).
    """

    position_weight: Float[Array, "half half"]
    velocity_weight: Float[Array, "half half"]
    bias: Float[Array, " half"]
    state_dim: int = eqx.field(static=True)
    stiffness: float = eqx.field(static=True)
    damping: float = eqx.field(static=True)
    activation: str = eqx.field(static=True)

    def __init__(
        self,
        state_dim: int,
        stiffness: float = 1.0,
        damping: float = 0.0,
        activation: str = "tanh",
        *,
        key: PRNGKeyArray,
    ):
        self.state_dim = _check_size("SecondOrder", "state_dim", state_dim, even=True)
        self.stiffness = _check_nonnegative("SecondOrder", "stiffness", stiffness)
        self.damping = _check_nonnegative("SecondOrder", "damping", damping)
        activation_function(activation)
        self.activation = activation
        half = state_dim // 2
        position_key, velocity_key = jax.random.split(key)
        self.position_weight = _normal(position_key, (half, half), state_dim)
        self.velocity_weight = _normal(velocity_key, (half, half), state_dim)
        self.bias = jnp.zeros(half, self.position_weight.dtype)

    def __call__(self, t, y, args=None):
        position, velocity = jnp.split(y, 2, axis=-1)
        forcing = activation_function(self.activation)(self.position_weight @ position + self.velocity_weight @ velocity + self.bias)
        acceleration = forcing - self.stiffness * position - self.damping * velocity
        return jnp.concatenate([velocity, acceleration], axis=-1)


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
        self.stacked = _stacking.stack(fields, "PerLayer's fields")
        self.num_layers = len(fields)
        self.t0 = float(t0)
        self.t1 = float(t1)

    @property  # type: ignore[misc]  # a property meeting the AbstractVar, as in Linear
    def state_dim(self) -> int:  # type: ignore[override]
        return self.stacked.state_dim

    def layer_index(self, t):
        """k with t ∈ [t_k, t_{k+1}), clipped to 0 … num_layers − 1."""
        position = (t - self.t0) / (self.t1 - self.t0) * self.num_layers
        return jnp.clip(jnp.floor(position + _BOUNDARY_SNAP), 0, self.num_layers - 1).astype(int)

    def layer(self, index) -> AbstractVectorField:
        """The field of layer `index` (an int or a traced integer)."""
        return _stacking.index(self.stacked, index)

    def __call__(self, t, y, args=None):
        return self.layer(self.layer_index(t))(t, y, args)


def _linear(state_dim: int, scale: float = 1.0, *, key: PRNGKeyArray | None = None) -> Linear:
    """Linear(−scale·I): every eigenvalue is −scale, so a step h puts h·λ at −scale·h.
    Deterministic: `key` is taken only to be called as every entry of `FIELDS` is."""
    return Linear(-scale * jnp.eye(state_dim))


# The fields a config names (`[model] field`): name -> constructor(state_dim, ..., *, key).
FIELDS: dict[str, Callable[..., AbstractVectorField]] = {
    "mlp": MLP,
    "linear": _linear,
    "antisymmetric": Antisymmetric,
    "hamiltonian": Hamiltonian,
    "parabolic": Parabolic,
    "second_order": SecondOrder,
}
# The fields whose state is two halves, (Y, Z) or (x, v): their state dimension must be even.
SPLIT_FIELDS = ("hamiltonian", "second_order")


def make_field(name: str, state_dim: int, *, key: PRNGKeyArray, **settings) -> AbstractVectorField:
    """The field called `name` (a key of `FIELDS`) on a `state_dim`-dimensional state.

    `settings` may name more than the field takes: each constructor gets the settings it has
    parameters for, so one table (a config's `[model]`: width, depth, activation, gamma, …)
    describes every field.

    Example:
        >>> field = make_field("antisymmetric", 4, gamma=0.1, width=32, key=key)  # width unused
    """
    if name not in FIELDS:
        raise ValueError(f"Unknown field {name!r}. Valid fields are: {', '.join(FIELDS)}.")
    constructor = FIELDS[name]
    parameters = inspect.signature(constructor).parameters
    return constructor(state_dim, key=key, **{setting: value for setting, value in settings.items() if setting in parameters})
