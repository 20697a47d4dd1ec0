"""An ipywidgets explorer over ``defences_main`` records: a defence and a threat model →
accuracy vs budget under the transfer and the adaptive attack, beside the undefended GCN,
and what the attacks' flips look like."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from ..plotting import PALETTE, show_explorer, use_style
from .evaluate import DEFENCES
from .tables import PAIRS

__all__ = ["explorer", "plot_threat"]


def plot_threat(df: pd.DataFrame, defence: str, threat: str, ax=None):
    """One panel: the defence under the transfer (dashed) and adaptive (solid) attack of
    ``threat`` (``poisoning`` or ``evasion``), GCN in grey; means over cells, ± one std."""
    use_style()
    if threat not in PAIRS:
        raise ValueError(f"threat must be one of {', '.join(PAIRS)}, got {threat!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=(5.2, 3.3))
    d = df.assign(accuracy=100 * df.accuracy)
    clean = d[d.attack == "clean"]
    for name, color in ((defence, PALETTE[0]), ("gcn", "0.55")):
        for attack, ls in zip(PAIRS[threat], ("--", "-")):
            if name == "gcn" and defence == "gcn" and ls == "--":
                continue
            rows = pd.concat([clean[clean.defence == name], d[(d.defence == name) & (d.attack == attack)]])
            g = rows.groupby("budget").accuracy
            if g.ngroups < 2:
                continue
            m, s = g.mean(), g.std(ddof=1).fillna(0.0)
            x = 100 * m.index.to_numpy()
            label = f"{DEFENCES[name].label if name in DEFENCES else name}: {attack.split('-')[0]}"
            ax.plot(x, m.to_numpy(), ls=ls, color=color, marker="o", ms=3, label=label)
            ax.fill_between(x, (m - s).to_numpy(), (m + s).to_numpy(), color=color, alpha=0.12, lw=0)
    ax.set_xlabel("budget (% of edges)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{threat}")
    ax.legend(fontsize=8)
    return ax


def explorer(df: pd.DataFrame, defence: str = "jaccard", threat: str = "poisoning"):
    """Widgets: defence × threat model; shows :func:`plot_threat` and the flips' profile."""
    import ipywidgets as w
    from IPython.display import display

    names = [n for n in DEFENCES if n in set(df.defence) and n != "gcn"] or ["gcn"]
    pick = w.Dropdown(options=[(DEFENCES[n].label, n) for n in names], value=defence if defence in names else names[0],
                      description="defence")
    model = w.ToggleButtons(options=list(PAIRS), value=threat, description="threat")
    out = w.Output()

    def render():
        plot_threat(df, pick.value, model.value)
        plt.tight_layout()
        plt.show()
        rows = df[(df.defence == pick.value) & df.attack.isin(PAIRS[model.value])]
        cols = [c for c in ("inserted_share", "dissimilar_share", "attack_seconds") if c in rows]
        if cols:
            display(rows.groupby(["budget", "attack"])[cols].mean().round(3))

    def refresh(*_):
        out.clear_output(wait=True)
        with out:
            render()

    for widget in (pick, model):
        widget.observe(refresh, names="value")
    refresh()
    show_explorer(w.VBox([w.HBox([pick, model]), out]), out, render)
