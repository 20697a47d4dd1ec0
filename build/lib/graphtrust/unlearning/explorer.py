"""An ipywidgets explorer: privacy parameters, noise, r_max, request type → a short ScaleGUN run."""

from __future__ import annotations

import matplotlib.pyplot as plt

from ..plotting import PALETTE, show_explorer, use_style
from .experiments import Problem, requests, run_sequence

__all__ = ["explorer", "plot_sequence"]


def plot_sequence(seq: dict, axes=None):
    """Accuracy (left) and certified bound vs budget (right, log) of one removal sequence."""
    use_style()
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 3.3))
    steps = seq["steps"]
    xs = list(range(1, len(steps) + 1))
    axes[0].plot([0, *xs], [100 * seq["initial_accuracy"]] + [100 * s["accuracy"] for s in steps], marker="o",
                 color=PALETTE[0])
    axes[0].set_xlabel("request")
    axes[0].set_ylabel("test accuracy (%)")
    # model-level values (runs saved before the model-level certificate hold the largest class's)
    axes[1].plot(xs, [s.get("model_total", s["total"]) for s in steps], marker="o", color=PALETTE[0],
                 label="certified bound")
    axes[1].plot(xs, [s.get("model_approximation", s["approximation"]) or 1e-30 for s in steps], ls=":",
                 color=PALETTE[2], label="approximation term")
    axes[1].plot(xs, [s["budget"] for s in steps], ls="--", color="0.3", label="budget")
    for ax in axes:
        for x, s in zip(xs, steps):
            if s["retrained"]:
                ax.axvline(x, color=PALETTE[3], lw=0.8, alpha=0.6)
    axes[1].set_yscale("log")
    axes[1].set_xlabel("request (red lines: retrained)")
    axes[1].legend(fontsize=7)
    return axes


def explorer(problem: Problem, count: int = 6):
    """Widgets for ε, δ, α, relative r_max and the request type; runs ``count`` requests."""
    import ipywidgets as w
    from IPython.display import Markdown, display

    eps = w.FloatLogSlider(value=1.0, base=10, min=-2, max=1, step=0.25, description="ε", continuous_update=False)
    delta = w.FloatLogSlider(value=1e-4, base=10, min=-8, max=-1, step=1, description="δ", continuous_update=False)
    alpha = w.FloatLogSlider(value=0.1, base=10, min=-5, max=0, step=0.5, description="α", continuous_update=False)
    rmax = w.FloatLogSlider(value=1e-7, base=10, min=-9, max=-1, step=1, description="r_max (rel.)",
                            continuous_update=False)
    kind = w.Dropdown(options=[("edges (10 per request)", "edge"), ("nodes (5)", "node"), ("features (5)", "feature")],
                      description="requests")
    out = w.Output()
    state: dict = {}  # the last sequence run, for the static copy

    def refresh(*_):
        batch = 10 if kind.value == "edge" else 5
        seq = run_sequence(problem, "scalegun", kind.value, requests(problem, kind.value, count, batch),
                           r_max_rel=rmax.value, eps=eps.value, delta=delta.value, alpha=alpha.value)
        out.clear_output(wait=True)
        with out:
            render(seq)

    def render(seq=None):
        if seq is None:
            seq = state["seq"]
        state["seq"] = seq
        plot_sequence(seq)
        plt.tight_layout()
        plt.show()
        steps = seq["steps"]
        display(Markdown(
            f"{sum(s['retrained'] for s in steps)} retrain(s), {seq['flushes']} flush(es) in {len(steps)} requests; "
            f"mean time per request: embedding {1e3 * sum(s['embedding_seconds'] for s in steps) / len(steps):.1f} ms, "
            f"model {sum(s['model_seconds'] for s in steps) / len(steps):.2f} s; "
            f"final accuracy {100 * steps[-1]['accuracy']:.1f} %."))

    for widget in (eps, delta, alpha, rmax, kind):
        widget.observe(refresh, names="value")
    refresh()
    show_explorer(w.VBox([w.HBox([eps, delta, alpha]), w.HBox([rmax, kind]), out]), out, render)
