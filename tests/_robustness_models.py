"""The models the robustness tests attack and bound, shared by their files: affine classifiers
whose attacks have closed forms, a net trained on digits (trained once per test process), and
small fixed-step nets on random and linear fields."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import deepest as dp
from deepest.layers import layer_chain

KEY = jax.random.PRNGKey(0)
# Ground truth in NumPy (eager jnp calls would each compile). f(x) = wᵀx + b with weights of
# unequal size, so that ‖w‖₁, ‖w‖₂ and the L∞ and L2 attacks differ.
RNG = np.random.default_rng(0)
WEIGHTS = np.array([0.7, -1.3, 0.4, 2.1])
BIAS = 0.2
XS = RNG.standard_normal((8, 4))
SCORES = XS @ WEIGHTS + BIAS
LABELS = (SCORES > 0).astype(np.int32)
MATRIX = RNG.standard_normal((5, 4))
OFFSET = RNG.standard_normal(5)


def affine_score(x):
    return x @ WEIGHTS + BIAS


def affine_score_vector(x):
    return jnp.reshape(affine_score(x), (1,))


def affine_logits(x):
    return MATRIX @ x + OFFSET


def fgsm_thresholds(norm="linf"):
    """|f(x)| / ‖w‖_dual: the budget at which FGSM reaches the hyperplane f = 0."""
    return np.abs(SCORES) / np.linalg.norm(WEIGHTS, 1 if norm == "linf" else 2)


@functools.cache
def trained_digits_net():
    """A SolverNet (linear lift 64 → 8, 4 Euler layers of a ReLU MLP field, linear readout to
    10 classes) trained for 200 full-batch Adam steps on the 64-pixel digits; returned as
    (net, the same model through its chained layer maps, 64 test inputs, their labels).

    Inputs of 64 dimensions, not a 2-D toy set: in 2-D the L∞ FGSM step along a diagonal is
    within 2% of the shortest L2 path for a quarter of all boundary orientations, so DeepFool
    with its 2% overshoot cannot be shorter on 90% of samples even for a linear model. ReLU,
    not tanh: DeepFool's linearisation is exact inside each linear piece (measured with tanh:
    DeepFool shorter on 72% of samples). Training and attacks run through the chained layer
    maps, the same numbers as the net's solve but compiled in a fraction of the time. Cached:
    the attack, evaluation and bound tests share one training.
    """
    data = dp.data.make("digits", seed=0)

    # Jitted: the initialisers compile together, not as one small program per weight shape.
    @eqx.filter_jit
    def build(key):
        lift, field_key, readout_key = jax.random.split(key, 3)
        return dp.SolverNet(
            dp.fields.MLP(state_dim=8, width=16, depth=1, activation="relu", key=field_key),
            solver="euler",
            num_steps=4,
            encoder=eqx.nn.Linear(64, 8, key=lift),
            readout=eqx.nn.Linear(8, 10, key=readout_key),
        )

    net = build(jax.random.PRNGKey(0))
    x_train, y_train = data.x_train.astype(np.float64), data.y_train
    optimiser = optax.adam(0.01)

    def chained(net, x):
        return net.readout(layer_chain(net, net.encode(x)))

    @eqx.filter_jit
    def train(net):
        parameters, structure = eqx.partition(net, eqx.is_inexact_array)

        def mean_loss(parameters):
            logits = jax.vmap(functools.partial(chained, eqx.combine(parameters, structure)))(x_train)
            return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y_train))

        def step(carry, _):
            parameters, state = carry
            updates, state = optimiser.update(jax.grad(mean_loss)(parameters), state)
            return (optax.apply_updates(parameters, updates), state), None

        (parameters, _), _ = jax.lax.scan(step, (parameters, optimiser.init(parameters)), length=200)
        return eqx.combine(parameters, structure)

    net = train(net)
    xs, labels = data.x_test[:64].astype(np.float64), data.y_test[:64]
    return net, functools.partial(chained, net), xs, labels


def random_field_net(solver):
    field = dp.fields.MLP(state_dim=4, width=8, depth=1, activation="tanh", time_input=True, key=KEY)
    # Weights doubled so that layers expand some directions and contract others.
    field = jax.tree.map(lambda leaf: 2 * leaf if eqx.is_inexact_array(leaf) else leaf, field)
    return dp.SolverNet(field, solver=solver, t1=1.5, num_steps=5)


# A non-normal matrix: μ₂(A) ≈ 0.53 exceeds its spectral abscissa, so exp(tA) first grows.
LINEAR = np.array([[-1.0, 3.0, 0.0], [0.0, -1.0, 0.5], [0.2, 0.0, -1.5]])


def linear_net(matrix):
    """Five Euler layers of step h = 1 on y' = My: one compiled shape for every linear test."""
    return dp.SolverNet(dp.fields.Linear(matrix), solver="euler", t1=5.0, num_steps=5)
