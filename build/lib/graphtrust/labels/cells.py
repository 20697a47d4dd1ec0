"""The label-poisoning chapter's experiments on the harness (:mod:`graphtrust.experiment`).

``label_attacks``: the main table, one cell per (dataset, victim, attack, budget, pool)
under the corrected protocol (``attack="clean"`` at budget 0); the sweep victims at every
budget, the others at the main budget. Records as ``label_pitfalls``.

``label_pitfalls``: GCN test accuracy under each protocol of :func:`~.protocol.pitfall_steps`
(flawed → corrected, one pitfall fixed at a time), clean and under the profile's
``pitfall_attacks`` at the main budget, one cell per (dataset, protocol step, attack, pool).
Every attack is computed once per pool and reused by every protocol that draws the same
pool (all but the class-equalised one). Records: ``accuracy`` (clean test labels),
``flips`` (labels actually changed: LafAK as released may flip fewer than the budget),
``budget``, the BIN ``pair`` and the defender's chosen setting.

Run, resume or merge from the command line::

    GRAPHTRUST_PROFILE=full python -m graphtrust.experiments label_pitfalls \\
        --out book/results/label_pitfalls_full.jsonl [--only dataset=cora_ml]
"""

from __future__ import annotations

from typing import Any

from .. import config, datasets
from ..experiment import Experiment, Grid, register
from .attacks import bin_pair, label_budget
from .experiments import Attacker
from .protocol import corrected_protocol, evaluate, pitfall_steps, tuned_protocol

__all__ = ["PITFALLS", "ATTACK_CELLS", "pitfall_grid", "measure_pitfall", "attack_grid", "measure_attack", "STEPS"]

#: protocol names of :func:`~.protocol.pitfall_steps`, flawed → corrected (→ the paper's pool size),
#: then the paper's tuned defender (:func:`~.protocol.tuned_protocol`)
STEPS = ("flawed", "P2", "P2+P1", "P2+P1+P4", "corrected", "corrected-large", "corrected-tuned")


def pitfall_grid(sz: config.Sizes) -> Grid:
    """dataset × protocol step × (clean + pitfall attacks) × pool (the larger pool: if the profile has one),
    plus the paper's tuned defender (``corrected-tuned``) on its own attacks and pools, if the profile has it."""
    steps = STEPS[:-1] if sz.get("pitfall_large_pool") else STEPS[:-2]
    g = Grid.product(dataset=sz.datasets, protocol=steps, attack=("clean", *sz.pitfall_attacks),
                     split=sz.pitfall_splits)
    if sz.get("tuned"):
        g = g | Grid.product(dataset=sz.datasets, protocol=("corrected-tuned",), attack=sz.pitfall_tuned_attacks,
                             split=sz.pitfall_tuned_splits)
    return g


def _steps(sz: config.Sizes, dataset: str) -> dict[str, Any]:
    large = (sz.get("pitfall_large_pool") or {}).get(dataset)
    steps = pitfall_steps(sz.pool_size[dataset], sz.validation, sz.folds, sz.grid, large_pool=large,
                          epochs=sz.epochs, patience=sz.patience)
    out = {p.name: p for _, p in steps}
    if sz.get("tuned"):
        out["corrected-tuned"] = tuned_protocol(sz.pool_size[dataset], **sz.tuned)
    return out


def _measure(ctx: dict[str, Any], protocol, victim: str, attack_name: str, budget: float,
             split: int) -> tuple[dict[str, Any], int]:
    """Accuracy of ``victim`` under ``protocol`` on pool ``split``, clean or poisoned; flips and BIN pair.
    Also returns the number of flips the budget allows on the drawn pool (0 when clean)."""
    data, attacker = ctx["data"], ctx["attacker"]
    attack = None if attack_name == "clean" else attack_name
    ev = evaluate(protocol, data, victim, attacker.poison(attack, budget), [split])
    rec: dict[str, Any] = {"accuracy": ev.accuracies[0], "flips": 0, "pair": "", "chosen": repr(ev.chosen[0])}
    if attack is None:
        return rec, 0
    pool = protocol.draw(data.y, split)
    res = attacker.attack(attack, budget, pool.train, pool.test)  # cached: the labels evaluate used
    rec.update(flips=int(res.flipped.numel()),
               pair=",".join(map(str, bin_pair(data.y))) if attack.split(":")[0] in BINARY else "")
    return rec, label_budget(budget, pool.train.numel())


def _load(ctx: dict[str, Any], name: str) -> bool:
    """Keep one dataset's graph and attack cache in ``ctx``; True when ``name`` was just loaded."""
    if ctx.get("dataset") == name:
        return False
    data = datasets.load(name, lcc=True)
    ctx.update(dataset=name, data=data, attacker=Attacker(data))
    return True


def measure_pitfall(cell: dict[str, Any], ctx: dict[str, Any]) -> dict[str, Any]:
    """GCN accuracy of one (dataset, protocol, attack, pool) cell; see the module docstring."""
    sz = ctx["sizes"]
    if _load(ctx, cell["dataset"]):
        ctx["steps"] = _steps(sz, cell["dataset"])
    protocol = ctx["steps"][cell["protocol"]]
    rec, flips_allowed = _measure(ctx, protocol, "gcn", cell["attack"], sz.main_budget, cell["split"])
    return {**rec, "budget": flips_allowed}


def attack_grid(sz: config.Sizes) -> Grid:
    """Clean + every attack: all budgets for the sweep victims, the main budget for the others."""
    sweep = tuple(v for v in sz.victims if v in sz.get("sweep_victims", sz.victims))
    other = tuple(v for v in sz.victims if v not in sweep)
    g = Grid.product(dataset=sz.datasets, victim=sz.victims, attack=("clean",), budget=(0.0,), split=sz.splits)
    if sweep:
        g = g | Grid.product(dataset=sz.datasets, victim=sweep, attack=sz.attacks, budget=sz.budgets, split=sz.splits)
    if other:
        g = g | Grid.product(dataset=sz.datasets, victim=other, attack=sz.attacks, budget=(sz.main_budget,),
                             split=sz.splits)
    return g


def measure_attack(cell: dict[str, Any], ctx: dict[str, Any]) -> dict[str, Any]:
    """Accuracy of one victim under one attack on one pool, corrected protocol."""
    sz = ctx["sizes"]
    name = cell["dataset"]
    if _load(ctx, name):
        ctx["protocol"] = corrected_protocol(pool_size=sz.pool_size[name], folds=sz.folds, grid=sz.grid,
                                             epochs=sz.epochs, patience=sz.patience)
    return _measure(ctx, ctx["protocol"], cell["victim"], cell["attack"], cell["budget"], cell["split"])[0]


#: attacks that flip between the BIN pair
BINARY = ("random-bin", "degree-bin", "lp", "lafak", "lafak-topb", "sgc-bin", "ntk-bin", "meta-bin")

PITFALLS = register(Experiment("label_pitfalls", pitfall_grid, measure_pitfall, chapter="label_poisoning"))
ATTACK_CELLS = register(Experiment("label_attacks", attack_grid, measure_attack, chapter="label_poisoning"))
