"""The Metattack chapter's figures: the budget sweep and the anatomy of the flips."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import pandas as pd
import torch
from torch_geometric.data import Data

from ..plotting import PALETTE, use_style
from .attacks import METHODS
from .experiments import flip_anatomy
from .tables import sweep_frame

__all__ = ["sweep_figure", "anatomy_figure"]


def sweep_figure(runs: Mapping[str, pd.DataFrame]) -> plt.Figure:
    """GCN misclassification (%) against the budget, one panel per (run, dataset), from
    ``metattack`` records; the dashed line is the logistic regression on features alone."""
    use_style()
    frames = {label: sweep_frame(df) for label, df in runs.items()}
    cols = max(max(f.dataset.nunique() for f in frames.values()), 1)
    fig, axes = plt.subplots(len(frames), cols, figsize=(4.3 * 3, 3.2 * len(frames)), squeeze=False)
    for row, (label, f) in enumerate(frames.items()):
        for col, (name, d) in enumerate(f.groupby("dataset", sort=False)):
            ax = axes[row, col]
            for method, c in d.groupby("attack", sort=False):
                ax.plot(c.budget * 100, c.error, "o-", ms=3, label=method,
                        color=PALETTE[list(METHODS).index(method) % len(PALETTE)])
            ax.axhline(float(d.features_only.iloc[0]), color="grey", ls="--", lw=1, label="features only")
            ax.set(title=f"{name} · {label}", xlabel="budget (% of edges)", ylabel="GCN misclassification (%)")
        axes[row, 0].legend(fontsize=7)
    for ax in axes.flat:
        if not ax.has_data():
            ax.set_visible(False)
    fig.tight_layout()
    return fig


def anatomy_figure(data: Data, flips: torch.Tensor, inserted: torch.Tensor) -> tuple[plt.Figure, dict]:
    """Flip types, same-label share of inserted edges, and the degrees where flips land.

    ``flips: (k, 2)``, ``inserted: (k,) bool``. Returns the figure and :func:`flip_anatomy`'s stats.
    """
    use_style()
    stats = flip_anatomy(data, flips, inserted)
    deg = torch.bincount(data.edge_index[0], minlength=data.num_nodes)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    axes[0].bar(["inserted", "removed"], [int(inserted.sum()), int((~inserted).sum())], color=PALETTE[:2])
    axes[0].set_title("flip type")
    share = [stats["clean_edge_same_label"], stats["same_label_inserted"]]
    axes[1].bar(["clean edges", "inserted edges"], [100 * s for s in share], color=PALETTE[2:4])
    axes[1].set(ylabel="same-label endpoints (%)", title="who gets connected")
    bins = torch.logspace(0, 2.5, 20).tolist()
    axes[2].hist(deg.tolist(), bins=bins, density=True, alpha=0.5, label="all nodes", color="grey")
    axes[2].hist(stats["endpoint_degree_min"], bins=bins, density=True, alpha=0.7, label="lower-degree endpoint",
                 color=PALETTE[3])
    axes[2].set(xscale="log", xlabel="degree (clean graph)", title="where the flips land")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    return fig, stats
