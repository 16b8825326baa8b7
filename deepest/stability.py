"""Linear stability theory of every exposed solver, computed from its definition.

On the test problem y' = λy a solver with step h multiplies its state by a matrix M(z),
z = hλ, once per step. Its *characteristic polynomial* π(μ; z) = det(μI − M(z)) decides
everything: the growth factor is the largest root modulus, and the method is stable at z when
every root has |μ| ≤ 1 and those on the unit circle are simple (the root condition).

- One-step Runge–Kutta methods (tableau A, b): M is the scalar
  R(z) = 1 + z bᵀ(I − zA)⁻¹𝟙 = det(I − zA + z𝟙bᵀ) / det(I − zA) = P(z)/Q(z),
  so π(μ; z) = Q(z)μ − P(z). P and Q are computed from the tableau of `deepest.solvers`.
- `leapfrog_midpoint`, on (y_{n−1}, y_n): y_{n+1} = y_{n−1} + 2z y_n, so π = μ² − 2zμ − 1.
- `reversible_heun`, on (y_n, ŷ_n): ŷ_{n+1} = 2y_n − ŷ_n + zŷ_n and
  y_{n+1} = y_n + (z/2)(ŷ_n + ŷ_{n+1}); again π = μ² − 2zμ − 1.
- `lm_resnet` with weight k, on (y_{n−1}, y_n): y_{n+1} = k y_{n−1} + (1 − k + z) y_n, so
  π = μ² − (1 − k + z)μ − k. At z = 0 the roots are 1 and −k: zero-stable iff −1 < k ≤ 1
  (`is_zero_stable`). On the real axis π(−1; z) = 2 − 2k + z, so a root leaves through
  μ = −1 at z = −2(1 − k): the real-axis limit (−2 at k = 0, Euler). On the imaginary axis
  the principal root is μ = 1 + z/(1 + k) + kz²/(1 + k)³ + O(z³), so |μ|² = 1 +
  y²(1 − k)/(1 + k)³ + O(y³) at z = iy: no imaginary interval for k < 1, while at k = 1 π is
  leapfrog's with z/2 in place of z, stable on the open segment (−2i, 2i).
- `semi_implicit_euler` acts on partitioned systems q' = a p, p' = b q, whose eigenvalues are
  ±λ with λ² = ab. Here z means hλ: one step is q ← q + h a p, p ← p + h b q, and
  π = μ² − (2 + z²)μ + 1 depends on z² = h²ab only (not on how λ² splits into a and b).
  So z = iω h for the linear oscillator of frequency ω, and bounded iff hω < 2.

Growth that is the discretisation's, not the dynamics': the exact flow multiplies a mode by
e^z per step, so the solver's *amplification ratio* growth(z)/|e^z| says how faithfully it
integrates that mode (1: exactly), and `classify` sorts each z into the flow's own growth
(Re z > 0), the solver's instability where the flow does not grow (the discretisation's
fault), over-damping, or both stable. The *order star* {z : |R(z)| > |e^z|} (Wanner, Hairer &
Nørsett, BIT 18, 1978; Hairer, Nørsett & Wanner I, §IV.4) is where the solver amplifies more
than the flow.

Solvers with parameters take them as keyword options, the same ones `deepest.solver`
takes: `growth_factor("lm_resnet", z, k=0.5)`. Every other solver takes none.

References: Hairer & Wanner, Solving ODEs II (1996), IV.2–IV.3 (stability functions);
Hairer, Nørsett & Wanner, Solving ODEs I (1993), III.3 (root condition, boundary locus);
Kidger et al., "Efficient and accurate gradients for neural SDEs" (2021, arXiv:2105.13493),
for reversible Heun; Lu, Zhong, Li & Dong, "Beyond finite layer neural networks" (2018,
arXiv:1710.10121), for LM-ResNet.
"""

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from numpy.polynomial import polynomial as poly

from . import _caches
from .solvers import butcher_tableau, check_solver_options

# Step matrices of the two-step methods on the test problem, entry by entry as polynomials in z
# (coefficients in ascending powers), as functions of the solver's options; see the module
# docstring for where each row comes from.
_STEP_MATRICES: dict[str, Callable[..., tuple]] = {
    "leapfrog_midpoint": lambda: (((0.0,), (1.0,)), ((1.0,), (0.0, 2.0))),
    "reversible_heun": lambda: (((1.0, 1.0), (0.0, 0.0, 0.5)), ((2.0,), (-1.0, 1.0))),
    # The symmetric split a = b = λ; the characteristic polynomial depends on z² only.
    "semi_implicit_euler": lambda: (((1.0,), (0.0, 1.0)), ((0.0, 1.0), (1.0, 0.0, 1.0))),
    "lm_resnet": lambda k: (((0.0,), (1.0,)), ((k,), (1.0 - k, 1.0))),
}


@dataclasses.dataclass(frozen=True)
class CharacteristicPolynomial:
    """π(μ; z) = Σ_j Σ_k coefficients[j, k] z^k μ^j; μ-degree 1 for one-step methods."""

    coefficients: np.ndarray

    @property
    def degree(self) -> int:
        return self.coefficients.shape[0] - 1


def _numerator_denominator(name: str) -> tuple[np.ndarray, np.ndarray]:
    """P and Q of R = P/Q, as ascending coefficient arrays, from the Butcher tableau."""
    tableau = butcher_tableau(name)
    if tableau.explicit:
        # R(z) = Σ_k (bᵀ A^{k−1} 𝟙) z^k exactly, since A is nilpotent.
        terms, stage = [1.0], np.ones(len(tableau.b))
        for _ in range(len(tableau.b)):
            terms.append(float(tableau.b @ stage))
            stage = tableau.A @ stage
        return np.trim_zeros(np.array(terms), "b"), np.ones(1)
    # det(I − zX) = Σ_k c_k z^k where (c_0, c_1, ...) are np.poly(X): det(λI − X) = Σ c_k λ^{s−k}.
    shifted = tableau.A - np.outer(np.ones(len(tableau.b)), tableau.b)
    return np.poly(shifted), np.poly(tableau.A)


def characteristic_polynomial(name: str, **options) -> CharacteristicPolynomial:
    """π(μ; z) of the solver `name` on the linear test problem (see the module docstring).

    Example:
        >>> characteristic_polynomial("lm_resnet", k=0.5).coefficients.tolist()  # rows: μ⁰, μ¹, μ²
        [[-0.5, 0.0], [-0.5, -1.0], [1.0, 0.0]]
    """
    return _characteristic_polynomial(name, check_solver_options(name, options))


@_caches.lru_cache(maxsize=None)
def _characteristic_polynomial(name: str, options: tuple[tuple[str, float], ...]) -> CharacteristicPolynomial:
    if name in _STEP_MATRICES:
        (m00, m01), (m10, m11) = _STEP_MATRICES[name](**dict(options))
        trace = poly.polyadd(m00, m11)
        determinant = poly.polysub(poly.polymul(m00, m11), poly.polymul(m01, m10))
        rows = [determinant, -trace, np.ones(1)]
    else:
        numerator, denominator = _numerator_denominator(name)
        rows = [-numerator, denominator]
    width = max(len(row) for row in rows)
    return CharacteristicPolynomial(np.array([np.pad(row, (0, width - len(row))) for row in rows]))


def stability_polynomial(name: str) -> np.ndarray:
    """Coefficients (ascending powers of z) of R(z) for an explicit Runge–Kutta method.

    Coefficient k equals 1/k! for k ≤ the method's order.
    """
    numerator, denominator = _numerator_denominator(name)
    if len(denominator) > 1:
        raise ValueError(f"{name!r} is implicit: R(z) is rational; use stability_function({name!r}).")
    return numerator


def stability_function(name: str) -> Callable:
    """R(z) = 1 + z bᵀ(I − zA)⁻¹𝟙 of a one-step Runge–Kutta method, evaluated as P(z)/Q(z).

    Returns a function of a complex array (numpy or jax; works under jit).

    Example:
        >>> R = deepest.stability.stability_function("euler")
        >>> R(-0.5)   # 1 + z
        0.5
    """
    if name in _STEP_MATRICES:
        raise ValueError(
            f"{name!r} is a two-step or partitioned method with no single R(z); "
            f"use growth_factor({name!r}, z) or characteristic_polynomial({name!r})."
        )
    numerator, denominator = _numerator_denominator(name)

    def R(z):
        xp = jnp if _is_jax(z) else np
        return xp.polyval(numerator[::-1], z) / xp.polyval(denominator[::-1], z)

    return R


def _is_jax(z) -> bool:
    return isinstance(z, jax.Array)


def _as_complex(z, xp):
    """z as a complex array of at least complex64 precision (complex128 for float64 input)."""
    z = xp.asarray(z)
    return z.astype(xp.result_type(z.dtype, xp.complex64))


def _roots(name: str, z, options: dict):
    """The roots μ of π(μ; z), shape z.shape + (degree,). NumPy in, NumPy out; JAX likewise."""
    xp = jnp if _is_jax(z) else np
    z = _as_complex(z, xp)
    coefficients = characteristic_polynomial(name, **options).coefficients
    c = [xp.polyval(row[::-1].astype(z.dtype), z) for row in coefficients]
    if len(c) == 2:
        return (-c[0] / c[1])[..., None]
    # Quadratic c2 μ² + c1 μ + c0: the cancellation-free pair q/c2, c0/q.
    c0, c1, c2 = c
    root = xp.sqrt(c1 * c1 - 4 * c2 * c0)
    q = -0.5 * xp.where(xp.abs(c1 + root) >= xp.abs(c1 - root), c1 + root, c1 - root)
    # q = 0 only when c1 = c0 = 0: both roots are 0 (e.g. lm_resnet at k = 0, z = −1).
    vanishing = q == 0
    other = xp.where(vanishing, 0, c0 / xp.where(vanishing, 1, q))
    return xp.stack([q / c2, other], axis=-1)


def growth_factor(name: str, z, **options):
    """Per-step amplification on the linear test problem: max |μ| over the roots of π(μ; z).

    For one-step methods this is |R(z)|; see the module docstring for what z means for
    `semi_implicit_euler`. Accepts NumPy or JAX arrays (jit-compatible). `options` are the
    solver's own, e.g. `growth_factor("lm_resnet", z, k=0.5)`.
    """
    return abs(_roots(name, z, options)).max(axis=-1)


def amplification_ratio(name: str, z, **options):
    """growth_factor(z) / |e^z|: the solver's per-step amplification of the mode z = hλ over
    the exact flow's, e^{Re z}. 1 where the solver integrates the mode exactly, > 1 where it
    amplifies more than the flow, < 1 where it damps more. Computed as exp(ln growth − Re z),
    never dividing by a flow factor that underflows to 0 (a stiff mode's ratio is large, inf
    beyond the floating-point range, not NaN); 0 where growth is 0. NumPy or JAX in, the same
    out; `options` as for `growth_factor`."""
    xp = jnp if _is_jax(z) else np
    z = _as_complex(z, xp)
    with np.errstate(divide="ignore", invalid="ignore"):  # ln 0 = −inf: a ratio of 0; NaN z: NaN
        return xp.exp(xp.log(growth_factor(name, z, **options)) - z.real)


def in_order_star(name: str, z, **options):
    """Whether z lies in the order star {z : growth(z) > |e^z|} (Hairer, Nørsett & Wanner I,
    §IV.4): where the solver amplifies the mode more than the exact flow does."""
    return amplification_ratio(name, z, **options) > 1


# Eigenvalue classes of `classify`, in the order of its codes.
CLASSES = ("both stable", "dynamically growing", "numerically unstable", "over-damped")
# A mode counts as over-damped where the solver keeps at most this share of what the flow
# keeps per step (|R(z)| ≤ OVERDAMPED_RATIO · |e^z|): it loses half of the mode's amplitude
# per step relative to the ODE: e.g. implicit Euler on the imaginary axis beyond |z| = √3, or
# Euler at z = −1, where R(z) = 0 erases a mode that the flow keeps as e^{−1} ≈ 0.37.
OVERDAMPED_RATIO = 0.5


def classify(name: str, z, **options):
    """The class of each z = hλ, as an integer code into `CLASSES` (−1 for NaN):

    0 both stable: Re z ≤ 0, the solver stable at z, and not over-damped.
    1 dynamically growing: Re z > 0, the ODE's own growth, whatever the solver does.
    2 numerically unstable: Re z ≤ 0 but the solver unstable at z (`is_stable`: its
      growth exceeds 1): the discretisation's fault.
    3 over-damped: Re z ≤ 0, the solver stable, but |R| ≤ OVERDAMPED_RATIO · |e^z|.

    "Re z > 0" allows the rounding `is_stable` allows, 100ε of z's precision: a computed
    eigenvalue of a skew-symmetric or Hamiltonian Jacobian has Re z of order ±ε‖hJ‖, and an
    explicit solver that grows such a mode is to blame, not a flow that is neutral there.

    NumPy or JAX in, the same out; `options` as for `growth_factor`.
    """
    xp = jnp if _is_jax(z) else np
    z = _as_complex(z, xp)
    growing = z.real > 100 * xp.finfo(z.real.dtype).eps
    with np.errstate(invalid="ignore"):  # NaN z, coded −1 below
        unstable = ~is_stable(name, z, **options) & ~growing
        over_damped = (amplification_ratio(name, z, **options) <= OVERDAMPED_RATIO) & ~growing & ~unstable
    codes = xp.where(growing, 1, xp.where(unstable, 2, xp.where(over_damped, 3, 0)))
    return xp.where(xp.isfinite(z), codes, -1)


def is_stable(name: str, z, **options):
    """Whether the solver is stable at z = hλ: its step matrix stays bounded under powers.

    That is the root condition: every root |μ| ≤ 1, and a root on the unit circle must be
    semisimple (a double root of a 2×2 step matrix M is, iff M = μI; otherwise M is a Jordan
    block and grows linearly). Rounding tolerances scale with the dtype's ε: |μ| ≤ 1 + 100ε,
    and roots on the circle closer than 10√ε count as one double root. `options` as for
    `growth_factor`.
    """
    roots = _roots(name, z, options)
    xp = jnp if _is_jax(roots) else np
    eps = xp.finfo(roots.dtype).eps
    modulus = abs(roots)
    stable = (modulus <= 1 + 100 * eps).all(axis=-1)
    if roots.shape[-1] == 1:
        return stable
    on_circle = (modulus >= 1 - 100 * eps).all(axis=-1)
    repeated = abs(roots[..., 0] - roots[..., 1]) <= 10 * xp.sqrt(eps)
    deviation = _step_matrix(name, z, options) - roots[..., :1, None] * xp.eye(2)
    defective = abs(deviation).max(axis=(-2, -1)) > 10 * xp.sqrt(eps)
    return stable & ~(on_circle & repeated & defective)


def _step_matrix(name: str, z, options: dict):
    """M(z) of a two-step method, shape z.shape + (2, 2)."""
    xp = jnp if _is_jax(z) else np
    z = _as_complex(z, xp)
    entries = _STEP_MATRICES[name](**dict(check_solver_options(name, options)))
    rows = [xp.stack([xp.polyval(np.array(entry[::-1]), z) for entry in row], axis=-1) for row in entries]
    return xp.stack(rows, axis=-2)


def is_zero_stable(name: str, **options) -> bool:
    """Whether the solver satisfies the root condition at z = 0 (h → 0 on any problem).

    Every one-step method is (R(0) = 1); `lm_resnet` is iff −1 < k ≤ 1. Without it the
    numerical solution of y' = 0 can grow (at k = −1 linearly, beyond geometrically) and
    the method does not converge. Tolerances as in `is_stable`.

    Example:
        >>> is_zero_stable("lm_resnet", k=1.0), is_zero_stable("lm_resnet", k=-1.0)
        (True, False)
    """
    return bool(is_stable(name, np.complex128(0.0), **options))


def real_axis_limit(name: str, **options) -> float:
    """The left end x < 0 of the stable real interval [x, 0]; −inf if the whole axis is stable.

    0.0 if no interval (also when the method is not zero-stable). `options` as for
    `growth_factor`: `real_axis_limit("lm_resnet", k=k)` is −2(1 − k).
    """
    limit = _axis_limit(name, -1.0, options)
    return -limit if limit else 0.0


def imaginary_axis_limit(name: str, **options) -> float:
    """The largest y with [0, iy] stable: 0.0 if only the origin, inf for the whole axis."""
    return _axis_limit(name, 1j, options)


def _axis_limit(name: str, direction: complex, options: dict) -> float:
    """sup{r ≥ 0 : z = s·direction is stable for all s ∈ [0, r]}."""
    if characteristic_polynomial(name, **options).degree > 1:
        return _scanned_axis_limit(name, direction, options)
    # |R| − 1 keeps its sign between crossings: one probe per interval decides it.
    edges = [0.0, *_one_step_crossings(name, direction)]
    probes = [(a + b) / 2 for a, b in zip(edges, edges[1:])] + [2 * edges[-1] + 1]
    for left, probe in zip(edges, probes):
        if not is_stable(name, np.complex128(probe * direction)):
            return left
    return float("inf")


def _one_step_crossings(name: str, direction: complex) -> list[float]:
    """Positive r where |R(r·direction)| = 1: the real roots of E(r) = |P|² − |Q|²."""
    numerator, denominator = _numerator_denominator(name)

    def squared_modulus(coefficients):
        along_ray = coefficients * direction ** np.arange(len(coefficients))
        return poly.polymul(along_ray, along_ray.conj()).real

    excess = poly.polysub(squared_modulus(numerator), squared_modulus(denominator))
    # An order-p method has |R(iy)|² − 1 = O(y^{p+1}) exactly, but a float tableau meets its
    # order conditions only to ~1e-16: the lowest coefficients of E are then rounding noise
    # (the first genuine one, 2(R_{p+1} − 1/(p+1)!), is 5.9e-8 for dopri8 and larger for the
    # others), and left in they scatter spurious roots around 0.
    noise = np.cumsum(np.abs(excess) > 1e-12) == 0
    excess = np.trim_zeros(np.where(noise, 0.0, excess), "b")
    roots = poly.polyroots(excess) if len(excess) > 1 else np.array([])
    real = roots[np.abs(roots.imag) <= 1e-9 * np.maximum(1, np.abs(roots))].real
    real = real[real > 1e-12]
    slope = poly.polyder(excess)
    for _ in range(3):  # Newton polish: companion-matrix roots are off by a few ulps
        real = real - poly.polyval(real, excess) / poly.polyval(real, slope)
    return sorted(float(r) for r in real)


def _scanned_axis_limit(name: str, direction: complex, options: dict) -> float:
    """First loss of stability along a ray, by scanning then bisecting (two-step methods).

    Their stable sets can lie on the preimage of the unit circle itself (leapfrog: the segment
    (−i, i)), where no sign change exists to root-find on. The scan steps 1e-3 up to 10 and
    geometrically to 1e4; an instability at r = 0 (a method that is not zero-stable) or
    before r = 1e-3 is reported at 0.
    """
    if not is_stable(name, np.complex128(0.0), **options):
        return 0.0
    radii = np.concatenate([np.linspace(0, 10, 10001)[1:], np.geomspace(10, 1e4, 3001)[1:]])
    stable = is_stable(name, radii * direction, **options)
    if stable.all():
        return float("inf")
    first = int(np.argmin(stable))
    if first == 0:
        return 0.0
    low, high = radii[first - 1], radii[first]
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if is_stable(name, np.complex128(middle * direction), **options) else (low, middle)
    return float(low)


def boundary_locus(name: str, num_points: int = 1024, **options) -> np.ndarray:
    """Points z with a root μ = e^{iθ} of π(μ; z), for θ on a uniform grid of [0, 2π).

    For one-step methods these are exactly the boundary of {|R(z)| ≤ 1}; for two-step
    methods the locus contains the boundary (for `lm_resnet`, z(θ) = e^{iθ} − (1 − k) −
    k e^{−iθ}). Returns shape (num_points, branches): column b follows one root continuously
    in θ (nearest-neighbour matching), ready for `plot`. `options` as for `growth_factor`.
    """
    coefficients = characteristic_polynomial(name, **options).coefficients
    powers = np.exp(1j * np.outer(np.linspace(0, 2 * np.pi, num_points, endpoint=False), np.arange(len(coefficients))))
    in_z = powers @ coefficients  # row θ: coefficients of the polynomial in z
    branches = in_z.shape[1] - 1
    locus = np.full((num_points, branches), np.nan + 0j)
    for i, row in enumerate(in_z):
        roots = poly.polyroots(np.trim_zeros(row, "b"))
        if i > 0 and len(roots) == branches:
            order: list[int] = []
            for previous in locus[i - 1]:
                distance = np.abs(roots - previous)
                distance[order] = np.inf
                order.append(int(np.argmin(distance)))
            roots = roots[order]
        locus[i, : len(roots)] = roots
    return locus
