"""Structure poisoning: Metattack (Zügner & Günnemann, ICLR 2019) and its baselines.

* :func:`attack` — ``meta-self``, ``meta-train`` (exact meta-gradients), ``a-meta-self``,
  ``a-meta-train``, ``a-meta-both`` (approximate), ``first-order``, ``dice``, ``random``.
* :mod:`.metagradient` — the meta-gradient estimators (fast exact, approximate, reference).
* :mod:`.constraints` — no singletons; the degree power-law likelihood-ratio test.
* :mod:`.victims` — GCN, DeepWalk and feature-only victims trained on the poisoned graph.
"""

from .attacks import METHODS, AttackResult, attack, budget_flips, self_training_labels
from .victims import deepwalk_victim, features_victim, gcn_victim

__all__ = [
    "METHODS", "AttackResult", "attack", "budget_flips", "self_training_labels",
    "gcn_victim", "deepwalk_victim", "features_victim",
]  # fmt: skip
