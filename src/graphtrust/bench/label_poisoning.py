"""Benchmark: label-poisoning attacks on Cora-ML (LCC) at a 20 % budget.

Times each implemented attack once on one random labelled pool (140 nodes, as in the
paper) and reports the accuracy of a GCN trained under the corrected protocol (2-fold
CV inside the poisoned pool, a small grid) after poisoning.
"""

from __future__ import annotations

import argparse
import time

from .. import datasets
from ..labels import (
    degree_attack,
    gcn_ntk,
    label_budget,
    lafak_attack,
    linear_surrogate_attack,
    lp_attack,
    mg_attack,
    ntk_map,
    random_attack,
    sgc_features,
    sgc_map,
)
from ..labels.meta import meta_attack
from ..labels.protocol import corrected_protocol, evaluate
from . import benchmark, peak_rss_mib


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="cora_ml")
    p.add_argument("--budget", type=float, default=0.2)
    p.add_argument("--pool", type=int, default=140)
    p.add_argument("--no-accuracy", action="store_true", help="only time the attacks")


@benchmark("label_poisoning", "Label-poisoning attacks: seconds per attack and GCN accuracy after poisoning", _args)
def run(args: argparse.Namespace) -> dict:
    data = datasets.load(args.dataset, lcc=True)
    protocol = corrected_protocol(pool_size=args.pool, folds=2, epochs=200, patience=50)
    split = protocol.draw(data.y, 0)
    pool, test = split.train, split.test
    y, b = data.y, label_budget(args.budget, args.pool)
    timings: dict[str, float] = {}

    def timed(name, fn):
        t = time.perf_counter()
        out = fn()
        timings[name] = time.perf_counter() - t
        return out

    xhat = timed("sgc_features", lambda: sgc_features(data.x, data.edge_index))
    m_sgc = timed("sgc_map", lambda: sgc_map(xhat, pool, test))
    theta = timed("ntk_kernel", lambda: gcn_ntk(data.x, data.edge_index))
    m_ntk = timed("ntk_map", lambda: ntk_map(theta, pool, test))
    attacks = {
        "random": lambda: random_attack(y, pool, b),
        "random-bin": lambda: random_attack(y, pool, b, binary=True),
        "degree": lambda: degree_attack(y, pool, b, data.edge_index),
        "sgc": lambda: linear_surrogate_attack(y, pool, test, y[test], m_sgc, b, name="sgc"),
        "sgc-bin": lambda: linear_surrogate_attack(y, pool, test, y[test], m_sgc, b, binary=True, name="sgc"),
        "ntk": lambda: linear_surrogate_attack(y, pool, test, y[test], m_ntk, b, name="ntk"),
        "ntk-bin": lambda: linear_surrogate_attack(y, pool, test, y[test], m_ntk, b, binary=True, name="ntk"),
        "lafak": lambda: lafak_attack(y, pool, test, y[test], m_sgc, b),
        "lp": lambda: lp_attack(data.x, y, pool, test, y[test], b),
        "mg": lambda: mg_attack(data.x, data.edge_index, y, pool, test, b),
        "meta": lambda: meta_attack(data.x, data.edge_index, y, pool, test, y[test], b),
        "meta-bin": lambda: meta_attack(data.x, data.edge_index, y, pool, test, y[test], b, binary=True),
    }
    setup = {"sgc": ("sgc_features", "sgc_map"), "ntk": ("ntk_kernel", "ntk_map")}
    out: dict = {"dataset": f"{args.dataset} (LCC)", "pool": args.pool, "budget_flips": b, "attacks": {}}
    clean = None if args.no_accuracy else evaluate(protocol, data, "gcn", None, seeds=(0,)).accuracies[0]
    out["gcn_accuracy_clean"] = clean
    for name, fn in attacks.items():
        res = timed(name, fn)
        family = name.split("-")[0]
        seconds = timings[name] + sum(timings[s] for s in setup.get(family, ()))
        if family == "lafak":
            seconds += timings["sgc_features"] + timings["sgc_map"]
        rec = {"seconds": round(seconds, 3)}
        if not args.no_accuracy:
            labels = res.labels
            rec["gcn_accuracy"] = round(
                evaluate(protocol, data, "gcn", lambda *_, lab=labels: lab, seeds=(0,)).accuracies[0], 4)
        out["attacks"][name] = rec
        print(f"{name:11s} {rec['seconds']:7.3f} s" + (f"  GCN accuracy {rec['gcn_accuracy']:.3f}" if "gcn_accuracy" in rec else ""))
    out["peak_rss_mib"] = round(peak_rss_mib(), 1)
    return out
