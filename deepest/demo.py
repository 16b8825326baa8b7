"""The main job until the experiment runner lands: a ResNet is explicit Euler.

Trains a 10-layer ResNet (explicit Euler, h = 0.1) on two interleaved spirals, re-integrates
the trained field with other solvers and step counts, and prints and draws its stability
report: the field's Jacobian eigenvalues h·λ along the trajectories against Euler's region,
per-layer gradient norms, Lyapunov exponents of the layer maps, input–output singular values.

    python -m deepest.demo [--train-steps 400] [--figure figures/demo_stability.png]

Measured on the 2-core CPU machine (float32, 400 Adam steps, seed 0): 16 s end to end; train
accuracy 1.000 under the training discretisation (Euler, 10 steps) but 0.57–0.64 under Euler
5/40 steps, RK4 5/10 steps and adaptive Tsit5; 57% of the field's h·λ lie outside Euler's
region (72% in the first layer), the largest Euler growth factor is 1.73, the gradient profile
grows by e^(0.254) per layer towards the input ("exploding" by the factor-10 rule), and the top
finite-time Lyapunov exponent (1/T) ln σ_max(∂y_L/∂y_0) averages +2.90 per unit depth.
"""

import argparse
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import deepest as dp


def spirals(num_points: int, *, key, noise: float = 0.05):
    """Two interleaved spirals in the plane, labels 0/1, roughly unit scale."""
    radius_key, noise_key = jax.random.split(key)
    radius = jax.random.uniform(radius_key, (num_points,), minval=0.15, maxval=1.0)
    labels = jnp.arange(num_points) % 2
    angle = 3 * jnp.pi * radius + jnp.pi * labels
    points = radius[:, None] * jnp.stack([jnp.cos(angle), jnp.sin(angle)], axis=1)
    return points + noise * jax.random.normal(noise_key, points.shape), labels


def accuracy(net, points, labels):
    return float(jnp.mean(jnp.argmax(jax.vmap(net)(points), axis=1) == labels))


def train(net, points, labels, *, num_steps: int, learning_rate: float):
    optimiser = optax.adam(learning_rate)
    state = optimiser.init(eqx.filter(net, eqx.is_array))

    def loss(model):
        logits = jax.vmap(model)(points)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    @eqx.filter_jit
    def step(model, state):
        value, grads = eqx.filter_value_and_grad(loss)(model)
        updates, state = optimiser.update(grads, state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), state, value

    for iteration in range(num_steps):
        net, state, value = step(net, state)
        if iteration % max(1, num_steps // 4) == 0 or iteration == num_steps - 1:
            print(f"  step {iteration:4d}  loss {float(value):.4f}  accuracy {accuracy(net, points, labels):.3f}")
    return net


def main(train_steps: int = 400, figure: str | None = "figures/demo_stability.png", num_points: int = 512):
    start = time.perf_counter()
    data_key, model_key, readout_key = jax.random.split(jax.random.PRNGKey(0), 3)
    points, labels = spirals(num_points, key=data_key)
    field = dp.fields.MLP(state_dim=4, width=32, depth=1, activation="tanh", key=model_key)
    net = dp.SolverNet(
        field,
        solver="euler",
        t1=1.0,
        num_steps=10,
        encoder=dp.encoders.ZeroAugmentation(2),
        readout=eqx.nn.Linear(4, 2, key=readout_key),
    )
    print(f"Training a 10-layer ResNet (explicit Euler, h = {net.step_size}) on {num_points} spiral points")
    net = train(net, points, labels, num_steps=train_steps, learning_rate=1e-2)

    print("\nThe trained field under other discretisations (train accuracy):")
    for solver, num_steps in [("euler", 5), ("euler", 10), ("euler", 40), ("rk4", 5), ("rk4", 10), ("tsit5", None)]:
        steps = "adaptive" if num_steps is None else f"{num_steps} steps"
        print(f"  {solver:6s} {steps:9s} {accuracy(net.with_solver(solver, num_steps=num_steps), points, labels):.3f}")

    def loss_fn(logits, label):
        return optax.softmax_cross_entropy_with_integer_labels(logits, label)

    report = dp.analysis.stability_report(net, points[:64], labels[:64], loss_fn)
    z = np.asarray(report.spectrum.scaled)
    print(f"\nAlong 64 trajectories ({z.size} eigenvalues h·λ of ∂f/∂y):")
    print(f"  outside Euler's stability region: {report.fraction_outside:.1%}")
    print(f"  most negative Re(hλ): {z.real.min():.4f} (Euler is stable on [-2, 0])")
    print(report.summary())

    print("\nStability limits of every solver (computed from its tableau or characteristic polynomial):")
    print(f"  {'solver':20s} {'real axis':>12s} {'imaginary axis':>15s}")
    for solver in dp.SOLVERS:
        real, imaginary = dp.stability.real_axis_limit(solver), dp.stability.imaginary_axis_limit(solver)
        print(f"  {solver:20s} {real:12.6f} {imaginary:15.6f}")

    if figure is not None:
        _save_figure(report, figure)
    print(f"\nDone in {time.perf_counter() - start:.1f} s.")


def _save_figure(report, path):
    import pathlib

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import deepest.plot

    fig = deepest.plot.stability_report(report)
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    print(f"\nFigure: {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-steps", type=int, default=400, help="Adam steps (default 400)")
    parser.add_argument("--figure", default="figures/demo_stability.png", help="where to save the figure; '' for none")
    arguments = parser.parse_args()
    main(train_steps=arguments.train_steps, figure=arguments.figure or None)
