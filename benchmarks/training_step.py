"""Training-step time: `deepest.SolverNet` against a hand-written scan and against torchdiffeq.

One training step is the loss and its gradient by reverse mode, then one Adam update
(learning rate 1e-3), in float32, on a batch of B = 256 inputs used as initial states:

    L(θ) = (1/B) Σ_b ‖y_b(T)‖²,   y_b' = f_θ(y_b),  y_b(0) = x_b,  T = 1,

with f_θ a tanh MLP, "small" (2 → 64 → 64 → 2) or "wide" (64 → 128 → 64). Three contenders
share the field's weights, the inputs, the loss and the optimiser:

- SolverNet: `net.solve_batch(xs)`, what `deepest.train` calls (default adjoint
  "recursive_checkpoint"), under `eqx.filter_value_and_grad`, the step compiled and called
  over the array leaves of model and optimiser state, as `deepest.train.fit` does: for fixed
  steps and per-sample adaptive steps this is `jax.vmap(net.solve)`; adaptive Tsit5 runs both
  per sample and with steps shared by the batch (`batch_stepping="shared"`);
- scan: a hand-written `jax.lax.scan` over the batched state whose step (Euler, or classical
  RK4) is wrapped in `jax.checkpoint`, so that the backward pass keeps one state per step and
  recomputes the stages, as diffrax's recursive checkpointing does at one checkpoint per step;
  the same step wrapper and dispatch. It has no adaptive counterpart;
- torchdiffeq (if installed): `odeint` on the batched state, backpropagated through the solver
  (`benchmarks._torch_baseline`).

Targets (issue 7): SolverNet ≤ 1.03× the scan at every fixed-step setting; ≥ 1.5× faster than
torchdiffeq on the small field and faster on the wide one, judged where both step the same way:
fixed steps, and adaptive steps shared by the batch (torchdiffeq's only kind). The per-sample
adaptive row is shown and its ratio reported beside the verdict.

    python -m benchmarks --only training_step [--repeats 7]
"""

import importlib.util

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

import deepest as dp
from deepest import _array_leaves

from ._report import Section, Target, milliseconds, verdict
from ._timing import interleaved_medians

FIELDS = {"small": {"state_dim": 2, "width": 64, "depth": 2}, "wide": {"state_dim": 64, "width": 128, "depth": 1}}
# (solver, steps or None for adaptive, SolverNet's batch_stepping).
SETTINGS = (
    ("euler", 10, "per_sample"),
    ("euler", 50, "per_sample"),
    ("euler", 200, "per_sample"),
    ("rk4", 20, "per_sample"),
    ("tsit5", None, "per_sample"),
    ("tsit5", None, "shared"),
)
BATCH = 256
LEARNING_RATE = 1e-3
RTOL, ATOL = 1e-3, 1e-6
# The targets: SolverNet/scan at most this, torchdiffeq/SolverNet at least this per field.
SCAN_RATIO = 1.03
TORCH_SPEEDUP = {"small": 1.5, "wide": 1.0}
# --quick: toy sizes that only exercise the code (an adaptive setting would triple the compiling).
QUICK_FIELDS = ("small",)
QUICK_SETTINGS = (("euler", 2, "per_sample"),)
QUICK_BATCH = 8
ROUNDS = 7
BLOCK_SECONDS = 0.2
# torchdiffeq's names: its "rk4" is Kutta's 3/8 rule (four evaluations per step, like the
# classical RK4); "dopri5" is the adaptive 5(4) pair nearest to Tsit5 (both 7 stages, FSAL).
_TORCH_METHODS = {"euler": "euler", "rk4": "rk4", "tsit5": "dopri5"}


def make_field(name: str, *, key):
    """The benchmark's field `name` ("small" or "wide"): a tanh `deepest.fields.MLP` in float32."""
    field = dp.fields.MLP(**FIELDS[name], activation="tanh", key=key)
    # float32 even where jax_enable_x64 is on (the test suite turns it on).
    return jax.tree.map(lambda leaf: leaf.astype(jnp.float32) if eqx.is_inexact_array(leaf) else leaf, field)


def scan_final_states(field, xs, solver: str, num_steps: int):
    """y(T) of the batch by `num_steps` checkpointed Euler or classical RK4 steps under lax.scan."""
    h = 1.0 / num_steps
    f = jax.vmap(field, in_axes=(None, 0))

    def euler(t, y):
        return y + h * f(t, y)

    def rk4(t, y):
        k1 = f(t, y)
        k2 = f(t + h / 2, y + h / 2 * k1)
        k3 = f(t + h / 2, y + h / 2 * k2)
        k4 = f(t + h, y + h * k3)
        return y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)

    step = jax.checkpoint({"euler": euler, "rk4": rk4}[solver])
    final, _ = jax.lax.scan(lambda y, t: (step(t, y), None), xs, jnp.arange(num_steps, dtype=xs.dtype) * h)
    return final


def _jax_contender(loss, model, xs):
    """A callable running one jitted Adam step of `loss(model, xs)`, carrying model and state.

    The step is compiled and called as `deepest.train.fit` calls its own: over the array
    leaves of (model, state) (`deepest._array_leaves`), the same for every JAX contender, so
    that the comparison is of the compiled steps (through `eqx.filter_jit`, a SolverNet's
    larger tree cost ~0.04 ms a call more to split and rebuild than a bare field's, measured
    2026-12-05)."""
    optimiser = optax.adam(LEARNING_RATE)

    def step(trees, xs):
        model, state = trees
        value, grads = eqx.filter_value_and_grad(loss)(model, xs)
        updates, state = optimiser.update(grads, state, eqx.filter(model, eqx.is_inexact_array))
        return (eqx.apply_updates(model, updates), state), value

    layout, leaves = _array_leaves.split((model, optimiser.init(eqx.filter(model, eqx.is_inexact_array))))
    compiled = layout.jit(step)
    carried = {"leaves": leaves}

    def call():
        carried["leaves"], carried["loss"] = compiled(carried["leaves"], xs)
        jax.block_until_ready(carried["loss"])

    carried["model"] = lambda: layout.rebuild(carried["leaves"])[0]
    return call, carried


def mean_squared_final_state(final):
    """The benchmarks' loss, (1/B) Σ_b ‖y_b(T)‖², from the final states (B, state_dim)."""
    return jnp.mean(jnp.sum(final**2, axis=-1))


def _torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None and importlib.util.find_spec("torchdiffeq") is not None


def setting_label(solver: str, num_steps: int | None, batch_stepping: str = "per_sample") -> str:
    """A table's name for a discretisation: "euler, 10 steps", "tsit5, adaptive (rtol 0.001)
    per sample" or "… shared by the batch"."""
    if num_steps:
        return f"{solver}, {num_steps} steps"
    stepping = "per sample" if batch_stepping == "per_sample" else "shared by the batch"
    return f"{solver}, adaptive (rtol {RTOL:g}) {stepping}"


def _measure(field_name: str, solver: str, num_steps: int | None, batch_stepping: str, *, batch: int, rounds: int, block_seconds: float, torch: bool):
    """Median seconds per step of each contender, the solver steps each took, and the dtypes
    of their losses."""
    key_field, key_data = jax.random.split(jax.random.PRNGKey(0))
    field = make_field(field_name, key=key_field)
    xs = jax.random.normal(key_data, (batch, field.state_dim), dtype=jnp.float32)
    net = dp.SolverNet(field, solver=solver, num_steps=num_steps, rtol=RTOL, atol=ATOL, batch_stepping=batch_stepping)
    contenders, carried, steps = {}, {}, {}
    solver_net_loss = lambda net, xs: mean_squared_final_state(net.solve_batch(xs).ys[:, -1])
    contenders["SolverNet"], carried["SolverNet"] = _jax_contender(solver_net_loss, net, xs)
    if num_steps is not None:
        scan_loss = lambda field, xs: mean_squared_final_state(scan_final_states(field, xs, solver, num_steps))
        contenders["scan"], carried["scan"] = _jax_contender(scan_loss, field, xs)
    if torch:
        from ._torch_baseline import TorchdiffeqStep

        contenders["torchdiffeq"] = torch_step = TorchdiffeqStep(
            field.network, xs, method=_TORCH_METHODS[solver], num_steps=num_steps, learning_rate=LEARNING_RATE, rtol=RTOL, atol=ATOL
        )
    seconds = interleaved_medians(contenders, rounds=rounds, block_seconds=block_seconds)
    # Steps are counted after timing, on the trained weights. Per sample, each sample of an
    # adaptive solve has its own step size, and the vmapped loop runs until the slowest is done:
    # the batch costs the largest count. Shared (and torchdiffeq's) batch has one step size.
    solved = eqx.filter_jit(lambda net, xs: net.solve_batch(xs).stats["num_steps"])(carried["SolverNet"]["model"](), xs)
    steps["SolverNet"] = int(jnp.max(solved))
    # The dtype each contender's loss came out in: the comparison is float32 throughout.
    dtypes = {str(state["loss"].dtype) for state in carried.values()}
    if torch:
        steps["torchdiffeq"] = torch_step.steps()
        dtypes.add(str(torch_step.loss.dtype).removeprefix("torch."))
    return seconds, steps, dtypes


def run(*, quick: bool = False, repeats: int | None = None) -> Section:
    """Time every (field, discretisation) setting; one table row each."""
    torch = _torch_available()
    fields = QUICK_FIELDS if quick else tuple(FIELDS)
    settings = QUICK_SETTINGS if quick else SETTINGS
    batch = QUICK_BATCH if quick else BATCH
    rounds = repeats or (1 if quick else ROUNDS)
    block_seconds = 0.0 if quick else BLOCK_SECONDS
    judge = not quick
    rows, scan_ratios, torch_ratios, dtypes = [], [], {name: [] for name in fields}, set()
    for field_name in fields:
        for solver, num_steps, batch_stepping in settings:
            seconds, steps, loss_dtypes = _measure(
                field_name, solver, num_steps, batch_stepping, batch=batch, rounds=rounds, block_seconds=block_seconds, torch=torch
            )
            dtypes |= loss_dtypes
            label = setting_label(solver, num_steps, batch_stepping)
            # torchdiffeq targets are judged where SolverNet steps the batch as torchdiffeq does.
            judged = num_steps is not None or batch_stepping == "shared"
            scan_ratio = seconds["SolverNet"] / seconds["scan"] if "scan" in seconds else None
            torch_ratio = seconds["torchdiffeq"] / seconds["SolverNet"] if torch else None
            if scan_ratio is not None:
                scan_ratios.append((scan_ratio, f"{field_name}, {label}"))
            if torch_ratio is not None:
                torch_ratios[field_name].append((torch_ratio, label, judged))
            rows.append(
                (
                    field_name,
                    label,
                    milliseconds(seconds["SolverNet"]),
                    milliseconds(seconds["scan"]) if "scan" in seconds else "—",
                    f"{scan_ratio:.2f}" if scan_ratio is not None else "—",
                    verdict(scan_ratio <= SCAN_RATIO if judge and scan_ratio is not None else None),
                    milliseconds(seconds["torchdiffeq"]) if torch else "not installed",
                    f"{torch_ratio:.2f}" if torch else "—",
                    verdict(_beats_torch(field_name, torch_ratio) if judge and torch and judged else None),
                    " / ".join(str(steps[name]) for name in ("SolverNet", "torchdiffeq") if name in steps),
                )
            )
    targets = [_scan_target(scan_ratios, judge=judge)]
    targets += [_torch_target(name, torch_ratios[name], judge=judge, installed=torch) for name in fields]
    return Section(
        title="Training step",
        method=_method(batch, rounds, block_seconds, torch, dtypes),
        columns=(
            "field",
            "discretisation",
            "SolverNet (ms)",
            "scan + checkpoint (ms)",
            "SolverNet / scan",
            f"≤ {SCAN_RATIO}",
            "torchdiffeq (ms)",
            "torchdiffeq / SolverNet",
            f"≥ {TORCH_SPEEDUP['small']:g} small, > {TORCH_SPEEDUP['wide']:g} wide",
            "solver steps (SolverNet / torchdiffeq)",
        ),
        rows=tuple(rows),
        targets=tuple(targets),
    )


def _scan_target(ratios, *, judge: bool) -> Target:
    worst, where = max(ratios)
    return Target(
        f"training step ≤ {SCAN_RATIO}× the hand-written scan + checkpoint, every fixed-step setting",
        f"worst {worst:.2f}× ({where})",
        worst <= SCAN_RATIO if judge else None,
    )


def _beats_torch(field_name: str, ratio: float) -> bool:
    """torchdiffeq/SolverNet meets the field's target: ≥ the speed-up, or > 1 ("faster")."""
    goal = TORCH_SPEEDUP[field_name]
    return ratio >= goal if goal > 1 else ratio > goal


def _torch_target(field_name: str, ratios, *, judge: bool, installed: bool) -> Target:
    goal = TORCH_SPEEDUP[field_name]
    wording = f"≥ {goal}× faster than" if goal > 1 else "faster than"
    description = f"training step {wording} torchdiffeq, {field_name} field, every setting stepped as torchdiffeq steps (fixed, or adaptive shared by the batch)"
    if not installed:
        return Target(description, "torchdiffeq not installed", None)
    least, where = min((ratio, label) for ratio, label, judged in ratios if judged)
    others = "; ".join(f"{label}: {ratio:.2f}×, not judged" for ratio, label, judged in ratios if not judged)
    measured = f"least {least:.2f}× ({where})" + (f"; {others}" if others else "")
    return Target(description, measured, _beats_torch(field_name, least) if judge else None)


def _method(batch: int, rounds: int, block_seconds: float, torch: bool, dtypes: set[str]) -> str:
    threads = ""
    if torch:
        from ._torch_baseline import threads as torch_threads

        threads = f" torch uses {torch_threads()} intra-op threads; XLA its own pool."
    return (
        f"One Adam step (value and gradient of L = mean ‖y(T)‖², T = 1) on a batch of {batch}, "
        f"losses computed in {', '.join(sorted(dtypes))}, "
        f"median of {rounds} interleaved rounds, each timing a block of calls lasting about "
        f"{block_seconds:g} s after one untimed call; the models train on from step to step. "
        "Fields: small 2 → 64 → 64 → 2, wide 64 → 128 → 64, tanh. SolverNet is `net.solve_batch(xs)` as "
        "`deepest.train` calls it (default adjoint recursive_checkpoint; `jax.vmap(net.solve)` unless the steps are shared), "
        "each JAX step compiled and called as `deepest.train.fit` calls its own, over the array leaves of model and Adam state; "
        "scan is a hand-written `lax.scan` over "
        "a `jax.checkpoint`ed Euler or classical RK4 step, fixed steps only; "
        "torchdiffeq runs `odeint` eagerly, backpropagating through the solver, on the same weights "
        "and grid (its `rk4` is the 3/8 rule, four evaluations per step like classical RK4). "
        "Adaptive rows compare diffrax's Tsit5 with torchdiffeq's dopri5 (both 5(4) pairs, 7 stages, "
        f"FSAL; rtol {RTOL:g}, atol {ATOL:g}): not the same method. Per sample (SolverNet's default), each "
        "sample has its own step sizes under vmap and the batch costs its largest step count (shown); shared by "
        'the batch (`batch_stepping="shared"`), SolverNet steps the batch as one system with one size and an '
        "RMS error norm over the batch, as torchdiffeq does. The torchdiffeq targets are judged on the fixed-step and "
        "shared rows. The solver steps column counts attempted steps after timing."
        f"{threads}"
    )
