"""The ScaleGUN chapter's figures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["utility_figure"]


def utility_figure(data: Mapping[str, Any], kinds: Sequence[str]):
    """Test accuracy (%) against the number of items removed, one panel per dataset ×
    request kind, one line per method; a cross marks a request after which the method
    retrained from scratch (retraining itself is not marked). Returns the figure."""
    import matplotlib.pyplot as plt

    from ..plotting import PALETTE

    names = list(data["datasets"])
    fig, axes = plt.subplots(len(names), len(kinds), figsize=(4.2 * len(kinds), 3.0 * len(names)), squeeze=False)
    for r, name in enumerate(names):
        for c, kind in enumerate(kinds):
            ax = axes[r, c]
            for i, (method, seq) in enumerate(data["datasets"][name]["utility"][kind].items()):
                xs = [0]
                for s in seq["steps"]:
                    xs.append(xs[-1] + s["items"])
                ys = [100 * seq["initial_accuracy"]] + [100 * s["accuracy"] for s in seq["steps"]]
                ax.plot(xs, ys, marker="o", ms=3, color=PALETTE[i], label=method)
                marks = [(x, y) for x, y, s in zip(xs[1:], ys[1:], seq["steps"]) if s["retrained"]
                         and method != "retrain"]
                if marks:
                    ax.scatter(*zip(*marks), marker="x", s=60, color=PALETTE[i])
            ax.set(title=f"{name}: {kind} removals", xlabel=f"{kind}s removed", ylabel="test accuracy (%)")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig
