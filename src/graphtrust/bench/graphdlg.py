"""Benchmark: gradient-leakage attacks on a fixed set of MUTAG victims.

Every method attacks the same victims (the first ``--victims`` of the chapter's seeded
split, quick-profile model and sizes unless ``--iters`` says otherwise). Reported per
method: ``seconds_per_graph`` (attack only; GraphDLG's decoder training is reported
separately as ``decoder_seconds``), mean ``feature_mse``, ``structure_auc`` and
``edge_f1``; and GraphDLG's ratios to the best baseline (DLG, iDLG).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from .. import config
from ..leakage.experiments import Problem, run_method
from ..leakage.metrics import score
from ..leakage.model import client_gradient
from . import benchmark


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--victims", type=int, default=24)
    p.add_argument("--iters", type=int, default=None, help="L-BFGS iterations (default: quick profile's)")
    p.add_argument("--dataset", default="MUTAG")


@benchmark("graphdlg", "GraphDLG vs DLG/iDLG: time per graph and recovery on MUTAG victims", _args)
def run(args: argparse.Namespace) -> dict:
    sz = dict(config.sizes("graphdlg", "quick"))
    sz["victims"] = args.victims
    if args.iters:
        sz["iters"] = args.iters
    p = Problem(args.dataset, sz)
    out: dict = {"dataset": args.dataset, "victims": len(p.victims), "iters": sz["iters"], "methods": {}}
    for kind in ("random", "client"):
        t = time.perf_counter()
        dec = p.decoder(kind)
        out[f"decoder_seconds_{kind}"] = round(time.perf_counter() - t, 2)
        out[f"decoder_auxiliary_{kind}"] = dec.info["auxiliary"]
    for m in ("dlg", "idlg", "graphdlg-random", "graphdlg-client"):
        rows, secs = [], []
        for i, (a, x, y) in enumerate(p.victims):
            grads = client_gradient(p.model, [(a, x, y)])
            t = time.perf_counter()
            r = run_method(p, m, grads, a.size(0), seed=i)
            secs.append(time.perf_counter() - t)
            rows.append(score(r.adj, r.x, a, x).as_dict())
        res = {k: round(float(np.nanmean([r[k] for r in rows])), 4) for k in rows[0]}
        res["seconds_per_graph"] = round(float(np.mean(secs)), 3)
        out["methods"][m] = res
        print(f"{m:16s} {res['seconds_per_graph']:.3f} s/graph  feature MSE {res['feature_mse']:.4f}  "
              f"structure AUC {res['structure_auc']:.3f}  edge F1 {res['edge_f1']:.3f}")
    base = [out["methods"][m] for m in ("dlg", "idlg")]
    best_auc = max(b["structure_auc"] for b in base)
    best_mse = min(b["feature_mse"] for b in base)
    for m in ("graphdlg-random", "graphdlg-client"):
        out["methods"][m]["auc_ratio"] = round(out["methods"][m]["structure_auc"] / best_auc, 3)
        out["methods"][m]["mse_ratio"] = round(out["methods"][m]["feature_mse"] / best_mse, 3)
    g = out["methods"]["graphdlg-client"]
    out.update(seconds_per_graph=g["seconds_per_graph"], feature_mse=g["feature_mse"],
               structure_auc=g["structure_auc"], auc_ratio=g["auc_ratio"], mse_ratio=g["mse_ratio"])
    print(f"GraphDLG (client-side) vs best baseline: AUC x{g['auc_ratio']} (target >= 1.25), "
          f"MSE x{g['mse_ratio']} (target <= 0.945)")
    return out
