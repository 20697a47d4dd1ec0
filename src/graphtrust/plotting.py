"""One matplotlib style for the book, and small plotting helpers chapters call."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

from .training import Summary

__all__ = ["PALETTE", "COLUMN_PX", "MIN_TEXT_PX", "use_style", "legible", "shown_text_px", "bar_summary",
           "degree_distribution", "show_explorer"]

# Colour-blind-safe palette (Okabe & Ito), with their pale yellow (#F0E442, unreadable on
# white) replaced by Tol's wine.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#882255", "#000000"]


#: Width in CSS pixels at which the built book shows a figure wider than its column: a
#: wider figure is scaled down to it, and its text with it. Measured in headless Chromium
#: (``.ci/browser_check``) in a window 1280 px wide, a common laptop's and Playwright's
#: default: Jupyter Book 1's theme then shows both sidebars and an output image 688 px
#: wide. The narrowest is 624 px, in a 1200-pixel window (the first with both sidebars);
#: from 1340 px up, and below 1200 px (one sidebar), it is at least 736 px.
COLUMN_PX = 688
#: The smallest text a reader should meet, in CSS pixels at column width.
MIN_TEXT_PX = 9.0


def shown_text_px(fig, size_pt: float) -> float:
    """Height in CSS pixels of ``size_pt``-point text of ``fig`` once the page shows the
    figure at most :data:`COLUMN_PX` wide (pixels at the figure's dpi, scaled down with it)."""
    width_px = fig.get_figwidth() * fig.dpi
    return size_pt / 72 * fig.dpi * min(1.0, COLUMN_PX / width_px)


def legible(fig, min_px: float = MIN_TEXT_PX) -> bool:
    """The book's font policy: raise every text of ``fig`` (titles, labels, tick labels,
    legends, annotations) to at least ``min_px`` when shown at column width, so that a wide
    multi-panel figure, shrunk to the column, stays readable. Returns whether anything
    changed (then re-run the layout)."""
    need = min_px / shown_text_px(fig, 1.0)
    changed = False
    for ax in fig.axes:
        for axis, labels in (("x", ax.get_xticklabels()), ("y", ax.get_yticklabels())):
            if labels and min(t.get_fontsize() for t in labels) < need:
                ax.tick_params(axis=axis, labelsize=need)
                changed = True
    for t in fig.findobj(mpl.text.Text):
        if t.get_text() and t.get_fontsize() < need:
            t.set_fontsize(need)
            changed = True
    return changed


def _legible_hook(fig) -> None:
    """``figure.hooks`` entry (set by :func:`use_style`): apply :func:`legible` before
    every draw of a pyplot figure, and redo a tight layout when fonts grew."""
    draw = fig.draw
    busy = False

    def draw_legibly(renderer):
        nonlocal busy
        if not busy:
            busy = True
            try:
                if legible(fig) and fig.get_layout_engine() is None:
                    fig.tight_layout()
            finally:
                busy = False
        return draw(renderer)

    fig.draw = draw_legibly


def use_style() -> None:
    """Apply the book's matplotlib style (idempotent), with its font policy
    (:func:`legible`) on every pyplot figure."""
    mpl.rcParams.update(
        {
            "figure.hooks": ["graphtrust.plotting:_legible_hook"],
            "figure.figsize": (6.4, 3.6),
            "figure.dpi": 110,
            "savefig.dpi": 150,
            "savefig.bbox": "tight",
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.titlesize": 11,
            "axes.titleweight": "bold",
            "axes.labelsize": 10,
            "legend.frameon": False,
            "font.size": 10,
            "axes.prop_cycle": mpl.cycler(color=PALETTE),
        }
    )


def bar_summary(
    ax: plt.Axes,
    labels: Sequence[str],
    summaries: Sequence[Summary],
    scale: float = 100.0,
    ylabel: str = "accuracy (%)",
    show_points: bool = True,
) -> plt.Axes:
    """Bars of mean ± std, one per label, with the individual runs as dots."""
    means = [s.mean * scale for s in summaries]
    stds = [s.std * scale for s in summaries]
    pos = np.arange(len(labels))
    ax.bar(pos, means, yerr=stds, capsize=4, color=PALETTE[: len(labels)], alpha=0.85)
    if show_points:
        for p, s in zip(pos, summaries):
            vals = np.asarray(s.values) * scale
            jitter = np.linspace(-0.15, 0.15, len(vals)) if len(vals) > 1 else np.zeros(1)
            ax.scatter(p + jitter, vals, s=10, color="black", zorder=3)
    # each value above everything drawn for its bar (error bar and dots), so that they never collide
    tops = [max(m + sd, float(np.max(np.asarray(s.values))) * scale if show_points else m + sd)
            for m, sd, s in zip(means, stds, summaries)]
    for p, m, top in zip(pos, means, tops):
        ax.annotate(f"{m:.1f}", (p, top), textcoords="offset points", xytext=(0, 5), ha="center", fontsize=8)
    ax.set_xticks(pos, labels)
    ax.set_ylabel(ylabel)
    if scale == 100.0:  # percentages: zoom on the range the bars occupy
        lo = min(float(np.min(np.asarray(s.values))) for s in summaries) * scale
        ax.set_ylim(max(0.0, lo - 10), min(100.0, max(tops) + 10))
    return ax


def degree_distribution(ax: plt.Axes, degrees: np.ndarray, label: str | None = None) -> plt.Axes:
    """Log-log degree distribution: share of nodes with each degree."""
    degrees = np.asarray(degrees)
    values, counts = np.unique(degrees[degrees > 0], return_counts=True)
    ax.loglog(values, counts / degrees.size, "o", ms=3, alpha=0.7, label=label)
    ax.set_xlabel("degree")
    ax.set_ylabel("share of nodes")
    return ax


def threat_model_map(ax: plt.Axes | None = None) -> plt.Axes:
    """The book's map: where in the learning pipeline each chapter's threat acts."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    if ax is None:
        _, ax = plt.subplots(figsize=(9.5, 3.8))
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 4.6)
    ax.axis("off")
    ax.grid(False)

    def box(x, y, w, h, text, color, **kw):
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.05,rounding_size=0.15",
                                    fc=color, ec="black", lw=0.8, alpha=kw.get("alpha", 0.9)))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=kw.get("fs", 9))

    def arrow(a, b, color="black", style="-|>", ls="-"):
        ax.add_patch(FancyArrowPatch(a, b, arrowstyle=style, mutation_scale=12, color=color,
                                     lw=1.2, ls=ls, shrinkA=2, shrinkB=2))

    grey = "#e8e8e8"
    box(0.2, 1.8, 1.9, 1.0, "graph\n$A$, features $X$", grey)
    box(0.2, 0.4, 1.9, 0.8, "training labels\n$y_L$", grey)
    box(3.2, 1.1, 1.8, 1.2, "training\n$\\min_\\theta \\mathcal{L}$", grey)
    box(6.0, 1.1, 1.7, 1.2, "model $\\theta^*$\n(and its gradients)", grey)
    box(8.4, 1.1, 1.4, 1.2, "predictions\non test nodes", grey)
    arrow((2.1, 2.3), (3.2, 1.9))
    arrow((2.1, 0.8), (3.2, 1.4))
    arrow((5.0, 1.7), (6.0, 1.7))
    arrow((7.7, 1.7), (8.4, 1.7))

    threats = [
        ((0.1, 3.45), "Ch. 1 Metattack\nflip edges of $A$", PALETTE[3], (1.15, 2.8)),
        ((2.25, 3.45), "Ch. 2 label poisoning\nflip labels in $y_L$", PALETTE[1], (1.6, 1.2)),
        ((5.4, 3.45), "Ch. 3 GraphDLG\nread $\\nabla_\\theta\\mathcal{L}$, rebuild $A, X$", PALETTE[4], (6.85, 2.3)),
        ((7.9, 3.45), "Ch. 4 ScaleGUN\nremove nodes/edges,\ncertify $\\theta$", PALETTE[2], (6.9, 2.3)),
    ]
    for (x, y), text, color, target in threats:
        box(x, y, 2.0, 0.95, text, color, alpha=0.35, fs=8.5)
        arrow((x + 1.0, y), target, color=color, ls="--")
    ax.text(5.0, 0.05, "poisoning acts before training · leakage reads what training shares · "
            "unlearning edits the result", ha="center", fontsize=8, style="italic")
    return ax


def show_explorer(box, out, render) -> None:
    """Display an explorer: the widget ``box`` whose ``out`` (an ``ipywidgets.Output``)
    shows ``render()``. In a static book build (:func:`graphtrust.config.static_build`)
    ``render()`` also runs once outside the widget, so that the page shows the starting
    selection without widget JavaScript (offline, or where the CDN is blocked)."""
    from IPython.display import Markdown, display

    from . import config

    display(box)
    if config.static_build():
        display(Markdown("*Starting selection of the explorer above (static copy):*"))
        render()
