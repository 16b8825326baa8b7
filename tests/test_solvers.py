"""Named solvers: lookup, errors, and measured convergence order against exact solutions."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import deepest as dp
from deepest.solvers import PARTITIONED

DESIGN_NAMES = (
    "euler midpoint heun ralston rk3 rk4 bosh3 tsit5 dopri5 dopri8 implicit_euler kvaerno3 kvaerno5 "
    "semi_implicit_euler leapfrog_midpoint reversible_heun lm_resnet"
).split()


def test_solver_names_are_the_documented_ones():
    assert list(dp.SOLVERS) == DESIGN_NAMES
    for name in dp.SOLVERS:
        assert isinstance(dp.solver(name), diffrax.AbstractSolver)


def test_unknown_solver_lists_valid_names():
    with pytest.raises(ValueError, match=r"Unknown solver 'rk45'.*euler.*reversible_heun"):
        dp.solver("rk45")


def test_adaptive_support_follows_error_estimates():
    assert not dp.supports_adaptive("euler")
    assert not dp.supports_adaptive("rk4")  # classical RK4 has no embedded method
    assert not dp.supports_adaptive("leapfrog_midpoint")
    assert dp.supports_adaptive("tsit5") and dp.supports_adaptive("kvaerno5") and dp.supports_adaptive("heun")


# Problems with exact solutions:
# - "growth": y' = ω cos(ωt) y, y(0) = 1, so y = exp(sin ωt) — nonlinear in t, non-autonomous;
# - "oscillator": q' = p, p' = −q, (q, p)(0) = (1, 0), so (q, p) = (cos t, −sin t).
# The error is the largest over all steps. Each solver gets step counts in its asymptotic
# regime and above roundoff (errors ~1e-3 … 1e-12). tsit5 and dopri5 minimise their
# fifth-order error constants, so on "growth" the sixth-order terms still dominate at errors
# of 1e-12 (slopes 5.3–5.6); the oscillator over T = 10 reaches their asymptotic regime.
ORDER_SETUPS = {
    "euler": ("growth", 1.0, [64, 128, 256, 512]),
    "midpoint": ("growth", 1.0, [32, 64, 128, 256]),
    "heun": ("growth", 1.0, [32, 64, 128, 256]),
    "ralston": ("growth", 1.0, [32, 64, 128, 256]),
    "rk3": ("growth", 1.0, [16, 32, 64, 128]),
    "rk4": ("growth", 1.0, [16, 32, 64, 128]),
    "bosh3": ("growth", 1.0, [16, 32, 64, 128]),
    "tsit5": ("oscillator", None, [100, 200, 400, 800]),
    "dopri5": ("oscillator", None, [100, 200, 400, 800]),
    "dopri8": ("growth", 3.0, [4, 8, 16, 32]),
    "implicit_euler": ("growth", 1.0, [64, 128, 256, 512]),
    "kvaerno3": ("growth", 1.0, [16, 32, 64, 128]),
    "kvaerno5": ("growth", 1.0, [8, 16, 32, 64]),
    "semi_implicit_euler": ("oscillator", None, [64, 128, 256, 512]),
    "leapfrog_midpoint": ("growth", 1.0, [32, 64, 128, 256]),
    "reversible_heun": ("growth", 1.0, [32, 64, 128, 256]),
    "lm_resnet": ("growth", 1.0, [64, 128, 256, 512]),  # default k = 0: explicit Euler
}


def _max_error(name, problem, frequency, num_steps):
    method = dp.solver(name, root_rtol=1e-10, root_atol=1e-10)
    final_time = 10.0 if problem == "oscillator" else 2.0
    options = dict(
        t0=0.0,
        t1=final_time,
        dt0=None,
        max_steps=num_steps,
        saveat=diffrax.SaveAt(steps=True),
        stepsize_controller=diffrax.StepTo(ts=jnp.linspace(0.0, final_time, num_steps + 1)),
    )
    if problem == "growth":
        term = diffrax.ODETerm(lambda t, y, args: frequency * jnp.cos(frequency * t) * y)
        solution = diffrax.diffeqsolve(term, method, y0=jnp.array(1.0), **options)
        return float(jnp.max(jnp.abs(solution.ys - jnp.exp(jnp.sin(frequency * solution.ts)))))
    if name in PARTITIONED:
        terms = (diffrax.ODETerm(lambda t, p, args: p), diffrax.ODETerm(lambda t, q, args: -q))
        solution = diffrax.diffeqsolve(terms, method, y0=(jnp.array(1.0), jnp.array(0.0)), **options)
        q, p = solution.ys
    else:
        term = diffrax.ODETerm(lambda t, y, args: jnp.array([y[1], -y[0]]))
        solution = diffrax.diffeqsolve(term, method, y0=jnp.array([1.0, 0.0]), **options)
        q, p = solution.ys[:, 0], solution.ys[:, 1]
    return float(jnp.max(jnp.hypot(q - jnp.cos(solution.ts), p + jnp.sin(solution.ts))))


@pytest.mark.parametrize("name", DESIGN_NAMES)
def test_measured_convergence_order(name):
    order = dp.solver(name).order(None)
    problem, frequency, steps = ORDER_SETUPS[name]
    errors = np.array([_max_error(name, problem, frequency, n) for n in steps])
    slope = -np.polyfit(np.log(steps), np.log(errors), 1)[0]
    # ±0.2 as the issue asks: a wrong order is off by ≥ 1; the setups above bend by < 0.1.
    assert slope == pytest.approx(order, abs=0.2), (errors, slope)


class _CountingRotation(dp.fields.AbstractSeparableField):
    """q' = 3p, p' = −3q, counting its evaluations (the q half runs once per evaluation)."""

    state_dim: int = 2

    def position_rate(self, t, p, args=None):
        jax.debug.callback(_EVALUATIONS.append, 1)
        return 3.0 * p

    def momentum_rate(self, t, q, args=None):
        return -3.0 * q


_EVALUATIONS = []


@pytest.mark.parametrize("name", [name for name in dp.SOLVERS if name not in ("implicit_euler", "kvaerno3", "kvaerno5")])
def test_function_evaluations_count_what_the_solver_evaluates(name):
    for num_steps in (5, None) if dp.supports_adaptive(name) else (5,):
        _EVALUATIONS.clear()
        net = dp.SolverNet(_CountingRotation(), solver=name, num_steps=num_steps, rtol=1e-5, atol=1e-7)
        solution = net.solve(jnp.array([1.0, 0.0]))
        jax.effects_barrier()
        expected = dp.solvers.function_evaluations(name, int(solution.stats["num_steps"]))
        if num_steps:
            assert len(_EVALUATIONS) == expected
        else:  # diffrax's choice of the first adaptive step may evaluate f up to twice more
            assert expected <= len(_EVALUATIONS) <= expected + 2
    assert np.isnan(dp.solvers.function_evaluations("kvaerno5", 3))


# One step of h = 1 on y' = diag(hλ) y from y = 1: each component is one scalar step, so y_1 = R(hλ),
# the stiff components beside a mild one as in a net whose field mixes time scales. An absolute
# test on the stage residual failed Kvaerno3 and 5 from hλ = −1e6 at the default root tolerances
# (1e-6) and from −1e4 at 1e-10, implicit Euler at −1e8 at 1e-10, on values that were right. The test runs at 1e-12: the chord iterates
# do not depend on the tolerance, and a looser one stops on the same iterate or an earlier one.
# One diagonal solve, not a vmap over hλ: batched, XLA sums a Kvaerno step's y_0 + Σ b_i k_i in
# another order than its stage sums, and at hλ = −1e8 R then loses 2e-3 (Kvaerno5) to 4e-2
# (Kvaerno3) relative, an absolute 2e-10 … 1e-9 beside a state of size 1.
STIFF_H_LAMBDA = np.array([-1.0, -1e2, -1e4, -1e6, -1e8])


@pytest.mark.parametrize("name", ["implicit_euler", "kvaerno3", "kvaerno5"])
def test_one_implicit_step_is_stability_function_at_stiff_h_lambda(name):
    field = dp.fields.Linear(jnp.diag(STIFF_H_LAMBDA))
    net = dp.SolverNet(field, solver=name, t1=1.0, num_steps=1, throw=False, root_rtol=1e-12, root_atol=1e-12)
    solution = net.solve(jnp.ones(len(STIFF_H_LAMBDA)))
    assert solution.result == diffrax.RESULTS.successful, solution.result
    expected = dp.stability.stability_function(name)(STIFF_H_LAMBDA.astype(complex)).real
    # 1e-6 relative, as the issue asks. At hλ = −1e8 the stage increments (≈ |hλ|) cancel to
    # R ≈ 1e-8 … 7e-8, and their rounding leaves 4e-9 … 2e-8 relative (measured). The chord's
    # Jacobian is exact for a linear field, so one iteration solves a stage to rounding and the
    # root tolerance does not enter the value.
    np.testing.assert_allclose(solution.ys[-1], expected, rtol=1e-6)
