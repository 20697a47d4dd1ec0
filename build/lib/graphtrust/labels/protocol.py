"""How a defender trains and how label-poisoning results are evaluated.

Two protocols, to show what the paper's pitfalls do:

* :func:`flawed_protocol` — what earlier work did: a class-equalised labelled pool
  (20 per class), a large *clean* validation set (500 nodes) that the attacker cannot
  touch, one fixed hyper-parameter setting.
* :func:`corrected_protocol` — the paper's fix: a random labelled pool of realistic size
  (about 140 nodes on Cora-ML), poisoned *as a whole* (validation labels included),
  model selection by cross-validation inside the poisoned pool over a hyper-parameter
  grid, and repeated random splits with mean ± std.

:func:`pitfall_steps` walks from one to the other, fixing one pitfall at a time.
:func:`evaluate` runs a protocol for one victim and one attack and returns the test
accuracy per split.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import Any

import torch

from .. import config
from ..models import sparse_features
from ..splits import Split, class_balanced_split, random_pool
from ..training import summarize
from .ensemble import GraphInputs, VictimEnsemble, fit_ensemble
from .victims import build_victim

__all__ = ["Protocol", "flawed_protocol", "corrected_protocol", "tuned_protocol", "PAPER_SPACE", "pitfall_steps", "evaluate", "cv_folds", "DEFAULT_GRID"]


@dataclass(frozen=True)
class Protocol:
    """An evaluation protocol: how the labelled nodes are drawn and how the defender selects a model.

    ``pool_size`` is the number of labelled nodes the attacker poisons (class-equalised
    pools take ``pool_size // C`` per class). With ``clean_validation > 0`` the defender
    also holds that many *clean* labelled nodes for early stopping and model selection
    (pitfalls P1/P4); with ``0`` it validates inside the poisoned pool by ``folds``-fold
    cross-validation. ``grid`` lists the hyper-parameter settings tried (one: no tuning, P3).
    """

    name: str
    class_equalised: bool
    pool_size: int
    clean_validation: int
    folds: int
    grid: tuple[dict[str, Any], ...]
    epochs: int = 200
    patience: int = 50
    num_test: int | None = None
    search: str = "grid"
    space: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    trials: int = 20
    select: str = "loss"
    window: int | None = None

    def __post_init__(self):
        if self.search not in ("grid", "optuna"):
            raise ValueError(f"search must be 'grid' or 'optuna', got {self.search!r}")
        if self.search == "grid" and not self.grid:
            raise ValueError("the hyper-parameter grid is empty")
        if self.search == "optuna":
            if not self.space:
                raise ValueError("an Optuna search needs a search space")
            for name, values in self.space:
                if not values:
                    raise ValueError(f"the search space of {name!r} is empty")
            if self.trials < 1:
                raise ValueError(f"trials must be >= 1, got {self.trials}")
        if self.clean_validation == 0 and self.folds < 2:
            raise ValueError("cross-validation inside the pool needs at least 2 folds")
        if self.clean_validation < 0 or self.pool_size < 2:
            raise ValueError("pool_size must be >= 2 and clean_validation >= 0")

    def draw(self, y: torch.Tensor, seed: int) -> Split:
        """``train`` = the labelled pool the attacker poisons; ``val`` = the clean validation
        set (empty when validation happens inside the pool); ``test`` = evaluation nodes."""
        n = y.numel()
        if self.class_equalised:
            per_class = self.pool_size // int(torch.unique(y).numel())
            rest = n - per_class * int(torch.unique(y).numel()) - self.clean_validation
            return class_balanced_split(y, per_class, self.clean_validation,
                                        min(self.num_test or rest, rest), seed=seed)
        sp = random_pool(y, self.pool_size, seed=seed)
        rest = sp.test[torch.randperm(sp.test.numel(), generator=torch.Generator().manual_seed(seed + 7919))]
        val = rest[: self.clean_validation]
        test = rest[self.clean_validation:]
        if self.num_test is not None:
            test = test[: self.num_test]
        return Split(sp.train, val.sort().values, test.sort().values)


DEFAULT_GRID = tuple(
    {"lr": lr, "weight_decay": wd, "dropout": dr}
    for lr, wd, dr in product((0.01, 0.05), (5e-4, 5e-5), (0.5,))
)
FIXED = ({"lr": 0.01, "weight_decay": 5e-4, "dropout": 0.5},)  # Kipf & Welling's setting


def flawed_protocol(pool_size: int = 140, validation: int = 500, **kw) -> Protocol:
    """Class-equalised pool, large clean validation set, one fixed configuration."""
    return Protocol("flawed", True, pool_size, validation, 0, FIXED, **kw)


def corrected_protocol(pool_size: int = 140, folds: int = 2, grid: Sequence[dict] = DEFAULT_GRID, **kw) -> Protocol:
    """Random pool, poisoned as a whole, CV model selection over ``grid``."""
    return Protocol("corrected", False, pool_size, 0, folds, tuple(grid), **kw)


#: the label-poisoning authors' defender search (their code: Optuna TPE, 20 trials; hidden size 64 fixed)
PAPER_SPACE = (("lr", (0.1, 0.01, 0.05, 0.08)), ("weight_decay", (0.0, 5e-3, 5e-4, 5e-5)),
               ("dropout", (0.3, 0.5, 0.7)))


def tuned_protocol(pool_size: int = 140, folds: int = 5, trials: int = 20, epochs: int = 1000, window: int = 100,
                   space=PAPER_SPACE, **kw) -> Protocol:
    """The paper's defender: corrected protocol, ``trials`` Optuna TPE trials (seeded sampler)
    over ``space``, each scored by the mean validation accuracy over ``folds`` stratified
    halves of the poisoned pool; ``epochs`` at most, checkpoint at the best validation
    accuracy, stop when the accuracy falls below the mean of the previous ``window`` epochs."""
    return Protocol("corrected-tuned", False, pool_size, 0, folds, FIXED, epochs=epochs, search="optuna",
                    space=tuple((k, tuple(v)) for k, v in space), trials=trials, select="accuracy",
                    window=window, **kw)


def pitfall_steps(pool_size: int = 140, validation: int = 500, folds: int = 2,
                  grid: Sequence[dict] = DEFAULT_GRID, large_pool: int | None = None,
                  **kw) -> list[tuple[str, Protocol]]:
    """From the flawed to the corrected protocol, fixing one pitfall at a time.

    Returns ``(what changed, protocol)`` pairs; P5 (report mean ± std over splits) holds for
    every row. The order follows how a defender's situation becomes realistic: the labelled
    nodes are drawn at random (P2), the validation set shrinks to the pool's size (P1), the
    validation labels come from the poisoned pool (P4), the defender tunes (P3). With
    ``large_pool`` a last row keeps the corrected protocol and draws a larger random pool
    (the paper's: 40 labelled nodes per class in expectation; budgets scale with the pool).
    """
    grid = tuple(grid)
    extra = [] if large_pool is None else [
        (f"corrected, with a random pool of {large_pool} labelled nodes (the paper's size)",
         Protocol("corrected-large", False, large_pool, 0, folds, grid, **kw))]
    return [
        ("flawed: class-equalised pool, 500 clean validation labels, fixed setting",
         Protocol("flawed", True, pool_size, validation, 0, FIXED, **kw)),
        ("P2 fixed: random labelled pool",
         Protocol("P2", False, pool_size, validation, 0, FIXED, **kw)),
        ("P1 fixed: clean validation set as large as the pool",
         Protocol("P2+P1", False, pool_size, pool_size, 0, FIXED, **kw)),
        ("P4 fixed: validation labels are poisoned (CV inside the pool)",
         Protocol("P2+P1+P4", False, pool_size, 0, folds, FIXED, **kw)),
        ("P3 fixed: hyper-parameters tuned by CV = corrected",
         Protocol("corrected", False, pool_size, 0, folds, grid, **kw)),
    ] + extra


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

    Model selection: every grid setting is trained once per fold (or once, with a clean
    validation set); the setting with the best mean validation accuracy wins (ties: the
    first in the grid; never the test accuracy) and its test accuracy, averaged over the
    folds, is the result. The test accuracy is recorded in the same training run, so no
    model is trained twice.
    """
    dev = device or config.device()
    inputs = _inputs(data, dev)
    accs, chosen = [], []
    for seed in seeds:
        split = protocol.draw(data.y, seed)
        pool = split.train
        labels = data.y.clone() if poison is None else poison(data.y, pool, split)
        if labels.shape != data.y.shape:
            raise ValueError(f"poison must return labels of shape {tuple(data.y.shape)}, got {tuple(labels.shape)}")
        y_fit = data.y.clone()  # validation (if clean) and test labels stay clean
        y_fit[pool] = labels[pool]
        if protocol.clean_validation > 0:
            fold_splits = [Split(pool, split.val, split.test)]
        else:
            fold_splits = [Split(pool[tr], pool[va], split.test)
                           for tr, va in cv_folds(labels[pool], protocol.folds, seed)]
        grid = protocol.grid
        if protocol.search == "optuna":
            grid, scores = _tune(inputs, data, victim, protocol, y_fit, fold_splits, dev, seed)
        else:
            scores = _train_grid(inputs, data, victim, protocol, y_fit, fold_splits, dev, seed)
        best = (-math.inf, None, None)
        for cfg, res in zip(grid, scores):
            val = sum(r[0] for r in res) / len(res)
            if val > best[0]:
                best = (val, cfg, sum(r[1] for r in res) / len(res))
        accs.append(best[2])
        chosen.append(dict(best[1]))
    return Evaluation(accs, chosen)


_LAST: tuple | None = None  # (weakref to data.x, edge_index, device, GraphInputs)


def _inputs(data, dev: torch.device) -> GraphInputs:
    """:class:`~.ensemble.GraphInputs` of ``data``'s graph on ``dev``, kept for the graph last seen
    (an experiment evaluates thousands of cells on one graph)."""
    global _LAST
    if _LAST is None or _LAST[0]() is not data.x or _LAST[1] is not data.edge_index or _LAST[2] != dev:
        x = sparse_features(data.x).to(dev)
        _LAST = (weakref.ref(data.x), data.edge_index, dev, GraphInputs(x, data.edge_index.to(dev)))
    return _LAST[3]


def _train_grid(inputs, data, victim, protocol, labels, fold_splits, dev, seed) -> list[list[tuple[float, float]]]:
    """``[(validation accuracy, clean test accuracy) per fold] per grid setting``.

    Every (setting, fold) model starts from the same seeded initial weights, as a defender
    re-running one script would; they are trained at once by :func:`~.ensemble.fit_ensemble`,
    one batch per distinct architecture (dropout, model options) in the grid.
    """
    c = int(data.y.max()) + 1
    jobs = [(g, f) for g in range(len(protocol.grid)) for f in range(len(fold_splits))]
    out: dict[tuple[int, int], tuple[float, float]] = {}
    groups: dict[str, list[tuple[int, int]]] = {}
    for g, f in jobs:
        cfg = protocol.grid[g]
        groups.setdefault(repr((cfg["dropout"], sorted(cfg.get("model", {}).items()))), []).append((g, f))
    for members in groups.values():
        models = []
        for g, _ in members:
            config.seed_everything(seed)
            cfg = protocol.grid[g]
            models.append(build_victim(victim, data.num_features, c, dropout=cfg["dropout"], **cfg.get("model", {})))
        ens = VictimEnsemble(models).to(dev)
        config.seed_everything(seed)
        res = fit_ensemble(ens, inputs, labels.to(dev), [fold_splits[f].train for _, f in members],
                           [fold_splits[f].val for _, f in members], [fold_splits[f].test for _, f in members],
                           lr=[protocol.grid[g]["lr"] for g, _ in members],
                           weight_decay=[protocol.grid[g]["weight_decay"] for g, _ in members],
                           epochs=protocol.epochs, patience=protocol.patience, select=protocol.select,
                           window=protocol.window)
        for job, r in zip(members, res):
            out[job] = (r.val_acc, r.test_acc)
    return [[out[(g, f)] for f in range(len(fold_splits))] for g in range(len(protocol.grid))]


def _tune(inputs, data, victim, protocol, labels, fold_splits, dev, seed):
    """Optuna TPE over ``protocol.space``: ``(settings tried, [(val, test) per fold] per setting)``.

    The sampler is seeded (``seed``), so a pool's search is reproducible. A setting the
    sampler proposes again is not retrained (its score is reused); the folds of one trial
    are trained together as one ensemble.
    """
    import dataclasses

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tried: dict[str, tuple[dict[str, Any], list[tuple[float, float]]]] = {}

    def objective(trial) -> float:
        cfg = {name: trial.suggest_categorical(name, list(values)) for name, values in protocol.space}
        key = repr(sorted(cfg.items()))
        if key not in tried:
            one = dataclasses.replace(protocol, search="grid", grid=(cfg,))
            tried[key] = (cfg, _train_grid(inputs, data, victim, one, labels, fold_splits, dev, seed)[0])
        res = tried[key][1]
        return sum(r[0] for r in res) / len(res)

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=protocol.trials)
    return [c for c, _ in tried.values()], [r for _, r in tried.values()]
