"""The Metattack chapter's gap attribution on the experiment harness (:mod:`graphtrust.experiment`).

``metattack_gaps`` measures Meta-Self at the main budget (5 %) cell by cell:

    dataset × mode × attacker labels × split × attack seed

* ``dataset``: ``cora_ml`` (2,810 nodes, real-valued features), ``cora_npz`` (2,485
  nodes, binary features: the file the paper's clean numbers fit) and ``citeseer_npz``;
* ``mode``: :data:`~.attacks.MODES` — ``ours``, ``paper`` (the authors' code as closely as
  the facts allow), ``strong`` (the inner training run until the surrogate fits);
* ``labels``: ``self`` (self-training labels, what the attacker has) or ``true`` (the
  unlabelled nodes' true labels: an oracle bound, never available to an attacker);
* ``split``: the seed of the stratified 10/10/80 split; ``attack_seed``: the attack's seed
  (θ₀ and the self-training surrogate's).

Clean cells (``attack="clean"``, ``labels="-"``) hold the victims on the clean graph of each
(dataset, mode, split). Every cell gives one record per victim seed (GCN trained with the
mode's recipe) with its misclassification rate, plus what explains the attack: the inner
steps T, the surrogate's median training loss at T, how many self-labels are right, and
the share of flips that touch an unlabelled node whose self-label is wrong.

Run the full grid in parts, one thread each, and merge::

    GRAPHTRUST_PROFILE=full OMP_NUM_THREADS=1 python -m graphtrust.experiments metattack_gaps \\
        --out runs/gaps_a.jsonl --only dataset=cora_ml
"""

from __future__ import annotations

import statistics
from typing import Any

import torch

from .. import config, datasets
from ..experiment import Experiment, Grid, register
from ..splits import stratified_split
from .attacks import MODES, attack, self_training_labels
from .victims import gcn_victim

__all__ = ["GAPS", "gaps_grid", "measure_gap"]


def gaps_grid(sz: config.Sizes) -> Grid:
    """Clean victims per (dataset, mode, split), and Meta-Self per labels × attack seed."""
    g = sz.gaps
    clean = Grid.product(dataset=g["datasets"], mode=g["modes"], attack=("clean",), labels=("-",),
                         split=g["splits"], attack_seed=(0,))
    attacked = Grid.product(dataset=g["datasets"], mode=g["modes"], attack=("meta-self",), labels=g["labels"],
                            split=g["splits"], attack_seed=g["attack_seeds"])
    return clean | attacked


def _context(ctx: dict[str, Any], name: str, split_seed: int):
    if ctx.get("dataset") != name:
        ctx.update(dataset=name, data=datasets.load(name, lcc=True), splits={})
    if split_seed not in ctx["splits"]:
        ctx["splits"][split_seed] = stratified_split(ctx["data"].y, 0.1, 0.1, seed=split_seed)
    return ctx["data"], ctx["splits"][split_seed]


def measure_gap(cell: dict[str, Any], ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """Victim errors of one cell (one record per victim seed); see the module docstring."""
    sz = ctx["sizes"]
    data, split = _context(ctx, cell["dataset"], cell["split"])
    mode = MODES[cell["mode"]]
    seeds = sz.victim_seeds
    if cell["attack"] == "clean":
        return [{"victim_seed": s, "error": gcn_victim(data, split, seed=s, recipe=mode.recipe)} for s in seeds]
    unl = split.unlabelled
    if cell["labels"] == "true":
        labels = data.y.clone()
    elif cell["labels"] == "self":
        labels = self_training_labels(data, split, seed=cell["attack_seed"], recipe=mode.recipe)
    else:
        raise ValueError(f"labels must be 'self' or 'true', got {cell['labels']!r}")
    steps = sz.steps if cell["mode"] == "ours" else None  # paper: 100; strong: chosen by fit
    res = attack(data, split, "meta-self", sz.main_budget, seed=cell["attack_seed"], steps=steps, labels=labels,
                 mode=cell["mode"], show_progress=False)
    poisoned = res.perturbed(data)
    wrong = torch.zeros(data.num_nodes, dtype=torch.bool)
    wrong[unl] = labels[unl] != data.y[unl]
    touches_wrong = (wrong[res.flips[:, 0]] | wrong[res.flips[:, 1]]).float().mean()
    shared = {
        "steps": res.params["steps"],
        "reinit": res.params["reinit"],
        "surrogate_loss": statistics.median(res.params["surrogate_loss"]),
        "self_label_accuracy": float((labels[unl] == data.y[unl]).float().mean()),
        "flips_touching_wrong_label": float(touches_wrong),
        "share_inserted": float(res.inserted.float().mean()),
        "flips": int(res.flips.size(0)),
        "attack_seconds": round(res.seconds, 2),
    }
    return [{"victim_seed": s, "error": gcn_victim(poisoned, split, seed=s, recipe=mode.recipe), **shared}
            for s in seeds]


GAPS = register(Experiment("metattack_gaps", gaps_grid, measure_gap, chapter="metattack"))
