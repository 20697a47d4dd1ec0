"""How a defender trains and how label-poisoning results are evaluated.

Two protocols, to show what the paper's pitfalls do:

* :func:`flawed_protocol` — what earlier work did: a class-equalised labelled pool
  (20 per class), a large *clean* validation set (500 nodes) that the attacker cannot
  touch, one fixed hyper-parameter setting.
* :func:`corrected_protocol` — the paper's fix: a random labelled pool of realistic size
  (about 140 nodes on Cora-ML), poisoned *as a whole* (validation labels included),
  model selection by cross-validation inside the poisoned pool over a hyper-parameter
  grid, and repeated random splits with mean ± std.

:func:`evaluate` runs a protocol for one victim and one attack and returns the test
accuracy per split.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import Any

import torch

from .. import config
from ..splits import Split, class_balanced_split, random_pool
from ..training import fit, summarize
from .victims import build_victim

__all__ = ["Protocol", "flawed_protocol", "corrected_protocol", "evaluate", "cv_folds"]


@dataclass(frozen=True)
class Protocol:
    """An evaluation protocol: how pools are drawn and how the defender selects a model."""

    name: str
    class_equalised: bool
    pool_size: int  # corrected: labelled pool; flawed: per class
    clean_validation: int  # flawed: size of the separate clean validation set; corrected: 0
    folds: int  # corrected: CV folds inside the pool
    grid: tuple[dict[str, Any], ...]
    epochs: int = 200
    patience: int = 50
    num_test: int | None = None

    def draw(self, y: torch.Tensor, seed: int) -> Split:
        """``train`` = the labelled pool the attacker poisons; ``val`` = the clean validation set
        (flawed protocol only); ``test`` = evaluation nodes."""
        if self.class_equalised:
            return class_balanced_split(y, self.pool_size, self.clean_validation,
                                        self.num_test or 1000, seed=seed)
        return random_pool(y, self.pool_size, num_test=self.num_test, seed=seed)


DEFAULT_GRID = tuple(
    {"lr": lr, "weight_decay": wd, "dropout": dr}
    for lr, wd, dr in product((0.01, 0.05), (5e-4, 5e-5), (0.5,))
)


def flawed_protocol(per_class: int = 20, validation: int = 500, **kw) -> Protocol:
    """Class-equalised pool, large clean validation set, one fixed configuration."""
    return Protocol("flawed", True, per_class, validation, 0,
                    ({"lr": 0.01, "weight_decay": 5e-4, "dropout": 0.5},), **kw)


def corrected_protocol(pool_size: int = 140, folds: int = 2, grid: Sequence[dict] = DEFAULT_GRID, **kw) -> Protocol:
    """Random pool, poisoned as a whole, CV model selection over ``grid``."""
    if folds < 2:
        raise ValueError("cross-validation needs at least 2 folds")
    return Protocol("corrected", False, pool_size, 0, folds, tuple(grid), **kw)


def cv_folds(labels: torch.Tensor, folds: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Stratified half/half shuffles of ``range(len(labels))`` (train, validation), one per fold.

    Stratified by the (poisoned) labels the defender sees, as the paper's code does.
    """
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(folds):
        tr, va = [], []
        for c in torch.unique(labels).tolist():
            idx = (labels == c).nonzero().view(-1)
            idx = idx[torch.randperm(idx.numel(), generator=gen)]
            half = idx.numel() // 2
            tr.append(idx[half:])
            va.append(idx[:half])
        out.append((torch.cat(tr).sort().values, torch.cat(va).sort().values))
    return out


@dataclass
class Evaluation:
    """Test accuracy per split, and the configuration the defender picked in each."""

    accuracies: list[float]
    chosen: list[dict[str, Any]] = field(default_factory=list)

    @property
    def summary(self):
        return summarize(self.accuracies)


def evaluate(
    protocol: Protocol,
    data,
    victim: str,
    poison: Callable[[torch.Tensor, torch.Tensor, Split], torch.Tensor] | None,
    seeds: Sequence[int],
    device: torch.device | None = None,
) -> Evaluation:
    """Test accuracy of ``victim`` trained under ``protocol`` on labels poisoned by ``poison``.

    ``poison(y, pool, split) -> labels`` returns poisoned labels for all nodes (only the
    pool's entries matter); ``None`` means clean training. Accuracy is always measured
    against the clean labels of the test nodes.
    """
    dev = device or config.device()
    accs, chosen = [], []
    for seed in seeds:
        split = protocol.draw(data.y, seed)
        pool = split.train
        labels = data.y.clone() if poison is None else poison(data.y, pool, split)
        if protocol.name == "flawed":
            cfg = protocol.grid[0]
            train = Split(pool, split.val, split.test)
            y_fit = data.y.clone()
            y_fit[pool] = labels[pool]  # validation labels stay clean: the pitfall
            acc = _train(data, victim, cfg, y_fit, train, protocol, dev, seed)
        else:
            folds = cv_folds(labels[pool], protocol.folds, seed)
            best = (-math.inf, None)
            for cfg in protocol.grid:
                val = []
                for tr, va in folds:
                    sp = Split(pool[tr], pool[va], torch.empty(0, dtype=torch.long))
                    val.append(_train(data, victim, cfg, labels, sp, protocol, dev, seed, metric="val"))
                score = sum(val) / len(val)
                if score > best[0]:
                    best = (score, cfg)
            cfg = best[1]
            acc = sum(
                _train(data, victim, cfg, labels, Split(pool[tr], pool[va], split.test), protocol, dev, seed)
                for tr, va in folds
            ) / len(folds)
        accs.append(acc)
        chosen.append(dict(cfg))
    return Evaluation(accs, chosen)


def _train(data, victim, cfg, labels, split, protocol, dev, seed, metric="test") -> float:
    config.seed_everything(seed)
    model = build_victim(victim, data.num_features, int(data.y.max()) + 1, dropout=cfg["dropout"], **cfg.get("model", {}))
    # the defender fits the labels it has (possibly poisoned); test accuracy uses clean labels
    y_train = labels.clone()
    y_train[split.test] = data.y[split.test]
    res = fit(model, data.x, data.edge_index, y_train, split, epochs=protocol.epochs, patience=protocol.patience,
              lr=cfg["lr"], weight_decay=cfg["weight_decay"], device=dev)
    return res.val_acc if metric == "val" else res.test_acc
