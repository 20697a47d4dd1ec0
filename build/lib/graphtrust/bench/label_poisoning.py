"""Benchmark: label-poisoning attacks on Cora-ML (LCC) at a 20 % budget.

Times each attack once on one random labelled pool (140 nodes, as in the paper), from a
fresh :class:`~graphtrust.labels.experiments.Attacker` so that per-dataset work (``Â²X``,
the NTK) is included, and reports the accuracy of a GCN trained under the corrected
protocol (2-fold CV inside the poisoned pool, a 4-setting grid) after poisoning.

``protocol_seconds`` times one cell of that protocol (every setting × fold model on one
poisoned pool: 8 models) per victim, trained together by :mod:`graphtrust.labels.ensemble`
and, for comparison, one model at a time with :func:`graphtrust.training.fit`.
"""

from __future__ import annotations

import argparse
import time

from .. import datasets
from ..labels import label_budget
from ..labels.experiments import ATTACKS, Attacker
from ..labels.protocol import corrected_protocol, cv_folds, evaluate
from ..labels.victims import VICTIMS, build_victim
from ..models import sparse_features
from ..splits import Split
from ..training import fit
from . import benchmark, peak_rss_mib


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="cora_ml")
    p.add_argument("--budget", type=float, default=0.2)
    p.add_argument("--pool", type=int, default=140)
    p.add_argument("--no-accuracy", action="store_true", help="only time the attacks")
    p.add_argument("--victims", nargs="*", default=list(VICTIMS),
                   help="victims whose protocol cell is timed, batched and one model at a time")


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
    out["protocol_seconds"] = {}
    labels = Attacker(data).attack("sgc-bin", args.budget, split.train, split.test).labels
    for victim in args.victims:
        t = time.perf_counter()
        batched = evaluate(protocol, data, victim, lambda *_, lab=labels: lab, seeds=(0,)).accuracies[0]
        t_batched = time.perf_counter() - t
        t = time.perf_counter()
        single = _one_at_a_time(protocol, data, victim, labels, split)
        t_single = time.perf_counter() - t
        out["protocol_seconds"][victim] = {"models": len(protocol.grid) * protocol.folds,
                                           "batched": round(t_batched, 2), "one_at_a_time": round(t_single, 2),
                                           "speedup": round(t_single / t_batched, 2),
                                           "accuracy_batched": round(batched, 4), "accuracy_one_at_a_time": round(single, 4)}
        print(f"protocol cell, {victim:5s}: batched {t_batched:6.2f} s, one at a time {t_single:6.2f} s "
              f"(x{t_single / t_batched:.1f}); accuracy {batched:.3f} vs {single:.3f}")
    out["peak_rss_mib"] = round(peak_rss_mib(), 1)
    return out


def _one_at_a_time(protocol, data, victim, labels, split) -> float:
    """The corrected protocol's selected test accuracy, each (setting, fold) model trained alone."""
    from .. import config

    x = sparse_features(data.x)
    pool = split.train
    y = data.y.clone()
    y[pool] = labels[pool]
    folds = [Split(pool[tr], pool[va], split.test) for tr, va in cv_folds(labels[pool], protocol.folds, 0)]
    best = (-1.0, 0.0)
    for cfg in protocol.grid:
        val = test = 0.0
        for sp in folds:
            config.seed_everything(0)
            model = build_victim(victim, data.num_features, int(data.y.max()) + 1, dropout=cfg["dropout"])
            r = fit(model, x, data.edge_index, y, sp, epochs=protocol.epochs, patience=protocol.patience,
                    lr=cfg["lr"], weight_decay=cfg["weight_decay"])
            val, test = val + r.val_acc / len(folds), test + r.test_acc / len(folds)
        if val > best[0]:
            best = (val, test)
    return best[1]
