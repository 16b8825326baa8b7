"""The stability report: spectra, gradients, isometry and Lyapunov exponents of one net.

One call ties the analyses together for a trained net and a batch of data, so that the
solver's stability region, the field's eigenvalues and what backpropagation does can be
read side by side (and written to a run's summary.json by the experiment runner).

Its headline is the share of *numerically unstable* h·λ: modes the exact flow does not grow
(Re λ ≤ 0) but the solver does. The share *outside the region* answers another question
(does the layer map contract?) and counts the ODE's own growth (Re λ > 0) too: a net whose
field grows is outside every region in the left half-plane however faithfully it is
integrated, which the amplification ratio |R(hλ)|/|e^{hλ}| (≈ 1) then shows.
"""

import dataclasses

import jax.numpy as jnp
import numpy as np

from ..network import SolverNet
from ..solvers import MULTISTEP, describe_solver
from ..stability import CLASSES
from .gradients import REGIME_FACTOR, GradientNorms, InputOutputSpectrum, gradient_norms, io_jacobian_singular_values
from .spectra import JacobianSpectrum, jacobian_spectrum


@dataclasses.dataclass(frozen=True)
class StabilityReport:
    """The analyses of one net on one batch, and the headline numbers drawn from them.

    Fields:
        spectrum: h·λ of ∂f/∂y along every layer (`jacobian_spectrum`).
        gradients: ‖∂L/∂y_k‖ per layer (`gradient_norms`); None if not asked for, or for
            two-step solvers.
        io: singular values of ∂y_L/∂y_0 (`io_jacobian_singular_values`), whence the
            finite-time Lyapunov exponents (1/T) ln σ_i of each sample; None if not asked for.
        regime_factor: the gradient change across depth beyond which the profile counts as
            vanishing or exploding (`GradientNorms.regime`; default `REGIME_FACTOR`).
    """

    spectrum: JacobianSpectrum
    gradients: GradientNorms | None
    io: InputOutputSpectrum | None
    regime_factor: float = REGIME_FACTOR

    @property
    def fraction_numerically_unstable(self) -> float:
        """Share of all h·λ where the solver grows a mode that the flow does not (Re λ ≤ 0,
        outside the region): the discretisation's own instability, the report's headline."""
        return float(self.spectrum.fraction_numerically_unstable)

    @property
    def fraction_numerically_unstable_per_layer(self) -> np.ndarray:
        classes = np.asarray(self.spectrum.classes)
        unstable = np.sum(classes == CLASSES.index("numerically unstable"), axis=(0, 2))
        return unstable / np.maximum(np.sum(classes >= 0, axis=(0, 2)), 1)

    @property
    def amplification_ratio_range(self) -> tuple[float, float, float]:
        """(min, median, max) over all finite h·λ of growth(hλ)/|e^{hλ}|: how much more (> 1)
        or less (< 1) than the exact flow the solver amplifies each mode per step."""
        ratio = np.asarray(self.spectrum.amplification_ratio)
        ratio = ratio[np.isfinite(np.asarray(self.spectrum.eigenvalues))]
        if ratio.size == 0:  # a diverged net: no finite eigenvalue
            return (np.nan, np.nan, np.nan)
        return (float(np.min(ratio)), float(np.median(ratio)), float(np.max(ratio)))

    @property
    def fraction_outside(self) -> float:
        """Share of all h·λ outside the solver's stability region: where the layer map does not
        contract, whether the flow grows there (Re λ > 0) or the discretisation does."""
        return float(self.spectrum.fraction_outside)

    @property
    def fraction_outside_per_layer(self) -> np.ndarray:
        return np.asarray(self.spectrum.fraction_outside_per_layer)

    @property
    def max_growth(self) -> float:
        """The largest per-step growth factor of the solver at any h·λ (NaN if diverged)."""
        return float(jnp.nanmax(self.spectrum.growth))

    @property
    def max_growth_per_layer(self) -> np.ndarray:
        return np.asarray(jnp.nanmax(self.spectrum.growth, axis=(0, 2)))

    @property
    def max_log_norm(self) -> float:
        """max over samples and layers of μ₂(∂f/∂y)."""
        return float(np.max(self.spectrum.log_norm))

    @property
    def gradient_regime(self) -> str | None:
        return None if self.gradients is None else self.gradients.regime(self.regime_factor)

    @property
    def top_lyapunov(self) -> float | None:
        """Mean over samples of the top finite-time Lyapunov exponent (1/T) ln σ_max(∂y_L/∂y_0),
        per unit depth: the rate at which the net stretches its worst input perturbation."""
        return None if self.io is None else float(np.mean(np.asarray(self.io.lyapunov_exponents)[:, 0]))

    def to_dict(self) -> dict:
        """Headline numbers as plain Python values, NaN where a diverged net has none (a run
        directory writes them as null: `deepest.experiment.rundir.json_ready`)."""
        ratios = self.amplification_ratio_range
        return {
            "solver": self.spectrum.solver,
            "solver_options": dict(self.spectrum.solver_options),
            "step_size": self.spectrum.step_size,
            "num_layers": int(self.spectrum.eigenvalues.shape[1]),
            "fraction_numerically_unstable": self.fraction_numerically_unstable,
            "fraction_numerically_unstable_per_layer": self.fraction_numerically_unstable_per_layer.tolist(),
            "fraction_dynamically_growing": float(self.spectrum.fraction_in("dynamically growing")),
            "fraction_over_damped": float(self.spectrum.fraction_in("over-damped")),
            "min_amplification_ratio": ratios[0],
            "median_amplification_ratio": ratios[1],
            "max_amplification_ratio": ratios[2],
            "fraction_outside": self.fraction_outside,
            "fraction_outside_per_layer": self.fraction_outside_per_layer.tolist(),
            "max_growth": self.max_growth,
            "max_growth_per_layer": self.max_growth_per_layer.tolist(),
            "max_spectral_abscissa": float(jnp.nanmax(self.spectrum.spectral_abscissa)),
            "max_log_norm": self.max_log_norm,
            "gradient_slope": None if self.gradients is None else float(self.gradients.slope),
            "gradient_regime": self.gradient_regime,
            "gradient_profile": None if self.gradients is None else np.exp(np.asarray(self.gradients.log_profile)).tolist(),
            "io_largest_singular_value": None if self.io is None else float(np.median(self.io.largest)),
            "io_smallest_singular_value": None if self.io is None else float(np.median(self.io.smallest)),
            "top_lyapunov": self.top_lyapunov,
        }

    def summary(self) -> str:
        """A compact text summary, one finding per line."""
        values = self.to_dict()
        lines = [
            f"Stability report: {describe_solver(self.spectrum.solver, self.spectrum.solver_options)}, {values['num_layers']} layers, h = {values['step_size']:.4g}",
            f"  numerically unstable h·λ (Re λ ≤ 0, outside the region): {self.fraction_numerically_unstable:.1%} overall, "
            f"{np.max(self.fraction_numerically_unstable_per_layer):.1%} in the worst layer",
            f"  the ODE's own growth (Re λ > 0): {values['fraction_dynamically_growing']:.1%}   over-damped: {values['fraction_over_damped']:.1%}",
            f"  amplification over the exact flow |R(hλ)|/|e^(hλ)|: min {values['min_amplification_ratio']:.4g}, "
            f"median {values['median_amplification_ratio']:.4g}, max {values['max_amplification_ratio']:.4g}",
            f"  h·λ outside the region: {self.fraction_outside:.1%} overall, {np.max(self.fraction_outside_per_layer):.1%} in the worst layer",
            f"  largest growth factor: {self.max_growth:.4f}   max Re λ: {values['max_spectral_abscissa']:.4f}"
            f"   max log-norm μ₂: {self.max_log_norm:.4f}",
        ]
        if self.gradients is None:
            lines.append("  gradients: not computed (not asked for, or a two-step solver: no one-step layer map)")
        else:
            lines.append(f"  gradients: {self.gradient_regime} (slope of log‖∂L/∂y_k‖: {values['gradient_slope']:+.4f} per layer)")
        if self.io is None:
            lines.append("  input–output Jacobian, Lyapunov exponents: not computed")
        else:
            lines.append(f"  top finite-time Lyapunov exponent (1/T) ln σ_max: {self.top_lyapunov:+.4f} per unit depth")
            lines.append(
                f"  input–output singular values (median over samples): "
                f"σ_max {values['io_largest_singular_value']:.4g}, σ_min {values['io_smallest_singular_value']:.4g}"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def stability_report(
    net: SolverNet,
    xs,
    targets,
    loss_fn,
    *,
    gradients: bool = True,
    io_jacobian: bool = True,
    regime_factor: float = REGIME_FACTOR,
) -> StabilityReport:
    """Run the stability analyses of `net` on a batch and collect them.

    Args:
        net: a fixed-step SolverNet.
        xs, targets: a batch of inputs and their targets.
        loss_fn: loss_fn(output, target) → scalar for one sample.
        gradients: compute the gradient-norm profile (one-step solvers only).
        io_jacobian: compute the input–output singular values and finite-time Lyapunov
            exponents. The Jacobian spectrum against the region is always computed.
        regime_factor: see `GradientNorms.regime`.

    Example:
        >>> report = deepest.analysis.stability_report(net, xs[:64], labels[:64], loss_fn)
        >>> print(report.summary())
    """
    one_step = net.solver not in MULTISTEP
    return StabilityReport(
        spectrum=jacobian_spectrum(net, xs),
        gradients=gradient_norms(net, xs, targets, loss_fn) if gradients and one_step else None,
        io=io_jacobian_singular_values(net, xs) if io_jacobian else None,
        regime_factor=regime_factor,
    )
