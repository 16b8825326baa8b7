"""Data parallelism on a CPU: `deepest.train.fit` on one device against two.

`fit` splits each minibatch over the devices it is given (`deepest._devices`). The CPU shows
two devices only if JAX starts with them, so the measurement runs in a fresh process with
`JAX_NUM_CPU_DEVICES=2`, which times, interleaved, `fit` on the first device alone and on
both, for a few (width, batch, steps) settings of a tanh MLP field of depth 2 on a
4-dimensional (zero-augmented) state, Euler, spirals, Adam. A process compiles `fit`'s step
once per model structure and devices and keeps it, so each contender is called once untimed
first, and then timed for a short and a long run: the difference over the extra steps is the
cost of a step. The issue measured 1.92× from
two devices on its own hand-sharded step; this is what `fit` gets, and it decides the default
of `deepest run --devices` (1).

    python -m benchmarks --only devices [--repeats 3]
"""

import functools
import json
import sys

from ._process import run_python
from ._report import Section, significant

# (width, batch size, solver steps): the quickstart's size, the field size, a wider one.
SETTINGS = ((32, 128, 4), (64, 256, 20), (128, 512, 20))
QUICK_SETTINGS = ((8, 16, 2),)
# (short, long) training runs; the step cost is their time difference over long − short.
TRAINING_STEPS, QUICK_TRAINING_STEPS = (100, 600), (2, 4)
ROUNDS = 4


def _measure(settings, training_steps: tuple[int, int], rounds: int) -> list[dict]:
    """In a process started with two CPU devices: per setting and device count, the median
    seconds of a training step."""
    import equinox as eqx
    import jax

    import deepest as dp
    from deepest import train

    from ._timing import interleaved_medians

    data = dp.data.make("spirals", num_samples=2048, seed=0)
    first, both = jax.devices()[:1], jax.devices()[:2]
    results = []
    for width, batch, steps in settings:
        keys = jax.random.split(jax.random.PRNGKey(0), 2)
        net = dp.SolverNet(
            dp.fields.MLP(state_dim=4, width=width, depth=2, activation="tanh", key=keys[0]),
            solver="euler",
            num_steps=steps,
            encoder=dp.encoders.ZeroAugmentation(2),
            readout=eqx.nn.Linear(4, 2, key=keys[1]),
        )
        optimiser = train.optimiser("adam", 1e-3)

        # partial binds this setting's net, batch and keys now, not when the call runs.
        contenders = {
            (name, num_steps): functools.partial(
                train.fit, net, data, optimiser, num_steps=num_steps, batch_size=batch, key=keys[0], progress=False, devices=devices
            )
            for name, devices in (("one", first), ("two", both))
            for num_steps in training_steps
        }
        for (_, num_steps), call in contenders.items():  # compiles the step, once per device count
            if num_steps == training_steps[0]:
                call()
        # Long calls of their own: no warming call before each.
        seconds = interleaved_medians(contenders, rounds=rounds, warmup=False)
        short, long = training_steps
        result = {"width": width, "batch": batch, "steps": steps}
        for name in ("one", "two"):
            result[name] = (seconds[name, long] - seconds[name, short]) / (long - short)
        results.append(result)
    return results


def run(*, quick: bool = False, repeats: int | None = None) -> Section:
    """The table of `fit` on one and on two CPU devices."""
    rounds = repeats or (1 if quick else ROUNDS)
    settings = QUICK_SETTINGS if quick else SETTINGS
    training_steps = QUICK_TRAINING_STEPS if quick else TRAINING_STEPS
    arguments = json.dumps({"settings": settings, "training_steps": training_steps, "rounds": rounds})
    printed = run_python("-m", "benchmarks.devices", arguments, environment={"JAX_NUM_CPU_DEVICES": "2"})
    results = json.loads(printed.splitlines()[-1])
    rows = tuple(
        (
            f"width {result['width']}, batch {result['batch']}, euler {result['steps']}",
            significant(1e3 * result["one"]),
            significant(1e3 * result["two"]),
            f"{result['two'] / result['one']:.2f}",
        )
        for result in results
    )
    return Section(
        title="Devices",
        method=(
            f"`deepest.train.fit` of {training_steps[0]} and of {training_steps[1]} Adam steps on spirals, tanh MLP "
            f"field of depth 2 on a 4-dimensional state, in a process started with JAX_NUM_CPU_DEVICES=2, "
            f"`devices=` the first device or both; median of {rounds} interleaved rounds. A step costs the "
            "difference over the extra steps, each contender called once untimed before (compiling its step). "
            "No target: this table decides the default of `deepest run --devices`."
        ),
        columns=("setting", "step, one device (ms)", "step, two devices (ms)", "two / one"),
        rows=rows,
    )


if __name__ == "__main__":
    request = json.loads(sys.argv[1])
    print(json.dumps(_measure([tuple(setting) for setting in request["settings"]], tuple(request["training_steps"]), request["rounds"])))
