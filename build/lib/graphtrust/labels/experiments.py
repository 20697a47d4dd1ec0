"""The label-poisoning chapter's experiments, as functions that return saved-able results.

``run(sizes)`` evaluates, for every dataset of the profile,

* the **main table**: every attack under the corrected protocol over repeated random pools
  (one attack per pool, reused by all victims), at every budget for the ``sweep_victims``
  and at the main budget for the other victims;
* the **cost** of every attack on one pool (wall time).

The chapter renders tables and figures from the returned :class:`~graphtrust.results.Result`.
The full profile is meant for a GPU; on a CPU it runs in the background, optionally in
parts (``--datasets``, ``--victims``, ``--splits``, or ``--budgets`` for the sweep victims)
merged into one file (``--merge``)::

    GRAPHTRUST_PROFILE=full python -m graphtrust.labels.experiments --out book/results/label_poisoning_full.json
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch_geometric.data import Data

from .. import config, datasets
from ..progress import progress
from ..results import Result
from ..splits import Split
from ..training import summarize
from .attacks import (
    LabelAttack,
    attacker_labels,
    bin_pair,
    degree_attack,
    label_budget,
    lafak_attack,
    linear_surrogate_attack,
    lp_attack,
    mg_attack,
    random_attack,
)
from .meta import meta_attack
from .protocol import Protocol, corrected_protocol, evaluate
from .surrogates import gcn_ntk, lafak_map, ntk_map, sgc_features, sgc_map

__all__ = ["ATTACKS", "PREVIOUS", "Attacker", "run", "cost", "representations", "accuracy_table", "merge", "complete"]

#: every attack, in the order of the chapter's tables; ``name:pseudo`` uses pseudo-labels
ATTACKS = ("random", "random-bin", "degree", "degree-bin", "lp", "mg", "lafak", "lafak-topb",
           "sgc", "sgc-bin", "ntk", "ntk-bin", "meta", "meta-bin")  # fmt: skip
#: the attacks that predate the paper (the "previous best" is the strongest of these);
#: "lafak" is LafAK as released, "lafak-topb" our first version of it (see ``lafak_attack``)
PREVIOUS = ("random", "random-bin", "degree", "degree-bin", "lp", "mg", "lafak", "lafak-topb")
#: how the defender's models were trained, recorded per split in saved runs
TRAINER = "batched (graphtrust.labels.ensemble)"


class Attacker:
    """Runs label attacks on one dataset, caching what does not depend on the pool.

    ``Â²X`` (SGC features) and the GCN NTK are computed once per dataset; the ridge and
    kernel maps once per (pool, targets); the poisoned labels once per (attack, budget,
    pool) — so every victim and every protocol step sees the same poisoned labels.
    ``seconds[attack]`` collects the wall time of each attack, including the per-pool maps
    it needs but not the per-dataset precomputation (``setup_seconds``). ``ntk_variant``
    chooses the kernel of the NTK attacks (see :func:`~.surrogates.gcn_ntk`).
    """

    def __init__(self, data: Data, seed: int = 0, ntk_variant: str = "exact"):
        self.data, self.seed, self.ntk_variant = data, seed, ntk_variant
        self._xhat: torch.Tensor | None = None
        self._theta: torch.Tensor | None = None
        self._maps: dict[tuple, torch.Tensor] = {}
        self._labels: dict[tuple, LabelAttack] = {}
        self.setup_seconds: dict[str, float] = {}
        self.seconds: dict[str, list[float]] = {}

    @property
    def xhat(self) -> torch.Tensor:
        if self._xhat is None:
            t = time.perf_counter()
            self._xhat = sgc_features(self.data.x.double(), self.data.edge_index)
            self.setup_seconds["sgc_features"] = time.perf_counter() - t
        return self._xhat

    @property
    def theta(self) -> torch.Tensor:
        if self._theta is None:
            t = time.perf_counter()
            self._theta = gcn_ntk(self.data.x.double(), self.data.edge_index, variant=self.ntk_variant)
            self.setup_seconds["ntk_kernel"] = time.perf_counter() - t
        return self._theta

    def _map(self, kind: str, pool: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        key = (kind, _key(pool), _key(targets))
        if key not in self._maps:
            self._maps[key] = sgc_map(self.xhat, pool, targets) if kind == "sgc" else ntk_map(self.theta, pool, targets)
        return self._maps[key]

    def attack(self, name: str, fraction: float, pool: torch.Tensor, targets: torch.Tensor) -> LabelAttack:
        """Poisoned labels of attack ``name`` at budget ``ceil(fraction · |pool|)``."""
        key = (name, fraction, _key(pool), _key(targets))
        if key in self._labels:
            return self._labels[key]
        base, _, knowledge = name.partition(":")
        knowledge = knowledge or "true"
        if base not in ATTACKS:
            raise KeyError(f"unknown attack {name!r}; one of {', '.join(ATTACKS)} (optionally ':pseudo')")
        d, y, b = self.data, self.data.y, label_budget(fraction, pool.numel())
        binary = base.endswith("-bin")
        t = time.perf_counter()
        if base in ("random", "random-bin"):
            res = random_attack(y, pool, b, binary=binary, seed=self.seed)
        elif base in ("degree", "degree-bin"):
            res = degree_attack(y, pool, b, d.edge_index, binary=binary, seed=self.seed)
        elif base == "mg":
            res = mg_attack(d.x, d.edge_index, y, pool, targets, b)
        else:
            original = base == "lafak"  # LafAK as released targets every unlabelled node
            if original:
                targets = torch.ones(y.numel(), dtype=torch.bool).index_fill_(0, pool, False).nonzero().view(-1)
            seen = attacker_labels(y, pool, targets, self.xhat.float(), knowledge)
            assumed = y.clone()  # the labels the attacker works with: pool + true or pseudo targets
            assumed[targets] = seen
            known = y if knowledge == "true" else torch.cat([y[pool], seen])
            pair = bin_pair(known, y[pool])
            if base == "lp":
                res = lp_attack(d.x, y, pool, targets, seen, b, pair=pair)
            elif base in ("lafak", "lafak-topb"):
                m = lafak_map(d.x, d.edge_index, pool, targets, assumed, pair)
                res = lafak_attack(y, pool, targets, seen, m, b, original=original, pair=pair, seed=self.seed)
            elif base in ("sgc", "sgc-bin", "ntk", "ntk-bin"):
                kind = base.split("-")[0]
                res = linear_surrogate_attack(y, pool, targets, seen, self._map(kind, pool, targets), b,
                                              binary=binary, name=base, pair=pair)
            else:  # meta, meta-bin
                res = meta_attack(d.x, d.edge_index, y, pool, targets, seen, b, binary=binary, pair=pair,
                                  seed=self.seed)
        self.seconds.setdefault(name, []).append(time.perf_counter() - t)
        self._labels[key] = res
        return res

    def poison(self, name: str | None, fraction: float) -> Callable[[torch.Tensor, torch.Tensor, Split], torch.Tensor] | None:
        """The ``poison(y, pool, split)`` callable of :func:`~.protocol.evaluate` (``None``: clean)."""
        if name is None or fraction == 0:
            return None
        return lambda y, pool, split: self.attack(name, fraction, pool, split.test).labels


def _key(t: torch.Tensor) -> str:
    return hashlib.sha1(t.cpu().numpy().tobytes()).hexdigest()


def _protocol(sz, pool_size: int) -> Protocol:
    return corrected_protocol(pool_size=pool_size, folds=sz.folds, grid=sz.grid, epochs=sz.epochs,
                              patience=sz.patience)


def run(sz=None, show_progress: bool = True, checkpoint: str | None = None) -> Result:
    """Everything the chapter shows, in the active profile's sizes (see the module docstring)."""
    sz = sz or config.sizes("label_poisoning")
    start = time.perf_counter()
    out: dict[str, Any] = {"budgets": list(sz.budgets), "main_budget": sz.main_budget, "victims": list(sz.victims),
                           "attacks": list(sz.attacks), "splits": list(sz.splits), "folds": sz.folds,
                           "grid": [dict(g) for g in sz.grid], "datasets": {}}  # fmt: skip
    sweep = set(sz.get("sweep_victims", sz.victims))
    for name in sz.datasets:
        data = datasets.load(name, lcc=True)
        pool_size = sz.pool_size[name]
        attacker = Attacker(data)
        entry: dict[str, Any] = {"nodes": data.num_nodes, "classes": int(data.y.max()) + 1, "pool": pool_size,
                                 "budget_flips": {str(b): label_budget(b, pool_size) for b in sz.budgets}}
        entry["splits"] = {v: list(sz.splits) for v in sz.victims}
        entry["trainer"] = {v: [TRAINER] * len(sz.splits) for v in sz.victims}
        # main table: corrected protocol, every victim, attack and budget
        protocol = _protocol(sz, pool_size)
        cells = [(v, None, 0.0) for v in sz.victims] + [
            (v, a, b) for a in sz.attacks for b in sz.budgets for v in sz.victims
            if v in sweep or b == sz.main_budget]
        entry["clean"], entry["attacks"], entry["chosen"] = {}, {}, {}
        for victim, attack, budget in progress(cells, desc=f"{name}: victims × attacks × budgets",
                                               enabled=show_progress):
            ev = evaluate(protocol, data, victim, attacker.poison(attack, budget), sz.splits)
            if attack is None:
                entry["clean"][victim] = ev.accuracies
            else:
                entry["attacks"].setdefault(attack, {}).setdefault(str(budget), {})[victim] = ev.accuracies
            entry["chosen"][f"{victim}/{attack or 'clean'}/{budget}"] = ev.chosen
        entry["attack_seconds"] = {a: s for a, s in attacker.seconds.items()}
        entry["setup_seconds"] = attacker.setup_seconds
        entry["cost"] = cost(data, sz.main_budget, pool_size)
        out["datasets"][name] = entry
        if checkpoint:
            Result("label_poisoning", out, seconds=time.perf_counter() - start).save(checkpoint)
    return Result("label_poisoning", out, seconds=time.perf_counter() - start)


def cost(data: Data, fraction: float = 0.2, pool_size: int = 140, seed: int = 0,
         attacks: tuple[str, ...] = ATTACKS) -> dict[str, float]:
    """Wall time (s) of each attack on one random pool, per-dataset precomputation included.

    Each attack starts from a fresh :class:`Attacker`, so SGC/LafAK pay for ``Â²X`` and NTK
    for the kernel, as a user attacking one pool would.
    """
    from .protocol import corrected_protocol as _cp

    split = _cp(pool_size=pool_size).draw(data.y, seed)
    out = {}
    for name in attacks:
        attacker = Attacker(data, seed)
        t = time.perf_counter()
        attacker.attack(name, fraction, split.train, split.test)
        out[name] = round(time.perf_counter() - t, 4)
    return out


def representations(data: Data, split: Split, poisoned: torch.Tensor, *, seed: int = 0,
                    epochs: int = 200) -> dict[str, Any]:
    """How training on ``poisoned`` labels moves a GCN's hidden representation.

    Trains the same GCN (same seed, same pool; no validation set, fixed epochs) once on the
    clean and once on the poisoned labels of ``split.train`` and returns both hidden
    representations of the test nodes projected on the two leading principal axes of the
    *clean* one (``clean_2d``, ``poisoned_2d``: ``(|test|, 2)``), plus a **linear probe**:
    the accuracy of a logistic regression fitted on the clean labels of half the test nodes
    and scored on the other half. The probe asks whether the representation itself still
    separates the classes, whatever the poisoned output layer does.
    """
    from ..models import LogisticRegression, sparse_features
    from ..training import evaluate as eval_acc
    from ..training import fit
    from .victims import build_victim

    empty = torch.empty(0, dtype=torch.long)
    c = int(data.y.max()) + 1
    x = sparse_features(data.x)
    test = split.test
    perm = test[torch.randperm(test.numel(), generator=torch.Generator().manual_seed(seed))]
    half_a, half_b = perm[: perm.numel() // 2], perm[perm.numel() // 2:]
    out: dict[str, Any] = {"labels": data.y[test].tolist()}
    basis = None
    for which, labels in (("clean", data.y), ("poisoned", poisoned)):
        config.seed_everything(seed)
        model = build_victim("gcn", data.num_features, c)
        res = fit(model, x, data.edge_index, labels, Split(split.train, empty, test), epochs=epochs, patience=None)
        h = res.model.embed(x, data.edge_index)
        if basis is None:
            mean = h[test].mean(0)
            _, _, v = torch.linalg.svd(h[test] - mean, full_matrices=False)
            basis = (mean, v[:2].t())
        out[f"{which}_2d"] = ((h[test] - basis[0]) @ basis[1]).tolist()
        out[f"{which}_accuracy"] = res.test_acc
        hn = F.normalize(h, dim=1)
        config.seed_everything(seed)
        probe = fit(LogisticRegression(h.size(1), c), hn, None, data.y, Split(half_a, empty, empty), epochs=300,
                    patience=None, lr=0.05, weight_decay=1e-4).model
        out[f"{which}_probe"] = eval_acc(probe, hn, None, data.y, half_b)
    return out


def accuracy_table(result: Result, dataset: str, victim: str = "gcn") -> list[dict[str, Any]]:
    """Rows ``{attack, budget columns...}`` of test accuracy (%) as ``mean ± std``."""
    entry = result.data["datasets"][dataset]
    budgets = result.data["budgets"]
    rows = [{"attack": "clean", **{f"{round(100 * b)} %": summarize(entry["clean"][victim]).format(100)
                                   for b in budgets}}] if victim in entry["clean"] else []
    for attack, per_budget in entry["attacks"].items():
        row: dict[str, Any] = {"attack": attack}
        for b in budgets:
            vals = per_budget.get(str(b), {}).get(victim)
            row[f"{round(100 * b)} %"] = summarize(vals).format(100) if vals else ""
        rows.append(row)
    return rows


def merge(base: Result, extra: Result) -> Result:
    """``base`` with the datasets, victims and splits of ``extra`` added.

    Runs must share folds, grid and main budget (budgets may differ: a part can run the
    main budget only). A victim new to a dataset is added; a victim
    both runs hold is extended by ``extra``'s splits, which must be new to ``base`` (each
    cell's list of per-split accuracies is concatenated).

    A victim both runs hold on exactly the same splits is instead extended by
    ``extra``'s *budgets* (a part that adds budgets to a finished sweep): its attack cells
    must all be new to ``base``; its clean accuracies are a re-run of ``base``'s and must
    match them, which checks that the two runs evaluate the same pools and models.
    """
    for k in ("folds", "grid", "main_budget"):
        if base.data[k] != extra.data[k]:
            raise ValueError(f"can only merge runs with the same {k}")
    data = copy.deepcopy(base.data)
    data["budgets"] = sorted(set(base.data["budgets"]) | set(extra.data["budgets"]))
    for name, entry in extra.data["datasets"].items():
        if name not in data["datasets"]:
            data["datasets"][name] = entry
            continue
        old = data["datasets"][name]
        old_splits = old.setdefault("splits", {v: list(data["splits"]) for v in old["clean"]})
        new_splits = entry.get("splits", {v: list(extra.data["splits"]) for v in entry["clean"]})

        def add(cell: dict, victim: str, values: list, extend: bool) -> None:
            cell[victim] = cell[victim] + values if extend else values

        for victim, splits in new_splits.items():
            if victim in old_splits and list(splits) == list(old_splits[victim]):
                _add_budgets(name, old, entry, victim)
                continue
            extend = victim in old_splits
            if extend and set(splits) & set(old_splits[victim]):
                raise ValueError(f"{name}/{victim}: splits {sorted(set(splits) & set(old_splits[victim]))} "
                                 "are in both runs")
            add(old["clean"], victim, entry["clean"][victim], extend)
            for a, per_b in entry["attacks"].items():
                for b, per_v in per_b.items():
                    if victim in per_v:
                        cell = old["attacks"].setdefault(a, {}).setdefault(b, {})
                        add(cell, victim, per_v[victim], extend and victim in cell)
            for key, chosen in entry["chosen"].items():
                if key.split("/")[0] == victim:
                    old["chosen"][key] = old["chosen"].get(key, []) + chosen if extend else chosen
            trainer = old.setdefault("trainer", {})
            before = trainer.get(victim, ["one model at a time"] * len(old_splits[victim])) if extend else []
            trainer[victim] = before + entry.get("trainer", {}).get(victim, ["one model at a time"] * len(splits))
            old_splits[victim] = (old_splits[victim] if extend else []) + list(splits)
        old.setdefault("budget_flips", {}).update(entry.get("budget_flips", {}))
        for k, v in entry.get("attack_seconds", {}).items():
            old.setdefault("attack_seconds", {}).setdefault(k, []).extend(v)
    data["victims"] = sorted(set(base.data["victims"]) | set(extra.data["victims"]))
    data["splits"] = sorted(set(base.data["splits"]) | set(extra.data["splits"]))
    return base.combined_with(extra, data)


def _add_budgets(name: str, old: dict, entry: dict, victim: str) -> None:
    """Add ``entry``'s attack cells of ``victim`` (same splits as ``old``) to ``old``; see :func:`merge`."""
    if entry["clean"][victim] != old["clean"][victim]:
        raise ValueError(f"{name}/{victim}: same splits but different clean accuracies "
                         f"({entry['clean'][victim]} vs {old['clean'][victim]}); the runs do not evaluate "
                         "the same pools and models")
    for a, per_b in entry["attacks"].items():
        for b, per_v in per_b.items():
            if victim not in per_v:
                continue
            cell = old["attacks"].setdefault(a, {}).setdefault(b, {})
            if victim in cell:
                raise ValueError(f"{name}/{victim}: {a} at budget {b} is in both runs")
            cell[victim] = per_v[victim]
    for key, chosen in entry["chosen"].items():
        v, attack, _ = key.split("/")
        if v == victim and attack != "clean":
            old["chosen"][key] = chosen


def complete(result: Result, sz=None) -> bool:
    """Whether ``result`` holds every cell of the profile ``sz`` (default: full) on all its splits.

    That is: every dataset, and for every victim
    the clean accuracy and every attack at every budget (the ``sweep_victims``) or at the
    main budget (the other victims), each on every split.
    """
    sz = sz or config.sizes("label_poisoning", "full")
    sweep = set(sz.get("sweep_victims", sz.victims))
    for name in sz.datasets:
        entry = result.data["datasets"].get(name)
        if entry is None:
            return False
        splits = entry.get("splits", {v: result.data["splits"] for v in entry["clean"]})
        if any(len(set(splits.get(v, ()))) < len(sz.splits) for v in sz.victims):
            return False
        for v in sz.victims:
            budgets = sz.budgets if v in sweep else (sz.main_budget,)
            cells = [entry["attacks"].get(a, {}).get(str(b), {}).get(v, []) for a in sz.attacks for b in budgets]
            if any(len(c) < len(sz.splits) for c in cells):
                return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the label-poisoning chapter's experiments and save them.")
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--datasets", nargs="+", default=None, help="only these datasets of the profile")
    parser.add_argument("--victims", nargs="+", default=None, help="only these victims of the profile")
    parser.add_argument("--num-splits", type=int, default=None, help="only the first N splits of the profile")
    parser.add_argument("--budgets", type=float, nargs="+", default=None,
                        help="only these budgets of the profile (the main budget must be among them "
                             "unless every victim of the run is a sweep victim)")
    parser.add_argument("--splits", type=int, nargs="+", default=None,
                        help="only these splits of the profile")
    parser.add_argument("--merge", nargs="+", default=None, help="saved run(s) to add this one to")
    parser.add_argument("--merge-only", action="store_true", help="only merge the --merge files into --out")
    args = parser.parse_args(argv)
    sz = config.sizes("label_poisoning")
    over: dict[str, Any] = {}
    for key, vals in (("datasets", args.datasets), ("victims", args.victims)):
        if vals:
            unknown = sorted(set(vals) - set(sz[key]))
            if unknown:
                parser.error(f"{unknown} not in the {sz.profile} profile's {key} {list(sz[key])}")
            over[key] = tuple(vals)
    if args.num_splits:
        over["splits"] = tuple(sz.splits[: args.num_splits])
    if args.budgets:
        unknown = sorted(set(args.budgets) - set(sz.budgets))
        victims = over.get("victims", sz.victims)
        needs_main = any(v not in sz.get("sweep_victims", sz.victims) for v in victims)
        if unknown or (needs_main and sz.main_budget not in args.budgets):
            parser.error(f"budgets must be among the {sz.profile} profile's {list(sz.budgets)} and include the "
                         f"main budget {sz.main_budget} (victims {list(victims)} are not all sweep victims)")
        over["budgets"] = tuple(b for b in sz.budgets if b in args.budgets)
    if args.splits:
        unknown = sorted(set(args.splits) - set(sz.splits))
        if unknown:
            parser.error(f"splits {unknown} not in the {sz.profile} profile's splits {list(sz.splits)}")
        over["splits"] = tuple(args.splits)
    if over:
        sz = config.Sizes("label_poisoning", sz.profile, {**sz, **over})
    if args.merge_only:
        if not args.merge or len(args.merge) < 2:
            parser.error("--merge-only needs at least two --merge files")
        result = Result.load(args.merge[0])
        for other in args.merge[1:]:
            result = merge(result, Result.load(other))
    else:
        result = run(sz, checkpoint=None if args.merge else args.out)
        for other in args.merge or ():
            result = merge(Result.load(other), result)
    result.data["complete"] = complete(result, config.sizes("label_poisoning"))
    result.save(args.out)
    print(f"saved {args.out} ({result.seconds:.0f} s, profile {result.provenance['profile']}, "
          f"datasets {', '.join(result.data['datasets'])}, victims {', '.join(result.data['victims'])})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
