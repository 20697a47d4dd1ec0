"""An ipywidgets explorer over saved label-poisoning results: run, dataset, victim, attacks."""

from __future__ import annotations

import matplotlib.pyplot as plt

from ..plotting import PALETTE, show_explorer, use_style
from ..results import Result
from ..training import summarize

__all__ = ["explorer", "budget_curves"]


def budget_curves(result: Result, dataset: str, victim: str, attacks, ax=None):
    """Test accuracy (mean ± std over splits) against the budget, one line per attack.

    The clean accuracy is the dashed line; budgets are fractions of the labelled pool.
    """
    use_style()
    entry = result.data["datasets"][dataset]
    ax = ax or plt.subplots(figsize=(6.4, 3.8))[1]
    if victim in entry["clean"]:
        clean = summarize(entry["clean"][victim])
        ax.axhline(100 * clean.mean, color="0.4", ls="--", lw=1, label="clean")
    for i, attack in enumerate(attacks):
        per_b = entry["attacks"].get(attack, {})
        pts = [(float(b), summarize(v[victim])) for b, v in per_b.items() if victim in v]
        if not pts:
            continue
        pts.sort()
        xs = [100 * b for b, _ in pts]
        ax.errorbar(xs, [100 * s.mean for _, s in pts], yerr=[100 * s.std for _, s in pts], marker="o", ms=4,
                    capsize=2, color=PALETTE[i % len(PALETTE)], label=attack)
    ax.set_xlabel("budget (% of the labelled pool)")
    ax.set_ylabel(f"{victim.upper()} test accuracy (%)")
    ax.set_title(f"{dataset}, {victim}")
    ax.legend(fontsize=8, ncol=2)
    return ax


def explorer(results: dict[str, Result], default_attacks=("random", "lafak", "sgc-bin")):
    """Widgets to pick a run, dataset, victim and the attacks to compare.

    ``results`` maps a label (e.g. ``"quick (this run)"``) to a saved label-poisoning
    :class:`~graphtrust.results.Result`. The plot shows accuracy against budget; the text
    under it the strongest attack at every budget. In a static page the initial selection
    renders.
    """
    import ipywidgets as w
    from IPython.display import display

    from . import summary

    run = w.Dropdown(options=list(results), description="results")
    ds = w.Dropdown(description="dataset")
    vic = w.Dropdown(description="victim")
    atk = w.SelectMultiple(description="attacks", rows=6)
    out = w.Output()
    busy = False

    def refresh(*_):
        nonlocal busy
        if busy:
            return
        busy = True
        try:
            r = results[run.value]
            names = list(r.data["datasets"])
            if list(ds.options) != names:
                ds.options = names
            if ds.value not in names:
                ds.value = names[0]
            entry = r.data["datasets"][ds.value]
            victims = [v for v in r.data["victims"] if v in entry["clean"]]
            if list(vic.options) != victims:
                vic.options = victims
            if vic.value not in victims:
                vic.value = victims[0]
            attacks = list(entry["attacks"])
            if list(atk.options) != attacks:
                atk.options = attacks
            chosen = [a for a in atk.value if a in attacks] or [a for a in default_attacks if a in attacks]
            if tuple(atk.value) != tuple(chosen):
                atk.value = tuple(chosen)
        finally:
            busy = False
        draw()

    def draw():
        out.clear_output(wait=True)
        with out:
            render()

    def render():
        r = results[run.value]
        fig, ax = plt.subplots(figsize=(6.4, 3.8))
        budget_curves(r, ds.value, vic.value, atk.value, ax=ax)
        plt.show()
        rec = summary.records(r)
        rec = rec[(rec.dataset == ds.value) & (rec.victim == vic.value) & (rec.attack != "clean")]
        means = rec.groupby(["budget", "attack"]).accuracy.mean().mul(100).reset_index()
        best = means.loc[means.groupby("budget").accuracy.idxmin()]
        display(best.assign(budget=(100 * best.budget).round().astype(int)).rename(
            columns={"budget": "budget (%)", "attack": "strongest attack", "accuracy": "accuracy (%)"}
        ).set_index("budget (%)").round(1))

    for widget in (run, ds, vic, atk):
        widget.observe(refresh, names="value")
    refresh()
    show_explorer(w.VBox([w.HBox([run, ds, vic]), atk, out]), out, render)
