"""An ipywidgets explorer over saved Metattack results: attack, dataset, budget → errors and flips."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pandas as pd
import torch

from .. import datasets
from ..plotting import show_explorer
from ..training import summarize
from .experiments import flip_anatomy
from .tables import attack_flips, victims

__all__ = ["explorer", "summary_at", "budgets_of"]


def budgets_of(df: pd.DataFrame, dataset: str, attack: str) -> list[float]:
    """The budgets (> 0) at which ``attack``'s victims were evaluated on ``dataset``."""
    v = victims(df)
    return sorted(float(b) for b in v[(v.dataset == dataset) & (v.attack == attack) & (v.budget > 0)].budget.unique())


def summary_at(df: pd.DataFrame, dataset: str, attack: str, budget: float) -> dict:
    """Victim errors (percent strings, mean ± sample std over seeds) and flip statistics of
    one attack at one budget, from ``metattack`` records."""
    v = victims(df)
    v = v[v.dataset == dataset]
    edges = int(df[(df["kind"] == "attack") & (df.dataset == dataset)]["edges"].iloc[0]) if attack != "clean" else 0
    k = int(budget * edges)
    if attack == "clean" or k == 0:
        sel = v[(v.attack == "clean") & (v.victim != "features")]
        flips, inserted = torch.empty(0, 2, dtype=torch.long), torch.empty(0, dtype=torch.bool)
    else:
        sel = v[(v.attack == attack) & (v.budget == budget)]
        flips, inserted = attack_flips(df, dataset, attack, k)
    errors = {name: summarize(g.error).format(scale=1.0) for name, g in sel.groupby("victim", sort=False)}
    out = {"flips": int(flips.size(0)), "errors": errors}
    if flips.numel():
        out.update(flip_anatomy(datasets.load(dataset, lcc=True), flips, inserted))
    return out


def explorer(results: dict[str, pd.DataFrame], main_budget: float = 0.05):
    """Widgets to pick a run, dataset, attack and budget; shows errors and the flips' anatomy.

    ``results`` maps a label (e.g. ``"quick (this run)"``) to the records of a
    ``metattack`` run. In a static page the initial selection renders.
    """
    import ipywidgets as w
    run = w.Dropdown(options=list(results), description="results")
    ds = w.Dropdown(description="dataset")
    atk = w.Dropdown(description="attack")
    bud = w.SelectionSlider(description="budget", options=[("—", -1.0)], continuous_update=False)
    out = w.Output()

    busy = False

    def refresh(*_):
        """Make every dropdown consistent with the ones above it, then redraw (re-entrant safe)."""
        nonlocal busy
        if busy:
            return
        busy = True
        try:
            r = results[run.value]
            names = list(r.dataset.unique())
            if list(ds.options) != names:
                ds.options = names
            if ds.value not in names:
                ds.value = names[0]
            attacks = ["clean", *[a for a in r[r.dataset == ds.value].attack.unique() if a != "clean"]]
            if list(atk.options) != attacks:
                atk.options = attacks
            if atk.value not in attacks:
                atk.value = "meta-self" if "meta-self" in attacks else attacks[0]
            budgets = budgets_of(r, ds.value, atk.value) or [main_budget]
            labelled = [(f"{b:.1%}", b) for b in budgets]  # the slider shows percentages
            prev = bud.value
            if [tuple(o) for o in bud.options] != labelled:
                bud.options = labelled  # this resets the value to the first option
            main = main_budget if main_budget in budgets else budgets[0]
            bud.value = prev if prev in budgets else main
        finally:
            busy = False
        show()

    def show():
        out.clear_output(wait=True)
        with out:
            render()

    def render():
        s = summary_at(results[run.value], ds.value, atk.value, bud.value)
        errs = ", ".join(f"{v}: {e} %" for v, e in s["errors"].items()) or "not evaluated at this budget"
        print(f"{ds.value} · {atk.value} · budget {bud.value:.1%} ({s['flips']} flips)")
        print(f"misclassification  {errs}")
        if s["flips"]:
            same_ins = s["same_label_inserted"]
            print(f"inserted {s['share_inserted']:.0%} of the flips; "
                  f"same-label endpoints among insertions: "
                  f"{'-' if math.isnan(same_ins) else f'{same_ins:.0%}'} "
                  f"(clean edges: {s['clean_edge_same_label']:.0%})")
            fig, ax = plt.subplots(figsize=(4.5, 2.4))
            ax.hist(s["endpoint_degree_min"], bins=range(0, 30), color="#D55E00", alpha=0.8)
            ax.set_xlabel("smaller endpoint degree (clean graph)")
            ax.set_ylabel("flips")
            plt.show()

    for widget in (run, ds, atk, bud):
        widget.observe(refresh, names="value")
    atk.options = ["meta-self"]  # initial selection, made consistent by refresh()
    refresh()
    show_explorer(w.VBox([w.HBox([run, ds]), w.HBox([atk, bud]), out]), out, render)
