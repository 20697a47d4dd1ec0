"""An ipywidgets explorer over label-poisoning records: run, dataset, victim, attacks."""

from __future__ import annotations

import matplotlib.pyplot as plt

from ..plotting import PALETTE, show_explorer, use_style

__all__ = ["explorer", "budget_curves"]


def budget_curves(records, dataset: str, victim: str, attacks, ax=None):
    """Test accuracy (mean ± sample std over pools) against the budget, one line per attack.

    ``records``: flat records (the ``label_attacks`` experiment's, or :func:`.summary.records`
    of an older run). The clean accuracy is the dashed line; budgets are fractions of the
    labelled pool. The title gives the number of pools.
    """
    use_style()
    rec = records[(records.dataset == dataset) & (records.victim == victim)]
    ax = ax or plt.subplots(figsize=(6.4, 3.8))[1]
    clean = rec[rec.attack == "clean"].accuracy
    if len(clean):
        ax.axhline(100 * clean.mean(), color="0.4", ls="--", lw=1, label="clean")
    for i, attack in enumerate(attacks):
        pts = rec[rec.attack == attack].groupby("budget").accuracy.agg(["mean", "std"]).sort_index().fillna(0.0)
        if pts.empty:
            continue
        ax.errorbar(100 * pts.index, 100 * pts["mean"], yerr=100 * pts["std"], marker="o", ms=4, capsize=2,
                    color=PALETTE[i % len(PALETTE)], label=attack)
    ax.set_xlabel("budget (% of the labelled pool)")
    ax.set_ylabel(f"{victim.upper()} test accuracy (%)")
    ax.set_title(f"{dataset}, {victim}, {rec.split.nunique()} pools")
    ax.legend(fontsize=8, ncol=2)
    return ax


def explorer(results: dict, default_attacks=("random", "lafak", "sgc-bin")):
    """Widgets to pick a run, dataset, victim and the attacks to compare.

    ``results`` maps a label (e.g. ``"quick (this run)"``) to that run's flat records (a
    pandas DataFrame with ``dataset, victim, attack, budget, split, accuracy``). The plot
    shows accuracy against budget; the text under it the strongest attack at every budget.
    In a static page the initial selection renders.
    """
    import ipywidgets as w
    from IPython.display import display

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
            names = list(dict.fromkeys(r.dataset))
            if list(ds.options) != names:
                ds.options = names
            if ds.value not in names:
                ds.value = names[0]
            here = r[r.dataset == ds.value]
            victims = list(dict.fromkeys(here.victim))
            if list(vic.options) != victims:
                vic.options = victims
            if vic.value not in victims:
                vic.value = victims[0]
            attacks = list(dict.fromkeys(here[(here.victim == vic.value) & (here.attack != "clean")].attack))
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
        rec = r[(r.dataset == ds.value) & (r.victim == vic.value) & (r.attack != "clean")]
        means = rec.groupby(["budget", "attack"]).accuracy.mean().mul(100).reset_index()
        best = means.loc[means.groupby("budget").accuracy.idxmin()]
        display(best.assign(budget=(100 * best.budget).round().astype(int)).rename(
            columns={"budget": "budget (%)", "attack": "strongest attack", "accuracy": "accuracy (%)"}
        ).set_index("budget (%)").round(1))

    for widget in (run, ds, vic, atk):
        widget.observe(refresh, names="value")
    refresh()
    show_explorer(w.VBox([w.HBox([run, ds, vic]), atk, out]), out, render)
