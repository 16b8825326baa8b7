"""Matplotlib figures of deepest's results. Needs the `plot` extra; the core never imports it.

Functions draw on a given `ax` (or a new one) and return it; none calls `plt.show()`.
"""

import matplotlib.pyplot as plt
import numpy as np

from . import stability


def stability_region(solvers, *, points=None, ax=None, extent=None, resolution=400):
    """Shade {z : solver stable at z} for one or several solvers, with its boundary locus.

    Args:
        solvers: a solver name or a list of them.
        points: optional complex array of h·λ values, drawn as a cloud on top.
        ax: matplotlib axes to draw on (default: a new figure).
        extent: (re_min, re_max, im_min, im_max); default: fits the regions and points.
        resolution: grid points per axis for the shading.

    Two-step methods such as leapfrog are stable on a segment only, which shading cannot
    show; their boundary locus line is that segment.
    """
    names = [solvers] if isinstance(solvers, str) else list(solvers)
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 5))
    loci = {name: stability.boundary_locus(name) for name in names}
    cloud = None if points is None else np.ravel(np.asarray(points)).astype(complex)
    if extent is None:
        extent = _fitting_extent([*loci.values(), cloud])
    re = np.linspace(extent[0], extent[1], resolution)
    im = np.linspace(extent[2], extent[3], resolution)
    grid = re[None, :] + 1j * im[:, None]
    for index, name in enumerate(names):
        colour = f"C{index}"
        stable = np.asarray(stability.is_stable(name, grid), dtype=float)
        ax.contourf(re, im, stable, levels=[0.5, 1.5], colors=[colour], alpha=0.2)
        for branch in loci[name].T:
            ax.plot(branch.real, branch.imag, color=colour, linewidth=1)
        ax.plot([], [], color=colour, linewidth=6, alpha=0.4, label=name)
    if cloud is not None:
        ax.scatter(cloud.real, cloud.imag, s=6, color="k", alpha=0.6, label="h·λ")
    ax.axhline(0, color="0.6", linewidth=0.5)
    ax.axvline(0, color="0.6", linewidth=0.5)
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_aspect("equal")
    ax.set_xlabel("Re(hλ)")
    ax.set_ylabel("Im(hλ)")
    ax.legend(loc="upper left", fontsize="small")
    return ax


def _fitting_extent(sets, margin=0.15):
    """A box around every finite point of the given complex arrays (None skipped)."""
    values = np.concatenate([np.ravel(s) for s in sets if s is not None])
    values = values[np.isfinite(values) & (np.abs(values) < 1e3)]
    re_low, re_high = min(values.real.min(), -1.0), max(values.real.max(), 1.0)
    im_low, im_high = min(values.imag.min(), -1.0), max(values.imag.max(), 1.0)
    pad = margin * max(re_high - re_low, im_high - im_low)
    return (re_low - pad, re_high + pad, im_low - pad, im_high + pad)
