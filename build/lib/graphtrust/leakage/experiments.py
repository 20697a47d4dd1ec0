"""The GraphDLG chapter's experiments: main table, ablations, defences, batches.

``run(sizes)`` returns a :class:`~graphtrust.results.Result`; the chapter renders its
tables and figures from it, and ``python -m graphtrust.leakage.experiments --out F`` saves
the full profile with its provenance (``--datasets`` and ``--merge`` run it in parts).

Setting, the same for every method: graphs with at most ``n_max`` nodes; a seeded
permutation splits them into the victims (first ``victims``) and the *pool* (the rest:
other clients' graphs, the client-side auxiliaries); the global model is a
:class:`~.model.GraphClassifier` at its seeded initialisation (round 0 of FedSGD, batch
size 1) in float64; the attacker knows the node count ``n`` and that features are one-hot.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import config
from ..progress import progress
from ..results import Result
from .decoder import Graph
from .methods import METHODS, Problem, run_method
from .metrics import chance, score
from .model import GraphClassifier, client_gradient, defend

__all__ = ["Problem", "run_method", "main_table", "run", "variants_frame", "train_with_defence", "plot_defences"]

PICTURED = ("dlg", "idlg", "graphdlg-random", "graphdlg-client")
LABELS = {"chance": "random guess", "prior": "prior only (decoder sees n)",
          **{name: m.label for name, m in METHODS.items()}}


def _agg(rows: Sequence[dict]) -> dict:
    out = {}
    for key in rows[0]:
        v = np.array([r[key] for r in rows], dtype=float)
        v = v[np.isfinite(v)]
        out[key] = {"mean": float(v.mean()) if len(v) else math.nan,
                    "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "n": int(len(v))}
    return out


def _scored(rec, victim) -> dict:
    a, x, y = victim
    return score(rec.adj, rec.x, a, x).as_dict() | {"seconds": rec.seconds, "label_ok": float(rec.label == y)}


def main_table(p: Problem, methods: Sequence[str] = PICTURED, victims: Sequence[Graph] | None = None) -> dict:
    """Per method: mean ± std of the metrics over ``victims``, per-victim rows and their
    reconstructions (for pictures and the explorer). The chapter's main table comes from
    the harness experiment ``graphdlg_main`` (:mod:`.cells`), not from here."""
    victims = p.victims if victims is None else victims
    prior = _prior_decoder(p)
    rows: dict[str, list] = {m: [] for m in ("chance", "prior", *methods)}
    keep = p.sz["pictures"]
    recs: dict[str, list] = {m: [] for m in ("prior", *methods)}
    for i, (a, x, y) in enumerate(progress(victims, desc=f"{p.name} victims")):
        n = a.size(0)
        grads = client_gradient(p.model, [(a, x, y)])
        rows["chance"].append(chance(a, x, seed=i).as_dict() | {"seconds": 0.0, "label_ok": 1.0 / p.num_classes})
        s, f = prior.decode(torch.tensor([float(n)], dtype=torch.float64), n)
        rows["prior"].append(score(s, f, a, x).as_dict() | {"seconds": 0.0, "label_ok": math.nan})
        if i < keep:
            recs["prior"].append({"adj": s.tolist(), "x": f.tolist()})
        for m in methods:
            r = run_method(p, m, grads, n, seed=i)
            rows[m].append(_scored(r, (a, x, y)))
            if i < keep:
                recs[m].append({"adj": r.adj.tolist(), "x": r.x.tolist()})
    bank = p.decoder("client").bank
    with_copy = sum(has_copy(v, bank) for v in victims)
    return {"summary": {m: _agg(v) for m, v in rows.items()}, "rows": rows, "reconstructions": recs,
            "victims_with_copy": int(with_copy),
            "victims": [{"adj": a.tolist(), "x": x.tolist(), "label": y} for a, x, y in victims[:keep]],
            "decoders": {k[0] + (f"@{k[1]}" if k[1] else "") + (" (prior)" if k[2] else ""): d.info
                         for k, d in p._decoders.items()}}


def _prior_decoder(p: Problem):
    """The decoder trained on the client-side auxiliaries that sees only ``n``."""
    return p.decoder("client", prior=True)


def train_with_defence(p: Problem, *, noise: float = 0.0, clip: float | None = None, prune: float = 0.0,
                       epochs: int = 6, lr: float = 0.01, seed: int = 0) -> float:
    """FedSGD (batch size 1, the server applies the defended gradient with Adam) on the pool; returns the
    test accuracy on the victims (held out from training)."""
    torch.manual_seed(seed)
    model = GraphClassifier(p.num_features, p.num_classes, hidden=p.hidden, layers=p.layers).double()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    for ep in range(epochs):
        for j, i in enumerate(torch.randperm(len(p.pool), generator=gen).tolist()):
            g = defend(client_gradient(model, [p.pool[i]]), noise=noise, clip=clip, prune=prune,
                       seed=seed * 1_000_003 + ep * 10_007 + j)
            for par, gi in zip(model.parameters(), g):
                par.grad = gi
            opt.step()
    with torch.no_grad():
        correct = sum(int(model(a, x).argmax()) == y for a, x, y in p.victims)
    return correct / len(p.victims)


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


def _variant_rows(p: Problem, victims, method: str = "graphdlg-client", bank_filter=None, **kw) -> dict:
    rows = []
    for i, v in enumerate(victims):
        extra = dict(kw)
        if bank_filter is not None:
            extra["bank"] = bank_filter(v)
        rows.append(_scored(run_method(p, method, client_gradient(p.model, [v]), v[0].size(0), seed=i, **extra), v))
    return _agg(rows)


def ablations(p: Problem, sz: Mapping[str, Any]) -> dict:
    """Structure (decoder, retrieval, no copies of the victim), features (closed form vs
    gradient matching), auxiliary count, batch size."""
    too_big = [b for b in sz["batch_sizes"] if b - 1 > len(p.pool)]
    if too_big:
        raise ValueError(f"a batch of {max(too_big)} graphs needs {max(too_big) - 1} other graphs; "
                         f"the client's pool has {len(p.pool)}")
    vic = p.victims[: sz["ablation_victims"]]
    bank = p.decoder("client").bank

    def without_copies(v):
        drop = set(copies(v, bank))
        return [g for j, g in enumerate(bank) if j not in drop]

    out: dict[str, Any] = {"structure": {
        "learned decoder only": _variant_rows(p, vic, retrieval=0),
        "decoder + retrieval": _variant_rows(p, vic),
        "decoder + retrieval, victim's isomorphic copies removed": _variant_rows(p, vic, bank_filter=without_copies),
        "+ joint structure refinement (ours)": _variant_rows(p, vic, refine_structure=True),
    }}
    out["features"] = {label: _variant_rows(p, vic, features=stage) for label, stage in (
        ("best candidate's features", "candidate"), ("closed form", "closed-form"),
        ("gradient matching from the candidate", "matching"), ("closed form + gradient matching", "closed-form+matching"),
        ("gradient matching from a random start", "random+matching"))}
    out["aux_counts"] = {str(c): _variant_rows(p, vic, f"graphdlg-client@{c}") for c in sz["aux_counts"]
                         if c <= len(p.pool)}
    out["batch"] = {}
    gen = torch.Generator().manual_seed(7)
    for b in sz["batch_sizes"]:
        res_b = {}
        others = {i: [p.pool[j] for j in torch.randperm(len(p.pool), generator=gen)[: b - 1].tolist()]
                  for i in range(len(vic))}
        for m in ("idlg", "graphdlg-client"):
            rows = [_scored(run_method(p, m, client_gradient(p.model, [v, *others[i]]), v[0].size(0), seed=i), v)
                    for i, v in enumerate(vic)]
            res_b[m] = _agg(rows)
        out["batch"][str(b)] = res_b
    return out


def architectures(name: str, sz: Mapping[str, Any]) -> dict:
    """GCN width and depth: DLG and GraphDLG (client-side) for each (hidden, layers)."""
    out = {}
    for hidden, layers in sz["architectures"]:
        p = Problem(name, sz, hidden=hidden, layers=layers)
        vic = p.victims[: sz["ablation_victims"]]
        res = {}
        for m in ("dlg", "graphdlg-client"):
            res[m] = _agg([_scored(run_method(p, m, client_gradient(p.model, [v]), v[0].size(0), seed=i), v)
                           for i, v in enumerate(vic)])
        out[f"{hidden}x{layers}"] = {"hidden": hidden, "layers": layers, **res}
    return out


def defences(p: Problem, sz: Mapping[str, Any]) -> dict:
    """Recovery (GraphDLG client-side and iDLG) against noise and pruning, with the accuracy
    of a model trained under the same defence."""
    vic = p.victims[: sz["ablation_victims"]]
    out = {"noise": {}, "prune": {}}
    settings = [("noise", s, dict(noise=s, clip=sz["clip"])) for s in sz["noise_grid"]]
    settings += [("prune", r, dict(prune=r)) for r in sz["prune_grid"]]
    for kind, level, kw in progress(settings, desc="defences"):
        res = {}
        for m in ("idlg", "graphdlg-client"):
            rows = []
            for i, v in enumerate(vic):
                grads = defend(client_gradient(p.model, [v]), seed=i, **kw)
                rows.append(_scored(run_method(p, m, grads, v[0].size(0), seed=i), v))
            res[m] = _agg(rows)
        res["accuracy"] = float(np.mean([train_with_defence(p, epochs=sz["defence_epochs"], seed=s, **kw)
                                         for s in range(sz["defence_seeds"])]))
        out[kind][str(level)] = res
    return out


def run(sz: Mapping[str, Any], datasets_: Sequence[str] | None = None,
        problems: Mapping[str, Problem] | None = None) -> Result:
    """Everything the chapter shows, for the active profile's sizes ``sz``; ``problems``
    reuses prepared datasets (their decoders are trained once)."""
    t0 = time.perf_counter()
    names = list(datasets_ or sz["datasets"])
    data: dict[str, Any] = {"settings": {k: v for k, v in sz.items() if k != "runtime"}, "datasets": {}}
    for name in names:
        t = time.perf_counter()
        p = (problems or {}).get(name) or Problem(name, sz)
        entry = {"graphs": len(p.victims) + len(p.pool), "victims": len(p.victims), "n_max": p.n_max,
                 "features": p.num_features, "classes": p.num_classes, "density": p.density,
                 "mean_nodes": float(np.mean([a.size(0) for a, _, _ in p.victims]))}
        entry["main"] = main_table(p, sz["methods"], victims=p.victims[: sz["pictures"]])
        if name == sz["ablation_dataset"]:
            entry["ablations"] = ablations(p, sz)
            entry["defences"] = defences(p, sz)
            entry["architectures"] = architectures(name, sz)
        entry["seconds"] = time.perf_counter() - t
        data["datasets"][name] = entry
    return Result("graphdlg", data, seconds=time.perf_counter() - t0)


def variants_frame(variants: Mapping[str, Mapping], first: str = "variant"):
    """An ablation's variants (``{label: aggregated metrics}``) as a DataFrame: rows the
    variants, columns ``(metric, "mean" | "std")`` over the victims for feature MSE,
    structure AUC and edge F1 (the layout of ``groupby(...).agg(["mean", "std"])``)."""
    import pandas as pd

    data = {label: {(k, stat): s[k][stat] for k in ("feature_mse", "structure_auc", "edge_f1")
                    for stat in ("mean", "std")} for label, s in variants.items()}
    out = pd.DataFrame.from_dict(data, orient="index")
    out.columns = pd.MultiIndex.from_tuples(out.columns)
    out.index.name = first
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m graphtrust.leakage.experiments", description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--datasets", nargs="*", default=None)
    ap.add_argument("--merge", type=Path, default=None, help="add to the datasets of a saved result")
    args = ap.parse_args(argv)
    sz = config.sizes("graphdlg")
    res = run(sz, args.datasets)
    if args.merge and args.merge.exists():
        old = Result.load(args.merge)
        merged = dict(old.data, datasets={**old.data["datasets"], **res.data["datasets"]})
        res = old.combined_with(res, merged)
    res.data["complete"] = set(res.data["datasets"]) >= set(sz["datasets"])
    res.save(args.out)
    print(f"saved {args.out} ({res.seconds / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def plot_defences(defences_: Mapping[str, Any], axes=None, no_gradient: Mapping[str, float] | None = None):
    """Structure AUC and feature MSE of iDLG and GraphDLG (client-side) against the noise
    scale and the pruning ratio, with the accuracy of a model trained under each defence;
    ``no_gradient`` (``{metric: value}``) draws the strongest no-gradient baseline's level:
    where a curve reaches it, the gradient no longer leaks anything measurable."""
    import matplotlib.pyplot as plt

    from ..plotting import PALETTE, use_style

    use_style()
    if axes is None:
        _, axes = plt.subplots(2, 2, figsize=(10, 6), sharey="row")
    for col, (kind, xlabel) in enumerate((("noise", "noise multiplier σ (clip C = 1)"), ("prune", "pruned fraction"))):
        levels = sorted(defences_[kind], key=float)
        xs = [float(v) for v in levels]
        xplot = [max(x, 1e-4) if kind == "noise" else x for x in xs]
        for row, metric in enumerate(("structure_auc", "feature_mse")):
            ax = axes[row][col]
            for j, m in enumerate(("idlg", "graphdlg-client")):
                ys = [defences_[kind][v][m][metric]["mean"] for v in levels]
                ax.plot(xplot, ys, marker="o", color=PALETTE[j], label=LABELS[m])
            if no_gradient and metric in no_gradient:
                ax.axhline(no_gradient[metric], color="0.3", ls=":", label="strongest no-gradient baseline")
            if col == 0:  # the rows share their y axis
                ax.set_ylabel(metric.replace("_", " "))
            if kind == "noise":
                ax.set_xscale("log")
            if row == 0:
                twin = ax.twinx()
                twin.plot(xplot, [100 * defences_[kind][v]["accuracy"] for v in levels], ls="--", color="0.4",
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
