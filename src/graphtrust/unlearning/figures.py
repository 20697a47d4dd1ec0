"""The ScaleGUN chapter's figures."""

from __future__ import annotations

import pandas as pd

__all__ = ["utility_figure"]


def utility_figure(curves: pd.DataFrame):
    """Test accuracy (%) against the number of items removed, one panel per dataset ×
    request kind, one line per method; a cross marks a request after which the method
    retrained from scratch (retraining itself is not marked). ``curves`` is
    :func:`~.tables.curves`. Returns the figure."""
    import matplotlib.pyplot as plt

    from ..plotting import PALETTE

    names, kinds = list(dict.fromkeys(curves.dataset)), list(dict.fromkeys(curves.kind))
    methods = list(dict.fromkeys(curves.method))
    fig, axes = plt.subplots(len(names), len(kinds), figsize=(4.2 * len(kinds), 3.0 * len(names)), squeeze=False)
    for (name, kind), panel in curves.groupby(["dataset", "kind"], sort=False):
        ax = axes[names.index(name), kinds.index(kind)]
        for method, seq in panel.groupby("method", sort=False):
            color = PALETTE[methods.index(method)]
            seq = seq.sort_values("step")
            ax.plot(seq.removed, seq.accuracy, marker="o", ms=3, color=color, label=method)
            marks = seq[seq.retrained & (seq.step > 0)]
            if method != "retrain" and len(marks):
                ax.scatter(marks.removed, marks.accuracy, marker="x", s=60, color=color)
        ax.set(title=f"{name}: {kind} removals", xlabel=f"{kind}s removed", ylabel="test accuracy (%)")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig
