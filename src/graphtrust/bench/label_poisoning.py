"""Benchmark: label-poisoning attacks on Cora-ML (LCC) at a 20 % budget.

Times each attack once on one random labelled pool (140 nodes, as in the paper), from a
fresh :class:`~graphtrust.labels.experiments.Attacker` so that per-dataset work (``Â²X``,
the NTK) is included, and reports the accuracy of a GCN trained under the corrected
protocol (2-fold CV inside the poisoned pool, a 4-setting grid) after poisoning.
"""

from __future__ import annotations

import argparse
import time

from .. import datasets
from ..labels import label_budget
from ..labels.experiments import ATTACKS, Attacker
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
    out: dict = {"dataset": f"{args.dataset} (LCC)", "pool": args.pool,
                 "budget_flips": label_budget(args.budget, args.pool), "attacks": {}}
    clean = None if args.no_accuracy else evaluate(protocol, data, "gcn", None, seeds=(0,)).accuracies[0]
    out["gcn_accuracy_clean"] = clean
    for name in ATTACKS:
        attacker = Attacker(data)
        t = time.perf_counter()
        res = attacker.attack(name, args.budget, split.train, split.test)
        rec = {"seconds": round(time.perf_counter() - t, 3)}
        if not args.no_accuracy:
            rec["gcn_accuracy"] = round(
                evaluate(protocol, data, "gcn", lambda *_, lab=res.labels: lab, seeds=(0,)).accuracies[0], 4)
        out["attacks"][name] = rec
        print(f"{name:11s} {rec['seconds']:7.3f} s" + (f"  GCN accuracy {rec['gcn_accuracy']:.3f}" if "gcn_accuracy" in rec else ""))
    out["peak_rss_mib"] = round(peak_rss_mib(), 1)
    return out
