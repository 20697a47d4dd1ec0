"""An ipywidgets explorer over saved Metattack results: attack, dataset, budget → errors and flips."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import torch

from .. import datasets
from ..plotting import show_explorer
from ..results import Result
from ..training import summarize
from .experiments import flip_anatomy

__all__ = ["explorer", "summary_at"]


def summary_at(result: Result, dataset: str, attack: str, budget: float) -> dict:
    """Victim errors (percent strings) and flip statistics of one attack at one budget."""
    entry = result.data["datasets"][dataset]
    k = int(budget * entry["edges"])
    if attack == "clean" or k == 0:
        victims = entry["clean"]
        flips = torch.empty(0, 2, dtype=torch.long)
        inserted = torch.empty(0, dtype=torch.bool)
    else:
        rec = entry["attacks"][attack]
        victims = rec["at_budget"].get(str(budget), {})
        flips = torch.tensor(rec["flips"], dtype=torch.long)[:k]
        inserted = torch.tensor(rec["inserted"], dtype=torch.bool)[:k]
    out = {"flips": int(flips.size(0)), "errors": {v: summarize(x).format() for v, x in victims.items()}}
    if flips.numel():
        data = datasets.load(dataset, lcc=True)
        out.update(flip_anatomy(data, flips, inserted))
    return out


def explorer(results: dict[str, Result]):
    """Widgets to pick a run, dataset, attack and budget; shows errors and the flips' anatomy.

    ``results`` maps a label (e.g. ``"quick (this run)"``) to a saved Metattack
    :class:`~graphtrust.results.Result`. In a static page the initial selection renders.
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
            names = list(r.data["datasets"])
            if list(ds.options) != names:
                ds.options = names
            if ds.value not in names:
                ds.value = names[0]
            entry = r.data["datasets"][ds.value]
            attacks = ["clean", *entry["attacks"]]
            if list(atk.options) != attacks:
                atk.options = attacks
            if atk.value not in attacks:
                atk.value = "meta-self" if "meta-self" in attacks else attacks[0]
            at = entry["attacks"].get(atk.value, {}).get("at_budget", {})
            budgets = [b for b in r.data["budgets"] if b > 0 and str(b) in at] or [r.data["main_budget"]]
            labelled = [(f"{b:.1%}", b) for b in budgets]  # the slider shows percentages
            prev = bud.value
            if [tuple(o) for o in bud.options] != labelled:
                bud.options = labelled  # this resets the value to the first option
            main = r.data["main_budget"] if r.data["main_budget"] in budgets else budgets[0]
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
