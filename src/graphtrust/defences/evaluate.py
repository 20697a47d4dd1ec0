"""Defences by name, trained and evaluated one way, and the attacks that test them.

* :data:`DEFENCES` — every defence, registered here beside the models of :mod:`.models`,
  with how an adaptive attack differentiates through it.
* :func:`train` — a defence trained on a graph (clean or poisoned) with the library's
  :func:`graphtrust.training.fit`; :func:`accuracy` — test accuracy on a graph.
* :func:`prbcd` — PR-BCD (:class:`torch_geometric.contrib.nn.PRBCDAttack`, used as is) run
  against a trained model: an **evasion** attack on the test-time graph. Run against the
  defence itself it is **adaptive**; run against an undefended GCN and applied to the
  defence it is a **transfer** attack.

What the attacker is given: the graph, the features, the model (white box), the labels of
the training nodes, and for every other node the attacked model's own prediction (never
the true labels of unlabelled nodes). It attacks the unlabelled nodes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch_geometric.data import Data

from .. import config
from ..models import GCN
from ..splits import Split
from ..training import fit
from .models import RGCN, SVDGCN, GNNGuard, JaccardGCN, SoftMedianGDC

__all__ = ["Defence", "DEFENCES", "adversarial_fit", "defence", "build", "train", "accuracy", "prbcd", "run_prbcd",
           "budget_flips", "attacker_labels", "Trained"]


@dataclass(frozen=True)
class Defence:
    """A defence by name: how to build it and how an adaptive attack goes through it.

    ``factory(in_dim, out_dim, num_nodes, **params) -> nn.Module`` builds a model that
    takes ``(x, edge_index, edge_weight=None)``. ``adaptive``: how gradients reach the
    attack (``None``: no differentiable form; :func:`prbcd` refuses it). ``cost``: what
    the defence costs beyond a GCN.
    """

    name: str
    label: str
    factory: Callable[..., nn.Module]
    idea: str
    adaptive: str | None
    cost: str
    params: dict[str, Any] = field(default_factory=dict)
    trainer: Callable[..., tuple[nn.Module, int]] | None = None  # default: graphtrust.training.fit
    not_unrolled: str | None = None  # why Meta-PGD (defences.meta) cannot unroll its training; None: it can


def _gcn(in_dim, out_dim, num_nodes, hidden=64, dropout=0.5):
    return GCN(in_dim, hidden, out_dim, dropout=dropout)


def adversarial_fit(model: nn.Module, data: Data, split: Split, edge_index: torch.Tensor, *, seed: int = 0,
                    budget: float = 0.05, rounds: int = 10, epochs_per_round: int = 20, attack_epochs: int = 10,
                    block_size: int = 20_000, lr: float = 0.01, weight_decay: float = 5e-4,
                    warmup_rounds: int = 1, history: list[float] | None = None) -> tuple[nn.Module, int]:
    """Adversarial training (Xu et al., 2019; with PR-BCD in the loop as Geisler et al., 2021).

    The first ``warmup_rounds`` rounds train on ``edge_index`` (so that PR-BCD then attacks
    a model that has learnt something); every later round first perturbs ``edge_index`` with
    PR-BCD against the current model, maximising the loss of the *training* nodes (their
    labels are the defender's) within ``budget``, then trains ``epochs_per_round`` epochs on
    the perturbed graph. Of the epochs after the warm-up, the weights with the best
    validation accuracy on ``edge_index``, checked after every epoch as
    :func:`graphtrust.training.fit` does for the other defences, are kept.

    Two selections were measured and rejected. Checking once per round hid the early
    epochs: on the graph Meta-PGD poisoned through GCN on Citeseer at 25 %, a GCN's
    validation accuracy peaks at epoch 3 (46.9 %) and is 12.8 % by epoch 20, so it kept
    weights at 24.3 % test accuracy against GCN's 46.0 %. Choosing among all epochs,
    warm-up included, kept a warm-up epoch in 8 of 10 Citeseer trainings, whose weights are
    a plain GCN's: the defence was then no adversarial training at all.
    Returns ``(model, epochs run)``; ``(N, D)`` features and ``(2, E)`` edges as elsewhere.
    ``history``, if given, receives the validation accuracy of every candidate epoch, the
    last ``len(history)`` of the epochs run (the kept one is the first maximum).
    """
    if not 0 <= warmup_rounds < rounds:
        raise ValueError(f"warmup_rounds={warmup_rounds} must be in [0, rounds={rounds}): "
                         "at least one round must train on perturbed graphs")
    import copy

    import torch.nn.functional as F

    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    best, state, epochs = -1.0, None, 0
    for r in range(rounds):
        graph = edge_index
        if r >= warmup_rounds:
            graph, _, _ = prbcd(model, data, split, budget, seed=seed * 1000 + r, epochs=attack_epochs,
                                resample=max(1, attack_epochs - 2), block_size=block_size, edge_index=edge_index,
                                targets="train")
        for _ in range(epochs_per_round):
            model.train()
            opt.zero_grad()
            F.cross_entropy(model(data.x, graph)[split.train], data.y[split.train]).backward()
            opt.step()
            epochs += 1
            if r < warmup_rounds:
                continue
            val = accuracy(model, data, edge_index, split.val)  # eval mode: the next epoch sets train again
            if history is not None:
                history.append(val)
            if val > best:
                best, state = val, copy.deepcopy(model.state_dict())
    model.load_state_dict(state)
    model.eval()
    return model, epochs


DEFENCES: dict[str, Defence] = {d.name: d for d in (
    Defence("gcn", "GCN (no defence)", _gcn, "the undefended baseline", "exact: GCN is differentiable in edge weights",
            "none"),
    Defence("jaccard", "Jaccard-GCN", lambda i, o, n, **p: JaccardGCN(i, o, **p),
            "drop edges between nodes with dissimilar features",
            "exact: the kept pairs depend on the fixed features only, so the purifier is a fixed 0/1 mask",
            "an (N, N) similarity once: O(N² D) time, O(N²) memory", {"threshold": 0.01}),
    Defence("svd", "SVD-GCN", lambda i, o, n, **p: SVDGCN(i, o, num_nodes=n, **p),
            "keep the top singular directions of the adjacency",
            "through the randomised truncated SVD (differentiable)",
            "dense (N, N) adjacency: O(N² r) per forward, O(N²) memory", {"rank": 50},
            not_unrolled="a dense (N, N) truncated SVD in every training step"),
    Defence("gnnguard", "GNNGuard", lambda i, o, n, **p: GNNGuard(i, o, **p),
            "re-weight edges by endpoint similarity, prune the dissimilar",
            "through the similarity weights; the pruning cut is fixed per forward",
            "one similarity per edge and layer", {"threshold": 0.1}),
    Defence("rgcn", "RGCN", lambda i, o, n, **p: RGCN(i, o, **p),
            "Gaussian node states; high-variance neighbours count less",
            "exact: every step is differentiable", "two propagations per layer", {}),
    Defence("soft-median-gdc", "Soft-Median-GDC", lambda i, o, n, **p: SoftMedianGDC(i, o, **p),
            "diffuse with PPR, aggregate with a soft median robust to outliers",
            "through the dense PPR solve; top-k and median selections fixed per forward",
            "dense PPR: O(N³) once per graph, k neighbours per node", {"k": 64, "temperature": 0.5},
            not_unrolled="a dense (N, N) personalised-PageRank solve in every training step"),
    Defence("adversarial", "GCN, adversarially trained", _gcn,
            "train on graphs PR-BCD perturbed against the model being trained",
            "exact: the trained model is a GCN", "one small PR-BCD per round (10 rounds)",
            trainer=adversarial_fit,
            not_unrolled="PR-BCD inside its own training loop (an attack inside the unrolled attack)"),
)}


def defence(name: str) -> Defence:
    """The registered defence ``name``; ``KeyError`` naming the known ones."""
    if name not in DEFENCES:
        raise KeyError(f"unknown defence {name!r}; one of {', '.join(DEFENCES)}")
    return DEFENCES[name]


def build(name: str, data: Data, **params: Any) -> nn.Module:
    """A fresh (untrained) model of defence ``name`` for ``data`` (its default parameters,
    overridden by ``params``: e.g. ``threshold=0.05``)."""
    d = defence(name)
    return d.factory(data.num_features, int(data.y.max()) + 1, data.num_nodes, **{**d.params, **params})


@dataclass
class Trained:
    """A trained defence: the model, the graph it was trained on, and what training cost."""

    name: str
    model: nn.Module
    edge_index: torch.Tensor
    seconds: float
    epochs: int
    kept_epoch: int | None = None  # 1-based epoch of the kept weights (None: a defence's own trainer)


def train(name: str, data: Data, split: Split, *, seed: int = 0, edge_index: torch.Tensor | None = None,
          epochs: int = 300, patience: int = 50, select: str = "accuracy", trainer_kw: dict[str, Any] | None = None,
          **params: Any) -> Trained:
    """Train defence ``name`` on ``edge_index`` (default: ``data.edge_index``).

    Adam (lr 0.01, weight decay 5·10⁻⁴); the weights with the best validation accuracy are
    kept (``select``, see :func:`graphtrust.training.fit`: selecting by validation loss
    stops RGCN on a 25 %-poisoned Cora-ML graph at epoch 9, before it fits its training
    labels). The defence's purification runs inside the model, on the graph it is given.
    A defence with its own trainer (adversarial training) gets ``trainer_kw`` as keywords.
    """
    config.seed_everything(seed)
    ei = data.edge_index if edge_index is None else edge_index
    model = build(name, data, **params)
    t = time.perf_counter()
    trainer = defence(name).trainer
    if trainer is not None:
        model, run = trainer(model, data, split, ei, seed=seed, **(trainer_kw or {}))
        return Trained(name, model, ei, time.perf_counter() - t, run)
    res = fit(model, data.x, ei, data.y, split, epochs=epochs, patience=patience, select=select)
    return Trained(name, res.model, ei, time.perf_counter() - t, res.epochs_run, res.best_epoch)


@torch.no_grad()
def accuracy(model: nn.Module, data: Data, edge_index: torch.Tensor, idx: torch.Tensor) -> float:
    """Accuracy of ``model`` on nodes ``idx`` with the graph ``edge_index`` (eval mode)."""
    model.eval()
    pred = model(data.x, edge_index).argmax(1)
    return float((pred[idx] == data.y[idx]).float().mean())


def budget_flips(budget: float, data: Data) -> int:
    """Flips for a budget given as a fraction of the clean undirected edges."""
    if not 0 < budget <= 1:
        raise ValueError(f"budget must be a fraction of the edges in (0, 1], got {budget!r}")
    return max(1, int(budget * data.edge_index.size(1) // 2))


@torch.no_grad()
def attacker_labels(model: nn.Module, data: Data, split: Split, edge_index: torch.Tensor) -> torch.Tensor:
    """True labels on the training nodes, the model's predictions everywhere else."""
    model.eval()
    labels = model(data.x, edge_index).argmax(1)
    labels[split.train] = data.y[split.train]
    return labels


def prbcd(model: nn.Module, data: Data, split: Split, budget: float, *, name: str = "gcn", seed: int = 0,
          epochs: int = 125, resample: int = 100, block_size: int = 250_000, lr: float = 1_000.0,
          loss: str = "prob_margin", show_progress: bool = False, edge_index: torch.Tensor | None = None,
          targets: str = "unlabelled") -> tuple[torch.Tensor, torch.Tensor, float]:
    """Evasion PR-BCD against the trained ``model`` (a model of defence ``name``).

    Uses :class:`torch_geometric.contrib.nn.PRBCDAttack` unchanged: ``epochs`` steps on a
    random block of ``block_size`` candidate pairs (resampled for the first ``resample``),
    then the best of up to 20 discrete samples within the budget. It attacks the
    unlabelled nodes with :func:`attacker_labels` (``targets="train"``: the training nodes with
    their labels, as adversarial training does). ``edge_index``: the graph to perturb
    (default ``data.edge_index``). Returns ``(edge_index, flips: (2, k),
    seconds)``: the perturbed graph (both directions) and the flipped pairs.
    """
    d = defence(name)
    if d.adaptive is None:
        raise ValueError(f"defence {name!r} has no differentiable form; it can only be attacked by transfer")
    if targets not in ("unlabelled", "train"):
        raise ValueError(f"targets must be 'unlabelled' or 'train', got {targets!r}")
    ei0 = data.edge_index if edge_index is None else edge_index
    labels = attacker_labels(model, data, split, ei0) if targets == "unlabelled" else data.y
    idx = split.unlabelled if targets == "unlabelled" else split.train
    return run_prbcd(model, data.x, ei0, labels, budget_flips(budget, data), idx, seed=seed, epochs=epochs,
                     resample=resample, block_size=block_size, lr=lr, loss=loss, show_progress=show_progress)


def run_prbcd(model: nn.Module, x: torch.Tensor, edge_index: torch.Tensor, labels: torch.Tensor, flips: int,
              idx: torch.Tensor, *, seed: int | None = 0, epochs: int = 125, resample: int = 100,
              block_size: int = 250_000, lr: float = 1_000.0, loss: str = "prob_margin", show_progress: bool = False,
              **coeffs: Any) -> tuple[torch.Tensor, torch.Tensor, float]:
    """PyG's :class:`~torch_geometric.contrib.nn.PRBCDAttack`, unchanged, on ``model``: at most
    ``flips`` flips of ``edge_index`` that raise ``loss`` of ``labels`` on nodes ``idx``.

    Seeds the generators with ``seed`` (``None``: leaves them as they are), keeps the block
    at least twice the budget, and freezes the model's parameters while it runs (the attack
    needs gradients of the edge weights only). ``coeffs``: PR-BCD's other coefficients
    (e.g. ``max_final_samples``).
    Returns ``(edge_index, flips: (2, k), seconds)``. Used by :func:`prbcd` (evasion) and
    :func:`.meta.meta_pgd` (poisoning through training).
    """
    from torch_geometric.contrib.nn import PRBCDAttack

    if seed is not None:
        config.seed_everything(seed)
    attack = PRBCDAttack(model, block_size=max(block_size, 2 * flips), epochs=epochs,
                         epochs_resampling=min(resample, epochs), loss=loss, lr=lr, log=show_progress, **coeffs)
    t = time.perf_counter()
    trainable = [p for p in model.parameters() if p.requires_grad]
    for p in trainable:
        p.requires_grad_(False)
    try:
        ei, flipped = attack.attack(x, edge_index, labels, flips, idx_attack=idx)
    finally:
        for p in trainable:
            p.requires_grad_(True)
    return ei, flipped, time.perf_counter() - t
