"""The defences chapter's experiment on the harness (:mod:`graphtrust.experiment`).

``defences_main`` measures every defence under every threat, cell by cell:

    dataset × split × defence × budget × model seed

One cell trains the defence on the clean graph (shared by the budgets of a run) and gives
one record per threat (``attack``), each with the test accuracy:

* ``clean`` (budget 0 only);
* ``transfer-poisoning``: the defence trained on the graph Meta-Self poisoned (``paper``
  mode, the Metattack chapter's attack; its flips are read from the ``metattack_graphs``
  run, see :data:`graphtrust.structure.cells.GRAPHS`). The attack never saw the defence.
* ``transfer-evasion``: PR-BCD crafted against an undefended GCN (same split and seed),
  applied at test time to the defence trained on the clean graph;
* ``adaptive-evasion``: PR-BCD against the defence itself (through its differentiable
  form, see :data:`.evaluate.DEFENCES`), applied at test time;
* ``adaptive-poisoning``: the defence retrained on the graph of ``adaptive-evasion``. An
  adaptive attack that knows the defence but does not differentiate through its
  training (no meta-gradient): a *lower bound* on what an adaptive poisoning attack does.

``defences_meta`` measures the adaptive poisoning attack that does differentiate through
the defender's training (Meta-PGD, :func:`.meta.meta_pgd`), on the profile's ``meta``
defences and budgets, one record per cell (``attack="meta-poisoning"``):

    dataset × split × defence × budget × model seed

``defences_meta_transfer`` trains every defence on the graph Meta-PGD poisoned through an
undefended GCN's training (the ``defences_meta`` attack with ``defence="gcn"``), one record
per cell (``attack="meta-transfer-poisoning"``): a transfer attack, stronger on GCN than
Meta-Self, and the one meta-gradient attack that reaches the defences Meta-PGD cannot
unroll. One Meta-PGD run serves every defence of a split, budget and seed; in one process
(or with a shared ``meta_graphs`` dict in ``context``) the ``defences_meta`` GCN cell's
graph is reused:

    dataset × split × defence × budget × model seed   (budgets: the ``meta`` ones)

``defences_svd_clip`` asks whether SVD-GCN's clipping of the low-rank matrix's negative
entries is what PR-BCD exploits: SVD-GCN with and without the clip, clean and under
adaptive evasion at the smallest non-zero budget, with the matrix's signed mass on the
clean graph (one record per threat):

    dataset × split × clip × model seed

The splits are the Metattack chapter's (stratified 10/10/80, seed = ``split``) so the
transfer graphs fit them. Run the full grid in parts, one thread each, and merge::

    GRAPHTRUST_PROFILE=full OMP_NUM_THREADS=1 python -m graphtrust.experiments defences_main \\
        --out runs/def_a.jsonl --only dataset=cora_ml split=0
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .. import config, datasets
from ..experiment import Experiment, Grid, load, register
from ..graph import apply_flips, normalize_dense
from ..models import sparse_features
from ..splits import stratified_split
from .evaluate import accuracy, budget_flips, defence, prbcd, train
from .meta import meta_pgd
from .models import pair_similarity, truncated_adjacency

__all__ = ["MAIN", "META", "META_TRANSFER", "SVD_CLIP", "main_grid", "meta_grid", "meta_transfer_grid", "measure_main",
           "measure_meta", "measure_meta_transfer", "apply_flips", "transfer_flips", "TRANSFER_FILE", "THREATS", "flip_profile"]

#: the saved Meta-Self graphs (a ``metattack_graphs`` run) in a source checkout
TRANSFER_FILE = Path(__file__).resolve().parents[3] / "book" / "results" / "metattack_graphs.jsonl"
#: the threats of one cell, in the order the chapter shows them
THREATS = ("clean", "transfer-poisoning", "transfer-evasion", "adaptive-evasion", "adaptive-poisoning")


def main_grid(sz: config.Sizes) -> Grid:
    return Grid.product(dataset=sz.datasets, split=sz.splits, defence=sz.defences, budget=sz.budgets,
                        model_seed=sz.model_seeds)


def transfer_flips(dataset: str, split: int, path: str | Path | None = None, attack_seed: int = 0) -> torch.Tensor:
    """The Meta-Self flips ``(k, 2)`` saved for ``dataset`` and ``split``, in the order chosen."""
    path = Path(path) if path is not None else TRANSFER_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"no saved Meta-Self graphs at {path}; make them with `python -m graphtrust.experiments "
            f"metattack_graphs --out {path}` (GRAPHTRUST_PROFILE=full for every split), or pass the file")
    df = load(path).records
    row = df[(df.dataset == dataset) & (df.split == split) & (df.attack_seed == attack_seed)]
    if row.empty:
        raise KeyError(f"{path} has no Meta-Self graph for dataset={dataset!r}, split={split}, "
                       f"attack_seed={attack_seed}; run metattack_graphs with --only dataset={dataset} split={split}")
    return torch.tensor(row.iloc[0]["flips"], dtype=torch.long)


def flip_profile(data, flips: torch.Tensor, similarity: torch.Tensor, threshold: float = 0.01) -> dict[str, float]:
    """What a set of flips ``(k, 2)`` does: the share that inserts an edge, and the share of
    the inserted pairs whose endpoints' Jaccard similarity is below ``threshold`` (the pairs
    Jaccard-GCN at its default threshold removes again)."""
    flips = torch.as_tensor(flips).reshape(-1, 2)
    if flips.numel() == 0:
        return {"inserted_share": 0.0, "dissimilar_share": 0.0}
    n = data.num_nodes
    a, b = data.edge_index
    present = torch.isin(flips.min(1).values * n + flips.max(1).values, a * n + b)
    ins = flips[~present]
    dis = float((similarity[ins[:, 0], ins[:, 1]] < threshold).float().mean()) if ins.numel() else 0.0
    return {"inserted_share": round(float((~present).float().mean()), 4), "dissimilar_share": round(dis, 4)}


def _setup(ctx: dict[str, Any], name: str, split_seed: int):
    if ctx.get("dataset") != name:
        data = datasets.load(name, lcc=True)
        data.x = sparse_features(data.x)  # same numbers, 3x faster on bag-of-words features
        ctx.update(dataset=name, data=data, splits={}, clean={}, gcn_attack={})
    ctx["similarity"] = pair_similarity(ctx["data"].x, "jaccard")  # cached: the defences' own matrix
    if split_seed not in ctx["splits"]:
        ctx["splits"][split_seed] = stratified_split(ctx["data"].y, 0.1, 0.1, seed=split_seed)
    return ctx["data"], ctx["splits"][split_seed]


def _clean_model(ctx, name, data, split, split_seed, seed, sz):
    key = (name, split_seed, seed)
    if key not in ctx["clean"]:
        ctx["clean"][key] = train(name, data, split, seed=seed, epochs=sz.epochs, patience=sz.patience)
    return ctx["clean"][key]


def _transfer(ctx: dict[str, Any], cell: dict[str, Any], k: int, budget: float) -> torch.Tensor:
    """The saved Meta-Self flips of the cell's dataset and split, ``(n, 2)``, read once per run
    (kept in ``ctx``); ``ValueError`` when they are fewer than the ``k`` of ``budget``."""
    key = ("transfer", cell["dataset"], cell["split"])
    if key not in ctx:
        ctx[key] = transfer_flips(cell["dataset"], cell["split"], ctx.get("transfer"))
    if ctx[key].size(0) < k:
        raise ValueError(f"the saved Meta-Self graph has {ctx[key].size(0)} flips, fewer than the {k} of budget {budget}")
    return ctx[key]


def measure_main(cell: dict[str, Any], ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """Test accuracy of one defence under every threat at one budget; see the module docstring."""
    sz = ctx["sizes"]
    data, split = _setup(ctx, cell["dataset"], cell["split"])
    name, budget, seed = cell["defence"], float(cell["budget"]), int(cell["model_seed"])
    d = defence(name)
    clean = _clean_model(ctx, name, data, split, cell["split"], seed, sz)
    test = split.test
    if budget == 0.0:
        return [{"attack": "clean", "accuracy": accuracy(clean.model, data, data.edge_index, test), "flips": 0,
                 "attack_seconds": 0.0, "train_seconds": round(clean.seconds, 2)}]
    k = budget_flips(budget, data)
    attack_kw = dict(seed=seed, epochs=sz.prbcd["epochs"], resample=sz.prbcd["resample"],
                     block_size=sz.prbcd["block_size"])
    out = []
    # transfer poisoning: the Meta-Self graph, truncated to this budget
    flips = _transfer(ctx, cell, k, budget)
    poisoned = apply_flips(data.edge_index, flips[:k], data.num_nodes)
    tr = train(name, data, split, seed=seed, edge_index=poisoned, epochs=sz.epochs, patience=sz.patience)
    sim = ctx["similarity"]
    out.append({"attack": "transfer-poisoning", "accuracy": accuracy(tr.model, data, poisoned, test), "flips": k,
                "attack_seconds": 0.0, "train_seconds": round(tr.seconds, 2), **flip_profile(data, flips[:k], sim)})
    # transfer evasion: PR-BCD against an undefended GCN, applied to the defence
    gkey = (cell["split"], budget, seed)
    if gkey not in ctx["gcn_attack"]:
        gcn = _clean_model(ctx, "gcn", data, split, cell["split"], seed, sz)
        ctx["gcn_attack"][gkey] = prbcd(gcn.model, data, split, budget, name="gcn", **attack_kw)
    ei_t, fl_t, sec_t = ctx["gcn_attack"][gkey]
    out.append({"attack": "transfer-evasion", "accuracy": accuracy(clean.model, data, ei_t, test),
                "flips": int(fl_t.size(1)), "attack_seconds": round(sec_t, 2), "train_seconds": 0.0,
                **flip_profile(data, fl_t.t(), sim)})
    # adaptive evasion: PR-BCD through the defence
    if d.adaptive is None:
        return out
    if name == "gcn":
        ei_a, fl_a, sec_a = ei_t, fl_t, sec_t
    else:
        ei_a, fl_a, sec_a = prbcd(clean.model, data, split, budget, name=name, **attack_kw)
    profile = flip_profile(data, fl_a.t(), sim)
    out.append({"attack": "adaptive-evasion", "accuracy": accuracy(clean.model, data, ei_a, test),
                "flips": int(fl_a.size(1)), "attack_seconds": round(sec_a, 2), "train_seconds": 0.0, **profile})
    # adaptive poisoning (lower bound): retrain the defence on the adaptive graph
    tr = train(name, data, split, seed=seed, edge_index=ei_a, epochs=sz.epochs, patience=sz.patience)
    out.append({"attack": "adaptive-poisoning", "accuracy": accuracy(tr.model, data, ei_a, test),
                "flips": int(fl_a.size(1)), "attack_seconds": round(sec_a, 2), "train_seconds": round(tr.seconds, 2),
                **profile})
    return out


MAIN = register(Experiment("defences_main", main_grid, measure_main, chapter="defences"))


def meta_grid(sz: config.Sizes) -> Grid:
    return Grid.product(dataset=sz.datasets, split=sz.splits, defence=sz.meta["defences"], budget=sz.meta["budgets"],
                        model_seed=sz.model_seeds)


def _meta_graph(ctx: dict[str, Any], name: str, cell: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, float, int]:
    """Meta-PGD through defence ``name`` at the cell's dataset, split, budget and seed:
    ``(poisoned edge_index, flips: (2, k), seconds, block size)``, kept in
    ``ctx["meta_graphs"]`` so that another experiment given the same dict reuses it."""
    sz, m = ctx["sizes"], ctx["sizes"].meta
    key = (cell["dataset"], name, cell["split"], float(cell["budget"]), int(cell["model_seed"]), m["steps"], m["epochs"])
    graphs = ctx.setdefault("meta_graphs", {})
    if key not in graphs:
        data, split = _setup(ctx, cell["dataset"], cell["split"])
        seed = int(cell["model_seed"])
        clean = _clean_model(ctx, name, data, split, cell["split"], seed, sz)  # the attacker's self-training labels
        block = m.get("block_size_by_defence", {}).get(name, m["block_size"])
        ei, fl, sec = meta_pgd(name, data, split, float(cell["budget"]), clean.model, seed=seed, steps=m["steps"],
                               epochs=m["epochs"], resample=m["resample"], block_size=block,
                               final_samples=m["final_samples"])
        graphs[key] = (ei, fl, sec, block)
    return graphs[key]


def _trained_on(ctx: dict[str, Any], cell: dict[str, Any], ei: torch.Tensor, fl: torch.Tensor, sec: float,
                attack: str) -> dict[str, Any]:
    sz = ctx["sizes"]
    data, split = _setup(ctx, cell["dataset"], cell["split"])
    tr = train(cell["defence"], data, split, seed=int(cell["model_seed"]), edge_index=ei, epochs=sz.epochs,
               patience=sz.patience)
    return {"attack": attack, "accuracy": accuracy(tr.model, data, ei, split.test), "flips": int(fl.size(1)),
            "attack_seconds": round(sec, 2), "train_seconds": round(tr.seconds, 2), "steps": sz.meta["steps"],
            **flip_profile(data, fl.t(), ctx["similarity"])}


def measure_meta(cell: dict[str, Any], ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """Test accuracy of one defence trained on the graph Meta-PGD poisoned through its training."""
    ei, fl, sec, block = _meta_graph(ctx, cell["defence"], cell)
    return [{**_trained_on(ctx, cell, ei, fl, sec, "meta-poisoning"), "block_size": block}]


META = register(Experiment("defences_meta", meta_grid, measure_meta, chapter="defences"))


def meta_transfer_grid(sz: config.Sizes) -> Grid:
    return Grid.product(dataset=sz.datasets, split=sz.splits, defence=sz.defences, budget=sz.meta["budgets"],
                        model_seed=sz.model_seeds)


def measure_meta_transfer(cell: dict[str, Any], ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """Test accuracy of one defence trained on the graph Meta-PGD poisoned through an
    undefended GCN (``attack_seconds``: that attack's, paid once per split and budget)."""
    ei, fl, sec, _ = _meta_graph(ctx, "gcn", cell)
    return [_trained_on(ctx, cell, ei, fl, sec, "meta-transfer-poisoning")]


META_TRANSFER = register(Experiment("defences_meta_transfer", meta_transfer_grid, measure_meta_transfer,
                                    chapter="defences"))


def warmup_grid(sz: config.Sizes) -> Grid:
    return Grid.product(dataset=sz.datasets, split=sz.splits, graph=["clean", "meta-self"], warmup_rounds=[0, 1],
                        model_seed=sz.model_seeds)


def measure_warmup(cell: dict[str, Any], ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """Adversarial training with ``warmup_rounds`` first rounds on the given graph (never kept),
    beside GCN, on the clean graph or on Meta-Self's graph at the profile's top budget: test
    accuracy and the kept epoch of each (1-based). ``warmup_rounds=1`` is the registered
    defence, the same model as the ``defences_main`` cells."""
    sz = ctx["sizes"]
    data, split = _setup(ctx, cell["dataset"], cell["split"])
    seed, budget, w = int(cell["model_seed"]), max(sz.budgets), int(cell["warmup_rounds"])
    ei, k = data.edge_index, 0
    if cell["graph"] == "meta-self":
        k = budget_flips(budget, data)
        ei = apply_flips(ei, _transfer(ctx, cell, k, budget)[:k], data.num_nodes)
    gcn = train("gcn", data, split, seed=seed, edge_index=ei, epochs=sz.epochs, patience=sz.patience)  # as elsewhere
    history: list[float] = []  # one validation accuracy per candidate epoch: the last len(history) epochs
    adv = train("adversarial", data, split, seed=seed, edge_index=ei, trainer_kw={"warmup_rounds": w,
                                                                                 "history": history})
    first = adv.epochs - len(history) + 1
    return [{"budget": budget if k else 0.0, "flips": k,
             "accuracy": accuracy(adv.model, data, ei, split.test), "kept_epoch": first + history.index(max(history)),
             "gcn_accuracy": accuracy(gcn.model, data, ei, split.test), "gcn_kept_epoch": gcn.kept_epoch}]


ADVERSARIAL_WARMUP = register(Experiment("defences_adversarial_warmup", warmup_grid, measure_warmup,
                                         chapter="defences"))


def svd_clip_grid(sz: config.Sizes) -> Grid:
    return Grid.product(dataset=sz.datasets, split=sz.splits, clip=[True, False], model_seed=sz.model_seeds)


def measure_svd_clip(cell: dict[str, Any], ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """SVD-GCN with ``clip`` on the clean graph and under PR-BCD through it (evasion) at the
    smallest non-zero budget of the profile. Each record also gives, for the rank-``r``
    matrix of the clean graph, the share of its entries below zero (``negative_share``),
    their mass over the positive mass (``negative_mass``), and the Frobenius distance of the
    normalised propagation matrix moved by the attack, relative to the clean one
    (``propagation_change``)."""
    sz = ctx["sizes"]
    data, split = _setup(ctx, cell["dataset"], cell["split"])
    seed, clip = int(cell["model_seed"]), bool(cell["clip"])
    budget = min(b for b in sz.budgets if b > 0)
    tr = train("svd", data, split, seed=seed, epochs=sz.epochs, patience=sz.patience, clip=clip)
    ei, fl, sec = prbcd(tr.model, data, split, budget, name="svd", seed=seed, epochs=sz.prbcd["epochs"],
                        resample=sz.prbcd["resample"], block_size=sz.prbcd["block_size"])
    with torch.no_grad():
        n = data.num_nodes
        a0, a1 = (normalize_dense(tr.model.low_rank(e, None, n)) for e in (data.edge_index, ei))
        change = float((a1 - a0).norm() / a0.norm())
        key = ("svd_signed", cell["dataset"], tr.model.rank)  # one graph, one matrix: its splits and clips share it
        if key not in ctx:
            signed = truncated_adjacency(data.edge_index, None, n, tr.model.rank)
            ctx[key] = {"negative_share": round(float((signed < 0).float().mean()), 4),
                        "negative_mass": round(float(-signed.clamp_max(0.0).sum() / signed.clamp_min(0.0).sum()), 4)}
    stats = {**ctx[key], "budget": budget}
    return [{"attack": "clean", "accuracy": accuracy(tr.model, data, data.edge_index, split.test), "flips": 0,
             "attack_seconds": 0.0, "train_seconds": round(tr.seconds, 2), "propagation_change": 0.0, **stats},
            {"attack": "adaptive-evasion", "accuracy": accuracy(tr.model, data, ei, split.test),
             "flips": int(fl.size(1)), "attack_seconds": round(sec, 2), "train_seconds": 0.0,
             "propagation_change": round(change, 4), **stats}]


SVD_CLIP = register(Experiment("defences_svd_clip", svd_clip_grid, measure_svd_clip, chapter="defences"))
