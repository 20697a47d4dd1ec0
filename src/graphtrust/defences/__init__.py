"""Defences against structure poisoning, and their evaluation with adaptive attacks.

* :mod:`.models` — Jaccard-GCN, SVD-GCN, GNNGuard, RGCN, Soft-Median-GDC: each a model
  ``forward(x, edge_index, edge_weight=None)`` that purifies the graph it is given.
* :mod:`.evaluate` — :data:`DEFENCES` by name, :func:`train`, :func:`accuracy`, and
  :func:`prbcd` (PyG's ``PRBCDAttack``) for transfer and adaptive evasion attacks.
* :mod:`.meta` — :func:`meta_pgd`: adaptive poisoning through the defender's training
  (PR-BCD on :class:`UnrolledTraining`, the defence's training unrolled).
* :mod:`.cells` — the chapter's grids on the experiment harness (``defences_main``,
  ``defences_meta``, ``defences_meta_transfer``, ``defences_adversarial_warmup``,
  ``defences_svd_clip``).
"""

from .evaluate import (
           DEFENCES,
           Defence,
           Trained,
           accuracy,
           attacker_labels,
           budget_flips,
           build,
           defence,
           prbcd,
           train,
)
from .meta import NOT_UNROLLED, UnrolledTraining, meta_pgd

__all__ = ["DEFENCES", "Defence", "Trained", "accuracy", "attacker_labels", "budget_flips", "build", "defence",
           "prbcd", "train", "meta_pgd", "UnrolledTraining", "NOT_UNROLLED"]
