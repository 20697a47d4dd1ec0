"""The Metattack chapter's experiments, as functions that return saved-able results.

``run(sizes)`` attacks every dataset of the profile once per attack at the largest budget
of the sweep (greedy attacks are sequential, so the first ``k`` flips of that run *are*
the ``k``-flip attack) and evaluates the victims at every budget. The chapter renders
tables and figures from the returned :class:`~graphtrust.results.Result`; the full
profile can be produced in the background with::

    GRAPHTRUST_PROFILE=full python -m graphtrust.structure.experiments --out book/results/metattack_full.json

and completed dataset by dataset with ``--datasets polblogs --merge book/results/metattack_full.json``.
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch_geometric.data import Data

from .. import config, datasets
from ..graph import apply_flips, degrees
from ..results import Result
from ..splits import Split, stratified_split
from ..training import summarize
from .attacks import attack, self_training_labels
from .victims import deepwalk_victim, features_victim, gcn_victim

__all__ = ["run", "combine", "merge", "prefix_graph", "flip_anatomy", "misclassification_table", "transfer"]

PAPER = {  # misclassification (%) reported by Zügner & Günnemann (2019), 5 % budget
    ("cora_ml", "gcn"): {"clean": "16.6 ± 0.3", "dice": "18.0 ± 0.4", "a-meta-self": "21.8 ± 0.9",
                         "meta-self": "24.5 ± 1.0", "meta-train": "22.0"},
    ("citeseer_npz", "gcn"): {"clean": "28.5 ± 0.9", "dice": "28.9 ± 0.3", "a-meta-self": "31.9 ± 0.7",
                              "meta-self": "34.6 ± 0.7"},
    ("cora_ml", "deepwalk"): {"clean": "20.3 ± 1.0", "dice": "22.8 ± 0.3", "a-meta-self": "25.0 ± 0.6",
                              "meta-self": "28.1 ± 0.6"},
}  # fmt: skip


def prefix_graph(data: Data, flips: torch.Tensor, k: int) -> Data:
    """``data`` with the first ``k`` of ``flips: (K, 2)`` applied (:func:`graphtrust.graph.apply_flips`)."""
    out = data.clone()
    if k:
        out.edge_index = apply_flips(data.edge_index, flips[:k], data.num_nodes)
    return out


def flip_anatomy(data: Data, flips: torch.Tensor, inserted: torch.Tensor) -> dict[str, Any]:
    """What kind of pairs an attack flipped: insertions, same-label endpoints, endpoint degrees."""
    y = data.y
    same = (y[flips[:, 0]] == y[flips[:, 1]]).float()
    deg = degrees(data.edge_index, data.num_nodes)
    d_end = torch.stack([deg[flips[:, 0]], deg[flips[:, 1]]], 1)
    return {
        "flips": int(flips.size(0)),
        "share_inserted": float(inserted.float().mean()) if flips.numel() else 0.0,
        "same_label_inserted": float(same[inserted].mean()) if bool(inserted.any()) else float("nan"),
        "same_label_removed": float(same[~inserted].mean()) if bool((~inserted).any()) else float("nan"),
        "endpoint_degree_min": d_end.min(1).values.tolist(),
        "endpoint_degree_max": d_end.max(1).values.tolist(),
        "clean_edge_same_label": float((y[data.edge_index[0]] == y[data.edge_index[1]]).float().mean()),
    }


def _victims(data: Data, split: Split, sz, seeds, main: bool = True) -> dict[str, list[float]]:
    """GCN errors for ``seeds``; DeepWalk too (its seeds) at the main budget only."""
    out = {"gcn": [gcn_victim(data, split, seed=s) for s in seeds]}
    if "deepwalk" in sz.victims and main:
        out["deepwalk"] = [deepwalk_victim(data, split, seed=s, epochs=sz.deepwalk_epochs) for s in seeds[: sz.deepwalk_seeds]]
    return out


def run(sz=None, show_progress: bool = True, checkpoint: str | None = None,
        attacks: Sequence[str] | None = None, clean: bool = True) -> Result:
    """Attack and evaluate everything the chapter shows, in the active profile's sizes.

    ``attacks`` runs only these of the profile's attacks and ``clean=False`` skips the
    clean victims (for a run in parts, joined by :func:`combine`: a notebook cell then
    stays a few minutes long). With ``checkpoint`` (a JSON path), the partial result is
    saved after every dataset, marked ``complete: false`` until the last one is done.
    """
    sz = sz or config.sizes("metattack")
    if attacks is not None:
        unknown = sorted(set(attacks) - set(sz.attacks))
        if unknown:
            raise ValueError(f"attacks {unknown} are not in the {sz.profile} profile's {list(sz.attacks)}")
    methods = [m for m in sz.attacks if attacks is None or m in attacks]
    start = time.perf_counter()
    out: dict[str, Any] = {"budgets": list(sz.budgets), "main_budget": sz.main_budget, "datasets": {}}
    for name in sz.datasets:
        data = datasets.load(name, lcc=True)
        split = stratified_split(data.y, 0.1, 0.1, seed=sz.split_seed)
        num_edges = data.edge_index.size(1) // 2
        ks = [int(b * num_edges) for b in sz.budgets]
        k_main = int(sz.main_budget * num_edges)
        entry: dict[str, Any] = {
            "nodes": data.num_nodes, "edges": num_edges, "main_flips": k_main, "budget_flips": ks, "attacks": {},
        }  # fmt: skip
        if clean:
            entry["features_only"] = [features_victim(data, split, seed=s) for s in sz.victim_seeds]
            entry["clean"] = _victims(data, split, sz, sz.victim_seeds)
        labels = self_training_labels(data, split, seed=sz.attack_seed)  # the same for every attack
        for method in methods:
            sweep = method in sz.sweep_attacks
            k = max(ks) if sweep else k_main
            res = attack(data, split, method, k, seed=sz.attack_seed, steps=sz.steps, labels=labels,
                         show_progress=show_progress)
            res.validate(data.edge_index, data.num_nodes)
            rec: dict[str, Any] = {
                "flips": res.flips.tolist(), "inserted": res.inserted.tolist(),
                "seconds": res.seconds, "seconds_per_flip": res.seconds_per_flip, "params": res.params,
                "at_budget": {},
            }  # fmt: skip
            for b, kb in zip(sz.budgets, ks):
                if kb == 0 or (not sweep and kb != k_main):
                    continue
                rec["at_budget"][str(b)] = _victims(prefix_graph(data, res.flips, kb), split, sz,
                                                    sz.victim_seeds if kb == k_main else sz.sweep_seeds,
                                                    main=kb == k_main)
            if str(sz.main_budget) not in rec["at_budget"]:
                rec["at_budget"][str(sz.main_budget)] = _victims(prefix_graph(data, res.flips, k_main), split, sz, sz.victim_seeds)
            entry["attacks"][method] = rec
        if sz.transfer_attack in entry["attacks"]:
            flips = torch.tensor(entry["attacks"][sz.transfer_attack]["flips"])
            entry["transfer"] = transfer(data, prefix_graph(data, flips, k_main), split, sz.victim_seeds)
        out["datasets"][name] = entry
        out["complete"] = len(out["datasets"]) == len(sz.datasets)
        if checkpoint:
            Result("metattack", out, seconds=time.perf_counter() - start).save(checkpoint)
    return Result("metattack", out, seconds=time.perf_counter() - start)


def transfer(clean: Data, poisoned: Data, split: Split, seeds) -> dict[str, list[float]]:
    """Accuracy of a GCN trained on clean/poisoned and evaluated on clean/poisoned structure."""
    from ..models import GCN
    from ..training import evaluate, fit

    dev = config.device()
    empty = torch.empty(0, dtype=torch.long)
    out: dict[str, list[float]] = {}
    for train_name, train_g in (("clean", clean), ("poisoned", poisoned)):
        for s in seeds:
            config.seed_everything(s)
            model = fit(GCN(clean.num_features, 16, int(clean.y.max()) + 1), train_g.x, train_g.edge_index,
                        train_g.y, Split(split.train, empty, empty), epochs=200, patience=None, device=dev).model
            for eval_name, eval_g in (("clean", clean), ("poisoned", poisoned)):
                acc = evaluate(model, eval_g.x.to(dev), eval_g.edge_index.to(dev), eval_g.y.to(dev),
                               split.unlabelled.to(dev))
                out.setdefault(f"{train_name}->{eval_name}", []).append(acc)
    return out


def misclassification_table(result: Result, victim: str = "gcn") -> list[dict[str, Any]]:
    """Rows ``{dataset, attack, ours, paper}`` at the main budget (percent, mean ± std)."""
    data = result.data
    rows = []
    for name, entry in data["datasets"].items():
        if victim not in entry["clean"]:
            continue
        rows.append({"dataset": name, "attack": "clean", "ours": summarize(entry["clean"][victim]).format(),
                     "paper": PAPER.get((name, victim), {}).get("clean", "")})
        for method, rec in entry["attacks"].items():
            vals = rec["at_budget"].get(str(data["main_budget"]), {}).get(victim)
            if vals:
                rows.append({"dataset": name, "attack": method, "ours": summarize(vals).format(),
                             "paper": PAPER.get((name, victim), {}).get(method, "")})
        if victim == "gcn":
            rows.append({"dataset": name, "attack": "features only (no graph)",
                         "ours": summarize(entry["features_only"]).format(), "paper": ""})
    return rows


def combine(parts: Sequence[Result]) -> Result:
    """One result from runs of the same profile that hold different attacks of the same datasets.

    The first part must hold the clean victims (``run(..., clean=True)``); an attack held by
    two parts is refused.
    """
    if not parts:
        raise ValueError("nothing to combine")
    base = parts[0]
    data = copy.deepcopy(base.data)
    for name, entry in data["datasets"].items():
        if "clean" not in entry:
            raise ValueError(f"the first part has no clean victims for {name}: run it with clean=True")
    out = base
    for extra in parts[1:]:
        if extra.data["budgets"] != data["budgets"] or extra.provenance["profile"] != base.provenance["profile"]:
            raise ValueError("can only combine runs of the same profile and budgets")
        for name, entry in extra.data["datasets"].items():
            if name not in data["datasets"]:
                raise ValueError(f"dataset {name} is not in the first part")
            both = set(entry["attacks"]) & set(data["datasets"][name]["attacks"])
            if both:
                raise ValueError(f"{name}: attacks {sorted(both)} are in two parts")
            data["datasets"][name]["attacks"].update(copy.deepcopy(entry["attacks"]))
            if "transfer" in entry:
                data["datasets"][name]["transfer"] = entry["transfer"]
        out = out.combined_with(extra, data)
    return out


def merge(base: Result, extra: Result) -> Result:
    """``base`` with the datasets of ``extra`` added (same profile and budgets required)."""
    if base.data["budgets"] != extra.data["budgets"] or base.provenance["profile"] != extra.provenance["profile"]:
        raise ValueError("can only merge runs of the same profile and budgets")
    data = dict(base.data)
    data["datasets"] = {**base.data["datasets"], **extra.data["datasets"]}
    return base.combined_with(extra, data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the Metattack chapter's experiments and save them.")
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--datasets", nargs="+", default=None, help="run only these datasets of the profile")
    parser.add_argument("--merge", default=None, help="saved run to add the new datasets to")
    args = parser.parse_args(argv)
    sz = config.sizes("metattack")
    if args.datasets:
        unknown = sorted(set(args.datasets) - set(sz.datasets))
        if unknown:
            parser.error(f"{unknown} not in the {sz.profile} profile's datasets {list(sz.datasets)}")
        sz = config.Sizes("metattack", sz.profile, {**sz, "datasets": tuple(args.datasets)})
    result = run(sz, checkpoint=None if args.merge else args.out)
    if args.merge:
        result = merge(Result.load(args.merge), result)
    result.data["complete"] = set(result.data["datasets"]) >= set(config.sizes("metattack").datasets)
    result.save(args.out)
    print(f"saved {args.out} ({result.seconds:.0f} s, profile {result.provenance['profile']}, "
          f"datasets {', '.join(result.data['datasets'])})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
