"""Defences against structure poisoning, and their evaluation with adaptive attacks.

* :mod:`.models` — Jaccard-GCN, SVD-GCN, GNNGuard, RGCN, Soft-Median-GDC: each a model
  ``forward(x, edge_index, edge_weight=None)`` that purifies the graph it is given.
* :mod:`.evaluate` — :data:`DEFENCES` by name, :func:`train`, :func:`accuracy`, and
  :func:`prbcd` (PyG's ``PRBCDAttack``) for transfer and adaptive evasion attacks.
* :mod:`.cells` — the chapter's grid on the experiment harness (``defences_main``).
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

__all__ = ["DEFENCES", "Defence", "Trained", "accuracy", "attacker_labels", "budget_flips", "build", "defence",
           "prbcd", "train"]
