"""Pictures of reconstructions and an ipywidgets explorer over a computed result.

A victim is drawn next to each reconstruction *after the chapter's alignment*
(:func:`~.metrics.align`): reconstructed node ``i`` is placed where its matched victim
node sits, so a correct edge lies on top of a victim edge. Node colour is the (recovered)
feature class, edges are the top-``m`` pairs of the scores (``m`` the victim's edge count).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import networkx as nx
import numpy as np

from ..plotting import PALETTE, show_explorer, use_style
from .metrics import align

__all__ = ["draw_graph", "draw_reconstructions", "explorer"]


def _top_pairs(s: np.ndarray, m: int) -> list[tuple[int, int]]:
    iu = np.triu_indices(s.shape[0], 1)
    order = np.argsort(-s[iu], kind="stable")[:m]
    return [(int(iu[0][k]), int(iu[1][k])) for k in order]


def draw_graph(adj, x, ax, pos=None, title: str = "", edges=None, true_edges=None):
    """Draw a graph ``adj: (n, n)`` with node colours from ``x: (n, F)`` on ``ax``;
    ``edges`` overrides the drawn edges; with ``true_edges``, wrong edges are dashed red."""
    adj, x = np.asarray(adj, dtype=float), np.asarray(x, dtype=float)
    n = adj.shape[0]
    g = nx.Graph()
    g.add_nodes_from(range(n))
    edges = edges if edges is not None else [(i, j) for i, j in zip(*np.nonzero(np.triu(adj, 1)))]
    g.add_edges_from(edges)
    if pos is None:
        pos = nx.kamada_kawai_layout(nx.from_numpy_array(adj)) if adj.sum() else nx.circular_layout(g)
    colours = [PALETTE[int(c) % len(PALETTE)] for c in x.argmax(1)]
    good = [e for e in edges if true_edges is None or tuple(sorted(e)) in true_edges]
    bad = [e for e in edges if true_edges is not None and tuple(sorted(e)) not in true_edges]
    nx.draw_networkx_nodes(g, pos, ax=ax, node_color=colours, node_size=60, linewidths=0.5, edgecolors="k")
    nx.draw_networkx_edges(g, pos, ax=ax, edgelist=good, width=1.4, edge_color="0.2")
    if bad:
        nx.draw_networkx_edges(g, pos, ax=ax, edgelist=bad, width=1.0, edge_color=PALETTE[3], style="dashed")
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()
    return pos


def draw_reconstructions(victim: Mapping, recs: Mapping[str, Mapping], labels: Mapping[str, str] | None = None,
                         axes: Sequence | None = None):
    """The victim and each reconstruction in ``recs`` (``{"adj", "x"}`` dicts), aligned."""
    use_style()
    a, x = np.asarray(victim["adj"]), np.asarray(victim["x"])
    m = int(np.triu(a, 1).sum())
    if axes is None:
        _, axes = plt.subplots(1, 1 + len(recs), figsize=(2.6 * (1 + len(recs)), 2.7))
    pos = draw_graph(a, x, axes[0], title=f"victim ({a.shape[0]} nodes, {m} edges)")
    true_edges = {tuple(sorted((int(i), int(j)))) for i, j in zip(*np.nonzero(np.triu(a, 1)))}
    for ax, (name, r) in zip(axes[1:], recs.items()):
        s, xh = np.asarray(r["adj"]), np.asarray(r["x"])
        perm = align(s, xh, a, x)  # reconstructed i ↦ victim perm[i]
        edges = [(int(perm[i]), int(perm[j])) for i, j in _top_pairs(0.5 * (s + s.T), m)]
        xv = np.zeros_like(xh)
        xv[perm] = xh
        hits = sum(tuple(sorted(e)) in true_edges for e in edges)
        draw_graph(a, xv, ax, pos=pos, edges=edges, true_edges=true_edges,
                   title=f"{(labels or {}).get(name, name)}\n{hits}/{m} edges right")
    return axes


def explorer(df, labels: Mapping[str, str] | None = None):
    """Pick a victim and a method: the victim and its reconstruction side by side, with
    that victim's metrics. ``df``: the ``pictures`` records of ``graphdlg_ablations`` (one
    row per victim and method; ``method="victim"`` holds the victim). The static book
    shows the first victim with every method."""
    import ipywidgets as w
    import pandas as pd
    from IPython.display import display

    pics = df[df.part == "pictures"] if "part" in df else df
    by = {(m, int(i)): row for m, i, row in zip(pics.method, pics.victim, pics.to_dict("records"))}
    methods = [m for m in pics.method.unique() if m != "victim"]
    n_victims = int(pics.victim.max()) + 1
    pick = w.IntSlider(value=0, min=0, max=n_victims - 1, description="victim", continuous_update=False)
    method = w.Dropdown(options=[("all methods", "*")] + [((labels or {}).get(m, m), m) for m in methods],
                        description="method")
    out = w.Output()

    def refresh(*_):
        out.clear_output(wait=True)
        with out:
            render()

    def render():
        i = pick.value
        chosen = methods if method.value == "*" else [method.value]
        draw_reconstructions(by[("victim", i)], {m: by[(m, i)] for m in chosen}, labels)
        plt.tight_layout()
        plt.show()
        table = pd.DataFrame({(labels or {}).get(m, m): {k: by[(m, i)][k] for k in
                                                          ("feature_mse", "structure_auc", "edge_f1")}
                              for m in chosen}).T
        display(table.rename_axis("method").round(4))

    pick.observe(refresh, names="value")
    method.observe(refresh, names="value")
    refresh()
    show_explorer(w.VBox([w.HBox([pick, method]), out]), out, render)
