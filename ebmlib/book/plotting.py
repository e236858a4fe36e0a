"""The book's figure style and the plots that recur across chapters.

Chapters call these so that plotting code stays out of the way of the
statistics. Nothing here computes an estimate.
"""

from __future__ import annotations

import matplotlib as mpl
import numpy as np

__all__ = ["COLORS", "use_book_style", "band", "slope_guide", "density_image"]

#: A colour-blind-safe palette (Okabe & Ito) used for every figure.
COLORS = {
    "truth": "#D55E00",  # vermilion: the exact answer
    "estimate": "#0072B2",  # blue: an estimator's mean or a single run
    "band": "#009E73",  # green: Monte-Carlo variability
    "alt": "#CC79A7",  # purple: a second method
    "grey": "#666666",
    "yellow": "#E69F00",
    "sky": "#56B4E9",
}


def use_book_style() -> None:
    """Apply the shared matplotlib style (sizes, grid, no top/right spines, SVG-friendly fonts)."""
    mpl.rcParams.update(
        {
            "figure.figsize": (6.4, 3.8),
            "figure.dpi": 100,
            "savefig.dpi": 150,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.titlesize": 11,
            "axes.labelsize": 10,
            "legend.fontsize": 9,
            "legend.frameon": False,
            "font.size": 10,
        }
    )


def band(
    ax, x, curves, *, color: str = COLORS["band"], label: str | None = None, alpha: float = 0.35
):
    """Shade the region between the pointwise min and max of ``curves`` (shape ``(runs, len(x))``).

    This is the paper's "100% of the variability" band.
    """
    curves = np.asarray(curves)
    return ax.fill_between(
        np.asarray(x),
        curves.min(axis=0),
        curves.max(axis=0),
        color=color,
        alpha=alpha,
        linewidth=0,
        label=label,
    )


def slope_guide(
    ax, x, anchor_y: float, slope: float, *, label: str | None = None, color: str = COLORS["grey"]
):
    """Draw the line ``y = anchor_y * (x / x[0]) ** slope`` on log-log axes, as a reference
    slope."""
    x = np.asarray(x, dtype=float)
    ax.plot(x, anchor_y * (x / x[0]) ** slope, linestyle=":", color=color, label=label)


def density_image(ax, axes, log_density, *, cmap: str = "viridis", title: str | None = None):
    """Show a 2-D density from its log values on a quadrature grid (``axes`` from
    ``quadrature_grid``)."""
    x1, x2 = (np.asarray(a) for a in axes)
    dens = np.exp(np.asarray(log_density).reshape(len(x1), len(x2)))
    ax.imshow(
        dens.T, origin="lower", extent=(x1[0], x1[-1], x2[0], x2[-1]), cmap=cmap, aspect="auto"
    )
    ax.grid(False)
    if title:
        ax.set_title(title)
    return ax
