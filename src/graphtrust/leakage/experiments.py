"""The GraphDLG chapter's pictures, ablations, defences and architectures, as flat records.

The harness experiment ``graphdlg_ablations`` (:mod:`.cells`) calls :func:`measure_part`
for one ``part`` of the grid; every function here returns records (one per victim and
variant), and the frames below turn them into the chapter's tables with ``groupby``.

Setting, the same for every method: graphs with at most ``n_max`` nodes; a seeded
permutation splits them into the victims (first ``victims``) and the *pool* (the rest:
other clients' graphs, the client-side auxiliaries); the global model is a
:class:`~.model.GraphClassifier` at its seeded initialisation (round 0 of FedSGD, batch
size 1) in float64; the attacker knows the node count ``n`` and that features are one-hot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import torch

from .decoder import Graph
from .methods import METHODS, Problem, run_method
from .metrics import score
from .model import GraphClassifier, accuracy, client_gradient, defend, fedsgd

__all__ = ["Problem", "run_method", "PARTS", "measure_part", "pictures", "variants_frame", "batch_frame",
           "architectures_frame", "defence_frame", "train_with_defence", "plot_defences", "copies", "has_copy"]

PICTURED = ("dlg", "idlg", "graphdlg-random", "graphdlg-client")
LABELS = {"chance": "random guess", "prior": "prior only (decoder sees n)",
          **{name: m.label for name, m in METHODS.items()}}
#: the parts of ``graphdlg_ablations``, one cell each
PARTS = ("pictures", "structure", "features", "aux_counts", "batch", "noise", "prune", "architectures")
METRICS = ("feature_mse", "structure_auc", "edge_f1")


def _scored(rec, victim) -> dict:
    a, x, y = victim
    return score(rec.adj, rec.x, a, x).as_dict() | {"seconds": round(rec.seconds, 4), "label_ok": float(rec.label == y)}


def pictures(p: Problem, methods: Sequence[str], count: int) -> list[dict[str, Any]]:
    """The first ``count`` victims (``method="victim"``) and their reconstructions by the
    prior-only decoder and ``methods``: adjacency and features as lists, with the metrics."""
    prior = _prior_decoder(p)
    out = []
    for i, (a, x, y) in enumerate(p.victims[:count]):
        n = a.size(0)
        out.append({"victim": i, "method": "victim", "adj": a.tolist(), "x": x.tolist(), "label": int(y)})
        s, f = prior.decode(torch.tensor([float(n)], dtype=torch.float64), n)
        out.append({"victim": i, "method": "prior", "adj": s.tolist(), "x": f.tolist(), **score(s, f, a, x).as_dict()})
        grads = client_gradient(p.model, [(a, x, y)])
        for m in methods:
            r = run_method(p, m, grads, n, seed=i)
            out.append({"victim": i, "method": m, "adj": r.adj.tolist(), "x": r.x.tolist(), **_scored(r, (a, x, y))})
    return out


def _variant(p: Problem, victims, label: str, method: str = "graphdlg-client", bank_filter=None,
             **kw) -> list[dict[str, Any]]:
    rows = []
    for i, v in enumerate(victims):
        extra = dict(kw)
        if bank_filter is not None:
            extra["bank"] = bank_filter(v)
        r = run_method(p, method, client_gradient(p.model, [v]), v[0].size(0), seed=i, **extra)
        rows.append({"variant": label, "method": method, "victim": i, **_scored(r, v)})
    return rows


def measure_part(p: Problem, sz: Mapping[str, Any], part: str) -> list[dict[str, Any]]:
    """The records of one ``part`` of the ablations (:data:`PARTS`) on ``p``'s first
    ``ablation_victims`` victims (``pictures``: the first ``pictures`` victims)."""
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}; parts: {', '.join(PARTS)}")
    vic = p.victims[: sz["ablation_victims"]]
    if part == "pictures":
        return pictures(p, sz["methods"], sz["pictures"])
    if part == "structure":
        bank = p.decoder("client").bank

        def without_copies(v):
            drop = set(copies(v, bank))
            return [g for j, g in enumerate(bank) if j not in drop]

        return (_variant(p, vic, "learned decoder only", retrieval=0) + _variant(p, vic, "decoder + retrieval")
                + _variant(p, vic, "decoder + retrieval, victim's isomorphic copies removed", bank_filter=without_copies)
                + _variant(p, vic, "+ joint structure refinement (ours)", refine_structure=True))
    if part == "features":
        return [r for label, stage in (
            ("best candidate's features", "candidate"), ("closed form", "closed-form"),
            ("gradient matching from the candidate", "matching"),
            ("closed form + gradient matching", "closed-form+matching"),
            ("gradient matching from a random start", "random+matching"))
            for r in _variant(p, vic, label, features=stage)]
    if part == "aux_counts":
        return [r for c in sz["aux_counts"] if c <= len(p.pool) for r in _variant(p, vic, str(c), f"graphdlg-client@{c}")]
    if part == "batch":
        too_big = [b for b in sz["batch_sizes"] if b - 1 > len(p.pool)]
        if too_big:
            raise ValueError(f"a batch of {max(too_big)} graphs needs {max(too_big) - 1} other graphs; "
                             f"the client's pool has {len(p.pool)}")
        out, gen = [], torch.Generator().manual_seed(7)
        for b in sz["batch_sizes"]:
            others = {i: [p.pool[j] for j in torch.randperm(len(p.pool), generator=gen)[: b - 1].tolist()]
                      for i in range(len(vic))}
            for m in ("idlg", "graphdlg-client"):
                out += [{"batch": b, "method": m, "victim": i,
                         **_scored(run_method(p, m, client_gradient(p.model, [v, *others[i]]), v[0].size(0), seed=i), v)}
                        for i, v in enumerate(vic)]
        return out
    if part in ("noise", "prune"):
        levels = sz["noise_grid"] if part == "noise" else sz["prune_grid"]
        out = []
        for level in levels:
            kw = dict(noise=level, clip=sz["clip"]) if part == "noise" else dict(prune=level)
            for m in ("idlg", "graphdlg-client"):
                for i, v in enumerate(vic):
                    grads = defend(client_gradient(p.model, [v]), seed=i, **kw)
                    out.append({"level": float(level), "method": m, "victim": i,
                                **_scored(run_method(p, m, grads, v[0].size(0), seed=i), v)})
            out += [{"level": float(level), "method": "model", "seed": s,
                     "accuracy": train_with_defence(p, epochs=sz["defence_epochs"], seed=s, **kw)}
                    for s in range(sz["defence_seeds"])]
        return out
    if part == "architectures":
        out = []
        for hidden, layers in sz["architectures"]:
            q = Problem(p.name, sz, hidden=hidden, layers=layers)
            for m in ("dlg", "graphdlg-client"):
                out += [{"hidden": hidden, "layers": layers, "method": m, "victim": i,
                         **_scored(run_method(q, m, client_gradient(q.model, [v]), v[0].size(0), seed=i), v)}
                        for i, v in enumerate(q.victims[: sz["ablation_victims"]])]
        return out
    raise AssertionError(part)


def _part(df: pd.DataFrame, part: str) -> pd.DataFrame:
    d = df[df.part == part] if "part" in df else df
    if d.empty:
        raise KeyError(f"no records of part {part!r}")
    return d


def variants_frame(df: pd.DataFrame, part: str, first: str = "variant") -> pd.DataFrame:
    """One ablation's variants (``part``: structure, features, aux_counts) as rows, columns
    ``(metric, "mean" | "std")`` over the victims (sample std) for feature MSE, structure
    AUC and edge F1."""
    d = _part(df, part)
    return d.groupby("variant", sort=False)[list(METRICS)].agg(["mean", "std"]).rename_axis(first)


def batch_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Mean structure AUC and feature MSE of iDLG and GraphDLG (client-side) per batch size."""
    d = _part(df, "batch").astype({"batch": int})
    out = d.pivot_table(index="batch", columns="method", values=["structure_auc", "feature_mse"], aggfunc="mean")
    return out.swaplevel(axis=1).sort_index(axis=1).rename_axis("graphs per gradient B")


def architectures_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Mean structure AUC and feature MSE of DLG and GraphDLG (client-side) per GCN width × depth."""
    d = _part(df, "architectures").assign(GCN=lambda t: t.hidden.astype(int).astype(str) + "x" + t.layers.astype(int).astype(str))
    out = d.pivot_table(index="GCN", columns="method", values=["structure_auc", "feature_mse"], aggfunc="mean",
                        sort=False)
    return out.swaplevel(axis=1).sort_index(axis=1)


def defence_frame(df: pd.DataFrame, part: str) -> pd.DataFrame:
    """Per defence level (``part``: noise or prune): mean metrics of iDLG and GraphDLG
    (client-side) over the victims, and the mean accuracy of the model trained under it."""
    d = _part(df, part)
    att = d[d.method != "model"].pivot_table(index="level", columns="method", values=["structure_auc", "feature_mse"],
                                             aggfunc="mean")
    att = att.swaplevel(axis=1).sort_index(axis=1)
    att[("model", "accuracy")] = d[d.method == "model"].groupby("level")["accuracy"].mean()
    return att


def _prior_decoder(p: Problem):
    """The decoder trained on the client-side auxiliaries that sees only ``n``."""
    return p.decoder("client", prior=True)


def train_with_defence(p: Problem, *, noise: float = 0.0, clip: float | None = None, prune: float = 0.0,
                       epochs: int = 6, lr: float = 0.01, seed: int = 0) -> float:
    """FedSGD (batch size 1, the server applies the defended gradient with Adam) on the pool; returns the
    test accuracy on the victims (held out from training)."""
    torch.manual_seed(seed)
    model = GraphClassifier(p.num_features, p.num_classes, hidden=p.hidden, layers=p.layers).double()

    def send(g, ep, j):
        return defend(g, noise=noise, clip=clip, prune=prune, seed=seed * 1_000_003 + ep * 10_007 + j)

    fedsgd(model, p.pool, epochs * len(p.pool), lr=lr, seed=seed, transform=send)
    return accuracy(model, p.victims)


def copies(victim: Graph, bank: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> list[int]:
    """Indices of the graphs in ``bank`` isomorphic to ``victim`` (same feature classes)."""
    from .metrics import _edges, isomorphism, labelled_graph

    a, x = victim[0], victim[1]
    classes = x.argmax(1).sort().values
    gv, out = None, []
    for j, (b, xb) in enumerate(bank):
        if b.size(0) != a.size(0) or float(b.sum()) != float(a.sum()) or not torch.equal(xb.argmax(1).sort().values,
                                                                                        classes):
            continue
        gv = labelled_graph(_edges(a.numpy()), x.argmax(1)) if gv is None else gv
        if isomorphism(gv, labelled_graph(_edges(b.numpy()), xb.argmax(1))) is not None:
            out.append(j)
    return out


def has_copy(victim: Graph, bank: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> bool:
    """Whether ``bank`` holds a graph isomorphic to ``victim`` (same feature classes)."""
    return bool(copies(victim, bank))


def plot_defences(df: pd.DataFrame, axes=None, no_gradient: Mapping[str, float] | None = None):
    """Structure AUC and feature MSE of iDLG and GraphDLG (client-side) against the noise
    scale and the pruning ratio (the ``noise`` and ``prune`` records of
    ``graphdlg_ablations``), with the accuracy of a model trained under each defence;
    ``no_gradient`` (``{metric: value}``) draws the strongest no-gradient baseline's level:
    where a curve reaches it, the gradient no longer leaks anything measurable."""
    import matplotlib.pyplot as plt

    from ..plotting import PALETTE, use_style

    use_style()
    if axes is None:
        _, axes = plt.subplots(2, 2, figsize=(10, 6), sharey="row")
    for col, (kind, xlabel) in enumerate((("noise", "noise multiplier σ (clip C = 1)"), ("prune", "pruned fraction"))):
        f = defence_frame(df, kind)
        xs = [float(v) for v in f.index]
        xplot = [max(x, 1e-4) if kind == "noise" else x for x in xs]
        for row, metric in enumerate(("structure_auc", "feature_mse")):
            ax = axes[row][col]
            for j, m in enumerate(("idlg", "graphdlg-client")):
                ax.plot(xplot, f[(m, metric)].to_numpy(), marker="o", color=PALETTE[j], label=LABELS[m])
            if no_gradient and metric in no_gradient:
                ax.axhline(no_gradient[metric], color="0.3", ls=":", label="strongest no-gradient baseline")
            if col == 0:  # the rows share their y axis
                ax.set_ylabel(metric.replace("_", " "))
            if kind == "noise":
                ax.set_xscale("log")
            if row == 0:
                twin = ax.twinx()
                twin.plot(xplot, 100 * f[("model", "accuracy")].to_numpy(), ls="--", color="0.4",
                          marker="s", label="model accuracy (%)")
                twin.set_ylim(0, 100)
                if col == 1:
                    twin.set_ylabel("accuracy (%)", color="0.4")
                else:
                    twin.tick_params(labelright=False)
                twin_handles = twin.get_legend_handles_labels()
            else:
                ax.set_xlabel(xlabel + (" (0 plotted at 1e-4)" if kind == "noise" else ""))
    # one legend above the panels, never on the data
    handles, labels = axes[0][0].get_legend_handles_labels()
    axes[0][0].figure.legend(handles + twin_handles[0], labels + twin_handles[1], loc="lower center",
                             bbox_to_anchor=(0.5, 1.0), ncol=4, frameon=False)
    return axes
