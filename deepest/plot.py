"""Matplotlib figures of deepest's results. Needs the `plot` extra; the core never imports it.

Functions draw on a given `ax` (or a new one) and return it, or return a new figure; none calls
`plt.show()` or chooses matplotlib's backend (a notebook keeps its own, `deepest` draws off-screen).
"""

import matplotlib.pyplot as plt
import numpy as np

from . import stability
from .analysis.gradients import REGIME_FACTOR
from .solvers import check_solver_options, describe_solver

# Resolution of every figure deepest writes to a file (run directories, `deepest results --figure`).
DPI = 110


def write_png(figure, file, *, tight: bool = False) -> None:
    """Write `figure` as a PNG at `DPI` to an open binary file and close it (it was drawn for
    the file); `tight` crops the margins to what is drawn."""
    try:
        figure.savefig(file, format="png", dpi=DPI, **({"bbox_inches": "tight"} if tight else {}))
    finally:
        plt.close(figure)


def stability_region(solvers, *, points=None, ax=None, extent=None, resolution=400):
    """Shade {z : solver stable at z} for one or several solvers, with its boundary locus.

    Args:
        solvers: a solver name or a list of them; an entry may also be a pair (name,
            options) for a solver with parameters, e.g. ("lm_resnet", {"k": 0.5}).
        points: optional complex array of h·λ values, drawn as a cloud on top.
        ax: matplotlib axes to draw on (default: a new figure).
        extent: (re_min, re_max, im_min, im_max); default: fits the regions and points.
        resolution: grid points per axis for the shading.

    Two-step methods such as leapfrog are stable on a segment only, which shading cannot
    show; their boundary locus line is that segment.
    """
    entries = [solvers] if isinstance(solvers, str) else list(solvers)
    regions = [(entry, {}) if isinstance(entry, str) else (entry[0], dict(entry[1])) for entry in entries]
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 5))
    loci = [stability.boundary_locus(name, **options) for name, options in regions]
    cloud = None if points is None else np.ravel(np.asarray(points)).astype(complex)
    if extent is None:
        extent = _fitting_extent([*loci, cloud])
    re = np.linspace(extent[0], extent[1], resolution)
    im = np.linspace(extent[2], extent[3], resolution)
    grid = re[None, :] + 1j * im[:, None]
    for index, ((name, options), locus) in enumerate(zip(regions, loci)):
        colour = f"C{index}"
        stable = np.asarray(stability.is_stable(name, grid, **options), dtype=float)
        ax.contourf(re, im, stable, levels=[0.5, 1.5], colors=[colour], alpha=0.2)
        for branch in locus.T:
            ax.plot(branch.real, branch.imag, color=colour, linewidth=1)
        label = describe_solver(name, check_solver_options(name, options))
        ax.plot([], [], color=colour, linewidth=6, alpha=0.4, label=label)
    if cloud is not None:
        ax.scatter(cloud.real, cloud.imag, s=6, color="k", alpha=0.6, label="h·λ")
    _frame_complex_plane(ax, extent, "hλ")
    ax.legend(loc="upper left", fontsize="small")
    return ax


def _frame_complex_plane(ax, extent, variable: str) -> None:
    """The axes, limits (re_min, re_max, im_min, im_max), equal aspect and labels of the
    complex plane of `variable`."""
    ax.axhline(0, color="0.6", linewidth=0.5)
    ax.axvline(0, color="0.6", linewidth=0.5)
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_aspect("equal")
    ax.set_xlabel(f"Re({variable})")
    ax.set_ylabel(f"Im({variable})")


def order_star(solver: str, *, ax=None, extent=(-5.0, 5.0, -5.0, 5.0), resolution=400, **options):
    """The order star {z : growth(z) > |e^z|} of a solver (`deepest.stability.in_order_star`),
    shaded, with its stability region's boundary: where the solver amplifies a mode more than
    the exact flow (Hairer, Nørsett & Wanner I, §IV.4). Near 0 a method of order p has p + 1
    sectors of each kind; an A-stable method's star leaves the imaginary axis alone.

    Args:
        solver: a solver name; `options` its parameters, as for `deepest.stability`.
        ax: matplotlib axes (default: a new figure).
        extent: (re_min, re_max, im_min, im_max) of the plane shown.
        resolution: grid points per axis.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 5))
    re = np.linspace(extent[0], extent[1], resolution)
    im = np.linspace(extent[2], extent[3], resolution)
    grid = re[None, :] + 1j * im[:, None]
    star = np.asarray(stability.in_order_star(solver, grid, **options), dtype=float)
    ax.contourf(re, im, star, levels=[0.5, 1.5], colors=["C1"], alpha=0.35)
    ax.plot([], [], color="C1", linewidth=6, alpha=0.5, label="|R(z)| > |e^z|")
    for branch in stability.boundary_locus(solver, **options).T:
        ax.plot(branch.real, branch.imag, color="k", linewidth=1)
    ax.plot([], [], color="k", linewidth=1, label="boundary of the stability region")
    _frame_complex_plane(ax, extent, "z")
    ax.set_title(f"Order star of {describe_solver(solver, check_solver_options(solver, options))}")
    ax.legend(loc="upper left", fontsize="small")
    return ax


def transfer_matrix(row_labels, column_labels, means, stds, *, metric: str = "test_accuracy"):
    """A heatmap of the transfer matrix (`deepest.experiment.transfer`): rows where each field
    was trained, columns where it was tested, each cell its mean (colour) and "mean ± std"
    over seeds (text; — where missing). `means` and `stds` are (rows, columns) arrays, NaN
    where missing. Returns the figure."""
    means, stds = np.asarray(means, dtype=float), np.asarray(stds, dtype=float)
    fig, ax = plt.subplots(figsize=(1.5 * len(column_labels) + 3, 0.7 * len(row_labels) + 2))
    image = ax.imshow(np.ma.masked_invalid(means), cmap="viridis", aspect="auto")
    for (row, column), mean in np.ndenumerate(means):
        spread = "" if not np.isfinite(stds[row, column]) else f"\n± {stds[row, column]:.2g}"
        text = "—" if not np.isfinite(mean) else f"{mean:.3g}{spread}"
        ax.text(column, row, text, ha="center", va="center", fontsize="small", color="w" if np.isfinite(mean) else "k")
    ax.set_xticks(range(len(column_labels)), column_labels, rotation=30, ha="right")
    ax.set_yticks(range(len(row_labels)), row_labels)
    ax.set_xlabel("tested at")
    ax.set_ylabel("trained at")
    fig.colorbar(image, ax=ax, label=metric)
    fig.tight_layout()
    return fig


def _fitting_extent(sets, margin=0.15):
    """A box around every finite point of the given complex arrays (None skipped)."""
    values = np.concatenate([np.ravel(s) for s in sets if s is not None])
    values = values[np.isfinite(values) & (np.abs(values) < 1e3)]
    if values.size == 0:  # nothing finite to fit (e.g. a diverged net's NaN spectrum)
        values = np.array([-1.0 - 1.0j, 1.0 + 1.0j])
    re_low, re_high = min(values.real.min(), -1.0), max(values.real.max(), 1.0)
    im_low, im_high = min(values.imag.min(), -1.0), max(values.imag.max(), 1.0)
    pad = margin * max(re_high - re_low, im_high - im_low)
    return (re_low - pad, re_high + pad, im_low - pad, im_high + pad)


def spectrum_on_region(spectrum, *, solvers=None, ax=None, extent=None, max_points=20000):
    """The h·λ cloud of a `JacobianSpectrum` over the solver's stability region.

    Points are coloured by layer (early dark, late bright). Those outside the region of the
    net's solver are ringed: in red where the flow does not grow there (Re λ ≤ 0: numerically
    unstable, the discretisation's fault), in orange where it does (Re λ > 0: the ODE's own
    growth, which no faithful solver contracts).

    Args:
        spectrum: a `deepest.analysis.JacobianSpectrum`.
        solvers: regions to shade, as for `stability_region` (default: the net's solver
            with its options).
        ax: matplotlib axes (default: a new figure).
        extent: (re_min, re_max, im_min, im_max), default fitted.
        max_points: about this many points at most are drawn: every eigenvalue of every layer
            of an evenly spaced subset of the samples.
    """
    scaled = np.asarray(spectrum.scaled)
    outside, classes = np.asarray(spectrum.outside), np.asarray(spectrum.classes)
    layers = np.broadcast_to(np.arange(scaled.shape[1])[None, :, None], scaled.shape)
    per_sample = scaled[0].size
    stride = max(1, -(-scaled.shape[0] * per_sample // max_points))
    points, layers, outside, classes = (np.ravel(a[::stride]) for a in (scaled, layers, outside, classes))
    own = (spectrum.solver, dict(spectrum.solver_options))
    ax = stability_region(solvers or [own], ax=ax, extent=extent or _fitting_extent([points]))
    cloud = ax.scatter(points.real, points.imag, c=layers, cmap="viridis", s=8, zorder=3)
    rings = (("numerically unstable", "red"), ("dynamically growing", "orange"))
    for name, colour in rings:
        ringed = outside & (classes == stability.CLASSES.index(name))
        if ringed.any():
            ax.scatter(
                points.real[ringed],
                points.imag[ringed],
                s=30,
                facecolors="none",
                edgecolors=colour,
                linewidths=0.8,
                zorder=4,
                label=f"outside: {name}",
            )
    ax.figure.colorbar(cloud, ax=ax, label="layer k", shrink=0.8)
    label = describe_solver(spectrum.solver, spectrum.solver_options)
    unstable, share_outside = float(spectrum.fraction_numerically_unstable), float(spectrum.fraction_outside)
    ax.set_title(f"h·λ of ∂f/∂y: {unstable:.1%} numerically unstable,\n{share_outside:.1%} outside {label}")
    ax.legend(loc="upper left", fontsize="small")
    return ax


def pseudospectra_on_region(pseudospectra, *, layer=None, levels=(-3, -2, -1), solvers=None, ax=None):
    """δ-pseudospectral contours of h·∂f/∂y over the solver's stability region.

    Contours of log10 σ_min(zI − hJ_k) of a `deepest.analysis.FieldPseudospectra` at `levels`:
    the contour at log10 δ encloses where a perturbation of size δ of hJ_k (for Euler, of the
    layer map I + hJ_k itself) can move an eigenvalue h·λ; where it leaves the shaded region,
    such a perturbation can make the layer amplify although every eigenvalue lies inside
    (Trefethen & Embree, Spectra and Pseudospectra, 2005). Dots are the eigenvalues h·λ.

    Args:
        pseudospectra: a `FieldPseudospectra` on a 2-D grid (`deepest.analysis.complex_grid`).
        layer: a layer index, or None for the union over layers (at each z the smallest σ_min
            over samples and layers: where any layer's δ-pseudospectrum reaches).
        levels: the contour levels, log10 δ.
        solvers: regions to shade, as for `stability_region` (default: the net's solver).
        ax: matplotlib axes (default: a new figure).
    """
    grid = np.asarray(pseudospectra.grid)
    if grid.ndim != 2:
        raise ValueError(f"pseudospectra_on_region needs a 2-D grid (deepest.analysis.complex_grid), got shape {grid.shape}.")
    sigma, points = np.asarray(pseudospectra.sigma_min), np.asarray(pseudospectra.scaled)
    if layer is not None:
        sigma, points = sigma[:, layer], points[:, layer]
    with np.errstate(divide="ignore", invalid="ignore"):
        union = np.log10(np.nanmin(sigma.reshape(-1, *grid.shape), axis=0))
    extent = (grid.real.min(), grid.real.max(), grid.imag.min(), grid.imag.max())
    own = (pseudospectra.solver, dict(pseudospectra.solver_options))
    ax = stability_region(solvers or [own], ax=ax, extent=extent)
    contours = ax.contour(grid.real[0], grid.imag[:, 0], union, levels=sorted(levels), cmap="viridis", linewidths=1, zorder=3)
    ax.clabel(contours, fmt=lambda value: f"δ = 1e{value:g}", fontsize="x-small")
    ax.scatter(points.real.ravel(), points.imag.ravel(), s=6, color="k", zorder=4, label="h·λ")
    where = "all layers" if layer is None else f"layer {layer}"
    ax.set_title(f"δ-pseudospectra of h·∂f/∂y, {where}")
    ax.legend(loc="upper left", fontsize="small")
    return ax


def gradient_profile(gradients, *, ax=None, factor=REGIME_FACTOR):
    """‖∂L/∂y_k‖ against layer k: the geometric mean over samples (what the slope is fitted
    to), the interquartile band, and the fitted line; `factor` as in `GradientNorms.regime`."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4))
    norms = np.asarray(gradients.state)
    layers = np.arange(norms.shape[1])
    low, high = _finite_percentiles(norms, [25, 75])
    profile = np.asarray(gradients.log_profile)
    ax.fill_between(layers, low, high, alpha=0.3, label="interquartile range")
    ax.plot(layers, np.exp(profile), marker="o", markersize=3, label="geometric mean")
    slope = float(gradients.slope)
    fit = np.exp(profile.mean() + slope * (layers - layers.mean()))
    ax.plot(layers, fit, "k--", linewidth=1, label=f"fit: slope {slope:+.3f}/layer ({gradients.regime(factor)})")
    ax.set_yscale("log")
    ax.set_xlabel("layer k")
    ax.set_ylabel("‖∂L/∂y_k‖")
    ax.legend(fontsize="small")
    return ax


def lyapunov_exponents(lyapunov, *, ax=None, num_shown=3):
    """Local exponents log|R_ii|/h per step (median over samples) and the finite-time averages,
    for the `num_shown` largest exponents."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4))
    local = np.asarray(lyapunov.local_exponents)
    local = local.reshape(-1, *local.shape[-2:])
    median = np.median(local, axis=0)
    exponents = np.median(np.asarray(lyapunov.exponents).reshape(-1, local.shape[-1]), axis=0)
    for rank, index in enumerate(np.argsort(exponents)[::-1][:num_shown]):
        ax.plot(median[:, index], color=f"C{rank}", linewidth=1, label=f"λ_{rank + 1} = {exponents[index]:+.3f}")
        ax.axhline(exponents[index], color=f"C{rank}", linestyle="--", linewidth=0.8)
    ax.axhline(0, color="0.6", linewidth=0.5)
    ax.set_xlabel("step")
    ax.set_ylabel("local exponent log|R_ii| / h")
    ax.legend(fontsize="small")
    return ax


def finite_time_lyapunov(io, *, ax=None):
    """The finite-time Lyapunov spectrum (1/T) ln σ_i(∂y_L/∂y_0) of an `InputOutputSpectrum`:
    median over samples and interquartile range, against the index i."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4))
    exponents = np.asarray(io.lyapunov_exponents)
    index = np.arange(1, exponents.shape[1] + 1)
    low, median, high = _finite_percentiles(exponents, [25, 50, 75])
    ax.fill_between(index, low, high, alpha=0.3, label="interquartile range")
    ax.plot(index, median, marker="o", markersize=3, label=f"median (λ_1 = {median[0]:+.3f})")
    ax.axhline(0, color="0.6", linewidth=0.5)
    ax.set_xlabel("index i")
    ax.set_ylabel("finite-time exponent (1/T) ln σ_i")
    ax.legend(fontsize="small")
    return ax


def _finite_percentiles(values, percentiles):
    """Percentiles over samples (axis 0) of the finite entries of each column; NaN for a
    column without any (a diverged net's norms are inf or NaN, which the plot leaves out).
    Computed column by column so that numpy warns neither of all-NaN slices nor of inf − inf."""
    values = np.asarray(values, dtype=float)
    result = np.full((len(percentiles), values.shape[1]), np.nan)
    for column in range(values.shape[1]):
        finite = values[:, column][np.isfinite(values[:, column])]
        if finite.size:
            result[:, column] = np.percentile(finite, percentiles)
    return result


def stability_report(report):
    """A four-panel figure of a `StabilityReport`: h·λ on the region, the share outside and
    the growth per layer, the gradient profile, and the finite-time Lyapunov spectrum."""
    fig, axes = plt.subplots(2, 2, figsize=(11, 9))
    spectrum_on_region(report.spectrum, ax=axes[0, 0])
    layers = np.arange(len(report.fraction_outside_per_layer))
    axes[0, 1].bar(layers, report.fraction_outside_per_layer, color="0.75", label="outside the region")
    axes[0, 1].bar(layers, report.fraction_numerically_unstable_per_layer, color="C3", alpha=0.8, label="numerically unstable")
    axes[0, 1].set_xlabel("layer k")
    axes[0, 1].set_ylabel("share of h·λ")
    axes[0, 1].legend(loc="upper left", fontsize="small")
    growth_axis = axes[0, 1].twinx()
    growth_axis.plot(layers, report.max_growth_per_layer, "k.-", label="largest growth factor")
    growth_axis.axhline(1, color="0.5", linestyle=":")
    growth_axis.set_ylabel("largest growth factor")
    axes[0, 1].set_title("Per layer")
    if report.gradients is not None:
        gradient_profile(report.gradients, ax=axes[1, 0], factor=report.regime_factor)
    else:
        _not_computed(axes[1, 0], "gradient profile not computed\n(not asked for, or a two-step solver)")
    if report.io is not None:
        finite_time_lyapunov(report.io, ax=axes[1, 1])
    else:
        _not_computed(axes[1, 1], "input–output Jacobian not computed")
    fig.suptitle(report.summary().splitlines()[0])
    fig.tight_layout()
    return fig


def _not_computed(ax, text):
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def training_curves(records):
    """Loss (log scale) and accuracy against the training step, on the training batch and the
    test split, from a run's metrics records (`step`, `loss`, `accuracy`, `test_loss`,
    `test_accuracy`; one pair of curves per `replica` where seeds trained together)."""
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(10, 4))
    replicas = sorted({record.get("replica", 0) for record in records})
    for replica in replicas:
        own = [record for record in records if record.get("replica", 0) == replica]
        suffix = f" (replica {replica})" if len(replicas) > 1 else ""
        steps = [record["step"] for record in own]
        for axis, metric in ((loss_axis, "loss"), (accuracy_axis, "accuracy")):
            axis.plot(steps, [record[metric] for record in own], label=f"train batch{suffix}")
            axis.plot(steps, [record[f"test_{metric}"] for record in own], label=f"test{suffix}")
    loss_axis.set_yscale("log")
    for axis, metric in ((loss_axis, "loss"), (accuracy_axis, "accuracy")):
        axis.set_xlabel("step")
        axis.set_ylabel(metric)
        axis.legend(fontsize="small")
    figure.tight_layout()
    return figure


def against_measures(points, correlations, *, y: str, colour_by: str | None = None, by: str | None = None):
    """A result against each stability measure over the runs of an experiment: one row of
    panels per group of runs, one panel per measure, titled with Spearman's rank correlation ρ.

    Args:
        points: {group: {colour: {column: values}}}: for each group and each value of
            `colour_by` (its label), the runs' values of `y` and of every measure (NaN: none).
        correlations: {group: {measure: ρ}}; its measures, in order, are the panels of a row.
        y: the column on the vertical axes.
        colour_by: the config key whose values the colours are (the legend's title).
        by: the config key the runs were split into groups by (None: one group).
    """
    measures = list(next(iter(correlations.values())))
    figure, axes = plt.subplots(len(points), len(measures), figsize=(3.4 * len(measures), 3.2 * len(points)), sharey="row", squeeze=False)
    for axes_row, (group, colours) in zip(axes, points.items()):
        for axis, measure in zip(axes_row, measures):
            for colour, columns in colours.items():
                axis.scatter(columns[measure], columns[y], s=22, alpha=0.8, label=colour)
            axis.set_xlabel(measure)
            where = f"{group}: " if by else ""
            axis.set_title(f"{where}Spearman ρ = {correlations[group][measure]:.2f}", fontsize="medium")
        axes_row[0].set_ylabel(y)
    axes[0, -1].legend(title=colour_by, fontsize="small", loc="best")
    figure.tight_layout()
    return figure
